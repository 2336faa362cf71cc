"""The models users bring: `keras.Sequential` classifiers and Keras Applications bases nested in a
Functional model (issue 29), through every method, explanations, saving, export and serving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import fit_each_method

import keras_introspect as ki
from keras_introspect import backbones
from keras_introspect.errors import InputError
from keras_introspect.export import export_saved_model

# One test process runs this file, and it starts first (pytest.ini: --dist loadgroup hands out the groups with
# the most tests first): collected last, its minutes of deep nested bases would end the run in one process.
pytestmark = pytest.mark.xdist_group("test_user_backbones")


def sequential(num_classes=5, seed=0):
    """The most common Keras classifier: a Sequential stack with two resolutions (FRSKD needs two)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="tanh"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes),
    ])


def test_a_sequential_backbone_runs_every_method_saves_and_serves(tmp_path, images, labels):
    fit_each_method(sequential, images, labels, tmp_path, sequential(seed=9))


def test_sequential_explanations_and_soft_targets_equal_the_functional_twins(images, labels):
    seq = sequential(seed=3)
    functional = keras.Model(seq.inputs, seq.outputs)  # the same layers as a Functional model
    for explainer in ("cam", "grad_cam", "vanilla_gradients", "gradient_input"):
        a = ki.IntrospectiveModel(seq, explainer=explainer)
        b = ki.IntrospectiveModel(functional, explainer=explainer)
        np.testing.assert_allclose(a.explain(images, "all"), b.explain(images, "all"), atol=1e-6)
        np.testing.assert_allclose(a.soft_targets(images, labels), b.soft_targets(images, labels), atol=1e-6)


FAMILIES = {
    # family: (constructor keyword arguments, an inner spatial layer for Grad-CAM)
    "ResNet50V2": ({}, "conv3_block4_out"),
    "MobileNetV3Small": ({"include_preprocessing": True}, "expanded_conv_1_project_bn"),
    "EfficientNetV2B0": ({"include_preprocessing": True}, "block2b_add"),
}
SIZE = 64
# Families exported and served: the export of a nested base, Grad-CAM inside it, is one code path for every
# family (with and without the family's preprocessing inside: ResNet50V2, MobileNetV3Small); exporting
# EfficientNetV2B0 as well took about a minute of CI.
SERVED = ("ResNet50V2", "MobileNetV3Small")


def nested(family, num_classes=3, seed=0, trainable=True, size=SIZE, **kwargs):
    """The transfer-learning pattern: a Keras Applications base (no download) inside a Functional model."""
    keras.utils.set_random_seed(seed)
    kwargs = {**FAMILIES.get(family, ({}, None))[0], **kwargs}
    base = getattr(keras.applications, family)(include_top=False, weights=None, input_shape=(size, size, 3),
                                               **kwargs)
    base.trainable = trainable
    inputs = keras.Input((size, size, 3))
    features = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name=f"{family}_classifier")


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(4, SIZE, SIZE, 3)).astype("float32"), np.array([0, 2, 1, 2], "int32")


def independent_grad_cam(backbone, base, inner, images):
    """Grad-CAM at `base/inner` computed from the base's own graph and the head's layers, by hand."""
    base = backbone.get_layer(base)
    view = keras.Model(base.inputs, [base.get_layer(inner).output, base.output])
    pool, dense = backbone.layers[-2], backbone.layers[-1]
    with tf.GradientTape(persistent=True) as tape:
        features, out = view(images, training=False)
        logits = dense(pool(out))
        scores = [logits[:, c] for c in range(logits.shape[-1])]
    maps = []
    for score in scores:
        weights = tf.reduce_mean(tape.gradient(score, features), axis=(1, 2))  # (batch, channels)
        maps.append(np.einsum("bhwc,bc->bhw", features.numpy(), weights.numpy()))
    return np.stack(maps, axis=1)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_nested_application_base_trains_explains_saves_and_serves(family, photos, tmp_path):
    images, labels = photos
    backbone = nested(family)
    _, inner = FAMILIES[family]
    base = backbone.layers[1].name  # EfficientNetV2B0 is named "efficientnetv2-b0"
    address = f"{base}/{inner}"
    # CAM at the base's output, Grad-CAM at a layer inside it
    model = ki.IntrospectiveModel(backbone, explainer=ki.explainers.GradCAM(layer=address), warmup_epochs=0)
    model.compile(optimizer=keras.optimizers.SGD(0.001))
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    maps = model.explain(images, "all").numpy()
    np.testing.assert_allclose(maps, independent_grad_cam(backbone, base, inner, images), rtol=1e-4, atol=1e-6)
    cam = ki.explainers.CAM()(backbone, images).numpy()
    np.testing.assert_allclose(cam, ki.explainers.GradCAM(layer=base)(backbone, images).numpy(), rtol=1e-4,
                               atol=1e-7)  # the closed form equals Grad-CAM at the base's output
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.explain(images, "all"), maps, rtol=1e-4, atol=1e-6)
    if family not in SERVED:
        return
    served = tf.saved_model.load(export_saved_model(loaded, tmp_path / "export"))
    out = served.signatures["explain"](images=tf.constant(images), class_index=tf.constant([0, 1, 2, -1]))
    np.testing.assert_allclose(out["explanation"].numpy()[:3], maps[np.arange(3), [0, 1, 2]], rtol=1e-4, atol=1e-6)


