"""Write the report of a JSON-lines results file (JSON, CSV, Markdown, plots).

With --update-doc FILE (repeatable), the Markdown table also replaces the text
between `<!-- results:NAME:begin -->` and `<!-- results:NAME:end -->` in FILE
(NAME: the results file's base name), so documents quote only generated numbers.

With --best ROLE it prints only the name of that role's configuration with the
highest mean paired gain over standard training (on --seeds and among --among,
when given), for scripts that spend further seeds on it.

Example:
    python benchmarks/summarize.py benchmarks/results/formulation_sweep.jsonl \
        --out-dir benchmarks/results/formulation_sweep --update-doc docs/method.md --no-timing
    python benchmarks/summarize.py benchmarks/results/long_protocol.jsonl --best il --seeds 0 \
        --among il_class_targets il_target_ema
"""

import argparse
import os

import verdict  # benchmarks/verdict.py, beside this script
from keras_introspect.benchmark import report
from keras_introspect.errors import InputError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out-dir")
    parser.add_argument("--best", choices=("il", "rival"), help="print the best configuration of this role")
    parser.add_argument("--seeds", nargs="+", type=int, help="with --best: compare on these seeds only")
    parser.add_argument("--among", nargs="+", metavar="CONFIG", help="with --best: choose among these only")
    parser.add_argument("--update-doc", action="append", default=[], metavar="FILE")
    parser.add_argument("--no-timing", action="store_true",
                        help="leave out wall and step times (for runs that shared the machine; "
                             "benchmarks/step_cost.py measures cost)")
    args = parser.parse_args(argv)
    if not args.best and not args.out_dir:
        parser.error("--out-dir is required (unless --best)")
    if not args.best and (args.seeds or args.among):
        parser.error("--seeds and --among choose a configuration: they need --best")
    try:
        if args.best:
            choice = verdict.best(report.load(args.results), args.best, args.seeds, args.among)
            if choice is None:
                parser.error(f"no {args.best} configuration shares a seed with standard training in {args.results}")
            print(choice)
            return
        table = report.write_report(args.results, args.out_dir, timing=not args.no_timing, readings=verdict.readings)
    except (InputError, OSError) as error:
        parser.error(str(error))
    print(table)
    for doc in args.update_doc:
        report.update_doc(doc, os.path.splitext(os.path.basename(args.results))[0], table)


if __name__ == "__main__":
    main()
