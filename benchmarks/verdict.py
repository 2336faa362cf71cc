"""The study's verdict on a results file: which configuration plays which part, and what the records show.

Roles come from the methods' own declarations (`MethodSpec.role`: the baseline, IL, teacher-free
rivals, teacher methods, peers), plus the dissection controls named by their configuration.
`summarize.py` appends these readings under each regime's table; the package's
`markdown_table` itself reports numbers only.
"""

import collections
import math
import statistics

from scipy import stats

from keras_introspect.benchmark import report
from keras_introspect.errors import InputError
from keras_introspect.methods.registry import METHODS


# Configurations that dissect a method instead of competing (the mechanism controls of docs/method.md);
# their names say what was taken away, and the verdict leaves them out.
CONTROLS = ("uniform", "shuffled", "matched")


def role(record):
    """How a configuration takes part in the verdict.

    Returns:
        "baseline" (standard training), "il", "rival" (a teacher-free method
        other than IL), "teacher" (needs a trained teacher), "peer" (trains
        peers together) or "control" (a dissection, see `CONTROLS`).
    """
    if any(marker in record["config"] for marker in CONTROLS):
        return "control"
    spec = METHODS.get(record["method"])
    role = spec.role if spec is not None else "rival"
    # Standard training with an option set (a confidence penalty, say) is a rival, not the baseline.
    return "rival" if role == "baseline" and record["options"] else role


# Paired seeds a difference needs before it counts (issue 10 asked for ≥ 3 seeds).
SEEDS_NEEDED = 3
# The two-sided level at which a paired difference counts as shown: one rule for every protocol (issue 28).
LEVEL = 0.05


def paired(records, reference):
    """`records` against `reference`, paired by seed: `{"seeds", "mean", "se", "t", "p", "outcome"}` in
    points, or None.

    With at least `SEEDS_NEEDED` shared seeds the outcome is the paired t-test's (`outcome`); with fewer it
    is "not established" and `se` is None.
    """
    reference = {r["seed"]: r["final_accuracy"] for r in reference}
    shared = [r for r in records if r["seed"] in reference]
    if not shared:
        return None
    deltas = [100 * (r["final_accuracy"] - reference[r["seed"]]) for r in shared]
    mean, seeds = statistics.mean(deltas), [r["seed"] for r in shared]
    if len(deltas) < SEEDS_NEEDED:
        return {"seeds": seeds, "mean": mean, "se": None, "outcome": "not established"}
    error, t, p = t_test(deltas)
    result = {"seeds": seeds, "mean": mean, "se": error, "t": t, "p": p}
    return {**result, "outcome": outcome(result) or "not testable"}


def t_test(differences):
    """The paired t-test of per-seed differences: `(standard error, t, two-sided p)`; t and p are None when
    every difference is the same. Needs at least two differences."""
    error = statistics.stdev(differences) / math.sqrt(len(differences))
    if error == 0:
        return error, None, None
    t = statistics.mean(differences) / error
    return error, t, float(2 * stats.t.sf(abs(t), len(differences) - 1))


def confidence_interval(mean, error, n, level=0.95):
    """The two-sided `level` confidence interval of a mean of `n` paired differences with standard error `error`
    (Student's t with n - 1 degrees of freedom): `(low, high)`. "Level" says a difference was not shown; the
    interval says how large a difference the seeds still allow."""
    half = stats.t.ppf(0.5 + level / 2, n - 1) * error
    return mean - half, mean + half


def outcome(comparison):
    """"ahead", "behind" or "level" (p ≥ `LEVEL`) by a paired comparison's t-test, from its "mean", "t" and
    "p"; None where the test could not be computed."""
    if comparison["t"] is None:
        return None
    if comparison["p"] >= LEVEL:
        return "level"
    return "ahead" if comparison["mean"] > 0 else "behind"


def p_text(p):
    """A p value as a reader should see it: three decimals, and no "p = 0.000"."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def test_text(result):
    """`paired`'s t-test as words: "paired t = -4.05, p = 0.056", or why there is none."""
    if result["t"] is None:
        return "the same difference on every seed"
    return f"paired t = {result['t']:.2f}, {p_text(result['p'])}"


def level_text(outcome):
    """What a "level" outcome adds after its test: the level it was judged at."""
    return f", no difference at the {LEVEL:.0%} level" if outcome == "level" else ""


