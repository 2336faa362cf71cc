"""Summarize a JSON-lines results file into a Markdown table with provenance.

Groups runs by (configuration, data/arch/recipe) and reports mean ± std over
seeds of the final and best test accuracy. With --update-doc FILE, the table
replaces the text between `<!-- results:NAME:begin -->` and
`<!-- results:NAME:end -->` in FILE, so documents quote only generated numbers.

Example:
    python benchmarks/summarize.py benchmarks/results/formulation_sweep.jsonl \
        --out benchmarks/results/formulation_sweep.md --update-doc docs/method.md
"""

import argparse
import collections
import json
import os
import re
import statistics


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(values):
    mean = 100 * statistics.mean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def table(runs):
    groups = collections.OrderedDict()
    for r in runs:
        regime = f"{r['arch']}, {r['train_size']} images × {r['epochs']} ep, {'aug' if r['augment'] else 'no aug'}"
        groups.setdefault(regime, collections.OrderedDict()).setdefault(r["config"], []).append(r)
    lines = []
    for regime, configs in groups.items():
        lines += [f"**{regime}**", "", "| configuration | options | seeds | final acc. (%) | best acc. (%) | minutes/run |",
                  "|---|---|---|---|---|---|"]
        for config, rs in configs.items():
            options = ", ".join(f"{k}={v}" for k, v in rs[0]["options"].items()) or "—"
            lines.append(
                f"| {config} | {options} | {','.join(str(r['seed']) for r in rs)} | "
                f"{fmt([r['final_accuracy'] for r in rs])} | {fmt([r['best_accuracy'] for r in rs])} | "
                f"{statistics.mean(r['wall_seconds'] for r in rs) / 60:.1f} |"
            )
        lines.append("")
    commits = sorted({r["commit"] for r in runs})
    dates = sorted(r["date"] for r in runs)
    first = runs[0]
    lines += [
        f"Provenance: `{first['command']}` (and the same with other `--configs`/`--seeds`); "
        f"commits {', '.join(commits)}; machine: {first['machine']}; "
        f"TensorFlow {first['tensorflow']}, Keras {first['keras']}; runs from {dates[0]} to {dates[-1]}. "
        "Test accuracy on the 10,000 CIFAR-10 test images (shared JPEG copy).",
    ]
    return "\n".join(lines)


def update_doc(path, name, text):
    with open(path) as f:
        doc = f.read()
    pattern = re.compile(rf"(<!-- results:{name}:begin -->\n).*?(\n<!-- results:{name}:end -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path} has no <!-- results:{name}:begin/end --> markers")
    with open(path, "w") as f:
        f.write(pattern.sub(lambda m: m.group(1) + text + m.group(2), doc))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out")
    parser.add_argument("--update-doc")
    args = parser.parse_args(argv)
    text = table(load(args.results))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.update_doc:
        update_doc(args.update_doc, os.path.splitext(os.path.basename(args.results))[0], text)


if __name__ == "__main__":
    main()
