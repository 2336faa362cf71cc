import fcntl
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def take_a_share_of_the_cores():
    """Each pytest-xdist worker on its own share of the cores; its child processes (command lines,
    notebook kernels, multi-worker processes) inherit it.

    TensorFlow sizes its thread pools by the cores a process may run on, so two workers each sized for
    both cores contend for them.
    """
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    share = len(cores) // int(count)
    if share >= 1:
        index = int(worker.removeprefix("gw"))
        os.sched_setaffinity(0, cores[index * share:(index + 1) * share])


take_a_share_of_the_cores()  # before NumPy and TensorFlow start their threads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_introspect as ki  # noqa: E402
from keras_introspect.export import export_saved_model  # noqa: E402
from keras_introspect.methods.registry import METHODS, build_method  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = pathlib.Path(
    os.environ.get("KERAS_INTROSPECT_CIFAR_ARCHIVE", REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
)
IMAGENETTE_ARCHIVE = pathlib.Path(
    os.environ.get("KERAS_INTROSPECT_IMAGENETTE_ARCHIVE", REPO.parent / "shared" / "data" / "imagenette-128px.tar.gz")
)


SOFTMAX_HEADS = ("dense", "dense_tf", "layer", "lambda", "activation_fn")


def tiny_backbone(num_classes=5, softmax=None, seed=0, batchnorm=False, input_shape=(8, 8, 3), conv2_strides=1):
    """A small Functional classifier: conv → (BN) → ReLU → features → GAP → Dense.

    `softmax` adds a softmax head of one of the kinds in `SOFTMAX_HEADS`; `conv2_strides=2` gives it two
    resolutions (FRSKD needs stages).
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(4, 3, strides=conv2_strides, padding="same", name="conv2")(x)
    x = keras.layers.Activation("tanh", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if softmax == "dense":
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="logits")(x)
    elif softmax == "dense_tf":  # the function is named softmax_v2
        outputs = keras.layers.Dense(num_classes, activation=tf.nn.softmax, name="logits")(x)
    elif softmax in ("layer", "lambda", "activation_fn"):
        x = keras.layers.Dense(num_classes, name="logits")(x)
        head = {"layer": keras.layers.Softmax(name="probabilities"),
                "lambda": keras.layers.Lambda(lambda z: tf.nn.softmax(z), name="probabilities"),
                "activation_fn": keras.layers.Activation(tf.nn.softmax, name="probabilities")}[softmax]
        outputs = head(x)
    else:
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture
def backbone():
    return tiny_backbone()


@pytest.fixture
def images():
    return np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")


@pytest.fixture
def labels():
    return np.array([0, 3, 1, 4], dtype="int32")


def fit_each_method(make_backbone, images, labels, tmp_path, teacher_backbone, round_trip=True, metrics=("accuracy",)):
    """Train every registry method one epoch around a fresh backbone; save, reload and export each
    (`round_trip`). Compiled `metrics` cost a symbolic pass over the model per method (Keras's
    `_symbolic_build`), about as much as tracing the step of a deep base."""
    teacher = ki.StandardModel(teacher_backbone)
    teacher.save(tmp_path / "teacher.keras")
    with_ids = tf.data.Dataset.from_tensor_slices((images, labels, np.arange(len(labels)))).map(
        ki.data.with_example_id)
    for method, spec in METHODS.items():
        options = {"teacher": str(tmp_path / "teacher.keras")} if spec.teacher else {}
        model = build_method(method, make_backbone(), num_examples=len(labels), **options)
        model.compile(optimizer=keras.optimizers.SGD(0.01), metrics=list(metrics))
        data = (with_ids.batch(len(labels)),) if model.needs_example_ids else (images, labels)
        history = model.fit(*data, epochs=1, verbose=0, **({} if model.needs_example_ids else {"batch_size": 4}))
        assert np.isfinite(history.history["loss"]).all(), method
        if not round_trip:
            continue
        model.save(tmp_path / f"{method}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{method}.keras")
        expected = model.predict(images, verbose=0)
        np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6, err_msg=method)
        served = tf.saved_model.load(export_saved_model(loaded, tmp_path / f"{method}_export"))
        probabilities = served.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
        np.testing.assert_allclose(probabilities, tf.nn.softmax(expected).numpy(), atol=1e-5, err_msg=method)


def extracted(archive, folder, tmp_path_factory):
    """`archive` extracted once into the cache (or a temporary directory); skipped when absent.

    CI sets KERAS_INTROSPECT_REQUIRE_DATA=1 so that a missing archive fails instead.
    """
    if not archive.exists():
        if os.environ.get("KERAS_INTROSPECT_REQUIRE_DATA") == "1":
            pytest.fail(f"Archive not found at {archive}")
        pytest.skip(f"Archive not found at {archive}")
    cache = os.environ.get("KERAS_INTROSPECT_CACHE")
    root = pathlib.Path(cache) if cache else tmp_path_factory.mktemp(folder)
    root.mkdir(parents=True, exist_ok=True)

    def extract(partial):
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        return partial / folder

    return made_once(root / folder, extract)


def made_once(target, make):
    """`target`, made by `make(partial)` unless it exists; `make` returns the folder renamed to `target`.

    Test processes running side by side (pytest -n) share the cache: one makes it, in a temporary
    folder renamed into place when complete, while the others wait on the lock.
    """
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            partial = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            os.replace(make(partial), target)
            shutil.rmtree(partial, ignore_errors=True)  # what is left of it, if `make` renamed a folder inside
    return target


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """The shared CIFAR-10 JPEG copy (../shared/data), extracted once per session."""
    return extracted(CIFAR_ARCHIVE, "cifar10-jpeg", tmp_path_factory)


def class_subset(source, name, per_class):
    """A copy of the ImageFolder `source` keeping the first `per_class[split]` images (by name) of every class.

    For tests that run a user's whole path (notebooks, the command line) on a folder but need not
    evaluate on all of it. Made once, beside `source`.
    """
    def copy(partial):
        for split, count in per_class.items():
            for folder in sorted(p for p in (source / split).iterdir() if p.is_dir()):
                (partial / split / folder.name).mkdir(parents=True)
                for image in sorted(folder.iterdir())[:count]:
                    shutil.copyfile(image, partial / split / folder.name / image.name)
        return partial

    return made_once(source.parent / name, copy)


@pytest.fixture(scope="session")
def cifar_small_dir(cifar_dir):
    """CIFAR-10 with 500 training and 100 test images per class: the notebooks' quick runs evaluate 1,000 images."""
    return class_subset(cifar_dir, "cifar10-jpeg-500-100", {"train": 500, "test": 100})


@pytest.fixture(scope="session")
def imagenette_small_dir(imagenette_dir):
    """Imagenette with 200 training and 50 test photos per class."""
    return class_subset(imagenette_dir, "imagenette-128px-200-50", {"train": 200, "test": 50})


@pytest.fixture(scope="session")
def cifar_arrays(cifar_dir):
    """The shared CIFAR-10 copy in memory, decoded once per session (tests must not modify it in place)."""
    import keras_introspect as ki

    return ki.data.load_arrays(str(cifar_dir))


@pytest.fixture(scope="session")
def imagenette_dir(tmp_path_factory):
    """The shared Imagenette copy at 128 px (../shared/data), extracted once per session."""
    return extracted(IMAGENETTE_ARCHIVE, "imagenette-128px", tmp_path_factory)


def run_cli(*args, cwd=None):
    return subprocess.run(["keras-introspect", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def interrupt_before_export(monkeypatch, start):
    """Run `start()` (a command-line run) and stop it with KeyboardInterrupt once it is trained, before its export:
    it leaves `<output>.incomplete/` as an interrupted run does."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("keras_introspect.export.export_for_serving", interrupted)
        with pytest.raises(KeyboardInterrupt):
            start()
