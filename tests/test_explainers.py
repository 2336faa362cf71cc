"""Explainers against independent computations and against tf-explain."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_backbone
from tf_explain.core.grad_cam import GradCAM as TfxGradCAM
from tf_explain.core.gradients_inputs import GradientsInputs as TfxGradientsInputs
from tf_explain.core.integrated_gradients import IntegratedGradients as TfxIntegratedGradients
from tf_explain.core.smoothgrad import SmoothGrad as TfxSmoothGrad
from tf_explain.core.vanilla_gradients import VanillaGradients as TfxVanillaGradients

from keras_introspect import backbones, explainers
from keras_introspect.explainers import base

ATOL = 1e-5


def per_sample_gradient(model, image, class_index):
    """d logit_c / d x for ONE image, with its own tape (independent reference)."""
    x = tf.constant(image[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = model(x)[0, class_index]
    return tape.gradient(logit, x)[0].numpy()


def test_vanilla_gradients_match_per_sample_tapes(backbone, images):
    maps = explainers.VanillaGradients()(backbone, images).numpy()
    assert maps.shape == (4, 5, 8, 8, 3)
    for i in range(len(images)):
        for c in range(5):
            np.testing.assert_allclose(maps[i, c], per_sample_gradient(backbone, images[i], c), atol=ATOL)


def test_vanilla_gradients_match_tf_explain(backbone, images):
    ours = explainers.VanillaGradients()(backbone, images).numpy()
    for c in range(5):
        theirs = TfxVanillaGradients.compute_gradients(images, backbone, c).numpy()
        np.testing.assert_allclose(ours[:, c], theirs, atol=ATOL)


def test_gradient_input_matches_tf_explain(backbone, images):
    ours = explainers.GradientInput()(backbone, images).numpy()
    for c in range(5):
        theirs = TfxGradientsInputs.compute_gradients(images, backbone, c).numpy()
        np.testing.assert_allclose(ours[:, c], theirs, atol=ATOL)


@pytest.mark.parametrize("layer", ["features", "relu1"])
def test_grad_cam_matches_tf_explain(backbone, images, layer):
    ours = explainers.GradCAM(layer=layer, relu=False)(backbone, images).numpy()
    assert ours.shape == (4, 5, 8, 8)
    for c in range(5):
        outputs, grads = TfxGradCAM.get_gradients_and_filters(backbone, images, layer, c, False)
        theirs = np.stack([m.numpy() for m in TfxGradCAM.generate_ponderated_output(outputs, grads)])
        np.testing.assert_allclose(ours[:, c], theirs, atol=ATOL)


def test_grad_cam_finds_last_spatial_layer(backbone, images):
    explainer = explainers.GradCAM(relu=True)
    assert explainer.source_layer(backbone) == "features"
    relu_maps = explainer(backbone, images).numpy()
    raw = explainers.GradCAM(relu=False)(backbone, images).numpy()
    np.testing.assert_allclose(relu_maps, np.maximum(raw, 0.0), atol=ATOL)


@pytest.mark.parametrize("relu", [True, False])
def test_cam_closed_form_equals_grad_cam(backbone, images, relu):
    cam = explainers.CAM(relu=relu)(backbone, images).numpy()
    grad_cam = explainers.GradCAM(layer="features", relu=relu)(backbone, images).numpy()
    np.testing.assert_allclose(cam, grad_cam, atol=ATOL)


@pytest.mark.parametrize("height, width", [(8, 8), (8, 6)])
def test_cam_equals_numpy_weighted_features(height, width):
    backbone = tiny_backbone(input_shape=(height, width, 3))
    images = np.random.default_rng(0).normal(size=(4, height, width, 3)).astype("float32")
    features = keras.Model(backbone.input, backbone.get_layer("features").output)(images).numpy()
    kernel = backbone.get_layer("logits").kernel.numpy()
    expected = np.einsum("bhwc,ck->bkhw", features, kernel) / (height * width)
    np.testing.assert_allclose(explainers.CAM(relu=False)(backbone, images).numpy(), expected, atol=ATOL)


def test_cam_requires_gap_dense_head(images):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(backbones.BackboneError, match="GlobalAveragePooling2D"):
        explainers.CAM()(model, images)


def test_smoothgrad_matches_tf_explain_on_same_noise():
    model = tiny_backbone(softmax="layer")
    images = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype("float32")
    np.random.seed(0)
    noisy = TfxSmoothGrad.generate_noisy_images(images, 4, 0.3)
    ours = explainers.SmoothGrad(num_samples=4, score="log_probability").average_gradients(model, noisy).numpy()
    for c in range(5):
        theirs = TfxSmoothGrad.get_averaged_gradients(tf.constant(noisy), model, c, 4).numpy()
        # tf-explain differentiates the cross-entropy -log p_c; we explain +log p_c.
        np.testing.assert_allclose(ours[:, c], -theirs, atol=1e-4)


def test_smoothgrad_with_no_noise_is_vanilla(backbone, images):
    smooth = explainers.SmoothGrad(num_samples=3, noise=0.0)(backbone, images).numpy()
    vanilla = explainers.VanillaGradients()(backbone, images).numpy()
    np.testing.assert_allclose(smooth, vanilla, atol=ATOL)


def test_integrated_gradients_match_tf_explain(backbone, images):
    steps = 8
    ours = explainers.IntegratedGradients(steps=steps)(backbone, images).numpy()
    path = TfxIntegratedGradients.generate_interpolations(images, steps)
    for c in range(5):
        theirs = TfxIntegratedGradients.get_integrated_gradients(
            tf.constant(path, tf.float32), backbone, c, steps
        ).numpy()
        np.testing.assert_allclose(ours[:, c], images * theirs, atol=1e-4)


def test_integrated_gradients_with_a_baseline_match_per_point_tapes(backbone, images):
    steps, baseline = 3, 0.5
    maps = explainers.IntegratedGradients(steps=steps, baseline=baseline)(backbone, images, [1, 0, 4, 2]).numpy()
    for i, c in enumerate([1, 0, 4, 2]):
        path = [baseline + t * (images[i] - baseline) for t in np.linspace(0.0, 1.0, steps)]
        mean_gradient = np.mean([per_sample_gradient(backbone, point, c) for point in path], axis=0)
        np.testing.assert_allclose(maps[i, 0], (images[i] - baseline) * mean_gradient, atol=ATOL)


def test_integrated_gradients_completeness_on_linear_model():
    # For a linear score, IG is exact: sum of attributions = f(x) - f(baseline).
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    maps = explainers.IntegratedGradients(steps=4)(model, x).numpy()
    zero = model(np.zeros((1, 4), "float32")).numpy()
    np.testing.assert_allclose(maps.sum(-1), model(x).numpy() - zero, atol=1e-5)


EVERY_EXPLAINER = {
    "cam": lambda: explainers.CAM(),
    "grad_cam": lambda: explainers.GradCAM(layer="relu1"),
    "vanilla_gradients": lambda: explainers.VanillaGradients(),
    "gradient_input": lambda: explainers.GradientInput(score="log_probability"),
    "smoothgrad": lambda: explainers.SmoothGrad(num_samples=3, noise=0.5, seed=7),
    "integrated_gradients": lambda: explainers.IntegratedGradients(steps=3, baseline=0.25),
}


@pytest.mark.parametrize("name", sorted(EVERY_EXPLAINER))
def test_selected_classes_equal_slices_of_all(backbone, images, name):
    explainer = EVERY_EXPLAINER[name]()
    all_maps = explainer(backbone, images).numpy()
    assert all_maps.shape[:2] == (4, 5)
    chosen = np.array([[1, 4], [0, 2], [3, 3], [4, 0]], dtype="int32")
    np.testing.assert_allclose(explainer(backbone, images, chosen).numpy(), all_maps[np.arange(4)[:, None], chosen],
                               atol=ATOL)
    one = explainer(backbone, images, 2).numpy()
    assert one.shape == (4, 1) + all_maps.shape[2:]
    np.testing.assert_allclose(one[:, 0], all_maps[:, 2], atol=ATOL)
    # Integer images are explained as the same values in floats.
    integers = np.round(images * 3).astype("int32")
    np.testing.assert_allclose(explainer(backbone, integers).numpy(),
                               explainer(backbone, integers.astype("float32")).numpy(), atol=ATOL)


@pytest.mark.parametrize("name", sorted(EVERY_EXPLAINER))
def test_config_round_trips_keep_every_setting(backbone, images, name):
    explainer = EVERY_EXPLAINER[name]()
    config = explainer.get_config()
    assert type(explainer).from_config(config).get_config() == config
    copy = explainers.get(keras.saving.serialize_keras_object(explainer))
    assert type(copy) is type(explainer) and copy.get_config() == config
    np.testing.assert_allclose(copy(backbone, images).numpy(), explainer(backbone, images).numpy(), atol=ATOL)


def test_explainers_by_name_and_settings_that_matter():
    assert type(explainers.get("Vanilla-Gradients")) is explainers.VanillaGradients
    assert type(explainers.get("integrated-gradients")) is explainers.IntegratedGradients
    shared = explainers.CAM(relu=True)
    assert explainers.get(shared) is shared
    assert explainers.GradCAM(layer="relu1", relu=True).get_config() == {"score": "logit", "layer": "relu1",
                                                                         "relu": True}
    assert explainers.SmoothGrad(num_samples=1).num_samples == 1  # the smallest count is allowed
    assert explainers.IntegratedGradients(steps=2).steps == 2


def test_smoothgrad_seed_fixes_the_noise(backbone, images):
    seeded = explainers.SmoothGrad(num_samples=2, noise=0.5, seed=3)
    np.testing.assert_array_equal(seeded(backbone, images).numpy(), seeded(backbone, images).numpy())
    other = explainers.SmoothGrad(num_samples=2, noise=0.5, seed=4)(backbone, images).numpy()
    assert not np.allclose(other, seeded(backbone, images).numpy(), atol=1e-3)
    unseeded = explainers.SmoothGrad(num_samples=2, noise=0.5)
    assert not np.allclose(unseeded(backbone, images).numpy(), unseeded(backbone, images).numpy(), atol=1e-3)


def test_softmax_backbones_are_explained_through_logits(images):
    plain = tiny_backbone(seed=3)
    for kind in ("dense", "layer"):
        wrapped = tiny_backbone(softmax=kind, seed=3)
        np.testing.assert_allclose(
            explainers.VanillaGradients()(wrapped, images).numpy(),
            explainers.VanillaGradients()(plain, images).numpy(),
            atol=ATOL,
        )


def test_explainer_errors(backbone, images):
    with pytest.raises(backbones.BackboneError, match="no layer named 'nope'"):
        explainers.GradCAM(layer="nope")(backbone, images)
    with pytest.raises(tf.errors.InvalidArgumentError, match="class indices must be < 5"):
        explainers.VanillaGradients()(backbone, images, 7)
    with pytest.raises(ValueError, match="Unknown explainer"):
        explainers.get("lime")
    with pytest.raises(ValueError, match="steps must be >= 2, got 1"):
        explainers.IntegratedGradients(steps=1)
    with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
        explainers.SmoothGrad(num_samples=0)
    with pytest.raises(ValueError, match=re.escape("Unknown score 'prob'; expected one of ('logit', 'log_probability')")):
        explainers.VanillaGradients(score="prob")
    with pytest.raises(ValueError, match=re.escape("Unknown score 'prob'; expected one of ('logit', 'log_probability')")):
        base.class_scores(tf.zeros((1, 2)), "prob")
    with pytest.raises(ValueError, match="Cannot interpret 3.5 as an explainer"):
        explainers.get(3.5)
    with pytest.raises(ValueError, match="classes must be integers, got dtype float32"):
        explainers.VanillaGradients()(backbone, images, np.array([0.0, 1.0, 2.0, 3.0], "float32"))
    with pytest.raises(ValueError, match=re.escape("classes must be an int, (batch,) or (batch, k); got shape (4, 1, 1)")):
        explainers.VanillaGradients()(backbone, images, np.zeros((4, 1, 1), "int32"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="class indices must be >= 0"):
        explainers.VanillaGradients()(backbone, images, -1)
    with pytest.raises(ValueError, match="CAM reads the classifier's Dense kernel: pass backbone= to maps_from_tape"):
        explainers.CAM().maps_from_tape(None, tf.zeros((1, 2, 2, 4)), tf.zeros((1, 5)))


def test_explainers_run_in_tf_function_and_xla(backbone, images):
    explainer = explainers.GradCAM(relu=False)
    eager = explainer.explain_batch(backbone, tf.constant(images), None).numpy()
    compiled = tf.function(lambda x: explainer.explain_batch(backbone, x, None), jit_compile=True)
    np.testing.assert_allclose(compiled(tf.constant(images)).numpy(), eager, atol=1e-4)


@pytest.mark.parametrize("name", ["cam", "grad_cam", "vanilla_gradients"])
def test_one_explainer_serves_several_models(images, name):
    """An explainer holds no model: shared by two models, each gets its own maps."""
    first, second = tiny_backbone(seed=1), tiny_backbone(seed=2)
    shared = explainers.get(name)
    alone = [explainers.get(name)(m, images).numpy() for m in (first, second)]
    interleaved = [shared(first, images).numpy(), shared(second, images).numpy(), shared(first, images).numpy()]
    np.testing.assert_allclose(interleaved[0], alone[0], atol=ATOL)
    np.testing.assert_allclose(interleaved[1], alone[1], atol=ATOL)
    np.testing.assert_allclose(interleaved[2], alone[0], atol=ATOL)
    assert not np.allclose(alone[0], alone[1], atol=1e-3)


def test_explainer_defaults_are_signed_maps():
    assert explainers.CAM().relu is False and explainers.get("cam").relu is False
    assert explainers.GradCAM().relu is False and explainers.get("grad_cam").relu is False
