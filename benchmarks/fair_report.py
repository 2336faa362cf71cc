"""The `fair` protocol's table (issue 28): choices on validation, the verdict on test, paired t-tests.

Two parts, from one JSON-lines results file:

* **Selection** (validation only): every configuration run on the selection seeds, with its mean
  validation accuracy and its paired difference from standard training on those seeds.
* **Verdict** (test only): every configuration run on the verdict seeds, with its mean test accuracy
  ± its standard error over n seeds, its paired difference from standard training (the mean of the
  per-seed differences) with the paired t statistic, the two-sided p value and n, and its test ECE
  before and after temperature scaling fitted on validation.

Only the final epoch is scored; no best-over-epochs number appears. With --update-doc FILE
(repeatable) the Markdown also replaces the text between `<!-- results:fair_protocol:begin -->` and
`<!-- results:fair_protocol:end -->` in FILE.

Example:
    python benchmarks/fair_report.py benchmarks/results/fair_protocol.jsonl \
        --out benchmarks/results/fair_protocol/results.md --update-doc docs/method.md
"""

import argparse
import math
import os
import statistics

from keras_introspect.benchmark import report
# benchmarks/, beside this script
from verdict import PLAIN, confidence_interval, level_text, outcome, p_text, role, t_test, test_text

SELECTION_SEEDS = (0, 1)
VERDICT_SEEDS = (2, 3, 4, 5, 6)
BASELINE = "standard"


def by_config(records, seeds):
    """`{config: {seed: record}}` of the records on `seeds`, configurations in the order first seen."""
    table = {}
    for record in records:
        if record["seed"] in seeds:
            table.setdefault(record["config"], {})[record["seed"]] = record
    return table


def paired(values, baseline):
    """Paired comparison of `{seed: value}` against `{seed: value}` on their shared seeds.

    Returns:
        `{"n", "mean", "se", "t", "p"}` of the per-seed differences (t and p None below 2 seeds or
        when every difference is the same).
    """
    seeds = sorted(set(values) & set(baseline))
    differences = [values[s] - baseline[s] for s in seeds]
    result = {"n": len(seeds), "mean": statistics.mean(differences) if seeds else math.nan,
              "se": None, "t": None, "p": None}
    if len(seeds) >= 2:
        result["se"], result["t"], result["p"] = t_test(differences)
    return result


mean_se = report.mean_se


def numbers(comparison):
    """`paired`'s numbers as one text, in points, e.g. "-0.33 ± 0.16, t = -1.99, p = 0.118, n = 5"; the mean
    and n alone, with the reason, where there is no test."""
    mean, n = f"{100 * comparison['mean']:+.2f}", comparison["n"]
    if comparison["t"] is None:
        return f"{mean}, n = {n}, " + ("too few seeds for a test" if n < 2 else "the same difference on every seed")
    return f"{mean} ± {se_text(comparison['se'])}, t = {comparison['t']:.2f}, {p_text(comparison['p'])}, n = {n}"


def se_text(se):
    """A standard error in points: two decimals, and one significant digit below 0.005 points, so a
    small but real spread never prints as "± 0.00"."""
    return f"{100 * se:.2f}" if 100 * se >= 0.005 else f"{100 * se:.1g}"


def delta_text(comparison):
    """A table cell: `numbers`, or "—" without shared seeds."""
    return numbers(comparison) if comparison["n"] else "—"


def brief(comparison):
    """A parenthesis for a comparison whose words come before it, e.g. "(-0.33 ± 0.16, t = -1.99, p = 0.118,
    n = 5)"."""
    return f"({numbers(comparison)})" if comparison["n"] else "(never on the same seeds)"


