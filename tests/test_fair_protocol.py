"""Issue 28's protocol hygiene: a validation split for every choice, test only for the verdict, and
temperature scaling fitted on validation as the calibration anchor."""

import numpy as np
import pytest
import tensorflow as tf

from keras_introspect import data, metrics, recipes
from keras_introspect.benchmark import protocols, runner
from keras_introspect.errors import InputError
from keras_introspect.soft_targets import ExplanationSoftTargets, similarity
from test_benchmark import load_script


def test_validation_split_is_stratified_disjoint_fixed_and_keeps_test_out():
    arrays = data.load_arrays("digits")
    held = arrays.validation_split(0.1)
    assert len(held.y_test) + len(held.y_train) == len(arrays.y_train)
    # 10% of each class, within one image of rounding
    per_class = np.bincount(held.y_test, minlength=10) / np.bincount(arrays.y_train, minlength=10)
    np.testing.assert_allclose(per_class, 0.1, atol=0.02)
    # disjoint: every training image is in exactly one part (digits are distinct up to duplicates)
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}
    assert not rows(held.x_test) & rows(held.x_train)
    assert not rows(held.x_test) & rows(arrays.x_test)  # test images are not the validation ones
    again = arrays.validation_split(0.1)
    np.testing.assert_array_equal(again.x_test, held.x_test)  # the same split for every run
    assert not np.array_equal(arrays.validation_split(0.1, seed=1).y_test, held.y_test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1e-4])
def test_validation_split_refuses_fractions_that_hold_out_nothing_or_everything(fraction):
    with pytest.raises(InputError, match="validation fraction"):
        data.load_arrays("digits").validation_split(fraction)


def test_a_protocol_with_validation_fits_on_it_and_never_on_test():
    arrays = data.load_arrays("digits")
    protocol = protocols.get("quick", validation_fraction=0.2)
    splits = recipes.make_splits(arrays, protocol, seed=3)
    held = arrays.validation_split(0.2)
    np.testing.assert_array_equal(splits.y_test, held.y_test)
    assert splits.num_train == len(held.y_train)
    # statistics of the remaining training images only
    np.testing.assert_allclose(splits.mean, held.x_train.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_a_protocol_with_validation_needs_arrays_in_memory(tmp_path):
    class Streamed:  # what a streaming source lacks: it cannot split its files in memory
        def splits(self, **kwargs):
            raise AssertionError("must not be reached")

    with pytest.raises(InputError, match="in memory"):
        recipes.make_splits(Streamed(), protocols.get("fair"), seed=0)


def test_run_one_records_validation_and_test_separately_with_temperature_scaling():
    arrays = data.load_arrays("digits")
    protocol = protocols.get("quick", validation_fraction=0.2, epochs=2)
    record = runner.run_one(arrays, protocol, "standard", {}, seed=0, verbose=0, save_to=None)
    assert "best_accuracy" not in record and "final_accuracy" not in record  # no best-over-epochs number
    assert record["num_validation"] == len(arrays.validation_split(0.2).y_test)
    assert record["num_test"] == len(arrays.y_test) and record["validation_fraction"] == 0.2
    # the final epoch's validation accuracy, as fit logged it on the validation split
    assert record["val_accuracy"] == pytest.approx(record["history"]["val_accuracy"][-1], abs=1e-6)
    for key in ("val_ece", "test_ece", "test_ece_scaled"):
        assert 0.0 <= record[key] <= 1.0
    assert metrics.TEMPERATURE_BOUNDS[0] <= record["temperature"] <= metrics.TEMPERATURE_BOUNDS[1]


def test_run_one_scores_test_as_an_independent_prediction_does():
    arrays = data.load_arrays("digits")
    protocol = protocols.get("quick", validation_fraction=0.2, epochs=1)
    model, splits, _ = recipes.train_method(arrays, protocol, "standard", {}, seed=0, verbose=0)
    probabilities = tf.nn.softmax(model.backbone(splits.normalize(arrays.x_test), training=False)).numpy()
    val = runner.test_probabilities(model, splits.test)
    scores = runner.validation_and_test(model, splits, arrays, val, splits.y_test)
    assert scores["test_accuracy"] == pytest.approx((probabilities.argmax(1) == arrays.y_test).mean())
    assert scores["test_ece"] == pytest.approx(metrics.expected_calibration_error(arrays.y_test, probabilities),
                                               abs=1e-5)


def nll(labels, logits):
    logits = logits - logits.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(len(labels)), labels]))


