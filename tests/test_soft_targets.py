"""Soft targets from explanation similarities."""

import numpy as np
import pytest
import tensorflow as tf

from keras_introspect.soft_targets import ExplanationSoftTargets, entropy, scatter_to_classes, similarity

RNG = np.random.default_rng(0)


def numpy_cosine(maps, reference, center):
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1).astype("float64")
    if center:
        flat = flat - flat.mean(-1, keepdims=True)
    ref = flat[np.arange(len(flat)), reference][:, None]
    return (flat * ref).sum(-1) / np.maximum(np.linalg.norm(flat, axis=-1) * np.linalg.norm(ref, axis=-1), 1e-8)


@pytest.mark.parametrize("center", [True, False])
def test_cosine_similarity_matches_numpy(center):
    maps = RNG.normal(size=(3, 6, 4, 4)).astype("float32")
    reference = np.array([0, 5, 2])
    ours = ExplanationSoftTargets(center=center).similarities(maps, reference).numpy()
    np.testing.assert_allclose(ours, numpy_cosine(maps, reference, center), atol=1e-5)
    np.testing.assert_allclose(ours[np.arange(3), reference], 1.0, atol=1e-5)


def numpy_similarity(name, maps, reference):
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1).astype("float64")
    ref = flat[np.arange(len(flat)), reference][:, None]
    if name == "dot":
        return (flat * ref).sum(-1) / flat.shape[-1]
    unit = flat / np.linalg.norm(flat, axis=-1, keepdims=True)
    return -np.linalg.norm(unit - unit[np.arange(len(flat)), reference][:, None], axis=-1)


@pytest.mark.parametrize("name", ["dot", "euclidean"])
def test_dot_and_euclidean_similarities_match_numpy(name):
    maps = RNG.normal(size=(3, 6, 4, 5)).astype("float32")
    reference = np.array([1, 0, 4])
    ours = similarity.get(name)(similarity.flatten_maps(maps), tf.constant(reference)).numpy()
    np.testing.assert_allclose(ours, numpy_similarity(name, maps, reference), rtol=1e-5, atol=1e-5)
    # The reference is the most similar map to itself under both.
    if name == "euclidean":
        np.testing.assert_allclose(ours[np.arange(3), reference], 0.0, atol=1e-5)
        assert (ours <= 1e-6).all()


@pytest.mark.parametrize("form", ["mass", "softmax"])
@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean"])
def test_targets_are_distributions(form, name):
    maps = RNG.normal(size=(5, 10, 3, 3)).astype("float32")
    q = ExplanationSoftTargets(form=form, similarity=name).__call__(maps, np.arange(5)).numpy()
    assert q.shape == (5, 10)
    assert (q >= 0).all()
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)


def test_mass_form_matches_hand_computation():
    maps = RNG.normal(size=(2, 4, 5)).astype("float32")
    reference = np.array([1, 3])
    eps, tau = 0.2, 0.5
    q = ExplanationSoftTargets(form="mass", epsilon=eps, temperature=tau)(maps, reference).numpy()
    sims = numpy_cosine(maps, reference, center=True)
    for i, y in enumerate(reference):
        others = [j for j in range(4) if j != y]
        weights = np.exp(sims[i, others] / tau)
        np.testing.assert_allclose(q[i, y], 1 - eps, atol=1e-6)
        np.testing.assert_allclose(q[i, others], eps * weights / weights.sum(), atol=1e-6)


def test_softmax_form_matches_hand_computation():
    maps = RNG.normal(size=(2, 4, 5)).astype("float32")
    reference = np.array([0, 2])
    q = ExplanationSoftTargets(form="softmax", temperature=0.3, center=False)(maps, reference).numpy()
    sims = numpy_cosine(maps, reference, center=False) / 0.3
    expected = np.exp(sims) / np.exp(sims).sum(-1, keepdims=True)
    np.testing.assert_allclose(q, expected, atol=1e-6)


def test_equal_similarities_reduce_to_label_smoothing_over_other_classes():
    maps = np.ones((3, 5, 4, 4), "float32")  # identical maps → identical similarities
    q = ExplanationSoftTargets(form="mass", epsilon=0.1, center=False)(maps, np.array([0, 1, 4])).numpy()
    expected = np.full((3, 5), 0.1 / 4)
    expected[[0, 1, 2], [0, 1, 4]] = 0.9
    np.testing.assert_allclose(q, expected, atol=1e-6)


