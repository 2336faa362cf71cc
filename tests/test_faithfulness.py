"""Deletion / insertion curves against a hand computation on a linear model whose true attributions are known."""

import keras
import numpy as np
import pytest

from keras_introspect import faithfulness
from keras_introspect.errors import InputError

# class 0's logit is 3·x00 + 1·x01 + 2·x10 + 0·x11; class 1's is 0. On an image of ones the
# contributions are the weights themselves: the true map.
WEIGHTS = np.array([3.0, 1.0, 2.0, 0.0], np.float32)


def linear_model(softmax=False):
    inputs = keras.Input((2, 2, 1))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax" if softmax else None)
    outputs = dense(x)
    dense.set_weights([np.stack([WEIGHTS, np.zeros(4, np.float32)], axis=1)])
    return keras.Model(inputs, outputs)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


IMAGE = np.ones((1, 2, 2, 1), np.float32)
TRUE_MAP = WEIGHTS.reshape(1, 2, 2)


@pytest.mark.parametrize("softmax", [False, True])
def test_deletion_and_insertion_follow_the_hand_computed_logits(softmax):
    model = linear_model(softmax)
    fractions, deleted = faithfulness.deletion_curve(model, IMAGE, TRUE_MAP, [0], steps=4)
    np.testing.assert_allclose(fractions, [0.0, 0.25, 0.5, 0.75, 1.0])
    # pixels leave in the order 3, 2, 1, 0 of their contributions: logits 6, 3, 1, 0, 0
    np.testing.assert_allclose(deleted[0], sigmoid([6, 3, 1, 0, 0]), rtol=1e-5)
    _, inserted = faithfulness.insertion_curve(model, IMAGE, TRUE_MAP, [0], steps=4)
    np.testing.assert_allclose(inserted[0], sigmoid([0, 3, 5, 6, 6]), rtol=1e-5)
    heights = sigmoid([6, 3, 1, 0, 0])  # the trapezoid rule by hand (np.trapezoid needs numpy 2)
    expected_area = 0.25 * (heights.sum() - (heights[0] + heights[-1]) / 2)
    np.testing.assert_allclose(faithfulness.area_under_curve(fractions, deleted), [expected_area], rtol=1e-5)


def test_a_faithful_map_beats_a_reversed_one_and_random_ones_in_both_directions():
    model = linear_model()
    reversed_map = -TRUE_MAP
    area = {}
    for name, maps in (("true", TRUE_MAP), ("reversed", reversed_map)):
        for mode in faithfulness.MODES:
            area[name, mode] = faithfulness.area_under_curve(
                *faithfulness.perturbation_curve(model, IMAGE, maps, [0], mode=mode, steps=4))[0]
    randoms = [faithfulness.area_under_curve(*faithfulness.deletion_curve(
        model, IMAGE, faithfulness.random_maps((1, 2, 2), seed=s), [0], steps=4))[0] for s in range(20)]
    assert area["true", "deletion"] < np.mean(randoms) < area["reversed", "deletion"]
    assert area["true", "insertion"] > area["reversed", "insertion"]


def test_input_space_maps_are_collapsed_by_their_largest_channel_magnitude_and_coarse_maps_resized():
    channels = np.zeros((1, 2, 2, 3), np.float32)
    channels[0, :, :, 1] = -TRUE_MAP[0]  # |value|: the same ranking as the true map
    np.testing.assert_array_equal(faithfulness.pixel_ranks(channels, (2, 2)), [[[0, 2], [1, 3]]])
    coarse = np.array([[[1.0]]], np.float32)  # one value: every pixel ties, raster order
    np.testing.assert_array_equal(faithfulness.pixel_ranks(coarse, (2, 3)), [[[0, 1, 2], [3, 4, 5]]])
    left_heavy = np.array([[[1.0, 0.0]]], np.float32)  # (1, 1, 2) → the left column ranks first at 2×4
    ranks = faithfulness.pixel_ranks(left_heavy, (2, 4))
    assert ranks[0, :, 0].max() < ranks[0, :, 3].min()


def test_batching_does_not_change_the_scores():
    model = linear_model()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 2, 2, 1)).astype(np.float32)
    maps = rng.normal(size=(5, 2, 2)).astype(np.float32)
    one = faithfulness.deletion_curve(model, images, maps, [0, 1, 0, 1, 0], steps=4, batch_size=1)[1]
    many = faithfulness.deletion_curve(model, images, maps, [0, 1, 0, 1, 0], steps=4, batch_size=500)[1]
    np.testing.assert_allclose(one, many, rtol=1e-6)
    # class 1's logit is always 0, so its probability is 1 - class 0's
    np.testing.assert_allclose(one[1], 1.0 - faithfulness.deletion_curve(model, images[1:2], maps[1:2], [0],
                                                                          steps=4)[1][0], rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="flip"), "mode must be one of"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=2.5), "steps must be an integer >= 1"),
    (dict(classes=[0, 1]), "need one map and one class per image"),
    (dict(maps=np.ones((1, 2), np.float32)), r"maps must be \(n, h, w\)"),
])
def test_bad_arguments_are_refused_with_one_clear_error(kwargs, message):
    arguments = dict(model=linear_model(), images=IMAGE, maps=TRUE_MAP, classes=[0])
    arguments.update({k: v for k, v in kwargs.items() if k in arguments})
    options = {k: v for k, v in kwargs.items() if k not in arguments}
    with pytest.raises(InputError, match=message):
        faithfulness.perturbation_curve(**arguments, **options)
