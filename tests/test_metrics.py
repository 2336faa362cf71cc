import doctest
import warnings

import numpy as np
import pytest

from keras_introspect import metrics
from keras_introspect.errors import InputError


def brute_force_ece(labels, probabilities, bins):
    """ECE from its definition, one interval (lo, hi] at a time."""
    confidence, predicted = probabilities.max(1), probabilities.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = np.array([lo < c <= hi for c in confidence])
        if inside.any():
            gap = abs((predicted[inside] == labels[inside]).mean() - confidence[inside].mean())
            total += inside.sum() / len(labels) * gap
    return total


@pytest.mark.parametrize("bins", [1, 2, 15, 40])
def test_ece_matches_its_definition(bins):
    rng = np.random.default_rng(bins)
    probabilities = rng.dirichlet(np.full(7, 0.3), size=500)
    labels = rng.integers(0, 7, 500)
    expected = brute_force_ece(labels, probabilities, bins)
    assert metrics.expected_calibration_error(labels, probabilities, bins) == pytest.approx(expected, abs=1e-12)


def test_reliability_bins_count_every_example_once_and_average_within_each():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(4, 0.5), size=300)
    labels = rng.integers(0, 4, 300)
    table = metrics.reliability(labels, probabilities, bins=10)
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    assert table["count"].sum() == 300
    np.testing.assert_allclose(table["upper"], np.arange(1, 11) / 10)
    for b in range(10):
        inside = (confidence > b / 10) & (confidence <= (b + 1) / 10)
        assert table["count"][b] == inside.sum()
        if inside.any():
            assert table["accuracy"][b] == pytest.approx(correct[inside].mean())
            assert table["confidence"][b] == pytest.approx(confidence[inside].mean())
        else:
            assert np.isnan(table["accuracy"][b]) and np.isnan(table["confidence"][b])


def test_ece_edges_and_known_values():
    # a confidence on a bin's upper edge belongs to that bin: 0.5 is in (0, 0.5], 0.75 in (0.5, 1]
    table = metrics.reliability([0, 0], [[0.5, 0.5], [0.75, 0.25]], bins=2)
    assert table["count"].tolist() == [1, 1]
    # calibrated within each bin: ECE 0
    assert metrics.expected_calibration_error([0, 1, 0, 1], [[0.5, 0.5]] * 4, bins=4) == pytest.approx(0.0)
    # always wrong: ECE is the mean confidence
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    assert metrics.expected_calibration_error([1, 1, 0], probabilities) == pytest.approx((0.9 + 0.6 + 0.7) / 3)
    assert metrics.expected_calibration_error(np.array([[0], [1]]), [[0.9, 0.1], [0.2, 0.8]]) == pytest.approx(0.15)


def test_default_is_fifteen_bins():
    rng = np.random.default_rng(5)
    probabilities = rng.dirichlet(np.full(5, 0.4), size=400)
    labels = rng.integers(0, 5, 400)
    table = metrics.reliability(labels, probabilities)
    np.testing.assert_array_equal(table["count"], metrics.reliability(labels, probabilities, 15)["count"])
    assert len(table["count"]) == 15
    ece = metrics.expected_calibration_error(labels, probabilities)
    assert ece == metrics.expected_calibration_error(labels, probabilities, 15)
    assert ece != metrics.expected_calibration_error(labels, probabilities, 16)


def test_float32_outputs_are_binned_by_their_exact_value():
    # float32(0.6) is 0.60000002..., inside (0.6, 0.667]; float32 arithmetic would round 0.6·15 to 9 and
    # put it in (0.533, 0.6]
    probabilities = np.array([[0.6, 0.4], [0.2, 0.8], [0.4, 0.6]], "float32")
    labels = np.array([0, 1, 0])
    table = metrics.reliability(labels, probabilities)
    assert table["count"][9] == 2 and table["count"][8] == 0
    expected = brute_force_ece(labels, probabilities.astype("float64"), 15)
    assert metrics.expected_calibration_error(labels, probabilities) == pytest.approx(expected, abs=1e-12)


def test_empty_bins_are_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = metrics.reliability([0], [[1.0, 0.0]], bins=3)
    assert table["count"].tolist() == [0, 0, 1]
    assert np.isnan(table["accuracy"][:2]).all() and table["accuracy"][2] == 1.0


def test_distributions_at_the_edges_are_accepted():
    # one-hot rows (entries exactly 0 and 1), a row off by exactly the tolerance, and a float16 softmax
    assert metrics.expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0
    edge = [[0.5, 0.5 + metrics.SUM_TOLERANCE], [0.5, 0.5 - metrics.SUM_TOLERANCE]]
    assert metrics.reliability([0, 0], edge)["count"].sum() == 2
    logits = np.random.default_rng(0).normal(size=(64, 100)) * 3
    softmax16 = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float16")
    assert metrics.reliability(np.zeros(64, int), softmax16)["count"].sum() == 64