def test_fit_temperature_minimizes_the_held_out_likelihood_of_the_logits():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=400)
    # over-confident logits: the right class on 70%, scaled up by 4
    logits = rng.normal(size=(400, 5))
    right = rng.random(400) < 0.7
    logits[np.arange(400)[right], labels[right]] += 2.0
    logits *= 4.0
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    fitted = metrics.fit_temperature(labels, probabilities)
    grid = np.linspace(0.5, 10.0, 1901)
    best = grid[np.argmin([nll(labels, logits / t) for t in grid])]
    assert fitted == pytest.approx(best, abs=0.01) and fitted > 1.0  # over-confidence is cooled
    scaled = metrics.scale_temperature(probabilities, fitted)
    assert metrics.expected_calibration_error(labels, scaled) < metrics.expected_calibration_error(labels,
                                                                                                   probabilities)


def test_scale_temperature_by_hand_and_its_refusals():
    np.testing.assert_allclose(metrics.scale_temperature([[0.8, 0.2]], 2.0), [[2 / 3, 1 / 3]])
    np.testing.assert_allclose(metrics.scale_temperature([[0.8, 0.2]], 1.0), [[0.8, 0.2]])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="temperature"):
            metrics.scale_temperature([[0.8, 0.2]], bad)
    with pytest.raises(InputError, match="distributions"):
        metrics.fit_temperature([0, 1], [[3.0, -1.0], [0.5, 0.5]])  # logits are not probabilities


def test_projection_similarity_by_hand():
    # two images, three classes, maps of two pixels
    maps = np.array([[[2.0, 0.0], [1.0, 1.0], [-2.0, 0.0]],
                     [[0.0, 1.0], [3.0, 3.0], [0.0, 0.0]]], "float32")
    reference = np.array([0, 1])
    # image 0: <m_j, m_0> / |m_0|^2 with m_0 = (2, 0): (4, 2, -4) / 4
    # image 1: m_1 = (3, 3), |m_1|^2 = 18: (3, 18, 0) / 18
    expected = [[1.0, 0.5, -1.0], [1 / 6, 1.0, 0.0]]
    flat = similarity.flatten_maps(maps)
    np.testing.assert_allclose(similarity.projection(flat, tf.constant(reference)).numpy(), expected, atol=1e-6)
    targets = ExplanationSoftTargets(form="softmax", similarity="projection", center=False, temperature=0.5)
    logits = np.array(expected) / 0.5
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(targets(maps, reference).numpy(), softmax, atol=1e-6)


def test_projection_of_a_zero_reference_map_is_zero_not_nan():
    maps = np.zeros((1, 3, 2, 2), "float32")
    maps[0, 1] = 1.0
    flat = similarity.flatten_maps(maps)
    np.testing.assert_array_equal(similarity.projection(flat, tf.constant([0])).numpy(), [[0.0, 0.0, 0.0]])


def test_projection_of_uncentered_cam_maps_is_the_ratio_of_responses_for_uniform_features():
    """Why the `il_responses` form keeps the class responses: with the same feature vector at every
    position, CAM map c is constant at (w_c · f) / hw, so the projection is (w_j · f) / (w_y · f)."""
    rng = np.random.default_rng(1)
    feature = rng.normal(size=4)
    kernel = rng.normal(size=(4, 3))
    responses = feature @ kernel
    maps = np.broadcast_to(responses[:, None, None] / 9.0, (3, 3, 3))[None].astype("float32")
    flat = similarity.flatten_maps(maps)
    np.testing.assert_allclose(similarity.projection(flat, tf.constant([2])).numpy()[0],
                               responses / responses[2], rtol=1e-5)


def test_fair_select_chooses_on_validation_only():
    select = load_script("fair_select").select
    records = [{"config": c, "seed": s, "val_accuracy": v, "test_accuracy": t}
               for c, s, v, t in [("a", 0, 0.70, 0.90), ("a", 1, 0.70, 0.90), ("b", 0, 0.72, 0.10),
                                  ("b", 1, 0.71, 0.10), ("b", 2, 0.10, 0.10)]]
    choice, means = select(records, [0, 1], ["a", "b"])
    assert choice == "b" and means == {"a": pytest.approx(0.70), "b": pytest.approx(0.715)}
    with pytest.raises(ValueError, match="seed"):
        select(records, [0, 1, 3], ["a", "b"])
    with pytest.raises(ValueError, match="validation"):
        select([{"config": "a", "seed": 0, "final_accuracy": 0.5}], [0], ["a"])


