import doctest

import numpy as np
import pytest

from keras_introspect import metrics
from keras_introspect.errors import InputError


def brute_force_ece(labels, probabilities, bins):
    """ECE from its definition, one interval (lo, hi] at a time (a confidence of 0 counts in the first)."""
    confidence, predicted = probabilities.max(1), probabilities.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(lo < c <= hi) or (b == 0 and c == 0) for c in confidence]
        inside = np.array(inside)
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


@pytest.mark.parametrize("labels, probabilities, bins, message", [
    ([0, 1], [[0.9, 0.1]], 15, "must be \\(n, classes\\) for 2 labels"),
    ([0], [0.9, 0.1], 15, "must be \\(n, classes\\)"),
    ([], np.zeros((0, 3)), 15, "at least one example"),
    ([0], [[np.nan, 0.5]], 15, "NaN or Inf"),
    ([0], [[0.9, 0.1]], 0, "bins must be a positive integer"),
    ([0], [[0.9, 0.1]], 2.5, "bins must be a positive integer"),
    ([0], [[0.9, 0.1]], "15", "bins must be a positive integer"),
])
def test_bad_input_is_named(labels, probabilities, bins, message):
    for function in (metrics.reliability, metrics.expected_calibration_error):
        with pytest.raises(InputError, match=message):
            function(labels, probabilities, bins)


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
        np.testing.assert_allclose(line.get_ydata(), table["count"] / 200)
    assert (tmp_path / "reliability.png").stat().st_size > 10_000
