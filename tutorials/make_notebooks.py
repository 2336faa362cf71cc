"""Write the tutorial notebooks from `notebook_cells.py` and execute them in one mode.

The committed notebooks are made by (the one documented command):

    python tutorials/make_notebooks.py --cifar10 DIR --imagenette DIR

which executes every notebook in showcase mode in a fresh temporary working
directory and writes it with its outputs, the mode, the measured run time and
the provenance in the notebook's metadata. `--mode quick` executes into
`--out-dir` instead (never over the committed files); `--no-run` only writes.
`--markdown-only` refreshes the prose of the committed notebooks (the quoted
benchmark tables change as records land) and keeps their outputs; it refuses a
notebook whose code differs from the source, whose outputs it would misattribute.
Measured times go to `tutorials/run_times.json` and into each notebook's
first cell.
"""

import argparse
import json
import os
import pathlib
import re
import tempfile
import time

import nbformat
from nbclient import NotebookClient

from keras_introspect.benchmark import provenance, update_doc
from keras_introspect.paths import write_json
from notebook_cells import NOTEBOOKS  # tutorials/notebook_cells.py, beside this script

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent

# committed benchmark tables quoted by the notebooks: name -> (file, marker)
TABLES = {
    "fair_protocol": (ROOT / "docs" / "method.md", "fair_protocol"),
    "formulation_sweep": (ROOT / "docs" / "method.md", "formulation_sweep"),
    "long_protocol": (ROOT / "docs" / "comparators.md", "long_protocol"),
    "answer": (ROOT / "README.md", "answer"),  # benchmarks/answer.py
}
TIMES = HERE / "run_times.json"
DESCRIPTIONS = {"quick": "a smoke test of every cell", "showcase": "the committed outputs", "full": "the real budget"}


def table(name):
    path, marker = TABLES[name]
    text = path.read_text()
    match = re.search(rf"<!-- results:{marker}:begin -->\n(.*?)<!-- results:{marker}:end -->", text, re.S)
    if not match:
        raise SystemExit(f"{path} has no generated table '{marker}'")
    return match.group(1).strip() + f"\n\n(from `{path.relative_to(ROOT)}`)"


def run_times_table(notebook, times):
    rows = ["| mode | what it is | run time here (2 CPU cores) |", "|---|---|---|"]
    for mode, what in DESCRIPTIONS.items():
        seen = times.get(notebook, {}).get(mode)
        rows.append(f"| {mode} | {what} | "
                    + (f"{seen['seconds'] / 60:.1f} min (measured {seen['date']})" if seen else
                       "not measured here (a GPU is advised; Keras prints each epoch's time)") + " |")
    return "\n".join(rows) + "\n\nOn a Colab GPU the training modes run several times faster; the first cell says whether one is present."


def readme_table(times):
    """The README's tutorials table: one line per notebook, with its measured showcase time."""
    rows = ["| notebook | what you learn | showcase run time (2 CPU cores) |", "|---|---|---|"]
    for name, cells in NOTEBOOKS.items():
        title = cells[0][1].splitlines()[0].lstrip("# ").strip()
        seen = times.get(name, {}).get("showcase")
        rows.append(f"| [{name}](tutorials/{name}) | {title} | "
                    + (f"{seen['seconds'] / 60:.1f} min" if seen else "not run yet") + " |")
    return "\n".join(rows)


def update_readme(times):
    update_doc(ROOT / "README.md", "tutorials", readme_table(times))


def build(name, cells, times):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["colab"] = {"provenance": []}
    nb.metadata["accelerator"] = "GPU"
    made = []
    for kind, src in cells:
        if kind == "md":
            src = re.sub(r"\{results:(\w+)\}", lambda m: table(m.group(1)), src)
            src = src.replace("{run_times}", run_times_table(name, times))
            made.append(nbformat.v4.new_markdown_cell(src))
        else:
            made.append(nbformat.v4.new_code_cell(src))
    nb.cells = made
    return nb


