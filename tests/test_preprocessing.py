"""Pixels as the backbone expects them (issue 29): the dataset's statistics, raw pixels, or a Keras
Applications family's own `preprocess_input` — checked against that function, through training
pipelines, streaming, the export and the command line."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_introspect as ki
from keras_introspect.cli.main import main
from keras_introspect.errors import InputError

FAMILIES = ("resnet_v2", "mobilenet_v2", "inception_v3", "xception", "densenet", "efficientnet_v2", "convnext",
            "mobilenet_v3")


def rgb_arrays(seed=0, n=20, size=8):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size, size, 3), dtype="uint8")
    y = np.arange(n, dtype="int32") % 2
    return ki.data.ArrayData("rgb", x, y, x[:6], y[:6], ["a", "b"])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_matches_its_own_preprocess_input(family):
    arrays = rgb_arrays()
    splits = arrays.splits(batch_size=6, augment=False, preprocessing=family)
    fed = next(iter(splits.test))[0].numpy()
    own = np.asarray(getattr(keras.applications, family).preprocess_input(arrays.x_test.astype("float32")))
    np.testing.assert_allclose(fed, own, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(splits.x_test, own, rtol=1e-5, atol=1e-4)


def test_standardize_is_the_default_and_raw_is_the_pixels():
    arrays = rgb_arrays()
    default = arrays.splits(batch_size=6, augment=False)
    standardized = arrays.splits(batch_size=6, augment=False, preprocessing="standardize")
    np.testing.assert_array_equal(default.mean, standardized.mean)
    pixels = arrays.x_train.astype("float64")
    np.testing.assert_allclose(default.mean, pixels.mean(axis=(0, 1, 2)), rtol=1e-5)
    raw = arrays.splits(batch_size=6, augment=False, preprocessing="raw")
    np.testing.assert_array_equal(next(iter(raw.test))[0].numpy(), arrays.x_test.astype("float32"))
    np.testing.assert_allclose(raw.denormalize(raw.x_test[:1]), arrays.x_test[:1] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("name, message", [
    ("resnet50", "not a per-channel scaling"),  # caffe mode: RGB to BGR
    ("vgg16", "not a per-channel scaling"),
    ("imagenet", "Unknown preprocessing 'imagenet'"),
])
def test_families_that_cannot_be_a_scaling_and_unknown_names_are_refused(name, message):
    with pytest.raises(InputError, match=message):
        rgb_arrays().splits(batch_size=6, preprocessing=name)


def test_a_family_on_grey_images_is_refused():
    with pytest.raises(InputError, match="expects RGB images; these have 1 channel"):
        ki.data.load("digits", preprocessing="resnet_v2")


def test_streamed_folders_take_the_same_scaling(tmp_path):
    arrays = rgb_arrays(n=8)
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(arrays.x_train, arrays.y_train)):
            folder = tmp_path / split / "ab"[label]
            folder.mkdir(parents=True, exist_ok=True)
            keras.utils.save_img(folder / f"{i}.png", image)
    splits = ki.data.load(str(tmp_path), batch_size=8, augment=False, preprocessing="resnet_v2")
    x, _ = next(iter(splits.test))
    assert float(tf.reduce_min(x)) >= -1.0 and float(tf.reduce_max(x)) <= 1.0
    np.testing.assert_allclose(splits.mean, 127.5) and np.testing.assert_allclose(splits.std, 127.5)


@pytest.mark.parametrize("choice", ["raw", "resnet_v2", "standardize"])
def test_served_requests_are_raw_pixels_whatever_the_preprocessing(tmp_path, choice):
    arrays = rgb_arrays()
    splits = arrays.splits(batch_size=6, augment=False, preprocessing=choice)
    inputs = keras.Input((8, 8, 3))
    backbone = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3, padding="same")(inputs))))
    model = ki.IntrospectiveModel(backbone)
    raw = arrays.x_test.astype("float32")
    path = ki.export.export_for_serving(model, tmp_path / "serving", "il", normalization=splits.normalization)
    served = tf.saved_model.load(path)
    probabilities = served.signatures["serving_default"](images=tf.constant(raw))["probabilities"].numpy()
    expected = tf.nn.softmax(model.predict(splits.x_test, verbose=0)).numpy()  # what training fed the model
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    exported = model.export(str(tmp_path / "keras_export"), normalization=splits.normalization)
    again = tf.saved_model.load(exported).signatures["serving_default"](images=tf.constant(raw))
    np.testing.assert_allclose(again["probabilities"].numpy(), expected, atol=1e-5)


def test_the_command_line_records_the_chosen_scaling(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--preprocessing", "raw", "--output", str(out), "--verbose", "0"]) == 0
    normalization = json.loads((out / "metrics.json").read_text())["normalization"]
    assert normalization == {"mean": [0.0], "std": [1.0]}
    assert main(["train", "--epochs", "1", "--preprocessing", "vgg16", "--output", str(tmp_path / "b")]) == 2
    assert "expects RGB images" in capsys.readouterr().err
    assert not (tmp_path / "b.incomplete").exists()