def test_fair_report_pairs_by_seed_with_a_t_test_computed_by_hand():
    fair_report = load_script("fair_report")
    standard = {2: 0.70, 3: 0.72, 4: 0.71}
    other = {2: 0.72, 3: 0.73, 4: 0.74}
    result = fair_report.paired(other, standard)
    differences = np.array([0.02, 0.01, 0.03])
    se = differences.std(ddof=1) / np.sqrt(3)
    assert result["n"] == 3 and result["mean"] == pytest.approx(0.02)
    assert result["se"] == pytest.approx(se) and result["t"] == pytest.approx(0.02 / se)
    from scipy import stats
    assert result["p"] == pytest.approx(2 * stats.t.sf(0.02 / se, df=2))
    assert fair_report.paired({2: 0.5}, standard)["t"] is None  # one seed: no test


def test_fair_report_scores_the_verdict_on_test_and_the_selection_on_validation():
    fair_report = load_script("fair_report")

    def record(config, seed, val, test):
        return {"config": config, "method": config, "seed": seed, "options": {}, "val_accuracy": val, "val_ece": 0.05,
                "test_accuracy": test, "test_ece": 0.04, "test_ece_scaled": 0.02, "temperature": 1.5,
                "commit": "abc", "date": "2026-12-06", "machine": "m"}

    records = [record("standard", s, 0.5, 0.6) for s in range(7)]
    records += [record("il", s, 0.9, 0.1) for s in range(2)] + [record("il", s, 0.1, 0.7) for s in range(2, 7)]
    text = fair_report.markdown(records)
    selection, verdict = text.split("Verdict")
    assert "| il | — | 2 | 90.00 ± 0.00 | +40.00, n = 2, the same difference on every seed |" in selection  # validation numbers only
    assert "| il | 5 | 70.00 ± 0.00 | +10.00, n = 5, the same difference on every seed |" in verdict  # test numbers only
    assert "best" not in text.lower()
    assert "Reading — test split, verdict seeds: IL (its form il, chosen on validation) is " in verdict


def test_the_reading_bounds_il_against_standard_by_its_95_percent_confidence_interval():
    fair_report = load_script("fair_report")

    def record(config, seed, test):
        return {"config": config, "method": config, "seed": seed, "options": {}, "val_accuracy": 0.5, "val_ece": 0.05,
                "test_accuracy": test, "test_ece": 0.04, "test_ece_scaled": 0.02, "temperature": 1.0,
                "commit": "abc", "date": "2026-12-06", "machine": "m"}

    standard = [record("standard", s, 0.60) for s in range(2, 7)]
    # differences of +1, -1, 0, +2, -2 points: mean 0, standard error sqrt(2.5 / 5) = 0.7071 points; Student's t
    # at 97.5% with 4 degrees of freedom is 2.7764 (a t table), so the interval is ±1.963 points
    il = [record("il", s, 0.60 + d) for s, d in zip(range(2, 7), (0.01, -0.01, 0.0, 0.02, -0.02))]
    sentences, _ = fair_report.readings(standard + il)
    assert ("The 95% confidence interval of that difference is -1.96 to +1.96 points: a gain of IL over standard "
            "training larger than 1.96 points is ruled out at that level.") in sentences
    # wholly below zero: the interval, and no sentence about a gain
    il = [record("il", s, 0.55 + d) for s, d in zip(range(2, 7), (0.01, -0.01, 0.0, 0.02, -0.02))]
    sentences, _ = fair_report.readings(standard + il)
    assert "The 95% confidence interval of that difference is -6.96 to -3.04 points." in sentences


def run_lanes(tmp_path, lane):
    """The sweeps `run_fair_protocol.sh` would start for phases 3-4 in `lane`, each as its argument list; a
    stand-in `python` on PATH answers fair_select with a form and records every other call."""
    import os
    import subprocess

    calls = tmp_path / f"calls-{lane.replace('/', '-')}"
    stand_in = tmp_path / "bin" / "python"
    stand_in.parent.mkdir(exist_ok=True)
    stand_in.write_text(f'#!/bin/sh\ncase "$1" in *fair_select.py) echo il_default ;; '
                        f'*) echo "$@" >> {calls} ;; esac\n')
    stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{stand_in.parent}:{os.environ['PATH']}", "FAIR_LANE": lane}
    subprocess.run(["bash", "benchmarks/run_fair_protocol.sh", "DATA", "3", "4"], env=env, check=True,
                   capture_output=True, text=True)
    return [line.split() for line in calls.read_text().splitlines()]


