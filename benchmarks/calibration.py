"""Over- or under-confident? The reliability of saved models on a protocol's test split.

The results tables give each method's expected calibration error (ECE): how far its confidence is
from its accuracy, not in which direction. Soft targets move confidence both ways — a teacher's
sharp labels can make a student more sure of itself, a spread mass less — so this script evaluates
models saved by `formulation_sweep.py --save-models` on the protocol's test split and reports, for
each, its accuracy, mean confidence (the top-1 probability), their difference (positive:
over-confident), ECE (15 bins) and a reliability diagram.

With --results, every model named `<protocol>-<config>-seed<N>.keras` is checked against its record
in that file: the same accuracy and ECE, or an error — another dataset or another normalization
would change both.

Example:
    python benchmarks/calibration.py --protocol long --data /tmp/kicache/imagenette-128px \\
        --models MODELS/long-standard-seed2.keras MODELS/long-kd-seed2.keras \\
        --results benchmarks/results/long_protocol.jsonl --out benchmarks/results/calibration/long_seed2.json
"""

import argparse
import os
import re

import keras
import numpy as np

import keras_introspect as ki
from keras_introspect import benchmark, recipes  # benchmark also registers the models' classes for load_model
from keras_introspect.benchmark import report
from keras_introspect.benchmark import held_out_labels, test_probabilities
from keras_introspect.errors import InputError
from keras_introspect.paths import write_json

BINS = 15
SAVED_NAME = re.compile(r"^(?P<protocol>.+?)-(?P<config>.+)-seed(?P<seed>\d+)\.keras$")


def summarize(labels, probabilities, table):
    """Accuracy, mean confidence, their difference, ECE and the reliability bins `table` of one model, for JSON."""
    accuracy = float((probabilities.argmax(1) == labels).mean())
    confidence = float(probabilities.max(1).mean())
    return {"accuracy": accuracy, "mean_confidence": confidence, "overconfidence": confidence - accuracy,
            "ece": ki.metrics.calibration_error(table),
            "reliability": {k: [None if np.isnan(v) else float(v) for v in table[k]] for k in table}}


def record_of(path, protocol, records):
    """The record a saved model's file name points to, or None if the name is not a sweep's."""
    match = SAVED_NAME.match(os.path.basename(path))
    if match is None or match["protocol"] != protocol:
        return None
    found = [r for r in records if r.get("protocol") == protocol and r["config"] == match["config"]
             and r["seed"] == int(match["seed"])]
    if not found:
        raise InputError(f"{path}: no record of {match['config']} seed {match['seed']} in the --results file")
    return found[-1]


def check_against(record, row, path, n):
    """Refuse numbers that disagree with the model's own record (another dataset or normalization)."""
    # one example may flip between the fit's evaluate and predict (nondeterministic reductions)
    if abs(row["accuracy"] - record["final_accuracy"]) > 1.5 / n or abs(row["ece"] - record["ece"]) > 2e-3:
        raise InputError(
            f"{path}: accuracy {row['accuracy']:.4f} and ECE {row['ece']:.4f} here, but its record says "
            f"{record['final_accuracy']:.4f} and {record['ece']:.4f}: is --data the dataset it was trained on?")


def markdown(rows):
    lines = ["| model | accuracy (%) | mean confidence (%) | confidence − accuracy (pts) | ECE (%) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {100 * r['accuracy']:.2f} | {100 * r['mean_confidence']:.2f} | "
              f"{100 * r['overconfidence']:+.2f} | {100 * r['ece']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, help="the protocol the models were trained under")
    parser.add_argument("--data", required=True, help="the protocol's dataset: a name or an ImageFolder path")
    parser.add_argument("--models", required=True, nargs="+", help=".keras files of trained models")
    parser.add_argument("--results", help="the sweep's JSONL: check each model against its record")
    parser.add_argument("--out", required=True, help="JSON results file (the Markdown table and the PNG go beside it)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists; refusing to overwrite an earlier run's results")
    stem = os.path.splitext(args.out)[0]
    try:
        missing = [m for m in args.models if not os.path.isfile(m)]
        if missing:
            raise InputError(f"no such model file: {', '.join(missing)}")
        records = report.load(args.results) if args.results else []
        protocol = benchmark.get(args.protocol, dataset=args.data)
        splits = recipes.make_splits(ki.data.load_arrays(args.data), protocol, seed=0)
        labels = held_out_labels(splits)
        rows, tables = [], {}
        for path in args.models:
            name = os.path.basename(path).removesuffix(".keras")
            probabilities = test_probabilities(keras.saving.load_model(path), splits.test)
            tables[name] = ki.metrics.reliability(labels, probabilities, BINS)
            row = {"name": name, "path": path, **summarize(labels, probabilities, tables[name])}
            record = record_of(path, args.protocol, records) if args.results else None
            if record is not None:
                check_against(record, row, path, len(labels))
            row["checked_against_record"] = record is not None
            rows.append(row)
    except (InputError, OSError, ValueError) as error:
        parser.error(str(error))
    origin = benchmark.provenance()
    table = markdown(rows) + (
        f"\n\n{len(labels)} test examples, {BINS} confidence bins; confidence − accuracy > 0: over-confident. "
        f"Provenance: `{origin['command']}`; commit {origin['commit']}; machine: {origin['machine']}; "
        f"TensorFlow {origin['tensorflow']}, Keras {origin['keras']}; {origin['date']}.")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    ki.plots.plot_reliability(tables, stem + ".png", title=f"{args.protocol} protocol, test split")
    write_json(args.out, {"protocol": args.protocol, "data": args.data, "bins": BINS, "rows": rows, **origin}, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