def plain(comparison, against):
    """`paired`'s result in words, judged by its t-test, e.g. "behind standard training: -0.40 ± 0.10 points
    (mean ± standard error over 5 seeds; paired t = -4.00, p = 0.016)".

    Args:
        comparison: `paired`'s result, in fractions (printed as points).
        against: what was compared against, in words.
    """
    n, result = comparison["n"], outcome(comparison)
    if n == 0:
        return f"never run on the same seeds as {against}"
    if result is None and n < 2:
        return f"not yet measured on enough seeds against {against} ({100 * comparison['mean']:+.2f} points, n = {n})"
    if result is None:
        return f"not testable against {against}: {100 * comparison['mean']:+.2f} points on each of its {n} seeds"
    size = (f"{100 * comparison['mean']:+.2f} ± {se_text(comparison['se'])} points (mean ± standard error over {n} "
            f"seeds; {test_text(comparison)}")
    return f"{PLAIN[result]} {against}: {size}{level_text(result)})"


# How the verdict's configurations read in a sentence; others by their configuration name.
NAMES = {"standard": "standard training", "label_smoothing": "label smoothing", "pskd": "PS-KD", "kd": "teacher KD"}
# `outcome` in words: of accuracy against a rival, and of an error (ECE), where lower is better.
RIVAL_WORDS = {"ahead": "ahead of", "behind": "behind", "level": "level with", None: "not yet tested against"}
ERROR_WORDS = {"ahead": "higher", "behind": "lower", "level": "level", None: "not yet tested"}


def il_config(runs):
    """The IL configuration of the verdict in `by_config`'s runs: the one form chosen on validation, which
    phase 3 runs on every verdict seed (the IL configuration with the most seeds), or None."""
    forms = [c for c, seeded in runs.items() if role(next(iter(seeded.values()))) == "il"]
    return max(forms, key=lambda c: len(runs[c]), default=None)


def readings(records, seeds=VERDICT_SEEDS):
    """What the verdict's test seeds show, in sentences, each judged by the paired t-test.

    Returns:
        `(sentences, comparison)`: IL's chosen form against standard training (with the 95% confidence
        interval of the difference) and each other configuration on the verdict seeds, then its test ECE
        against standard training's before and after temperature scaling; `comparison` is `paired`'s result of IL against standard training.
        `([], None)` until standard training and IL have both run on a verdict seed.
    """
    runs = by_config(records, seeds)
    il = il_config(runs)
    if BASELINE not in runs or il is None:
        return [], None

    def of(config, key):
        return {s: r[key] for s, r in runs[config].items()}

    against_base = paired(of(il, "test_accuracy"), of(BASELINE, "test_accuracy"))
    sentences = [f"IL (its form {il}, chosen on validation) is {plain(against_base, NAMES[BASELINE])}."]
    if against_base["t"] is not None:
        low, high = (100 * x for x in confidence_interval(against_base["mean"], against_base["se"], against_base["n"]))
        bound = (f": a gain of IL over standard training larger than {high:.2f} points is ruled out at that level"
                 if low < 0 < high else "")
        sentences.append(f"The 95% confidence interval of that difference is {low:+.2f} to {high:+.2f} points{bound}.")
    rivals = [c for c in runs if c not in (BASELINE, il)]
    if rivals:
        against = {c: paired(of(il, "test_accuracy"), of(c, "test_accuracy")) for c in rivals}
        sentences.append("Against the others, paired the same way (IL minus each, in points): " + ", ".join(
            f"{RIVAL_WORDS[outcome(against[c])]} {NAMES.get(c, c)} {brief(against[c])}" for c in rivals) + ".")
    ece = {key: paired(of(il, key), of(BASELINE, key)) for key in ("test_ece", "test_ece_scaled")}
    # the means quoted beside a paired difference are over the same seeds, so that they differ by it
    shared = set(runs[il]) & set(runs[BASELINE])
    mean = {key: {c: 100 * statistics.mean(v for s, v in of(c, key).items() if s in shared) for c in (il, BASELINE)}
            for key in ece}
    sentences.append(
        f"Its test ECE is {mean['test_ece'][il]:.2f}% against standard training's {mean['test_ece'][BASELINE]:.2f}%, "
        f"{ERROR_WORDS[outcome(ece['test_ece'])]} {brief(ece['test_ece'])}; after temperature scaling fitted on "
        f"validation, the anchor practitioners use, {mean['test_ece_scaled'][il]:.2f}% against "
        f"{mean['test_ece_scaled'][BASELINE]:.2f}%, {ERROR_WORDS[outcome(ece['test_ece_scaled'])]} "
        f"{brief(ece['test_ece_scaled'])}.")
    return sentences, against_base