def compare(records, reference):
    """One phrase on how `records` fare against `reference`, paired by seed (the rule of `paired`)."""
    result = paired(records, reference)
    if result is None:
        return "no seed in common"
    n = len(result["seeds"])
    if result["se"] is None:
        return (f"{result['mean']:+.2f} points on seed{'s' if n > 1 else ''} {', '.join(map(str, result['seeds']))}; "
                f"not established ({n} of the {SEEDS_NEEDED} seeds needed)")
    return (f"{result['mean']:+.2f} ± {result['se']:.2f} points (mean ± standard error, {n} seeds; "
            f"{test_text(result)}): {result['outcome']}")


# How `paired`'s outcome reads in a plain sentence.
PLAIN = {"ahead": "ahead of", "behind": "behind", "level": "level with", "not testable": "not testable against",
         "not established": "not yet measured on enough seeds against"}


def plain(result, against):
    """`paired`'s result as words a reader takes in at once, e.g. "behind standard training: -0.48 ± 0.05
    points (mean ± standard error over 3 seeds; paired t = -9.13, p = 0.012)"."""
    if result is None:
        return f"never run on the same seeds as {against}"
    n = len(result["seeds"])
    if result["se"] is None:
        return f"{PLAIN['not established']} {against} ({result['mean']:+.2f} points on {n} seed{'s' * (n > 1)})"
    size = f"{result['mean']:+.2f} ± {result['se']:.2f} points (mean ± standard error over {n} seeds; {test_text(result)}"
    return f"{PLAIN[result['outcome']]} {against}: {size}{level_text(result['outcome'])})"


def answer(configs, where):
    """One sentence: what the best IL configuration does against standard training and the best rival.

    Args:
        configs: `{config: [records]}` of one regime.
        where: the regime in words, e.g. "On CIFAR-10 (resnet20, 10000 images × 15 ep, aug)".

    Returns:
        `(sentence, outcome against standard training)`, or None without IL and standard training records.
    """
    base = configs.get("standard")
    by_role = _by_role(configs)
    if not base or not by_role["il"]:
        return None
    il, _ = _best(by_role["il"], base)
    against_base = paired(configs[il], base)
    text = f"{where}, IL is {plain(against_base, 'standard training')}"
    if by_role["rival"]:
        rival, _ = _best(by_role["rival"], base)
        text += f", and {plain(paired(configs[il], configs[rival]), f'the best teacher-free rival ({rival})')}"
    tried = len(by_role["il"])
    shared = [paired(rs, base) for rs in by_role["il"].values()]
    settled = sum(len(result["seeds"]) >= SEEDS_NEEDED for result in shared if result)
    text += (f" — its best setting, {il}, picked on the test split among the {settled} of {tried} settings tried "
             f"that ran on {SEEDS_NEEDED} seeds" if settled else f" — its best setting, {il}, of {tried} tried")
    return text + ".", (against_base or {}).get("outcome")


def _by_role(configs):
    groups = collections.defaultdict(dict)
    for config, rs in configs.items():
        groups[role(rs[0])][config] = rs
    return groups


def _best(group, base):
    """The configuration of `group` with the highest mean paired gain over `base`, and the pool's words.

    When some configurations share `SEEDS_NEEDED` seeds with `base`, only they
    compete: one lucky seed would otherwise outrank three measured ones.

    Returns:
        `(name, words)`, words such as "of 4", "of 2 with 3 seeds" or
        "of 1 with 3 seeds, 10 in all".
    """
    reference = {r["seed"]: r["final_accuracy"] for r in base}

    deltas = {config: [r["final_accuracy"] - reference[r["seed"]] for r in rs if r["seed"] in reference]
              for config, rs in group.items()}
    settled = [config for config in group if len(deltas[config]) >= SEEDS_NEEDED]
    pool = settled or list(group)
    choice = max(pool, key=lambda config: statistics.mean(deltas[config]) if deltas[config] else -math.inf)
    words = f"of {len(pool)}"
    if settled:
        # the count of everything tried stays in view: a choice among many flatters the chosen one
        words += f" with {SEEDS_NEEDED} seeds" + (f", {len(group)} in all" if len(pool) < len(group) else "")
    return choice, words


