"""Mutation testing of the numerical core with mutmut: how many code changes no test notices.

mutmut changes one operator, constant or argument at a time in the selected
modules and runs the tests that cover the changed function; a mutant that
every test survives marks behaviour no test pins down. Each scope runs in a
copy of the committed tree under the work directory (mutmut's own `mutants/`
state stays there, so a stopped run resumes; a change of code or tests starts
afresh), then writes
`benchmarks/results/mutation_<scope>.json` (counts, survivors, provenance)
and the README's table between `<!-- results:mutation:begin/end -->`.

Not part of CI: a scope takes from minutes (metrics) to two hours (explainers) on 2 cores.

Example:
    pip install -e ".[cpu,test,mutation]"
    python benchmarks/mutation.py core          # target: no survivor
    python benchmarks/mutation.py explainers    # survivors reported
    python benchmarks/mutation.py metrics       # ECE and reliability bins: no survivor
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

from keras_introspect.benchmark import provenance, update_doc

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# scope -> (modules mutated, tests run against them, the target). The core is held to its own unit
# tests (hand computations, seconds per mutant); training tests would cost minutes per mutant.
SCOPES = {
    "core": (["keras_introspect/soft_targets/*", "keras_introspect/losses/*"],
             ["tests/test_soft_targets.py", "tests/test_losses.py"],
             "no surviving mutant"),
    "explainers": (["keras_introspect/explainers/*", "keras_introspect/methods/introspective.py"],
                   ["tests/test_explainers.py", "tests/test_introspective_model.py"],
                   "survivors reported"),
    "metrics": (["keras_introspect/metrics.py"], ["tests/test_metrics.py"], "no surviving mutant"),
}


def config_text(scope):
    modules, tests, _ = SCOPES[scope]
    lines = ["[mutmut]", "source_paths = keras_introspect/", "only_mutate ="]
    lines += [f"    {m}" for m in modules]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    # -n 0: mutmut runs the selected tests itself, one process (pytest.ini's two are for the full suite).
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -n", "    0",
              "process_isolation = forkserver"]
    return "\n".join(lines) + "\n"


def prepare(scope, work):
    """The committed tree (what the provenance's commit names) in `work`, with this scope's configuration.

    mutmut's state in `work/mutants` is kept while the code and tests are those it tested, so a stopped run
    resumes; it is dropped when they changed, since mutmut retests a mutant only when its function changed,
    not when a test did.
    """
    paths = ["keras_introspect", "tests", "setup.py", "pytest.ini"]
    tree = subprocess.run(["git", "rev-parse", *(f"HEAD:{p}" for p in paths)], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    stamp = work / "tested-tree.txt"
    if not stamp.exists() or stamp.read_text() != tree:
        shutil.rmtree(work / "mutants", ignore_errors=True)
    archive = subprocess.run(["git", "archive", "HEAD", *paths], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    (work / "setup.cfg").write_text(config_text(scope))
    stamp.write_text(tree)


def mutmut(work, *args):
    # The tests find the shared data archives beside the repository, not beside the copy.
    data = ROOT.parent / "shared" / "data"
    env = {"KERAS_INTROSPECT_CIFAR_ARCHIVE": str(data / "cifar10-jpeg.tar.gz"),
           "KERAS_INTROSPECT_IMAGENETTE_ARCHIVE": str(data / "imagenette-128px.tar.gz"), **os.environ}
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, text=True, env=env,
                          capture_output=args[0] != "run", check=True)


def counts(work):
    """`{status: count}` and the survivors' names, from `mutmut results --all true`."""
    listing = mutmut(work, "results", "--all", "true").stdout
    statuses, survivors = {}, []
    for line in listing.splitlines():
        if ":" not in line:
            continue
        name, status = (part.strip() for part in line.rsplit(":", 1))
        statuses[status] = statuses.get(status, 0) + 1
        if status == "survived":
            survivors.append(name)
    return statuses, survivors


def readme_table(results):
    rows = ["| scope | modules | mutants | killed | survived | other | target | run |", "|---|---|---|---|---|---|---|---|"]
    for scope, r in results.items():
        other = sum(v for k, v in r["statuses"].items() if k not in ("killed", "survived"))
        rows.append(f"| {scope} | {', '.join(f'`{m}`' for m in r['modules'])} | {r['mutants']} | "
                    f"{r['statuses'].get('killed', 0)} | {r['statuses'].get('survived', 0)} | {other} | "
                    f"{r['target']} | commit {r['commit']}, {r['date'][:10]}, {r['machine']} |")
    return "\n".join(rows)


def update_readme():
    results = {}
    for scope in SCOPES:
        path = RESULTS / f"mutation_{scope}.json"
        if path.exists():
            results[scope] = json.loads(path.read_text())
    update_doc(ROOT / "README.md", "mutation", readme_table(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scope", choices=list(SCOPES))
    parser.add_argument("--work-dir", help="where the copy and mutmut's state live "
                                           "(default: $KERAS_INTROSPECT_CACHE/mutation/SCOPE)")
    parser.add_argument("--max-children", type=int, default=1,
                        help="parallel test processes (1: TensorFlow already uses every core)")
    args = parser.parse_args(argv)
    cache = os.environ.get("KERAS_INTROSPECT_CACHE", os.path.expanduser("~/.cache/keras-introspect"))
    work = pathlib.Path(args.work_dir or os.path.join(cache, "mutation", args.scope))
    work.mkdir(parents=True, exist_ok=True)
    origin = provenance()  # the commit whose tree is tested
    prepare(args.scope, work)
    mutmut(work, "run", "--max-children", str(args.max_children))
    statuses, survivors = counts(work)
    if statuses.get("not checked"):
        raise SystemExit(f"{statuses['not checked']} mutants were not checked; run the same command again")
    modules, tests, target = SCOPES[args.scope]
    record = {"scope": args.scope, "modules": modules, "tests": tests, "target": target,
              "mutants": sum(statuses.values()), "statuses": statuses, "survivors": survivors, **origin}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"mutation_{args.scope}.json").write_text(json.dumps(record, indent=2) + "\n")
    update_readme()
    print(json.dumps({k: record[k] for k in ("scope", "mutants", "statuses", "survivors")}, indent=2))


if __name__ == "__main__":
    main()
