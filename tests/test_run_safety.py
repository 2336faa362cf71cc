"""No run loses another's results (issue 30): two runs at once, --overwrite, a full disk during a
backup, exports over exports, and serving statistics that would make every answer NaN."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import interrupt_before_export, tiny_backbone

import keras_introspect as ki
from keras_introspect import recipes
from keras_introspect.cli.main import main
from keras_introspect.cli.run_directory import MARKER, RunLock
from keras_introspect.errors import InputError
from keras_introspect.paths import write_json


def run(output, *extra):
    return main(["train", "--method", "standard", "--epochs", "1", "--output", str(output), "--verbose", "0", *extra])


def test_a_second_run_into_the_same_output_stops_naming_the_first(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "keras_introspect.cli.main", "train", "--method", "standard", "--epochs", "3",
               "--output", str(out), "--verbose", "0"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "run.lock"
    deadline = time.time() + 120
    while not lock.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert lock.exists(), first.communicate()[1][-2000:]
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert f"process {first.pid} on" in second.stderr and "wait for it to finish" in second.stderr
    assert len(second.stderr.strip().splitlines()[-1]) > 0 and "Traceback" not in second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert (out / "model.keras").exists() and (out / "serving" / "standard" / "1" / "saved_model.pb").exists()
    assert (out / MARKER).exists() and not lock.exists()  # released at the end


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "run.lock"
    import socket
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}))
    assert run(tmp_path / "run") == 0
    assert "no longer runs" in capsys.readouterr().out
    assert not lock.exists()


def test_a_lock_of_another_host_is_respected_and_a_held_one_is_exclusive(tmp_path):
    path = str(tmp_path / "x.lock")
    (tmp_path / "x.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "now"}))
    with pytest.raises(InputError, match="process 1 on elsewhere .* from another host; if no run is writing"):
        RunLock(path).acquire()
    os.remove(path)
    first = RunLock(path, "first").acquire()
    with pytest.raises(InputError, match=f"process {os.getpid()} on .*first.* holds"):
        RunLock(path).acquire()  # held (flock), whoever asks
    first.release()
    assert not os.path.exists(path)
    RunLock(path).acquire().release()


def test_two_runs_racing_for_a_stale_lock_never_both_hold_it(tmp_path):
    """Both see a stale lock at once: the kernel's flock lets exactly one take it over."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for trial in range(20):
        path = str(tmp_path / f"race{trial}.lock")
        with open(path, "w") as f:
            json.dump({"pid": 99999999, "host": __import__("socket").gethostname()}, f)
        barrier, results = context.Barrier(2), context.Queue()
        workers = [context.Process(target=_race, args=(path, barrier, results)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in workers)
        assert outcomes == ["held", "refused"], outcomes


def _race(path, barrier, results):
    barrier.wait()
    try:
        lock = RunLock(path).acquire()
    except InputError:
        results.put("refused")
        return
    results.put("held")
    time.sleep(0.5)  # holds it while the other tries
    lock.release()


def test_overwrite_replaces_only_an_earlier_run_never_other_files(tmp_path, capsys):
    precious = tmp_path / "precious"
    (precious / "src").mkdir(parents=True)
    (precious / "thesis.tex").write_text("three years of work")
    assert run(precious, "--overwrite") == 2
    assert "not a run of keras-introspect" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "three years of work" and (precious / "src").is_dir()
    assert not (tmp_path / "precious.incomplete").exists() and not (tmp_path / "precious.lock").exists()
    out = tmp_path / "run"
    assert run(out) == 0 and (out / MARKER).exists()
    assert run(out, "--overwrite", "--seed", "1") == 0  # a run of this tool is replaced
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1


def test_a_run_never_writes_into_or_over_its_dataset(tmp_path, capsys):
    data = tmp_path / "photos"
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = data / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                keras.utils.save_img(folder / f"{i}.png", np.full((8, 8, 3), 60 * i + 30, "uint8"))
    before = sorted(str(p) for p in data.rglob("*"))
    for output in (data, data / "runs"):
        assert main(["train", "--dataset", str(data), "--arch", "digits_cnn", "--epochs", "1", "--output", str(output),
                     "--overwrite", "--verbose", "0"]) == 2
        assert "overlap" in capsys.readouterr().err
    assert sorted(str(p) for p in data.rglob("*")) == before


def test_an_error_after_the_run_directory_exists_leaves_nothing_that_blocks_the_corrected_command(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def bad_input(*args, **kwargs):
        raise InputError("a problem found once the run had started")

    monkeypatch.setattr(recipes, "train_method", bad_input)
    assert run(out, "--seed", "3") == 2
    monkeypatch.undo()
    assert not (tmp_path / "run.incomplete").exists() and not (tmp_path / "run.lock").exists()
    assert run(out, "--seed", "4") == 0  # other settings: not refused as another run's resumption


def test_a_full_disk_during_a_backup_keeps_the_last_good_state_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    saves = []
    original = keras.Model.save_weights

    def disk_fills_on_the_second_save(self, filepath, *args, **kwargs):
        saves.append(filepath)
        if len(saves) == 2:
            with open(filepath, "wb") as f:
                f.write(b"\x89HDF\r\n")  # a truncated file, as a full disk leaves it
            raise OSError(28, "No space left on device")
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", disk_fills_on_the_second_save)
    with pytest.raises(OSError, match="No space left"):
        run(out, "--epochs", "3")
    monkeypatch.undo()
    state = tmp_path / "run.incomplete" / "backup" / "state"
    assert json.loads((state / "training_metadata.json").read_text())["epoch"] == 1
    assert not [p for p in os.listdir(state) if ".tmp" in p]  # the partial write is gone
    capsys.readouterr()
    assert run(out, "--epochs", "3") == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 3


def test_a_damaged_last_state_falls_back_to_the_one_before_with_a_message(tmp_path, capsys):
    backup = tmp_path / "backup"
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 5

    def fit(epochs):
        model = ki.StandardModel(tiny_backbone(seed=3))
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        callbacks, _ = recipes.resumable(str(backup))
        return model, model.fit(x, y, epochs=epochs, verbose=0, callbacks=callbacks).history

    fit(2)
    state = backup / "state"
    assert json.loads((state / "training_metadata.json.bkp").read_text())["epoch"] == 1
    with open(state / "latest.weights.h5", "r+b") as f:
        f.truncate(200)
    capsys.readouterr()
    _, history = fit(3)
    assert "resuming from the one before it" in capsys.readouterr().out
    assert len(history["loss"]) == 2  # epochs 2 and 3: resumed after epoch 1, the state before the damaged one
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        recipes.check_weights_file(str(state / name))
    (state / "latest.weights.h5").write_bytes(b"garbage")
    (state / "latest.weights.h5.bkp").write_bytes(b"garbage")
    with pytest.raises(InputError, match="Neither saved training state .* can be loaded"):
        fit(4)


def test_exports_never_overwrite_without_being_asked(tmp_path, images):
    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    path = ki.export.export_saved_model(model, tmp_path / "export")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    for target in (path, tmp_path / "notes"):
        with pytest.raises(InputError, match="overwrite=True"):
            ki.export.export_saved_model(model, target)
        with pytest.raises(InputError, match="overwrite=True"):
            model.export(str(target))
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    other = ki.IntrospectiveModel(tiny_backbone(seed=6))
    model.export(path, overwrite=True)
    ki.export.export_saved_model(other, path, overwrite=True)
    served = tf.saved_model.load(path)
    probabilities = served.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, tf.nn.softmax(other.predict(images, verbose=0)), atol=1e-5)
    assert [p for p in os.listdir(tmp_path) if ".writing-" in p or ".replaced-" in p] == []


@pytest.mark.parametrize("normalization, message", [
    ({"mean": [0.0, 0.0, 0.0], "std": [1.0, 0.0, 1.0]}, "must be > 0"),
    ({"mean": [0.0, float("nan"), 0.0], "std": [1.0, 1.0, 1.0]}, "not finite"),
    (([0.5], [float("inf")]), "not finite"),
    ({"mean": [0.0, 0.0], "std": [1.0, 1.0]}, "2 values for a model with 3 input channel"),
])
def test_serving_statistics_that_would_answer_nan_are_refused(tmp_path, normalization, message):
    with pytest.raises(InputError, match=message):
        ki.export.export_saved_model(ki.StandardModel(tiny_backbone()), tmp_path / "e", normalization=normalization)
    assert not (tmp_path / "e").exists()


def test_overwrite_never_deletes_files_a_user_put_into_a_run_or_a_run_inside_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out) == 0
    (out / "notes.txt").write_text("mine")
    assert run(out, "--overwrite") == 2
    assert "files it did not write (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert run(out / "sub_run") == 2  # a run inside a run would go with it
    assert "lies inside the earlier run" in capsys.readouterr().err


