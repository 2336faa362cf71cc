"""Does IL's explanation structure say which classes are alike, as a model's predictions do?

A teacher helps through the class-similarity structure of its soft labels (docs/method.md). This
script puts two learned class-level tables side by side, both read from trained models:

* IL with class-level targets (`class_targets=True`): for each class, the non-true part of the soft
  label it distilled at the end of training — the model's own target builder applied to its running
  mean explanation similarities;
* Online Label Smoothing: for each class, the mean predicted distribution of its correctly
  classified training examples in the last epoch — the structure a teacher's predictions carry.

For every class it reports the most similar other class by each, their share of the non-true mass,
the Spearman rank correlation of the two non-true distributions, and each one's normalized entropy
(1 = uniform over the other classes, 0 = all on one); with --temperatures, how IL's targets would
spread their mass at other target temperatures.

Example:
    python benchmarks/class_structure.py --il MODELS/long-il_class_targets-seed0.keras \\
        --ols MODELS/long-ols-seed0.keras --classes /tmp/kicache/imagenette-128px/train \\
        --temperatures 0.1 0.3 1 --out benchmarks/results/class_structure.json
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf
from scipy.stats import spearmanr  # scikit-learn's dependency, so always installed with the package

from keras_introspect import benchmark  # also registers the models' classes for load_model
from keras_introspect.data import class_folders
from keras_introspect.errors import InputError
from keras_introspect.paths import write_json
from keras_introspect.soft_targets import entropy


def il_non_true(model, temperature=None):
    """Per true class (rows), the distribution over the other classes that IL's class-level target gives
    (with another target temperature `temperature`, if given)."""
    if not getattr(model, "class_targets", False):
        raise InputError("the IL model was not trained with class_targets=True: it keeps no class-level table")
    builder = model.target_builder
    if temperature is not None:
        builder = type(builder).from_config({**builder.get_config(), "temperature": temperature})
    sims = tf.convert_to_tensor(model.class_similarity)
    classes = tf.range(tf.shape(sims)[0])
    # epsilon = 1: the whole mass on the other classes, in the proportions the target builder gives them
    return drop_diagonal(builder.from_similarities(sims, classes, epsilon=1.0).numpy())


def spread(il_model, ols, temperatures):
    """How IL's class-level targets would spread their mass at other target temperatures: per τ the mean
    normalized entropy, the mean share of the nearest class and the mean L1 distance to `ols`'s rows."""
    rows = []
    for tau in temperatures:
        il = il_non_true(il_model, tau)
        rows.append({"temperature": tau, "il_entropy": float(np.mean([normalized_entropy(r) for r in il])),
                     "il_share": float(il.max(axis=1).mean()), "l1_to_ols": float(np.abs(il - ols).sum(axis=1).mean())})
    return rows


def ols_non_true(model):
    """Per true class, Online Label Smoothing's soft label restricted to the other classes."""
    if not hasattr(model, "soft_labels"):
        raise InputError("the --ols model is not an Online Label Smoothing model: it keeps no soft-label table")
    return drop_diagonal(np.asarray(model.soft_labels))


def drop_diagonal(table):
    """`(k, k)` → `(k, k − 1)` rows over the other classes, each renormalized to sum to 1."""
    k = table.shape[0]
    rows = table[~np.eye(k, dtype=bool)].reshape(k, k - 1)
    return rows / rows.sum(axis=1, keepdims=True)


def normalized_entropy(p):
    """Entropy of `p` over its entries divided by that of the uniform distribution (0·log 0 = 0)."""
    return float(entropy(p)) / np.log(len(p)) if len(p) > 1 else 0.0


def compare(il, ols, names):
    """Per-class rows and their means (see the module docstring)."""
    k = len(names)
    if il.shape != (k, k - 1) or ols.shape != (k, k - 1):
        raise InputError(f"the IL model has {il.shape[0]} classes, the OLS model {ols.shape[0]} and the class "
                         f"folder {k}: compare models of the same data")
    rows = []
    for c, name in enumerate(names):
        others = [n for j, n in enumerate(names) if j != c]
        rows.append({
            "class": name,
            "il_nearest": others[int(il[c].argmax())], "il_share": float(il[c].max()),
            "ols_nearest": others[int(ols[c].argmax())], "ols_share": float(ols[c].max()),
            "spearman": float(spearmanr(il[c], ols[c]).statistic),
            "il_entropy": normalized_entropy(il[c]), "ols_entropy": normalized_entropy(ols[c]),
        })
    summary = {key: float(np.mean([r[key] for r in rows])) for key in ("spearman", "il_entropy", "ols_entropy",
                                                                        "il_share", "ols_share")}
    summary["same_nearest"] = sum(r["il_nearest"] == r["ols_nearest"] for r in rows)
    return rows, summary


def markdown(rows, summary, spread_rows=()):
    lines = ["| class | nearest by IL's explanations (share) | nearest by OLS's predictions (share) | "
             "Spearman ρ | entropy IL / OLS |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['class']} | {r['il_nearest']} ({r['il_share']:.2f}) | {r['ols_nearest']} "
                     f"({r['ols_share']:.2f}) | {r['spearman']:+.2f} | {r['il_entropy']:.2f} / {r['ols_entropy']:.2f} |")
    lines += ["", f"Same nearest class: {summary['same_nearest']} of {len(rows)}; mean Spearman ρ "
              f"{summary['spearman']:+.2f}; mean normalized entropy IL {summary['il_entropy']:.2f}, "
              f"OLS {summary['ols_entropy']:.2f}."]
    if spread_rows:
        lines += ["", "| IL's target temperature τ | normalized entropy | share of the nearest class | "
                  "L1 distance to OLS's rows |", "|---|---|---|---|"]
        lines += [f"| {r['temperature']:g} | {r['il_entropy']:.2f} | {r['il_share']:.2f} | {r['l1_to_ols']:.2f} |"
                  for r in spread_rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--il", required=True, help="a .keras IntrospectiveModel trained with class_targets=True")
    parser.add_argument("--ols", required=True, help="a .keras Online Label Smoothing model of the same data")
    parser.add_argument("--classes", required=True, help="the training split's folder (class names in label order)")
    parser.add_argument("--temperatures", type=float, nargs="*", default=[],
                        help="also show how IL's class targets would spread at these target temperatures")
    parser.add_argument("--out", required=True, help="JSON results file (the Markdown table goes beside it)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists; refusing to overwrite an earlier run's results")
    try:
        if any(tau <= 0 for tau in args.temperatures):
            raise InputError(f"--temperatures must be positive, got {args.temperatures}")
        names = class_folders(args.classes)
        il_model, ols = keras.saving.load_model(args.il), ols_non_true(keras.saving.load_model(args.ols))
        rows, summary = compare(il_non_true(il_model), ols, names)
        spread_rows = spread(il_model, ols, args.temperatures)
    except (InputError, OSError, ValueError) as error:
        parser.error(str(error))
    origin = benchmark.provenance()
    table = markdown(rows, summary, spread_rows) + (
        f"\n\nProvenance: `{origin['command']}`; commit {origin['commit']}; machine: {origin['machine']}; "
        f"TensorFlow {origin['tensorflow']}, Keras {origin['keras']}; {origin['date']}.")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, {"rows": rows, "summary": summary, "spread": spread_rows, "il": args.il, "ols": args.ols,
                          **origin}, indent=2)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
