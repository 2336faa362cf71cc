"""Every tutorial notebook runs top to bottom in quick mode on the local CIFAR-10 copy."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def test_there_are_five_tutorials():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_self_explanations.ipynb", "03_distributed_training.ipynb",
        "04_export_and_serve.ipynb", "05_compare_methods.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, cifar_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_INTROSPECT_QUICK", "1")
    monkeypatch.setenv("KERAS_INTROSPECT_DATA", str(cifar_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(path, as_version=4)
    assert "colab.research.google.com/assets/colab-badge.svg" in nb.cells[0].source
    assert "google.colab" in nb.cells[1].source and "list_physical_devices" in nb.cells[1].source
    # The committed notebook carries the outputs of a real run.
    assert all(cell.get("outputs") is not None for cell in nb.cells if cell.cell_type == "code")
    assert any(cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