def test_every_comparator_trains_a_nested_base(photos, tmp_path):
    images, labels = photos[0][:, ::2, ::2], photos[1]  # 32 px: the smallest input Keras Applications take
    # saving and serving a nested base: test_nested_application_base_trains_explains_saves_and_serves.
    # The smallest graph Keras Applications offer (MobileNet at width 0.25, 86 layers), no compiled metrics
    # (the command-line test compiles a nested base with them): each method traces its own step, and
    # tracing, not arithmetic, is what a nested base costs here.
    fit_each_method(lambda: nested("MobileNet", size=32, alpha=0.25), images, labels, tmp_path,
                    nested("MobileNet", seed=9, size=32, alpha=0.25), round_trip=False, metrics=())


def batchnorm_statistics(model):
    return [w.numpy().copy() for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]


def test_a_frozen_base_keeps_its_weights_and_batchnorm_statistics_and_fine_tuning_keeps_the_statistics(photos):
    images, labels = photos
    backbone = nested("MobileNetV3Small", trainable=False)
    base = backbone.get_layer("MobileNetV3Small")
    stats, kernels = batchnorm_statistics(base), [w.numpy().copy() for w in base.weights]
    head = backbone.layers[-1].kernel.numpy().copy()
    model = ki.IntrospectiveModel(backbone, warmup_epochs=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(images, labels, batch_size=4, epochs=2, verbose=0)
    for before, after in zip(stats + kernels, batchnorm_statistics(base) + [w.numpy() for w in base.weights]):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(head, backbone.layers[-1].kernel.numpy())  # the head learned
    # stage 2: the whole model at a lower rate, BatchNorm still in inference mode
    ki.transfer.unfreeze(base)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    for before, after in zip(stats, batchnorm_statistics(base)):
        np.testing.assert_array_equal(before, after)
    # the base's weights train again (an untrained MobileNetV3's first layers get gradients of ~1e-11,
    # below float32's resolution, so the check is on all of them)
    assert any(not np.array_equal(before, after.numpy()) for before, after in zip(kernels, base.weights))
    # without keeping them frozen, the statistics would move: the test can fail
    ki.transfer.unfreeze(base, batchnorm=True)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(stats, batchnorm_statistics(base)))


def test_inner_layer_addresses_are_checked_with_the_valid_names(photos):
    images, _ = photos
    backbone = nested("MobileNetV3Small")
    with pytest.raises(InputError, match="MobileNetV3Small/<layer>") as error:
        ki.explainers.GradCAM(layer="MobileNetV3Small/no_such_layer")(backbone, images)
    assert "MobileNetV3Small/conv_1_bn" in str(error.value)
    with pytest.raises(InputError, match="no layer named 'dense/kernel'"):
        backbones.get_layer(backbone, "dense/kernel")  # not a nested model
    assert "MobileNetV3Small/expanded_conv_1_project_bn" in backbones.conv_layer_names(backbone)


def rgb_folder(root, size=32, per_class=4):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog", "fox"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                keras.utils.save_img(folder / f"{i}.png", rng.integers(0, 256, (size, size, 3), dtype="uint8"))
    return root


def test_the_command_line_trains_a_keras_applications_base_with_its_own_preprocessing(tmp_path):
    import json

    from keras_introspect.cli.main import main

    data = rgb_folder(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(data), "--arch", "keras:MobileNetV3Small", "--epochs", "1",
                 "--batch-size", "4", "--output", str(out), "--verbose", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # MobileNetV3 carries its preprocessing inside: raw pixels
    assert metrics["normalization"] == {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    served = tf.saved_model.load(str(out / "serving" / "il" / "1"))
    image = keras.utils.img_to_array(keras.utils.load_img(data / "test" / "cat" / "0.png"))[None]
    probabilities = served.signatures["serving_default"](images=tf.constant(image))["probabilities"].numpy()
    model = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(probabilities, tf.nn.softmax(model.predict(image, verbose=0)), atol=1e-5)


def test_keras_applications_names_weights_and_sizes_are_checked(tmp_path, monkeypatch, capsys):
    import urllib.error

    from keras_introspect.architectures import applications
    from keras_introspect.cli.main import main

    data = rgb_folder(tmp_path / "photos", per_class=1)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    cases = [(["--arch", "keras:MobileNetV3Small", "--weights", "imagenet"], "ImageNet weights could not be fetched"),
             (["--arch", "keras:NoSuchNet"], "Unknown Keras Applications family 'NoSuchNet'"),
             (["--arch", "keras:ResNet50"], "not a per-channel scaling"),  # caffe mode: RGB to BGR
             (["--arch", "resnet20", "--weights", "imagenet"], "has no pretrained weights")]
    for extra, message in cases:
        assert main(["train", "--dataset", str(data), "--epochs", "1", "--output", str(tmp_path / "out"), *extra]) == 2
        assert message in capsys.readouterr().err, extra
        assert not (tmp_path / "out.incomplete").exists()
    with pytest.raises(InputError, match="cannot take inputs of shape"):
        applications.application("MobileNetV3Small", 10, (8, 8, 3))  # digits are too small
    assert applications.family_preprocessing("EfficientNetV2B0") == "efficientnet_v2"


def test_a_sequential_without_an_input_is_told_to_start_with_one():
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    with pytest.raises(InputError, match=r"start it with keras.Input\(shape\)"):
        ki.IntrospectiveModel(unbuilt)
