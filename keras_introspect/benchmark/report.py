"""Benchmark reports: JSON, CSV, a Markdown table and plots, with provenance."""

import collections
import csv
import json
import os
import re
import math
import statistics

from keras_introspect.errors import InputError
from keras_introspect.paths import write_json
from keras_introspect.plots import line_style


def load(path):
    """Records from a JSON-lines results file.

    Raises:
        InputError: naming the file and line of a line that is not a JSON record.
    """
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}, line {number}, is not a JSON record ({error.msg}); "
                                 "remove or repair that line (an interrupted write leaves a partial last line).") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}, line {number}, is not a JSON object.")
            records.append(record)
    return records


def append(path, record):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def percent_mean(values, spread=statistics.stdev, single=""):
    """`values` (fractions) as a percentage mean ± `spread(values)`; one value gets `single` appended instead."""
    mean = 100 * statistics.mean(values)
    if len(values) < 2:
        return f"{mean:.2f}{single}"
    return f"{mean:.2f} ± {100 * spread(values):.2f}"


def standard_error(values):
    return statistics.stdev(values) / math.sqrt(len(values))


def mean_se(values):
    """Fractions as "mean ± standard error" in percent; one value is marked "(1 seed)"."""
    return percent_mean(values, spread=standard_error, single=" (1 seed)")


def regime(record):
    augment = "aug" if record["augment"] else "no aug"
    return f"{record['arch']}, {record['train_size']} images × {record['epochs']} ep, {augment}"


def grouped(records):
    """`{regime: {config: [records]}}`, in the order first seen."""
    groups = collections.OrderedDict()
    for r in records:
        groups.setdefault(regime(r), collections.OrderedDict()).setdefault(r["config"], []).append(r)
    return groups


def _median_step(records):
    """Median step time over the records that measured one (older records did not)."""
    steps = [r["step_seconds"] for r in records if r.get("step_seconds")]
    return statistics.median(steps) if steps else None


def paired_delta(records, base):
    """Mean ± standard error of final-accuracy differences from `base` over the seeds both have.

    A seed fixes initialization, data order and augmentation for every
    method, so per-seed differences cancel much of the seed-to-seed noise
    that the spread of the plain means carries. Returns "—" with no shared
    seed; one shared seed names it (the difference is against that seed's
    baseline, not the baseline's mean); `(n=k)` is appended when fewer seeds
    are shared than run.
    """
    if not base:
        return "—"
    reference = {r["seed"]: r["final_accuracy"] for r in base}
    shared = [r for r in records if r["seed"] in reference]
    if not shared:
        return "—"
    deltas = [r["final_accuracy"] - reference[r["seed"]] for r in shared]
    mean = 100 * statistics.mean(deltas)
    if len(deltas) < 2:
        return f"{mean:+.2f} (seed {shared[0]['seed']})"
    text = f"{mean:+.2f} ± {100 * standard_error(deltas):.2f}"
    return text if len(deltas) == len(records) else f"{text} (n={len(deltas)})"


def options_text(records):
    """A row's options; a row run on a method's defaults names the commits whose defaults those were
    (defaults change: a row from before a change is not today's method)."""
    options = ", ".join(f"{k}={v}" for k, v in records[0]["options"].items())
    if options or records[0]["config"] == "standard":
        return options or "—"
    return "defaults at " + ", ".join(sorted({r["commit"] for r in records}))


