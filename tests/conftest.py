import os
import pathlib
import subprocess
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = pathlib.Path(
    os.environ.get("KERAS_INTROSPECT_CIFAR_ARCHIVE", REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
)


SOFTMAX_HEADS = ("dense", "dense_tf", "layer", "lambda", "activation_fn")


def tiny_backbone(num_classes=5, softmax=None, seed=0, batchnorm=False, input_shape=(8, 8, 3)):
    """A small Functional classifier: conv → (BN) → ReLU → features → GAP → Dense.

    `softmax` adds a softmax head of one of the kinds in `SOFTMAX_HEADS`.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
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


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """The shared CIFAR-10 JPEG copy, extracted once per session.

    Skipped when the archive is absent (a fresh machine without ../shared);
    CI sets KERAS_INTROSPECT_REQUIRE_DATA=1 so that a missing archive fails.
    """
    if not CIFAR_ARCHIVE.exists():
        if os.environ.get("KERAS_INTROSPECT_REQUIRE_DATA") == "1":
            pytest.fail(f"CIFAR-10 archive not found at {CIFAR_ARCHIVE}")
        pytest.skip(f"CIFAR-10 archive not found at {CIFAR_ARCHIVE}")
    cache = os.environ.get("KERAS_INTROSPECT_CACHE")
    root = pathlib.Path(cache) if cache else tmp_path_factory.mktemp("cifar")
    target = root / "cifar10-jpeg"
    if not (target / "test").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(CIFAR_ARCHIVE) as archive:
            archive.extractall(root, filter="data")
    return target


def run_cli(*args, cwd=None):
    return subprocess.run(["keras-introspect", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