def test_output_paths_are_normalised_and_never_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for output in (".", ".."):
        assert run(output) == 2
        assert "current directory" in capsys.readouterr().err
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert run("~/runs/x") == 0  # ~ expanded, as for the dataset
    assert (tmp_path / "home" / "runs" / "x" / "model.keras").exists() and not (tmp_path / "here" / "~").exists()
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    assert run(tmp_path / "link") == 0  # a link is followed to its folder
    assert (tmp_path / "target" / "model.keras").exists() and (tmp_path / "link").is_symlink()


def test_a_rerun_with_a_trailing_slash_resumes_the_same_run(tmp_path, monkeypatch):
    out = tmp_path / "k1"
    interrupt_before_export(monkeypatch, lambda: run(out))
    assert run(str(out) + "/") == 0 and (out / "model.keras").exists()


@pytest.mark.parametrize("content", ["", "garbage{", "null", "[1]"])
def test_an_unreadable_lock_that_nobody_holds_is_taken_over(tmp_path, content, capsys):
    (tmp_path / "run.lock").write_text(content)
    assert run(tmp_path / "run") == 0
    assert ("no longer runs" in capsys.readouterr().out) == bool(content)
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.parametrize("path, message", [("", "export path is empty"), (".", "current directory")])
def test_exports_refuse_empty_paths_and_the_working_directory(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match=message):
        ki.export.export_saved_model(ki.StandardModel(tiny_backbone()), path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_an_export_path_with_a_trailing_slash_is_replaced_cleanly(tmp_path):
    model = ki.StandardModel(tiny_backbone())
    ki.export.export_saved_model(model, tmp_path / "e3")
    ki.export.export_saved_model(model, f"{tmp_path / 'e3'}/", overwrite=True)
    assert not [p for p in os.listdir(tmp_path) if "writing" in p or "replaced" in p]
    assert not [p for p in os.listdir(tmp_path / "e3") if "writing" in p or "replaced" in p]


def test_overwrite_never_deletes_exports_a_user_added_to_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out) == 0
    model = keras.saving.load_model(out / "model.keras")
    ki.export.export_for_serving(model, str(out / "serving"), "standard")  # the user's version 2
    assert run(out, "--overwrite") == 2
    assert "serving/standard/2" in capsys.readouterr().err
    assert (out / "serving" / "standard" / "2").is_dir()


