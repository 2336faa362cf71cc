"""Write the tutorial notebooks from `notebook_cells.py` and execute them in place.

    python tutorials/make_notebooks.py            # write + execute (quick mode by default)
    python tutorials/make_notebooks.py --no-run   # only write

Execution uses KERAS_INTROSPECT_QUICK / KERAS_INTROSPECT_DATA from the
environment, so the committed outputs are those of a real run.
"""

import argparse
import pathlib
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
from notebook_cells import NOTEBOOKS  # noqa: E402


def build(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["colab"] = {"provenance": []}
    nb.metadata["accelerator"] = "GPU"
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
                for kind, src in cells]
    return nb


def execute(nb, workdir, timeout=1800):
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.only and name not in args.only:
            continue
        nb = build(cells)
        if not args.no_run:
            print("executing", name, flush=True)
            # A fresh working directory, so that no output shows files of earlier runs.
            with tempfile.TemporaryDirectory(prefix="keras-introspect-tutorial-") as workdir:
                execute(nb, workdir)
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    main()