def execute(nb, workdir, env, timeout=3600):
    """Run `nb` in `workdir` with `env` added to the kernel's environment; stop at the first failing cell."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def record_time(name, mode, entry, path=TIMES):
    """Add one run's time to the times file and return all of them.

    The file is read again under a lock at the moment of writing, and replaced whole, so two
    `make_notebooks.py` runs at once (one per notebook, say) each keep the other's times.
    """
    import fcntl

    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        times = json.loads(path.read_text()) if path.exists() else {}
        times.setdefault(name, {})[mode] = entry
        write_json(path, times, indent=2)
    return times


def refresh_markdown(path, cells, times):
    """Rewrite the Markdown cells of the notebook at `path` from `cells`, keeping code and outputs."""
    nb = nbformat.read(path, as_version=4)
    fresh = build(path.name, cells, times)
    if [c.cell_type for c in nb.cells] != [c.cell_type for c in fresh.cells] or any(
            old.source != new.source for old, new in zip(nb.cells, fresh.cells) if old.cell_type == "code"):
        raise SystemExit(f"{path}: its code is not today's source; re-execute it instead of --markdown-only")
    for old, new in zip(nb.cells, fresh.cells):
        old.source = new.source
    nbformat.write(nb, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="showcase", choices=["quick", "showcase", "full"])
    parser.add_argument("--cifar10", help="local CIFAR-10 image folder (default: TFDS, which downloads)")
    parser.add_argument("--imagenette", help="local Imagenette image folder (default: TFDS imagenette/160px-v2)")
    parser.add_argument("--only", nargs="*", help="notebook names to make (default: all)")
    parser.add_argument("--no-run", action="store_true", help="write the notebooks without executing them")
    parser.add_argument("--markdown-only", action="store_true",
                        help="refresh the committed notebooks' Markdown (quoted tables), keeping their outputs")
    parser.add_argument("--out-dir", help="where to write (default: tutorials/ for showcase, required otherwise)")
    args = parser.parse_args(argv)
    out_dir = pathlib.Path(args.out_dir) if args.out_dir else HERE
    if out_dir.resolve() == HERE.resolve() and args.mode != "showcase" and not args.no_run:
        raise SystemExit("the committed notebooks carry showcase outputs: give --out-dir for another mode")
    env = {k: v for k, v in {"KERAS_INTROSPECT_CIFAR10": args.cifar10,
                              "KERAS_INTROSPECT_IMAGENETTE": args.imagenette}.items() if v}
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    for name, cells in NOTEBOOKS.items():
        if args.only and name not in args.only:
            continue
        if args.markdown_only:
            refresh_markdown(out_dir / name, cells, times)
            continue
        if args.no_run:
            nbformat.write(build(name, cells, times), out_dir / name)
            continue
        print("executing", name, "in", args.mode, "mode", flush=True)
        nb = build(name, cells, times)
        # A fresh working directory (and backups inside it), so no output shows an earlier run's files.
        with tempfile.TemporaryDirectory(prefix="keras-introspect-tutorial-") as workdir:
            start = time.time()
            # TF_CPP_MIN_LOG_LEVEL is the setup cell's, as on Colab.
            execute(nb, workdir, {**env, "KERAS_INTROSPECT_MODE": args.mode,
                                  "KERAS_INTROSPECT_BACKUPS": os.path.join(workdir, "backups")})
            seconds = time.time() - start
        origin = provenance()
        times = record_time(name, args.mode, {"seconds": round(seconds, 1), "date": origin["date"][:10],
                                              "commit": origin["commit"], "machine": origin["machine"]})
        # The first cell now states this run's time too; the outputs are the run's.
        fresh = build(name, cells, times)
        for cell, new in zip(nb.cells, fresh.cells):
            if cell.cell_type == "markdown":
                cell.source = new.source
        nb.metadata["keras_introspect"] = {"mode": args.mode, "seconds": round(seconds, 1), **origin}
        nbformat.write(nb, out_dir / name)
        print(f"  {seconds / 60:.1f} min", flush=True)
        if args.mode == "showcase" and out_dir.resolve() == HERE.resolve():
            update_readme(times)


if __name__ == "__main__":
    main()
