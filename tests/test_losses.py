"""The per-example loss terms and their reduction, against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from keras_introspect import losses
from keras_introspect.losses import distillation

RNG = np.random.default_rng(0)


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6)])
def test_cross_entropy_matches_numpy(shape):
    """Over the class axis, whatever the leading axes."""
    logits = RNG.normal(size=shape).astype("float32") * 3
    targets = RNG.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype("float32")
    expected = -(targets * log_softmax(logits.astype("float64"))).sum(-1)
    np.testing.assert_allclose(losses.cross_entropy(targets, logits).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_distillation_kl_matches_numpy_with_the_t_squared_factor(temperature):
    logits = RNG.normal(size=(5, 7)).astype("float32") * 2
    q = RNG.dirichlet(np.ones(7), size=5).astype("float32")
    q[0, 3] = 0.0  # 0 · log 0 counts as 0
    q[0] /= q[0].sum()
    log_p = log_softmax(logits.astype("float64") / temperature)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(q > 0, q * (np.log(q) - log_p), 0.0).sum(-1)
    ours = losses.distillation_kl(q, logits, temperature).numpy()
    np.testing.assert_allclose(ours, temperature**2 * kl, rtol=1e-4, atol=1e-6)
    same = losses.distillation_kl(tf.nn.softmax(logits / temperature), logits, temperature).numpy()
    np.testing.assert_allclose(same, 0.0, atol=1e-5)  # KL of a distribution with itself


def test_distillation_kl_reduces_over_the_class_axis_with_leading_axes_and_exclusions():
    logits = RNG.normal(size=(2, 3, 5)).astype("float32")
    q = RNG.dirichlet(np.ones(5), size=(2, 3)).astype("float32")
    exclude = np.array([[0, 1, 2], [3, 4, 0]])
    q = np.where(np.arange(5) == exclude[..., None], 0.0, q).astype("float32")
    q /= q.sum(-1, keepdims=True)
    ours = losses.distillation_kl(q, logits, 2.0, exclude=exclude).numpy()
    assert ours.shape == (2, 3)
    for i, j in np.ndindex(2, 3):
        row = losses.distillation_kl(q[i, j][None], logits[i, j][None], 2.0, exclude=exclude[i, j][None])
        assert ours[i, j] == pytest.approx(float(row[0]), rel=1e-5)


def test_distillation_kl_excluding_a_class_is_the_non_target_kl():
    logits = RNG.normal(size=(3, 5)).astype("float32")
    labels = np.array([0, 2, 4])
    q = RNG.dirichlet(np.ones(4), size=3)
    full = np.zeros((3, 5))
    for i, label in enumerate(labels):
        full[i, [c for c in range(5) if c != label]] = q[i]
    ours = losses.distillation_kl(full.astype("float32"), logits, 2.0, exclude=labels).numpy()
    for i, label in enumerate(labels):
        others = [c for c in range(5) if c != label]
        log_p = log_softmax(logits[i, others].astype("float64") / 2.0)
        assert ours[i] == pytest.approx(4.0 * (q[i] * (np.log(q[i]) - log_p)).sum(), rel=1e-4)


@pytest.mark.parametrize("shape", [(4, 3), (2, 4, 3)])
def test_entropy_of_logits_matches_numpy(shape):
    """Over the class axis, whatever the leading axes."""
    logits = RNG.normal(size=shape).astype("float32")
    log_p = log_softmax(logits.astype("float64"))
    np.testing.assert_allclose(losses.entropy_of_logits(logits).numpy(), -(np.exp(log_p) * log_p).sum(-1),
                               rtol=1e-5)


def test_reduction_is_the_weighted_sum_over_the_batch_divided_by_batch_and_replicas(monkeypatch):
    values = np.array([1.0, 2.0, 3.0, 6.0], "float32")
    weights = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    assert float(losses.reduce_per_example(values)) == pytest.approx(3.0)
    assert float(losses.reduce_per_example(values, weights)) == pytest.approx((1 + 6 + 3) / 4)
    assert float(losses.reduce_per_example(tf.zeros((0,)))) == 0.0  # an empty batch adds nothing
    assert distillation.num_replicas() == 1
    monkeypatch.setattr(distillation, "num_replicas", lambda: 2)
    # Each of 2 replicas contributes half: their sum is the global mean.
    assert float(losses.reduce_per_example(values, weights)) == pytest.approx((1 + 6 + 3) / 8)