def sweep_runs(call):
    """The (seed, configuration) pairs one formulation_sweep call runs."""
    seeds = call[call.index("--seeds") + 1:call.index("--configs")]
    after = call[call.index("--configs") + 1:]
    configs = after[:after.index("--teacher")] if "--teacher" in after else after
    return {(int(s), c) for s in seeds for c in configs}


def test_two_lanes_share_the_verdict_runs_without_overlap_and_one_lane_runs_them_all(tmp_path):
    verdict = {(s, c) for s in range(2, 7) for c in ("standard", "label_smoothing", "pskd", "il_default", "kd")}
    lanes = [[pair for call in run_lanes(tmp_path, f"{i}/2") for pair in sweep_runs(call)] for i in (0, 1)]
    assert set(lanes[0]) | set(lanes[1]) == verdict and not set(lanes[0]) & set(lanes[1])
    assert sorted(map(len, lanes)) == [12, 13]  # 25 runs, split evenly
    assert lanes[0][:2] == [(2, "standard"), (2, "pskd")]  # seed-major, every other run
    whole = run_lanes(tmp_path, "0/1")
    assert len(whole) == 2 and set().union(*map(sweep_runs, whole)) == verdict  # one sweep a phase
    assert all("--teacher" in call for call in run_lanes(tmp_path, "1/2") if sweep_runs(call) <= {
        (s, "kd") for s in range(2, 7)})


@pytest.mark.parametrize("lane", ["2/2", "1", "a/2", "0/0"])
def test_a_lane_outside_its_count_is_refused(tmp_path, lane):
    import os
    import subprocess

    result = subprocess.run(["bash", "benchmarks/run_fair_protocol.sh", "DATA", "3"], capture_output=True,
                            text=True, env={**os.environ, "FAIR_LANE": lane})
    assert result.returncode == 2 and "FAIR_LANE must be i/n" in result.stderr


@pytest.mark.parametrize("args, message", [(["--lanes", "0"], "--lanes must be between 1 and"),
                                           (["--lanes", "100000"], "--lanes must be between 1 and"),
                                           (["--epochs", "1"], "the first epoch traces"),
                                           (["--out", "EXISTING"], "refusing to overwrite")])
def test_core_lanes_refuses_what_it_cannot_measure_before_measuring(tmp_path, capsys, args, message):
    existing = tmp_path / "earlier.json"
    existing.write_text("{}")
    core_lanes = load_script("core_lanes")
    with pytest.raises(SystemExit):
        core_lanes.main([str(existing) if a == "EXISTING" else a for a in args])
    assert message in capsys.readouterr().err and existing.read_text() == "{}"


def test_a_p_value_below_a_thousandth_is_never_printed_as_zero():
    fair_report = load_script("fair_report")
    strong = fair_report.paired({2: 0.80, 3: 0.81, 4: 0.82, 5: 0.805}, {2: 0.70, 3: 0.71, 4: 0.72, 5: 0.704})
    assert strong["p"] < 0.001
    for text in (fair_report.delta_text(strong), fair_report.plain(strong, "x"), fair_report.brief(strong)):
        assert "p < 0.001" in text and "p = 0.000" not in text
    assert fair_report.p_text(0.0123) == "p = 0.012"


def test_a_comparison_without_a_test_says_why():
    fair_report = load_script("fair_report")
    one_seed = fair_report.paired({2: 0.705, 9: 0.5}, {2: 0.70, 3: 0.71})
    assert fair_report.brief(one_seed) == "(+0.50, n = 1, too few seeds for a test)"
    assert fair_report.delta_text(one_seed) == "+0.50, n = 1, too few seeds for a test"
    none_shared = fair_report.paired({9: 0.5}, {2: 0.70})
    assert fair_report.brief(none_shared) == "(never on the same seeds)" and fair_report.delta_text(none_shared) == "—"
    same = fair_report.paired({2: 0.71, 3: 0.72}, {2: 0.70, 3: 0.71})
    assert fair_report.plain(same, "x") == "not testable against x: +1.00 points on each of its 2 seeds"
    assert fair_report.brief(same) == "(+1.00, n = 2, the same difference on every seed)"


def test_a_small_standard_error_is_never_printed_as_zero():
    fair_report = load_script("fair_report")
    tight = fair_report.paired({2: 0.7003, 3: 0.71036}, {2: 0.70, 3: 0.71})  # differences 0.030 and 0.036 points
    assert "+0.03 ± 0.003 points" in fair_report.plain(tight, "x")
    assert fair_report.brief(tight).startswith("(+0.03 ± 0.003, t = 11.00,")
    assert fair_report.se_text(0.0042) == "0.42" and fair_report.se_text(0.00004) == "0.004"