def markdown_table(records, timing=True, readings=None):
    """Mean ± standard error over seeds per configuration, one table per regime, and provenance.

    Args:
        records: result records (`runner.run_one`).
        timing: include minutes per run and the median step time. Leave it
            out when the runs did not have the machine to themselves: times
            measured under different loads are not comparable.
        readings: `readings({config: [records]})` → lines printed under a regime's table
            (the study's verdict, `benchmarks/verdict.py`).
    """
    lines = []
    for name, configs in grouped(records).items():
        base = configs.get("standard")
        base_step = _median_step(base or [])
        # Expected calibration error (15 bins), for regimes whose records carry it.
        calibration = any("ece" in r for rs in configs.values() for r in rs)
        # No best-over-epochs accuracy: picking the epoch on the scored split would be a choice made on it.
        columns = ["configuration", "options", "seeds", "final acc. (%)", "Δ vs standard, paired by seed (pts)"] + \
                  (["ECE (%)"] if calibration else []) + \
                  (["minutes/run", "step (ms)", "step / standard"] if timing else [])
        lines += [f"**{name}**", "", "Each cell: mean ± standard error over the row's seeds; Δ pairs each seed with "
                  "standard training's run on the same seed.", "",
                  "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for config, rs in configs.items():
            cells = [config, options_text(rs), ",".join(str(r["seed"]) for r in rs),
                     mean_se([r["final_accuracy"] for r in rs]), paired_delta(rs, base)]
            if calibration:
                eces = [r["ece"] for r in rs if "ece" in r]
                cells.append(mean_se(eces) if eces else "—")
            if timing:
                step = _median_step(rs)
                # Records before `train_seconds` existed time only a run's last part.
                cells += [f"{statistics.mean(r.get('train_seconds', r['wall_seconds']) for r in rs) / 60:.1f}",
                          "—" if step is None else f"{1000 * step:.0f}",
                          f"{step / base_step:.2f}×" if step and base_step else "—"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for reading in readings(configs) if readings else ():
            lines += [reading, ""]
    commits = sorted({r["commit"] for r in records})
    dates = sorted(r["date"] for r in records)
    first = records[0]
    lines.append(
        f"Provenance: `{first['command']}` (and the same with other configurations/seeds); commits "
        f"{', '.join(commits)}; machine: {first['machine']}; TensorFlow {first['tensorflow']}, Keras "
        f"{first['keras']}; runs from {dates[0]} to {dates[-1]}. Accuracy on the full test split."
    )
    return "\n".join(lines)


def write_csv(records, path):
    keys = ["config", "method", "seed", "final_accuracy", "ece", "wall_seconds", "train_seconds",
            "step_seconds", "arch", "train_size", "epochs", "batch_size", "lr", "augment", "commit", "date", "machine"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys + ["options"])
        for r in records:
            writer.writerow([r.get(k) for k in keys] + [json.dumps(r["options"])])


def plot(records, directory):
    """`accuracy_*.png` (bars from zero, standard-error bars where a row has several seeds) and
    `curves_*.png` (accuracy per epoch)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    for name, configs in grouped(records).items():
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        names = list(configs)
        means = [100 * statistics.mean(r["final_accuracy"] for r in configs[c]) for c in names]
        errors = [100 * standard_error([r["final_accuracy"] for r in configs[c]]) if len(configs[c]) > 1 else 0.0
                  for c in names]
        fig = Figure(figsize=(max(5, 0.9 * len(names)), 3.5))
        ax = fig.subplots()
        # Bars start at zero (a cut axis makes small differences look large); one-seed rows get no error bar.
        ax.bar(range(len(names)), means, yerr=errors, capsize=4, color="tab:blue")
        for index, config in enumerate(names):
            ax.text(index, means[index] / 2, f"{means[index]:.1f}\n{len(configs[config])} seed"
                    + "s" * (len(configs[config]) > 1), ha="center", va="center", color="white", fontsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("final test accuracy (%)\n(± standard error over seeds)")
        ax.set_ylim(0, min(100, max(m + e for m, e in zip(means, errors)) + 5))
        ax.set_title(name, fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(directory, f"accuracy_{slug}.png"), dpi=110)
        # Left: test (solid) and training (dashed) accuracy, the gap showing how much the regime
        # overfits; right: the test accuracy of the last third, where the methods separate.
        fig = Figure(figsize=(10, 3.8))
        whole, tail = fig.subplots(1, 2)
        for index, config in enumerate(names):
            color, marker = line_style(index)
            test, train = (mean_curve(configs[config], key) for key in ("val_accuracy", "accuracy"))
            epochs = range(1, len(test) + 1)
            # earlier configurations drawn wider and below, so a curve lying on another stays visible
            width = max(1.0, 3.0 - 0.6 * index)
            whole.plot(epochs, test, color=color, marker=marker, markersize=3, linewidth=width, label=config,
                       zorder=index)
            if train:
                whole.plot(range(1, len(train) + 1), train, color=color, linestyle="--", linewidth=0.8)
            start = len(test) - max(3, len(test) // 3)
            tail.plot(epochs[start:], test[start:], color=color, marker=marker, linewidth=width, label=config,
                      zorder=index)
        whole.set_ylabel("accuracy (%): test —, training - -")
        tail.set_ylabel("test accuracy (%)")
        for ax in (whole, tail):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        tail.legend(fontsize=7, ncol=1 if len(names) <= 8 else 2)
        fig.suptitle(f"{name} (mean over seeds)", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(directory, f"curves_{slug}.png"), dpi=110)


def mean_curve(records, key):
    """The per-epoch mean of `history[key]` over `records` in percent ([] when a record lacks it)."""
    curves = [r["history"].get(key) for r in records]
    if not all(curves):
        return []
    length = min(len(c) for c in curves)
    return [100 * statistics.mean(c[i] for c in curves) for i in range(length)]


def write_report(results_path, directory, timing=True, readings=None):
    """Everything a results file supports: JSON, CSV, Markdown table and plots
    (`timing`, `readings`: see `markdown_table`)."""
    records = load(results_path)
    if not records:
        raise InputError(f"{results_path} holds no records: nothing to report.")
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, "results.json"), records, indent=1)
    write_csv(records, os.path.join(directory, "results.csv"))
    table = markdown_table(records, timing=timing, readings=readings)
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(table + "\n")
    plot(records, directory)
    return table


def update_doc(path, name, text):
    """Replace the text between `<!-- results:NAME:begin -->` and `<!-- results:NAME:end -->`."""
    with open(path) as f:
        doc = f.read()
    pattern = re.compile(rf"(<!-- results:{name}:begin -->\n).*?(\n<!-- results:{name}:end -->)", re.S)
    if not pattern.search(doc):
        raise InputError(f"{path} has no <!-- results:{name}:begin/end --> markers")
    with open(path, "w") as f:
        f.write(pattern.sub(lambda m: m.group(1) + text + m.group(2), doc))