def best(records, role_name, seeds=None, among=None):
    """The configuration of one role with the highest mean paired gain over standard training.

    Args:
        records: result records of one regime (`load`).
        role_name: a `role`, e.g. "il" or "rival".
        seeds: compare on these seeds only. A choice made on a fixed seed
            stays the same when later seeds land, so a sweep that resumes
            spends them on the configuration it chose before.
        among: choose among these configurations only; with `seeds`, the
            choice also stays the same when later variants land.

    Returns:
        The configuration's name, or None when no record has that role or
        standard training shares no seed with it.

    Example:
    >>> best(report.load("benchmarks/results/long_protocol.jsonl"), "il", seeds=[0])
    """
    if seeds is not None:
        records = [r for r in records if r["seed"] in seeds]
    if among is not None:
        unknown = set(among) - {r["config"] for r in records}
        if unknown:
            raise InputError(f"best: no records of {', '.join(sorted(unknown))} (on the given seeds)")
        keep = set(among) | {"standard"}
        records = [r for r in records if r["config"] in keep]
    regimes = report.grouped(records)
    if len(regimes) > 1:
        raise InputError("best: the records mix regimes; pass the records of one protocol")
    configs = next(iter(regimes.values()), {})
    base, group = configs.get("standard"), _by_role(configs)[role_name]
    if not base or not group:
        return None
    choice, _ = _best(group, base)
    shared = {r["seed"] for r in base} & {r["seed"] for r in configs[choice]}
    return choice if shared else None


def qualification(configs):
    """Whether the regime is one where a teacher-free regularizer pays at all, or None.

    IL can only be seen beating standard training where an established
    regularizer does (docs/comparators.md); this sentence says whether the
    records show such a regime, with the same rule as `verdict`.
    """
    base = configs.get("standard")
    rivals = _by_role(configs)["rival"]
    if not base or not rivals:
        return None
    rival, pool = _best(rivals, base)
    return (f"Regime: the best teacher-free rival, {rival} ({pool}), against standard training: "
            f"{compare(configs[rival], base)}.")


def verdict(configs):
    """The regime's answer to "does IL beat standard training and its teacher-free rivals?", or None.

    The best IL configuration and the best rival are the ones with the highest
    mean paired difference from standard training; picking on the test split
    flatters both alike, and the sentence says out of how many each was chosen.
    """
    base = configs.get("standard")
    by_role = _by_role(configs)
    if not base or not by_role["il"]:
        return None
    il, pool = _best(by_role["il"], base)
    text = (f"Verdict: the best IL configuration, {il} ({pool}), against standard training: "
            f"{compare(configs[il], base)}.")
    if by_role["rival"]:
        rival, pool = _best(by_role["rival"], base)
        text += (f" Against the best teacher-free rival, {rival} ({pool}): "
                 f"{compare(configs[il], configs[rival])}.")
    return text


def with_teacher(configs):
    """How each teacher method fares against standard training, or None.

    Outside the verdict: a teacher is what IL does without, and the
    protocol's teacher trains longer than the student.
    """
    base = configs.get("standard")
    teachers = _by_role(configs)["teacher"]
    if not base or not teachers:
        return None
    readings = [f"{config} against standard training: {compare(rs, base)}" for config, rs in teachers.items()]
    return "With a teacher (outside the verdict): " + "; ".join(readings) + "."


def dissected(config):
    """The configuration a control takes something from: its name without the marker (`kd_shuffled` → `kd`)."""
    for marker in CONTROLS:
        if config.endswith("_" + marker):
            return config[:-len(marker) - 1]
    return None


def mechanism(configs):
    """What each control loses or gains against the configuration it dissects, paired by seed, or None.

    A control removes one thing — the teacher's class structure (`kd_shuffled`), every class
    preference (`kd_uniform`, `il_..._uniform`) — so its difference from the full configuration is
    what that thing adds (docs/method.md, section 5).
    """
    readings = [f"{config} against {dissected(config)}: {compare(rs, configs[dissected(config)])}"
                for config, rs in configs.items() if role(rs[0]) == "control" and dissected(config) in configs]
    return "Mechanism (each control against what it dissects): " + "; ".join(readings) + "." if readings else None


def readings(configs):
    """The regime's verdict lines (qualification, verdict, with a teacher, mechanism), those that apply."""
    return [reading for reading in (qualification(configs), verdict(configs), with_teacher(configs),
                                    mechanism(configs)) if reading]