def test_a_folder_named_like_the_work_folder_is_never_taken_or_deleted(tmp_path, capsys):
    data = tmp_path / "ds.incomplete"
    (data / "keep").mkdir(parents=True)
    (data / "keep" / "photo.txt").write_text("mine")
    assert run(tmp_path / "ds") == 2
    assert "not the work folder of a run" in capsys.readouterr().err
    assert (data / "keep" / "photo.txt").read_text() == "mine"


def test_exports_refuse_files_and_symbolic_links(tmp_path):
    model = ki.StandardModel(tiny_backbone())
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for path, message in ((tmp_path / "afile", "is a file"), (tmp_path / "link", "symbolic link")):
        with pytest.raises(InputError, match=message):
            ki.export.export_saved_model(model, path, overwrite=True)
    assert (tmp_path / "afile").read_text() == "mine" and (tmp_path / "link").is_symlink()


def test_state_files_are_replaced_whole_or_left_as_they_were(tmp_path):
    path = tmp_path / "history.json"
    write_json(path, [{"epoch": 1, "loss": 2.5}], indent=1)
    assert path.read_text() == '[\n {\n  "epoch": 1,\n  "loss": 2.5\n }\n]\n'
    # json.dump streams: thousands of rows reach the temporary file before the last one fails to serialize,
    # as a write cut short by a full disk would leave it.
    rows = [{"epoch": e, "loss": 1.0} for e in range(5000)] + [{"epoch": 5000, "loss": object()}]
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(path, rows)
    assert json.loads(path.read_text()) == [{"epoch": 1, "loss": 2.5}]
    assert os.listdir(tmp_path) == ["history.json"]  # no half-written temporary left behind
