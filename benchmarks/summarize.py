"""Write the report of a JSON-lines results file (JSON, CSV, Markdown, plots).

With --update-doc FILE (repeatable), the Markdown table also replaces the text
between `<!-- results:NAME:begin -->` and `<!-- results:NAME:end -->` in FILE
(NAME: the results file's base name), so documents quote only generated numbers.

Example:
    python benchmarks/summarize.py benchmarks/results/formulation_sweep.jsonl \
        --out-dir benchmarks/results/formulation_sweep --update-doc docs/method.md --no-timing
"""

import argparse
import os

from keras_introspect.benchmark import report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--update-doc", action="append", default=[], metavar="FILE")
    parser.add_argument("--no-timing", action="store_true",
                        help="leave out wall and step times (for runs that shared the machine; "
                             "benchmarks/step_cost.py measures cost)")
    args = parser.parse_args(argv)
    table = report.write_report(args.results, args.out_dir, timing=not args.no_timing)
    print(table)
    for doc in args.update_doc:
        report.update_doc(doc, os.path.splitext(os.path.basename(args.results))[0], table)


if __name__ == "__main__":
    main()