def distributions_message(low, high, sum_low, sum_high):
    return ("probabilities must be distributions (rows in [0, 1] summing to 1): got values in "
            f"[{low}, {high}] and row sums in [{sum_low}, {sum_high}]; pass softmax outputs, not logits.")


@pytest.mark.parametrize("labels, probabilities, bins, message", [
    ([0, 1], [[0.9, 0.1]], 15, "probabilities must be (n, classes) for 2 labels; got shape (1, 2)."),
    ([0], [0.9, 0.1], 15, "probabilities must be (n, classes) for 1 labels; got shape (2,)."),
    ([], np.zeros((0, 3)), 15, "calibration needs at least one example."),
    ([2], [[0.9, 0.1]], 15, "labels must be integer classes in [0, 2); got int64 labels in [2, 2]."),
    ([-1], [[0.9, 0.1]], 15, "labels must be integer classes in [0, 2); got int64 labels in [-1, -1]."),
    ([1.0], [[0.9, 0.1]], 15, "labels must be integer classes in [0, 2); got float64 labels in [1.0, 1.0]."),
    ([0], [[np.nan, 0.5]], 15, "probabilities contain NaN or Inf."),
    ([0, 1], [[2.5, -1.0], [0.3, 0.7]], 15, distributions_message(-1, 2.5, 1, 1.5)),  # logits
    ([0], [[-0.1, 1.1]], 15, distributions_message(-0.1, 1.1, 1, 1)),
    ([0], [[1.005, 0.0]], 15, distributions_message(0, 1.005, 1.005, 1.005)),  # sum within tolerance
    ([0], [[0.51, 0.51]], 15, distributions_message(0.51, 0.51, 1.02, 1.02)),
    ([0], [[0.9, 0.1]], 0, "bins must be a positive integer, got 0."),
    ([0], [[0.9, 0.1]], 2.5, "bins must be a positive integer, got 2.5."),
    ([0], [[0.9, 0.1]], "15", "bins must be a positive integer, got '15'."),
    ([0], [[0.9, 0.1]], True, "bins must be a positive integer, got True."),
])
def test_bad_input_is_named(labels, probabilities, bins, message):
    for function in (metrics.reliability, metrics.expected_calibration_error):
        with pytest.raises(InputError) as error:
            function(labels, probabilities, bins)
        assert str(error.value) == message


def test_docstring_examples():
    result = doctest.testmod(metrics)
    assert result.attempted >= 2 and result.failed == 0


def test_reliability_diagram_draws_each_models_bins(tmp_path):
    from keras_introspect import plots

    rng = np.random.default_rng(3)
    tables = {name: metrics.reliability(rng.integers(0, 3, 200), rng.dirichlet(np.full(3, a), size=200), bins=10)
              for name, a in (("sharp", 0.2), ("soft", 3.0))}
    fig = plots.plot_reliability(tables, tmp_path / "reliability.png", title="t")
    diagram, spread = fig.axes[:2]
    assert len(diagram.lines) == 1 + len(tables)  # the diagonal, then one line per model
    for line, table in zip(diagram.lines[1:], tables.values()):
        filled = table["count"] > 0
        np.testing.assert_allclose(line.get_xdata(), table["confidence"][filled])
        np.testing.assert_allclose(line.get_ydata(), table["accuracy"][filled])
    for line, (name, table) in zip(spread.lines, tables.items()):
        assert line.get_label() == name
        np.testing.assert_allclose(line.get_xdata(), np.arange(10) / 10 + 0.05)  # bin centres
        # empty bins (every confidence is at least 1/3 here) break the line: a log axis has no zero
        assert np.isnan(line.get_ydata()[:3]).all()
        np.testing.assert_allclose(line.get_ydata(), np.where(table["count"] > 0, table["count"] / 200, np.nan))
    assert (tmp_path / "reliability.png").stat().st_size > 10_000


def test_explanation_figure_shows_image_overlay_with_a_colorbar_and_full_class_names(tmp_path):
    from keras_introspect import plots

    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird"]
    q = np.array([[0.9, 0.06, 0.04], [0.05, 0.9, 0.05]])
    fig = plots.plot_explanations(rng.uniform(size=(2, 16, 16, 3)), rng.normal(size=(2, 4, 4)), q, [0, 1], names,
                                  path=tmp_path / "e.png", predictions=[0, 2])
    assert (tmp_path / "e.png").exists()
    # per row: image, overlay, soft target, and the overlay's colorbar
    assert len(fig.axes) == 2 * 3 + 2
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 2 and "for" in colorbars[0].get_ylabel()
    # the overlay is centred on zero: the map's colour limits are symmetric
    overlay = fig.axes[1].images[-1]
    low, high = overlay.get_clim()
    assert high > 0 and low == -high
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == names