def options_text(record):
    return ", ".join(f"{k}={v}" for k, v in sorted(record["options"].items())) or "—"


def selection_table(records, seeds=SELECTION_SEEDS):
    runs = by_config(records, seeds)
    base = {s: r["val_accuracy"] for s, r in runs.get(BASELINE, {}).items()}
    lines = [f"Selection — validation split, seeds {', '.join(map(str, seeds))} (mean ± standard error; Δ: paired "
             f"difference from {BASELINE} on the same seeds, in points)", "",
             "| configuration | options | seeds | validation accuracy (%) | Δ vs standard | validation ECE (%) |",
             "|---|---|---|---|---|---|"]
    for config, seeded in runs.items():
        accuracy = {s: r["val_accuracy"] for s, r in seeded.items()}
        ece = statistics.mean(r["val_ece"] for r in seeded.values())
        delta = "—" if config == BASELINE else delta_text(paired(accuracy, base))
        lines.append(f"| {config} | {options_text(next(iter(seeded.values())))} | {len(seeded)} | "
                     f"{mean_se(list(accuracy.values()))} | {delta} | {100 * ece:.2f} |")
    return "\n".join(lines)


def verdict_table(records, seeds=VERDICT_SEEDS):
    runs = by_config(records, seeds)
    base = {s: r["test_accuracy"] for s, r in runs.get(BASELINE, {}).items()}
    lines = [f"Verdict — test split, seeds {', '.join(map(str, seeds))} (mean ± standard error over n seeds; Δ: "
             f"mean paired difference from {BASELINE}, in points, with the paired t-test's t and two-sided p; "
             "ECE before and after temperature scaling fitted on validation)", "",
             "| configuration | seeds | test accuracy (%) | Δ vs standard | test ECE (%) | ECE, temperature-scaled (%) "
             "| temperature |", "|---|---|---|---|---|---|---|"]
    for config, seeded in runs.items():
        accuracy = {s: r["test_accuracy"] for s, r in seeded.items()}
        delta = "—" if config == BASELINE else delta_text(paired(accuracy, base))
        ece = [r["test_ece"] for r in seeded.values()]
        scaled = [r["test_ece_scaled"] for r in seeded.values()]
        temperature = statistics.mean(r["temperature"] for r in seeded.values())
        lines.append(f"| {config} | {len(seeded)} | {mean_se(list(accuracy.values()))} | {delta} | "
                     f"{mean_se(ece)} | {mean_se(scaled)} | {temperature:.2f} |")
    return "\n".join(lines)


def provenance(records):
    commits = sorted({r["commit"] for r in records})
    dates = sorted(r["date"] for r in records)
    machines = sorted({r["machine"] for r in records})
    return (f"{len(records)} run{'' if len(records) == 1 else 's'} of `bash benchmarks/run_fair_protocol.sh` (benchmarks/formulation_sweep.py "
            f"--protocol fair), commits {', '.join(commits)}, {'; '.join(machines)}, {dates[0]} – {dates[-1]}; "
            "records: benchmarks/results/fair_protocol.jsonl, logs: benchmarks/results/fair_protocol.log (phases 1–2), "
            "fair_protocol.lane0.log and fair_protocol.lane1.log (phases 3–4, two lanes, one per core).")


def markdown(records):
    sentences, _ = readings(records)
    reading = ["Reading — test split, verdict seeds: " + " ".join(sentences)] if sentences else []
    return "\n\n".join([selection_table(records), verdict_table(records)] + reading + [provenance(records)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out", help="write the Markdown here")
    parser.add_argument("--update-doc", action="append", default=[], metavar="FILE")
    args = parser.parse_args(argv)
    text = markdown(report.load(args.results))
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    for doc in args.update_doc:
        report.update_doc(doc, "fair_protocol", text)


if __name__ == "__main__":
    main()
