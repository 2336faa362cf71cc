"""Bad input gets one clear error; no run loses or mixes results (docs/reliability.md)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import interrupt_before_export, tiny_backbone

import keras_introspect as ki
from keras_introspect.cli.main import main
from keras_introspect.distribute import loop
from keras_introspect.errors import InputError
from keras_introspect.methods.base import NonFiniteLossError


def compiled(model=None):
    model = model or ki.StandardModel(tiny_backbone(seed=3))
    model.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
    return model


# -- labels, weights, data ---------------------------------------------------------------

def test_whole_float_labels_train_like_int_labels(images, labels):
    a, b = compiled(ki.StandardModel(tiny_backbone(seed=3))), compiled(ki.StandardModel(tiny_backbone(seed=3)))
    logs_int = a.train_on_batch(images, labels, return_dict=True)
    logs_float = b.train_on_batch(images, labels.astype("float32"), return_dict=True)
    assert logs_float["loss"] == pytest.approx(logs_int["loss"], rel=1e-6)
    assert logs_float["accuracy"] == pytest.approx(logs_int["accuracy"])
    predicted = np.argmax(tiny_backbone(seed=3).predict(images, verbose=0), -1)
    assert logs_int["accuracy"] == pytest.approx(np.mean(predicted == labels))


def test_fit_on_a_dataset_warns_of_nothing_and_still_honours_shuffle(images, labels):
    import warnings

    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the `shuffle=True ... ignored` warning of every fit
        compiled().fit(data, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="shuffle=True"):  # an explicit request is still Keras's to judge
        compiled().fit(data, epochs=1, verbose=0, shuffle=True)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array([0.0, 1.5, 2.0, 3.0], "float32"), "whole class indices"),
        (np.array([0.0, np.nan, 2.0, 3.0], "float32"), "whole class indices"),
        (np.eye(5, dtype="float32")[[0, 1, 2, 3]] * 3.0, "sum to 1"),
        (-np.eye(5, dtype="float32")[[0, 1, 2, 3]], "values in \\[0, 1\\]"),
    ],
)
def test_labels_that_cannot_be_classes_are_refused(images, y, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        compiled().train_on_batch(images, y)


def test_string_labels_and_bad_sample_weights_are_refused(images, labels):
    with pytest.raises(InputError, match="Labels must be numbers"):
        compiled().train_on_batch(images, np.array(["a", "b", "c", "d"]))
    for weights in (np.array([1.0, -1.0, 1.0, 1.0], "float32"), np.array([1.0, np.nan, 1.0, 1.0], "float32")):
        with pytest.raises(tf.errors.InvalidArgumentError, match="sample weights must be finite and >= 0"):
            compiled().train_on_batch(images, labels, sample_weight=weights)


def test_empty_data_is_refused(images, labels):
    empty = tf.data.Dataset.from_tensor_slices((images[:0], labels[:0])).batch(2)
    with pytest.raises(InputError, match="dataset is empty"):
        compiled().fit(empty, epochs=1, verbose=0)
    with pytest.raises(InputError, match="input array is empty"):
        compiled().fit(images[:0], labels[:0], epochs=1, verbose=0)


def test_nan_inputs_stop_training_naming_epoch_and_step(images, labels):
    x = np.concatenate([images, images]).copy()
    x[5, 0, 0, 0] = np.nan  # in the second batch of 4
    y = np.concatenate([labels, labels])
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2"):  # BatchNorm spreads it to the loss
        compiled(ki.StandardModel(tiny_backbone(seed=3, batchnorm=True))).fit(
            x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    # NaN hidden from the loss (replaced after the first convolution) still reaches that convolution's
    # kernel through its gradient. (A ReLU hid it on the AMX machine; with oneDNN on AVX2, relu(NaN) is NaN.)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    h = keras.layers.Lambda(lambda t: tf.where(tf.math.is_nan(t), tf.zeros_like(t), t))(h)
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(h))
    model = compiled(ki.StandardModel(keras.Model(inputs, outputs)))
    with pytest.raises(NonFiniteLossError, match="during epoch 1"):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    with pytest.raises(NonFiniteLossError, match="not saved or exported"):
        ki.export.export_saved_model(model, "never-written")
    assert not os.path.exists("never-written")


# -- the command line's output directory -----------------------------------------------------

def run(output, *extra):
    return main(["train", "--method", "standard", "--epochs", "1", "--output", str(output), "--verbose", "0", *extra])


def snapshot(directory):
    return {p: open(os.path.join(directory, p), "rb").read() for p in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, p))}


def test_a_finished_run_is_never_overwritten_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out) == 0
    before = snapshot(out)
    assert run(out, "--seed", "1") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert snapshot(out) == before
    (out / "serving" / "standard" / "1" / "stale.txt").write_text("from an earlier run")  # inside its own export
    assert run(out, "--seed", "1", "--overwrite") == 0
    assert not (out / "serving" / "standard" / "1" / "stale.txt").exists()
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1
    assert not (tmp_path / "run.incomplete").exists()


def test_an_interrupted_run_leaves_the_earlier_run_whole_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run(out) == 0
    before = snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("keras_introspect.export.export_for_serving", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(out, "--overwrite", "--epochs", "2")
    assert snapshot(out) == before  # no new model beside the old SavedModel
    assert (tmp_path / "run.incomplete" / "model.keras").exists()
    (tmp_path / "run.incomplete" / "serving" / "standard" / "1").mkdir(parents=True)  # as if cut off mid-export
    monkeypatch.undo()
    # The same command resumes (its two epochs are done) and only then replaces the run.
    assert run(out, "--overwrite", "--epochs", "2") == 0
    metrics, history = (json.loads((out / name).read_text()) for name in ("metrics.json", "history.json"))
    assert metrics["epochs"] == 2 and len(history["loss"]) == 2
    assert metrics["train_seconds"] == sum(history["epoch_seconds"])  # both parts' epochs, not the last part's
    assert not (tmp_path / "run.incomplete").exists()


def test_an_option_added_since_an_interruption_resumes_at_its_default(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    interrupt_before_export(monkeypatch, lambda: run(out))
    marker = tmp_path / "run.incomplete" / "settings.json"
    settings = json.loads(marker.read_text())
    assert settings.pop("export_name") is None  # as written by a version without --export-name
    marker.write_text(json.dumps(settings | {"seed": 4}))
    assert run(out) == 2
    assert "other settings (seed)" in capsys.readouterr().err  # only what differs is named
    marker.write_text(json.dumps(settings))
    assert run(out) == 0 and (out / "serving" / "standard" / "1").is_dir()


def test_an_interrupted_run_with_other_settings_is_not_mixed_in(tmp_path, capsys):
    (tmp_path / "run.incomplete").mkdir()
    (tmp_path / "run.incomplete" / "settings.json").write_text(json.dumps({"seed": 5}))
    assert run(tmp_path / "run") == 2
    assert "interrupted run with other settings" in capsys.readouterr().err


def test_the_cli_reports_bugs_with_a_traceback_not_as_user_errors(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr("keras_introspect.recipes.train_method", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        run(tmp_path / "run")


# -- the multi-worker loop's checkpoints and history ---------------------------------------

def loop_model():
    model = ki.StandardModel(tiny_backbone(seed=2))
    model.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
    return model


def dataset_fn(context, epoch):
    rng = np.random.default_rng(epoch)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 5)).batch(8)


def test_history_is_merged_by_epoch_across_restarts(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    first = loop.fit_distributed(loop_model(), dataset_fn, 2, 2, checkpoint_dir=ckpt, verbose=0)
    resumed = loop.fit_distributed(loop_model(), dataset_fn, 4, 2, checkpoint_dir=ckpt, verbose=0)
    again = loop.fit_distributed(loop_model(), dataset_fn, 4, 2, checkpoint_dir=ckpt, verbose=0)
    whole = loop.fit_distributed(loop_model(), dataset_fn, 4, 2, checkpoint_dir=str(tmp_path / "other"), verbose=0)
    assert len(resumed["loss"]) == 4 and resumed["loss"][:2] == first["loss"]
    assert again == resumed  # re-running a finished run changes nothing
    np.testing.assert_allclose(resumed["loss"], whole["loss"], rtol=1e-5)
    assert sorted(loop.checkpoint_epochs(ckpt)) == [2, 3]  # the two newest


@pytest.mark.parametrize("damage", ["index", "data", "state"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, damage, capsys):
    ckpt = str(tmp_path / "ckpt")
    first = loop.fit_distributed(loop_model(), dataset_fn, 2, 2, checkpoint_dir=ckpt, verbose=0)
    newest = loop.checkpoint_epochs(ckpt)[1]
    if damage == "index":
        os.remove(newest + ".index")
    elif damage == "data":
        data = [p for p in os.listdir(ckpt) if p.startswith("ckpt-1.data")][0]
        with open(os.path.join(ckpt, data), "r+b") as f:
            f.truncate(100)
    else:  # a garbage state file is not trusted: the newest checkpoint still restores
        with open(os.path.join(ckpt, "checkpoint"), "w") as f:
            f.write("garbage {{{")
    capsys.readouterr()
    history = loop.fit_distributed(loop_model(), dataset_fn, 3, 2, checkpoint_dir=ckpt, verbose=1)
    out = capsys.readouterr().out
    trained = [line.split(" - ")[0] for line in out.splitlines() if line.startswith("Epoch ")]
    if damage == "state":
        assert trained == ["Epoch 3/3"]
        assert history["loss"][:2] == first["loss"]
    else:
        assert "ckpt-1" in out and "trying an older one" in out or "has no index file" in out
        assert trained == ["Epoch 2/3", "Epoch 3/3"]  # resumed from ckpt-0, after the first epoch
        assert history["loss"][0] == first["loss"][0]
    assert len(history["loss"]) == 3
    assert sorted(loop.checkpoint_epochs(ckpt)) == [1, 2]


def test_older_checkpoints_stay_until_a_newer_one_is_verified(tmp_path, monkeypatch):
    ckpt = str(tmp_path / "ckpt")
    loop.fit_distributed(loop_model(), dataset_fn, 2, 2, checkpoint_dir=ckpt, verbose=0)

    def unreadable(prefix):
        raise tf.errors.DataLossError(None, None, "simulated bad write")

    monkeypatch.setattr(loop, "_verify", unreadable)
    with pytest.raises(tf.errors.DataLossError):
        loop.fit_distributed(loop_model(), dataset_fn, 3, 2, checkpoint_dir=ckpt, verbose=0)
    assert {0, 1} <= set(loop.checkpoint_epochs(ckpt))


def test_no_restorable_checkpoint_is_an_error_naming_the_directory(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    loop.fit_distributed(loop_model(), dataset_fn, 2, 2, checkpoint_dir=ckpt, verbose=0)
    for prefix in loop.checkpoint_epochs(ckpt).values():
        os.remove(prefix + ".index")
    with pytest.raises(InputError, match=f"No checkpoint in {ckpt} restores"):
        loop.fit_distributed(loop_model(), dataset_fn, 3, 2, checkpoint_dir=ckpt, verbose=0)


# -- files ------------------------------------------------------------------------------------

def test_image_folders_with_different_or_single_classes_are_refused(cifar_dir, tmp_path):
    root = tmp_path / "folder"
    for split, classes in (("train", ["cat", "dog", "frog"]), ("test", ["cat", "dog", "ship"])):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            shutil.copy(next((cifar_dir / "test" / "cat").iterdir()), root / split / name / "a.jpg")
    with pytest.raises(ki.data.DatasetNotFoundError, match=r"only in train: \['frog'\]; only in test: \['ship'\]"):
        ki.data.load_arrays(str(root))
    shutil.rmtree(root / "train" / "frog")
    shutil.rmtree(root / "test" / "ship")
    shutil.rmtree(root / "train" / "dog")
    shutil.rmtree(root / "test" / "dog")
    with pytest.raises(ki.data.DatasetNotFoundError, match="at least two classes"):
        ki.data.load_arrays(str(root))


def test_a_truncated_keras_file_is_named(tmp_path):
    model = ki.StandardModel(tiny_backbone())
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a complete .keras archive"):
        ki.TeacherDistillationModel(tiny_backbone(), str(tmp_path / "cut.keras"))


def test_a_corrupt_results_file_names_the_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"config": "standard"}\n{"config": "il", "seed"\n')
    with pytest.raises(InputError, match="results.jsonl, line 2"):
        ki.benchmark.report.load(path)


def test_isl_is_refused_under_the_multi_worker_loop(tmp_path):
    """The curriculum is a Keras callback the multi-worker loop does not run: refuse, do not train plain KD."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    teacher = tmp_path / "teacher.keras"
    ki.StandardModel(ki.architectures.digits_cnn()).save(teacher)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "TF_CONFIG": json.dumps({"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}})}
    result = subprocess.run(
        ["keras-introspect", "train", "--method", "isl", "--teacher", str(teacher), "--strategy", "multiworker",
         "--epochs", "1", "--output", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the multi-worker loop does not run" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_times_every_epoch_including_the_interrupted_parts(tmp_path):
    import keras

    from keras_introspect import recipes

    x, y = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"), np.arange(64) % 2

    class Killed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    def attempt(extra=()):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callbacks, read_history = recipes.resumable(str(tmp_path))
        model.fit(x, y, validation_data=(x, y), epochs=4, verbose=0, callbacks=callbacks + list(extra))
        return read_history()

    with pytest.raises(KeyboardInterrupt):
        attempt([Killed()])
    first = json.loads((tmp_path / "epoch_seconds.json").read_text())
    assert sorted(first) == ["0", "1"]
    history = attempt()
    assert len(history["loss"]) == 4
    assert history["epoch_seconds"][:2] == [first["0"], first["1"]] and min(history["epoch_seconds"]) > 0
    # A run begun before epochs were timed has no timing for its early epochs: none is claimed.
    (tmp_path / "epoch_seconds.json").write_text(json.dumps({"3": 1.0}))
    assert "epoch_seconds" not in recipes.resumable(str(tmp_path))[1]()


def test_every_test_the_document_names_exists():
    """docs/reliability.md's last column points at tests: none may point at a renamed or deleted one."""
    import pathlib
    import re

    tests = pathlib.Path(__file__).parent
    document = (tests.parent / "docs" / "reliability.md").read_text()
    defined = {path.name: set(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
               for path in tests.glob("test_*.py")}
    everywhere = set().union(*defined.values())
    named = re.findall(r"`(?:(test_\w+\.py)::)?(test_\w+)`", document)
    assert len(named) > 40
    missing = [f"{file}::{name}" if file else name for file, name in named
               if name not in (defined.get(file, set()) if file else everywhere)]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
