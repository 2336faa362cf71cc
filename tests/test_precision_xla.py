"""Mixed precision and XLA for the training methods."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_backbone

import keras_introspect as ki


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def train_three_steps(policy, images, labels):
    keras.mixed_precision.set_global_policy(policy)
    model = ki.IntrospectiveModel(tiny_backbone(seed=7, batchnorm=True), warmup_epochs=0, ramp_epochs=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.numpy().astype("float32").copy() for w in model.backbone.trainable_weights]
    for _ in range(3):
        logs = model.train_on_batch(images, labels, return_dict=True)
    after = [w.numpy().astype("float32") for w in model.backbone.trainable_weights]
    return model, logs, before, after


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_moves_weights_like_float32(policy, images, labels, restore_policy):
    _, logs32, before, after32 = train_three_steps("float32", images, labels)
    model, logs, _, after = train_three_steps(policy, images, labels)
    assert model.backbone.layers[1].compute_dtype == policy.split("_")[1]
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.logits(images).dtype == tf.float32
    assert model.explain(images).dtype == tf.float32
    assert np.isfinite(logs["loss"])
    moved = np.concatenate([np.ravel(a - b) for a, b in zip(after32, before)])
    diff = np.concatenate([np.ravel(a - b) for a, b in zip(after, after32)])
    assert np.linalg.norm(diff) < 0.1 * np.linalg.norm(moved)
    assert logs["loss"] == pytest.approx(logs32["loss"], rel=0.05)


@pytest.mark.parametrize("arch", ["resnet20", "wrn16_2"])
def test_xla_training_step_matches_graph_mode(arch):
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 10
    losses = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = ki.IntrospectiveModel(ki.architectures.get(arch, 10, (32, 32, 3)), warmup_epochs=0, ramp_epochs=0)
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit)
        losses.append([model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(2)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)


def test_labels_are_checked_under_xla(images, labels):
    model = ki.IntrospectiveModel(tiny_backbone())
    model.compile(optimizer="sgd", jit_compile=True)
    bad = np.array([0, 1, 2, 9])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        model.fit(images, bad, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((images, bad)).batch(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be < 5"):
        model.fit(dataset, verbose=0)
    model.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(2), verbose=0)
