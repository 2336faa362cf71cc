"""Explainers against independent computations and against tf-explain."""

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


def test_cam_equals_numpy_weighted_features(backbone, images):
    features = keras.Model(backbone.input, backbone.get_layer("features").output)(images).numpy()
    kernel = backbone.get_layer("logits").kernel.numpy()
    expected = np.einsum("bhwc,ck->bkhw", features, kernel) / (8 * 8)
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


def test_integrated_gradients_completeness_on_linear_model():
    # For a linear score, IG is exact: sum of attributions = f(x) - f(baseline).
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    maps = explainers.IntegratedGradients(steps=4)(model, x).numpy()
    zero = model(np.zeros((1, 4), "float32")).numpy()
    np.testing.assert_allclose(maps.sum(-1), model(x).numpy() - zero, atol=1e-5)


def test_selected_classes_equal_slices_of_all(backbone, images):
    explainer = explainers.VanillaGradients()
    all_maps = explainer(backbone, images).numpy()
    chosen = np.array([[1, 4], [0, 2], [3, 3], [4, 0]], dtype="int32")
    some = explainer(backbone, images, chosen).numpy()
    np.testing.assert_allclose(some, all_maps[np.arange(4)[:, None], chosen], atol=ATOL)
    one = explainer(backbone, images, 2).numpy()
    np.testing.assert_allclose(one[:, 0], all_maps[:, 2], atol=ATOL)


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
    with pytest.raises(ValueError, match="steps must be >= 2"):
        explainers.IntegratedGradients(steps=1)


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
