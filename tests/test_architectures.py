"""Architectures: shapes, sizes, named layers, CAM-compatible heads."""

import pytest

import keras_introspect as ki
from keras_introspect import backbones


@pytest.mark.parametrize(
    "name, params",
    [("resnet20", 0.27e6), ("resnet32", 0.46e6), ("resnet56", 0.85e6), ("wrn16_2", 0.69e6), ("resnet18", 11.2e6)],
)
def test_parameter_counts_match_the_papers(name, params):
    model = ki.architectures.get(name, 10, (32, 32, 3))
    assert model.count_params() == pytest.approx(params, rel=0.05)
    assert model.outputs[0].shape[-1] == 10


@pytest.mark.parametrize("name", list(ki.architectures.ARCHITECTURES))
def test_every_architecture_has_a_cam_head(name):
    shape = (8, 8, 1) if name == "digits_cnn" else (32, 32, 3)
    model = ki.architectures.get(name, 7, shape)
    layer, dense = backbones.gap_dense_head(model)
    assert layer == "features" and dense.units == 7
    assert backbones.last_conv_layer_name(model) == "features"


def test_bad_architecture_arguments():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        ki.architectures.resnet_cifar(21)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        ki.architectures.wide_resnet(17, 2)
    with pytest.raises(ValueError, match="Unknown architecture"):
        ki.architectures.get("vgg16", 10, (32, 32, 3))
    assert ki.architectures.get("resnet8", 10, (32, 32, 3)).name == "resnet8"


def test_batchnorm_momentum_sets_the_moving_average_rate(tmp_path):
    import keras
    import numpy as np

    model = ki.architectures.get("digits_cnn", 10, (8, 8, 1), bn_momentum=0.9)
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
    model(x, training=True)
    # One training call: moving_mean = 0.9 · 0 + 0.1 · (batch mean of the first conv's output).
    conv = model.get_layer("conv1_conv")(x).numpy()
    bn = model.get_layer("conv1_bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    # The momentum is part of the saved model.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert {layer.momentum for layer in loaded.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.9}


def test_batchnorm_momentum_rejects_bad_values_and_models_without_batchnorm():
    import keras

    with pytest.raises(ValueError, match="momentum must be in"):
        ki.architectures.set_batchnorm_momentum(ki.architectures.digits_cnn(), 1.0)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="no BatchNormalization"):
        ki.architectures.set_batchnorm_momentum(plain, 0.9)
