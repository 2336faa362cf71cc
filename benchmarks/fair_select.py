"""Choose a configuration on the validation split: the highest mean validation accuracy over given seeds.

For the `fair` protocol's sweep (benchmarks/run_fair_protocol.sh): the choice reads only
`val_accuracy`, never a test number, and only the seeds named (all candidates must have run on each).

Example:
    python benchmarks/fair_select.py benchmarks/results/fair_protocol.jsonl --seeds 0 1 \
        --among il_default il_responses il_responses_kd il_shape_softmax
"""

import argparse
import sys

import numpy as np

from keras_introspect.benchmark import report


def select(records, seeds, among):
    """The name in `among` with the highest mean validation accuracy over `seeds` (the first of equals).

    Raises:
        ValueError: a candidate lacks one of the seeds, or a record has no validation accuracy.
    """
    means = {}
    for name in among:
        found = {r["seed"]: r for r in records if r["config"] == name and r["seed"] in seeds}
        missing = sorted(set(seeds) - set(found))
        if missing:
            raise ValueError(f"{name} has not run on seed(s) {missing}")
        if any("val_accuracy" not in r for r in found.values()):
            raise ValueError(f"{name}'s records have no validation accuracy (not a protocol with a validation split)")
        means[name] = float(np.mean([found[s]["val_accuracy"] for s in seeds]))
    return max(among, key=lambda name: means[name]), means


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--among", nargs="+", required=True, metavar="CONFIG")
    args = parser.parse_args(argv)
    try:
        choice, means = select(report.load(args.results), args.seeds, args.among)
    except ValueError as error:
        parser.error(str(error))
    for name, mean in means.items():
        print(f"{name}: mean validation accuracy {mean:.4f} over seeds {args.seeds}", file=sys.stderr)
    print(choice)


if __name__ == "__main__":
    main()
