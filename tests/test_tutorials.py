"""The tutorial notebooks: committed outputs from showcase runs; every notebook runs in quick mode.

The quick runs execute the committed notebooks in memory (never over the files) in a
kernel whose PATH lacks the environment's bin/, as in a notebook server started from
elsewhere: tools must be called through `sys.executable -m`.
"""

import os
import pathlib
import re
import sys

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def outputs_text(nb):
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_there_are_six_tutorials_made_from_their_source():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_self_explanations.ipynb", "03_distributed_training.ipynb",
        "04_export_and_serve.ipynb", "05_compare_methods.ipynb", "06_your_photos_your_backbone.ipynb",
    ]
    sys.path.insert(0, str(TUTORIALS))
    from make_notebooks import build  # noqa: E402
    from notebook_cells import NOTEBOOKS as SOURCE  # noqa: E402

    for path in NOTEBOOKS:
        committed = nbformat.read(path, as_version=4)
        made = build(path.name, SOURCE[path.name], {})
        assert [c.source for c in committed.cells if c.cell_type == "code"] == \
               [c.source for c in made.cells if c.cell_type == "code"], f"{path.name}: run make_notebooks.py"


def test_committed_prose_quotes_todays_tables_and_a_refresh_keeps_the_outputs(tmp_path):
    import json
    import shutil

    sys.path.insert(0, str(TUTORIALS))
    from make_notebooks import build, refresh_markdown  # noqa: E402
    from notebook_cells import NOTEBOOKS as SOURCE  # noqa: E402

    times = json.loads((TUTORIALS / "run_times.json").read_text())
    for path in NOTEBOOKS:
        committed = nbformat.read(path, as_version=4)
        made = build(path.name, SOURCE[path.name], times)
        assert [c.source for c in committed.cells if c.cell_type == "markdown"] == \
               [c.source for c in made.cells if c.cell_type == "markdown"], \
            f"{path.name}: run `python tutorials/make_notebooks.py --markdown-only`"
    copy = tmp_path / "01_quickstart.ipynb"
    shutil.copy(TUTORIALS / copy.name, copy)
    nb = nbformat.read(copy, as_version=4)
    nb.cells[0].source = "stale prose"
    nbformat.write(nb, copy)
    refresh_markdown(copy, SOURCE[copy.name], times)
    refreshed = nbformat.read(copy, as_version=4)
    original = nbformat.read(TUTORIALS / copy.name, as_version=4)
    assert refreshed.cells == original.cells  # the prose is back; code and outputs untouched
    refreshed.cells[3].source += "\nprint('edited')"
    nbformat.write(refreshed, copy)
    with pytest.raises(SystemExit, match="its code is not today's source"):
        refresh_markdown(copy, SOURCE[copy.name], times)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_showcase_run_that_learned(path):
    nb = nbformat.read(path, as_version=4)
    run = nb.metadata.get("keras_introspect", {})
    assert run.get("mode") == "showcase" and run.get("commit") and run.get("machine"), run
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert "colab.research.google.com/assets/colab-badge.svg" in nb.cells[0].source
    setup = nb.cells[1].source
    assert 'MODE = "showcase"  # @param ["quick", "showcase", "full"]' in setup and "list_physical_devices" in setup
    assert nb.cells[-1].source.startswith("## What you learned") or "## What you learned" in nb.cells[-1].source
    # every accuracy a notebook prints on held-out data (a test split, or notebook 06's held-out photos) is well
    # above chance (10 classes)
    accuracies = [float(a) for a in re.findall(r"(?:test|held-out) accuracy[^\n]*?\b([01]\.\d{3,4})\b",
                                               outputs_text(nb))]
    assert accuracies and all(a > 0.4 for a in accuracies), accuracies


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, cifar_small_dir, imagenette_small_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_INTROSPECT_MODE", "quick")
    # Folders a user could give: the quick runs evaluate on 1,000 CIFAR-10 / 500 Imagenette test images, not all.
    monkeypatch.setenv("KERAS_INTROSPECT_CIFAR10", str(cifar_small_dir))
    monkeypatch.setenv("KERAS_INTROSPECT_IMAGENETTE", str(imagenette_small_dir))
    monkeypatch.setenv("KERAS_INTROSPECT_BACKUPS", str(tmp_path / "backups"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    bin_dir = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if os.path.realpath(p) != os.path.realpath(bin_dir)))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
    assert "Mode: quick" in outputs_text(nb)


def test_a_run_time_lands_beside_the_times_another_run_wrote_meanwhile(tmp_path):
    import json

    sys.path.insert(0, str(TUTORIALS))
    from make_notebooks import record_time  # noqa: E402

    path = tmp_path / "run_times.json"
    # another run wrote b's time after this run started; writing this run's own must keep it
    path.write_text(json.dumps({"a.ipynb": {"quick": {"seconds": 1.0}}, "b.ipynb": {"showcase": {"seconds": 2.0}}}))
    times = record_time("a.ipynb", "showcase", {"seconds": 3.0}, path=path)
    expected = {"a.ipynb": {"quick": {"seconds": 1.0}, "showcase": {"seconds": 3.0}},
                "b.ipynb": {"showcase": {"seconds": 2.0}}}
    assert times == expected and json.loads(path.read_text()) == expected
    assert not (tmp_path / "run_times.json.tmp").exists()