@pytest.mark.parametrize("form", ["mass", "softmax"])
@pytest.mark.parametrize("center", [True, False])
def test_all_zero_explanations_give_finite_targets(form, center):
    q = ExplanationSoftTargets(form=form, center=center)(np.zeros((2, 4, 3, 3), "float32"), np.array([0, 3])).numpy()
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-6)


def test_targets_stop_gradient():
    maps = tf.Variable(RNG.normal(size=(2, 3, 4)).astype("float32"))
    with tf.GradientTape() as tape:
        q = ExplanationSoftTargets()(maps, np.array([0, 1]))
        total = tf.reduce_sum(q * tf.range(3, dtype=tf.float32))
    assert tape.gradient(total, maps) is None


def test_scatter_to_classes_and_entropy():
    q = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4]], "float32")  # 3 rows of 2 explained classes
    classes = np.array([[2, 0], [1, 3], [0, 1]], "int32")
    full = scatter_to_classes(q, classes, 4).numpy()
    np.testing.assert_allclose(full, [[0.1, 0, 0.9, 0], [0, 0.7, 0, 0.3], [0.6, 0.4, 0, 0]])
    np.testing.assert_allclose(entropy(full).numpy(), -(q * np.log(q)).sum(-1), atol=1e-6)
    full = full[:2]
    # Over the class axis, whatever the leading axes.
    stacked = np.stack([full, full[::-1]])
    np.testing.assert_allclose(entropy(stacked).numpy(), [entropy(full).numpy(), entropy(full[::-1]).numpy()],
                               atol=1e-6)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="form"):
        ExplanationSoftTargets(form="uniform")
    with pytest.raises(ValueError, match="similarity"):
        ExplanationSoftTargets(similarity="manhattan")
    with pytest.raises(ValueError, match="temperature"):
        ExplanationSoftTargets(temperature=0)
    with pytest.raises(ValueError, match="epsilon"):
        ExplanationSoftTargets(epsilon=1.0)
    assert similarity.get("cosine") is similarity.cosine
    ExplanationSoftTargets(epsilon=0.0)  # no smoothing at all is allowed


def test_defaults_and_config_round_trip():
    assert ExplanationSoftTargets().get_config() == {
        "form": "mass", "similarity": "cosine", "center": True, "temperature": 0.1, "epsilon": 0.1}
    targets = ExplanationSoftTargets(form="softmax", similarity="dot", center=False, temperature=0.4, epsilon=0.2)
    config = targets.get_config()
    assert config == {"form": "softmax", "similarity": "dot", "center": False, "temperature": 0.4, "epsilon": 0.2}
    maps, reference = RNG.normal(size=(2, 3, 4)).astype("float32"), np.array([2, 0])
    np.testing.assert_array_equal(ExplanationSoftTargets.from_config(config)(maps, reference), targets(maps, reference))


def test_a_scheduled_epsilon_overrides_the_configured_one_and_zero_gives_the_label():
    sims = tf.constant([[1.0, 0.2, -0.3], [0.5, 1.0, 0.1]])
    reference = np.array([0, 1])
    targets = ExplanationSoftTargets(epsilon=0.1)
    scheduled = targets.from_similarities(sims, reference, epsilon=0.3).numpy()
    np.testing.assert_allclose(scheduled[[0, 1], reference], 0.7, atol=1e-6)
    np.testing.assert_allclose(ExplanationSoftTargets(epsilon=0.0).from_similarities(sims, reference).numpy(),
                               np.eye(3)[reference], atol=1e-7)


def test_a_similarity_function_can_be_given_directly():
    def negative_dot(flat, reference):
        return -similarity.dot(flat, reference)

    assert similarity.get(negative_dot) is negative_dot
    maps, reference = RNG.normal(size=(2, 3, 4)).astype("float32"), np.array([1, 2])
    flipped = ExplanationSoftTargets(similarity=negative_dot).similarities(maps, reference)
    np.testing.assert_allclose(flipped, -ExplanationSoftTargets(similarity="dot").similarities(maps, reference), atol=1e-6)


def test_nontarget_form_puts_all_mass_on_other_classes():
    maps = RNG.normal(size=(3, 5, 4)).astype("float32")
    reference = np.array([0, 2, 4])
    q = ExplanationSoftTargets(form="nontarget", temperature=0.5)(maps, reference).numpy()
    mass = ExplanationSoftTargets(form="mass", temperature=0.5, epsilon=0.3)(maps, reference).numpy()
    np.testing.assert_allclose(q[np.arange(3), reference], 0.0)
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-6)
    others = np.ones_like(q, bool)
    others[np.arange(3), reference] = False
    np.testing.assert_allclose(q[others], mass[others] / 0.3, atol=1e-6)
