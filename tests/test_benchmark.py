"""`keras-introspect benchmark --protocol quick`: every method end to end (the CI smoke test)."""

import json
import pathlib
import re

import numpy as np

import pytest
from conftest import run_cli
from scipy import stats

from keras_introspect import plots, recipes
from keras_introspect.benchmark import protocols, report
from keras_introspect.errors import InputError


def load_script(name):
    """A script of benchmarks/ (not a package) as a module."""
    import importlib.util

    import sys

    spec = importlib.util.spec_from_file_location(name, f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, "benchmarks")  # a script imports its siblings (verdict, fair_report) as it does when run
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove("benchmarks")
    return module


VERDICT = load_script("verdict")


def test_the_benchmark_runs_every_method_unless_told_otherwise():
    from keras_introspect.cli.main import build_parser

    assert build_parser().parse_args(["benchmark"]).methods == list(recipes.METHODS)


def test_quick_protocol_runs_methods_and_reports(tmp_path):
    # Every method trains from the command line in test_cli; here the benchmark's own branches: a plain method,
    # a teacher's student (the teacher is trained first) and peers (their ensemble is scored too).
    methods = ["standard", "kd", "dml"]
    out = tmp_path / "bench"
    result = run_cli("benchmark", "--protocol", "quick", "--epochs", "2", "--methods", *methods, "--output", str(out),
                     "--verbose", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    records = report.load(out / "results.jsonl")
    assert [r["method"] for r in records] == methods
    for r in records:
        assert r["final_accuracy"] > 0.15, r["method"]  # 10 classes
        assert "best_accuracy" not in r  # the test split validates here: no best-over-epochs number
        assert r["step_seconds"] > 0 and len(r["history"]["val_accuracy"]) == 2
        assert r["commit"] != "unknown" and r["machine"] and r["date"]
    assert "ensemble_accuracy" in next(r for r in records if r["method"] == "dml")
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == len(methods) + 1 and "Provenance:" in table
    assert len((out / "results.csv").read_text().splitlines()) == len(methods) + 1
    assert len(json.loads((out / "results.json").read_text())) == len(methods)
    assert list(out.glob("accuracy_*.png")) and list(out.glob("curves_*.png"))
    assert json.loads((out / "teacher.json").read_text())["epochs"] == 4
    again = run_cli("benchmark", "--protocol", "quick", "--epochs", "2", "--methods", "standard", "--output", str(out))
    assert again.returncode == 0 and "skip standard seed 0" in again.stdout
    assert len(report.load(out / "results.jsonl")) == len(methods)


def test_an_interrupted_benchmark_resumes_from_its_last_epoch_and_another_recipe_is_another_run(
        tmp_path, monkeypatch, capsys):
    from keras_introspect.cli.main import main

    out = tmp_path / "bench"
    command = ["benchmark", "--protocol", "quick", "--epochs", "2", "--methods", "standard", "--output", str(out)]
    lost = []

    def interrupted(path, record):  # the process is stopped after training, before the record is written
        lost.append(record)
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(command)
    assert "Epoch 2/2" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "(resuming)" in printed and "Epoch 1/2" not in printed and "Epoch 2/2" not in printed
    [record] = report.load(out / "results.jsonl")
    assert record["history"] == lost[0]["history"]  # both epochs of the first attempt, none trained again
    assert record["final_accuracy"] == lost[0]["final_accuracy"]  # its trained weights, restored
    assert not list((out / "backups").iterdir())  # a run's state goes once its record is safe
    assert main(command[:4] + ["1"] + command[5:]) == 0  # --epochs 1: another recipe, not a skip
    assert [r["epochs"] for r in report.load(out / "results.jsonl")] == [2, 1]


def test_a_results_file_holds_one_protocol_on_one_dataset(tmp_path):
    """Appending another recipe's runs would mix two regimes in one table; a moved dataset folder is the same data."""
    from keras_introspect.benchmark import sweep

    out = tmp_path / "results.jsonl"
    record = {"config": "standard", "seed": 0, "train_size": 9469, "epochs": 30, "augment": True,
              "arch": "resnet18_w32", "protocol": "long", "dataset": "/old/cache/imagenette-128px"}
    early = {k: v for k, v in record.items() if k not in ("protocol", "dataset")}  # a sweep's first records lacked them
    out.write_text(json.dumps(record) + "\n" + json.dumps({**early, "seed": 1}) + "\n")
    long = protocols.get("long", dataset="/new/cache/imagenette-128px/")
    assert sweep.finished_runs(out, long) == {("standard", 0, 9469, 30, True, "resnet18_w32"),
                                              ("standard", 1, 9469, 30, True, "resnet18_w32")}
    assert sweep.finished_runs(tmp_path / "none.jsonl", long) == set()
    with pytest.raises(InputError, match=r"holds runs of protocol 'long', not 'cpu' on 'imagenette-128px'; give"):
        sweep.finished_runs(out, protocols.get("cpu", dataset="/new/cache/imagenette-128px"))
    with pytest.raises(InputError, match=r"holds runs of dataset '/old/cache/imagenette-128px', not 'long' on 'cifar"):
        sweep.finished_runs(out, protocols.get("long", dataset="/old/cache/cifar10-jpeg"))


def test_backup_directories_are_stable_per_run_and_distinct_per_recipe():
    from keras_introspect.benchmark import sweep

    long = protocols.get("long", dataset="imagenette")
    path = sweep.backup_dir("/b", long, "kd", 2)
    assert path == sweep.backup_dir("/b", protocols.get("long", dataset="imagenette"), "kd", 2)  # across restarts
    assert path.startswith("/b/long-kd-seed2-") and len(path) == len("/b/long-kd-seed2-") + 10
    others = {sweep.backup_dir("/b", long, "kd", 1), sweep.backup_dir("/b", long, "kd_uniform", 2),
              sweep.backup_dir("/b", protocols.get("long", dataset="imagenette", epochs=31), "kd", 2),
              sweep.backup_dir("/b", protocols.get("long", dataset="other"), "kd", 2)}
    assert path not in others and len(others) == 4
    assert sweep.backup_dir("/b", long, "teacher").startswith("/b/long-teacher-")


def test_a_sweep_refuses_a_missing_teacher_before_training_anything(tmp_path, capsys):
    import keras_introspect as ki

    arrays = ki.data.load_arrays("digits")
    quick = protocols.get("quick", dataset="digits", epochs=1)
    missing = str(tmp_path / "teacher.keras")
    with pytest.raises(InputError, match="teacher file .*teacher.keras' does not exist"):
        ki.benchmark.run_sweep(arrays, quick, {"standard": ("standard", {}), "kd": ("kd", {})}, [0],
                               tmp_path / "results.jsonl", tmp_path / "backups", teacher=missing)
    assert "Epoch" not in capsys.readouterr().out and not (tmp_path / "results.jsonl").exists()
    # no configuration needs it: the missing file does not matter
    [record] = ki.benchmark.run_sweep(arrays, quick, {"standard": ("standard", {})}, [0], tmp_path / "results.jsonl",
                                      tmp_path / "backups", teacher=missing, verbose=0)
    assert report.load(tmp_path / "results.jsonl") == [record] and not list((tmp_path / "backups").iterdir())


def test_a_teacher_file_holds_its_weights_not_its_training_state(tmp_path):
    """Students only predict with a teacher: its file needs no optimizer slots (SGD momentum doubles it)."""
    import keras

    import keras_introspect as ki
    from keras_introspect.benchmark import runner

    arrays = ki.data.load_arrays("digits")
    quick = protocols.get("quick", dataset="digits", epochs=1)
    info = runner.train_teacher(arrays, quick, str(tmp_path / "teacher.keras"), verbose=0)
    teacher = keras.saving.load_model(tmp_path / "teacher.keras")
    assert getattr(teacher, "optimizer", None) is None and not teacher.compiled
    splits = recipes.make_splits(arrays, quick, seed=0)
    predicted = runner.test_probabilities(teacher, splits.test).argmax(-1)
    # the trained weights, not a fresh initialization: its accuracy is the one its history ends with
    assert abs(float((predicted == runner.held_out_labels(splits)).mean()) - info["test_accuracy"]) < 1e-6
    trained, _, _ = recipes.train_method(arrays, quick, "standard", {}, 0, verbose=0)
    trained.save(tmp_path / "with_optimizer.keras")
    assert (tmp_path / "teacher.keras").stat().st_size < 0.7 * (tmp_path / "with_optimizer.keras").stat().st_size


def test_protocol_overrides_and_errors():
    assert protocols.get("cpu", dataset="/data/cifar").dataset == "/data/cifar"
    assert protocols.get("paper").schedule == "step" and protocols.get("paper").epochs == 200
    # the training-set size a run uses, as its record and the resume keys count it
    assert [protocols.get("cpu").train_examples(n) for n in (50_000, 1_797)] == [10_000, 1_797]
    assert protocols.get("long").train_examples(9_469) == 9_469
    try:
        protocols.get("tiny")
    except ValueError as error:
        assert "Unknown protocol" in str(error)
    else:
        raise AssertionError("no error for an unknown protocol")


def test_paired_delta_matches_a_hand_computation():
    base = [{"seed": 0, "final_accuracy": 0.70}, {"seed": 1, "final_accuracy": 0.68}, {"seed": 2, "final_accuracy": 0.72}]
    other = [{"seed": 0, "final_accuracy": 0.71}, {"seed": 1, "final_accuracy": 0.71}, {"seed": 3, "final_accuracy": 0.5}]
    # Seeds 0 and 1 are shared: differences +1 and +3 points → mean +2, sample std √2, standard error 1.
    assert report.paired_delta(other, base) == "+2.00 ± 1.00 (n=2)"
    # one seed: the difference from that seed's baseline (not the baseline's mean), named as such
    assert report.paired_delta(other[:1], base) == "+1.00 (seed 0)"
    assert report.paired_delta(base, base) == "+0.00 ± 0.00"
    assert report.paired_delta(other, None) == "—"
    assert report.paired_delta([{"seed": 5, "final_accuracy": 0.5}], base) == "—"


def test_markdown_table_values_and_timing_columns():
    def record(config, seed, accuracy, step):
        return {"config": config, "method": config, "options": {}, "seed": seed, "final_accuracy": accuracy,
                "best_accuracy": accuracy + 0.01, "wall_seconds": 120.0, "step_seconds": step,
                "arch": "resnet20", "train_size": 100, "epochs": 2, "augment": True, "command": "x",
                "commit": "abc", "machine": "m", "tensorflow": "t", "keras": "k", "date": "d"}

    records = [record("standard", 0, 0.60, 0.1), record("standard", 1, 0.62, 0.1),
               record("il", 0, 0.63, 0.3), record("il", 1, 0.61, 0.3)]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in report.markdown_table(records).splitlines()
            if line.startswith("| ") and "configuration" not in line}
    # il: mean 62.00, std of (63, 61) = 1.41, standard error 1.41/√2 = 1.00; paired Δ (+3, -1) → +1.00,
    # std 2.83, standard error 2.00; step 300 ms = 3.00×
    assert rows["il"][3:5] == ["62.00 ± 1.00", "+1.00 ± 2.00"]
    assert rows["il"][5:] == ["2.0", "300", "3.00× |"]  # no best-over-epochs column (63.00 here)
    untimed = report.markdown_table(records, timing=False)
    assert "step (ms)" not in untimed and "minutes/run" not in untimed and "ECE" not in untimed
    assert all(line.count(" | ") == 4 for line in untimed.splitlines() if line.startswith("| "))
    for r, ece in zip(records, (0.05, 0.07, 0.02, 0.03)):
        r["ece"] = ece
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in report.markdown_table(records, timing=False)
            .splitlines() if line.startswith("| ") and "configuration" not in line}
    assert rows["il"][5] == "2.50 ± 0.50 |" and rows["standard"][5] == "6.00 ± 1.00 |"


def test_verdict_picks_by_paired_gain_and_needs_three_seeds_and_a_paired_t_test():
    def runs(config, method, accuracies, options=None):
        return [{"config": config, "method": method, "options": options or {}, "seed": seed,
                 "final_accuracy": accuracy} for seed, accuracy in enumerate(accuracies)]

    configs = {"standard": runs("standard", "standard", [0.70, 0.72, 0.74]),
               "il_a": runs("il_a", "il", [0.71, 0.735, 0.755]),  # +1, +1.5, +1.5 → ahead
               "il_b": runs("il_b", "il", [0.70, 0.70, 0.70]),
               "il_uniform_structure": runs("il_uniform_structure", "il", [0.90, 0.90, 0.90]),  # a control
               "kd": runs("kd", "kd", [0.95, 0.95, 0.95]),
               "label_smoothing": runs("label_smoothing", "label_smoothing", [0.72, 0.72, 0.74])}
    assert [VERDICT.role(rs[0]) for rs in configs.values()] == ["baseline", "il", "il", "control", "teacher", "rival"]
    text = VERDICT.verdict(configs)
    # il_a vs standard: differences (1, 1.5, 1.5) points: mean 1.33, standard error 1/6, t = 8, two-sided p with
    # 2 degrees of freedom 0.015 → ahead
    assert round(2 * stats.t.sf(8, 2), 3) == 0.015
    assert ("il_a (of 2 with 3 seeds), against standard training: +1.33 ± 0.17 points (mean ± standard error, 3 seeds; "
            "paired t = 8.00, p = 0.015): ahead.") in text
    # il_a vs label smoothing: (-1, +1.5, +1.5) → mean 0.67, standard error 0.83, t = 0.8 → level
    assert ("label_smoothing (of 1 with 3 seeds): +0.67 ± 0.83 points (mean ± standard error, 3 seeds; paired t = 0.80, "
            f"p = {2 * stats.t.sf(0.8, 2):.3f}): level.") in text
    configs["label_smoothing"] = runs("label_smoothing", "label_smoothing", [0.73, 0.75, 0.78])
    # (-2, -1.5, -2.5) → -2.00 ± 0.29, t = -6.93, p = 0.020
    assert "(of 1 with 3 seeds): -2.00 ± 0.29 points" in VERDICT.verdict(configs) and VERDICT.verdict(configs).endswith(
        "paired t = -6.93, p = 0.020): behind.")
    two = {name: rs[:2] for name, rs in configs.items()}
    assert "+1.25 points on seeds 0, 1; not established (2 of the 3 seeds needed)" in VERDICT.verdict(two)
    # the regime: label smoothing against standard (+3, +3, +4) → 3.33 ± 0.33, t = 10: it pays here
    assert VERDICT.qualification(configs) == ("Regime: the best teacher-free rival, label_smoothing (of 1 with 3 seeds), against "
                                             "standard training: +3.33 ± 0.33 points (mean ± standard error, "
                                             "3 seeds; paired t = 10.00, p = 0.010): ahead.")
    configs["confidence_penalty"] = runs("confidence_penalty", "confidence_penalty", [0.75, 0.77, 0.80])
    assert "confidence_penalty (of 2 with 3 seeds)" in VERDICT.qualification(configs)  # +5.33 beats label smoothing's +3.33
    assert "(of 2 with 3 seeds): -4.00 ± 0.29 points" in VERDICT.verdict(configs)  # the verdict faces the better rival
    # the same difference on every seed (exact in binary fractions) leaves no spread for a test
    even = {"standard": runs("standard", "standard", [0.5, 0.25, 0.75]), "il_c": runs("il_c", "il", [0.625, 0.375, 0.875])}
    assert VERDICT.verdict(even).endswith("+12.50 ± 0.00 points (mean ± standard error, 3 seeds; the same difference "
                                          "on every seed): not testable.")
    table = report.markdown_table([dict(r, arch="a", train_size=3, epochs=1, augment=False, best_accuracy=0.0,
                                        commit="c", date="d", command="x", machine="m", tensorflow="t", keras="k")
                                   for rs in configs.values() for r in rs], timing=False, readings=VERDICT.readings)
    assert table.index("Regime: the best") < table.index("Verdict: the best") < table.index("Provenance")
    plain = report.markdown_table([dict(r, arch="a", train_size=3, epochs=1, augment=False, best_accuracy=0.0,
                                        commit="c", date="d", command="x", machine="m", tensorflow="t", keras="k")
                                   for rs in configs.values() for r in rs], timing=False)
    assert "Verdict" not in plain and "Regime:" not in plain  # the package's table holds numbers only
    assert "best" not in plain  # no best-over-epochs accuracy (issue 28), though the records carry one
    assert VERDICT.qualification({"standard": configs["standard"], "il_a": configs["il_a"]}) is None
    assert VERDICT.verdict({"standard": configs["standard"]}) is None
    assert VERDICT.verdict({"il_a": configs["il_a"]}) is None


def test_teacher_and_mechanism_readings_pair_each_control_with_what_it_dissects():
    def runs(config, method, accuracies, options=None):
        return [{"config": config, "method": method, "options": options or {}, "seed": seed,
                 "final_accuracy": accuracy} for seed, accuracy in enumerate(accuracies)]

    configs = {"standard": runs("standard", "standard", [0.70, 0.72, 0.74]),
               "kd": runs("kd", "kd", [0.75, 0.76, 0.79]),  # +5, +4, +5 over standard
               "kd_shuffled": runs("kd_shuffled", "kd", [0.74, 0.75, 0.77], {"teacher_targets": "shuffled"}),
               "kd_uniform": runs("kd_uniform", "kd", [0.75, 0.75], {"teacher_targets": "uniform"}),
               "il_x_uniform": runs("il_x_uniform", "il", [0.9, 0.9, 0.9]),  # what it dissects never ran
               "il_uniform_structure": runs("il_uniform_structure", "il", [0.9, 0.9, 0.9])}  # no suffix
    assert VERDICT.with_teacher(configs) == ("With a teacher (outside the verdict): kd against standard training: "
                                            "+4.67 ± 0.33 points (mean ± standard error, 3 seeds; paired t = 14.00, "
                                            "p = 0.005): ahead.")
    # kd_shuffled − kd: (−1, −1, −2) → −1.33 ± 0.33, t = −4: below on every seed, yet p = 0.057 on three seeds,
    # level (two standard errors would have called it); kd_uniform − kd on two seeds: (0, −1)
    assert VERDICT.mechanism(configs) == (
        "Mechanism (each control against what it dissects): kd_shuffled against kd: -1.33 ± 0.33 points (mean ± "
        "standard error, 3 seeds; paired t = -4.00, p = 0.057): level; kd_uniform against kd: -0.50 points on seeds "
        "0, 1; not established (2 of the 3 seeds needed).")
    assert [VERDICT.dissected(c) for c in ("kd_shuffled", "il_a_uniform", "il_a_matched", "il_uniform_structure",
                                          "kd")] == ["kd", "il_a", "il_a", None, None]
    assert VERDICT.with_teacher({"standard": configs["standard"]}) is None
    assert VERDICT.with_teacher({"kd": configs["kd"]}) is None
    assert VERDICT.mechanism({"standard": configs["standard"], "kd": configs["kd"]}) is None
    table = report.markdown_table([dict(r, arch="a", train_size=3, epochs=1, augment=False, best_accuracy=0.0,
                                        commit="c", date="d", command="x", machine="m", tensorflow="t", keras="k")
                                   for rs in configs.values() for r in rs], timing=False, readings=VERDICT.readings)
    assert table.index("With a teacher") < table.index("Mechanism (") < table.index("Provenance")


def test_best_chooses_by_paired_gain_on_the_given_seeds_and_skips_controls(tmp_path, capsys):
    regime = dict(arch="a", train_size=3, epochs=1, augment=False)

    def runs(config, method, accuracies, seeds=(0, 1, 2), **overrides):
        return [dict(regime, config=config, method=method, options={}, seed=seed, final_accuracy=accuracy,
                     **overrides) for seed, accuracy in zip(seeds, accuracies)]

    records = (runs("standard", "standard", [0.70, 0.70, 0.70])
               + runs("il_a", "il", [0.71, 0.65, 0.65])  # seed 0: +1; over seeds 0-2: -3.33
               + runs("il_b", "il", [0.705, 0.705, 0.705])  # +0.5 on every seed
               + runs("il_c", "il", [0.72], seeds=(1,))  # +2, on one seed only
               + runs("il_a_uniform", "il", [0.99, 0.99, 0.99])  # a control: never chosen
               + runs("label_smoothing", "label_smoothing", [0.72, 0.72, 0.72]))
    assert VERDICT.best(records, "il", seeds=[0]) == "il_a"
    assert VERDICT.best(records, "il") == "il_b"  # three seeds outrank il_c's one
    assert VERDICT.best(records, "il", seeds=[1]) == "il_c"
    assert VERDICT.best(records, "rival") == "label_smoothing"
    assert VERDICT.best(records, "il", seeds=[5]) is None
    assert VERDICT.best(records, "il", seeds=[0], among=["il_b", "label_smoothing"]) == "il_b"  # il_a left out
    with pytest.raises(InputError, match="no records of il_c"):
        VERDICT.best(records, "il", seeds=[0], among=["il_b", "il_c"])  # il_c has no seed-0 run
    assert VERDICT.best([r for r in records if r["config"] != "standard"], "il") is None
    configs = report.grouped(records)["a, 3 images × 1 ep, no aug"]
    assert VERDICT.verdict(configs).startswith("Verdict: the best IL configuration, il_b (of 2 with 3 seeds, 3 in all)")
    del configs["il_b"]
    assert "il_a (of 1 with 3 seeds, 2 in all)" in VERDICT.verdict(configs)
    del configs["il_a"]
    assert "il_c (of 1), against standard training: +2.00 points on seed 1;" in VERDICT.verdict(configs)
    with pytest.raises(InputError, match="mix regimes"):
        VERDICT.best(records + runs("standard", "standard", [0.5], epochs=2), "il")

    path = tmp_path / "results.jsonl"
    for r in records:
        report.append(str(path), r)
    summarize = load_script("summarize")  # its command line, in this process (a subprocess costs a TF import)

    def run(*args):
        capsys.readouterr()
        try:
            summarize.main([str(a) for a in args])
        except SystemExit as exit:
            return exit.code, capsys.readouterr()
        return 0, capsys.readouterr()

    assert run(path, "--best", "il", "--seeds", "0") == (0, ("il_a\n", ""))
    assert run(path, "--best", "il", "--seeds", "0", "--among", "il_b", "il_a_uniform")[1].out == "il_b\n"
    code, out = run(path, "--out-dir", tmp_path / "r", "--among", "il_b")
    assert code == 2 and "need --best" in out.err and not (tmp_path / "r").exists()
    code, out = run(path, "--best", "il", "--seeds", "7")
    assert code == 2 and "no il configuration shares a seed with standard training" in out.err
    (tmp_path / "empty.jsonl").write_text("")
    for args, message in [([tmp_path / "absent.jsonl", "--best", "il"], "No such file"),
                          ([tmp_path / "empty.jsonl", "--out-dir", tmp_path / "out"], "holds no records")]:
        code, out = run(*args)
        assert code == 2 and message in out.err
    assert not (tmp_path / "out").exists()


def test_provenance_names_the_commit_the_process_loaded_even_after_a_new_commit(monkeypatch):
    import subprocess
    import types

    from keras_introspect.benchmark import runner

    heads = iter(["aaaaaaa", "bbbbbbb"])
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: types.SimpleNamespace(stdout=next(heads) + "\n"))
    runner.loaded_commit.cache_clear()
    try:
        assert [runner.provenance()["commit"] for _ in range(2)] == ["aaaaaaa", "aaaaaaa"]
        runner.loaded_commit.cache_clear()

        def no_git(*args, **kwargs):
            raise subprocess.CalledProcessError(128, args[0])
        monkeypatch.setattr(runner.subprocess, "run", no_git)
        assert runner.provenance()["commit"] == "unknown"
    finally:
        runner.loaded_commit.cache_clear()


def test_a_teacher_trained_on_other_normalization_is_refused(tmp_path):
    import types

    import numpy as np
    import pytest

    teacher = tmp_path / "model.keras"
    splits = types.SimpleNamespace(mean=np.array([125.0, 123.0, 114.0]), std=np.array([63.0, 62.0, 66.0]))
    recipes.check_teacher_normalization(str(teacher), splits)  # nothing recorded: nothing to check
    (tmp_path / "metrics.json").write_text(json.dumps({"normalization": {"mean": [125.0, 123.0, 114.0],
                                                                          "std": [63.0, 62.0, 66.0]}}))
    recipes.check_teacher_normalization(str(teacher), splits)
    (tmp_path / "metrics.json").write_text(json.dumps({"normalization": {"mean": [83.9] * 3, "std": [63.0, 62.0, 66.0]}}))
    with pytest.raises(ValueError, match="normalization mean .*Retrain the teacher"):
        recipes.check_teacher_normalization(str(teacher), splits)


def test_sweep_saves_each_finished_model_once(tmp_path):
    import keras

    import keras_introspect as ki

    sweep = load_script("formulation_sweep")
    models, out = tmp_path / "models", tmp_path / "results.jsonl"
    argv = ["--protocol", "quick", "--data", "digits", "--epochs", "1", "--configs", "standard",
            "--out", str(out), "--save-models", str(models), "--backup-root", str(tmp_path / "backups")]
    sweep.main(argv)
    record = report.load(out)[0]
    assert record["train_seconds"] == sum(record["history"]["epoch_seconds"]) > 0
    saved = keras.models.load_model(models / "quick-standard-seed0.keras")
    # the saved model is the evaluated one: its held-out accuracy is the record's
    from keras_introspect.benchmark import runner

    protocol = protocols.get("quick", dataset="digits", epochs=1)
    splits = recipes.make_splits(ki.data.load_arrays("digits"), protocol, seed=0)
    predicted = runner.test_probabilities(saved, splits.test).argmax(-1)
    assert abs(float((predicted == runner.held_out_labels(splits)).mean()) - record["final_accuracy"]) < 1e-6
    sweep.main(argv)  # finished: skipped, the model untouched
    assert sorted(p.name for p in models.iterdir()) == ["quick-standard-seed0.keras"]


def test_the_sweep_scripts_name_only_known_configurations():
    """A misspelt configuration would stop a sweep hours in, at the phase that names it."""
    import pathlib
    import re

    sweep = load_script("formulation_sweep")
    sweeps = [script for script in sorted(pathlib.Path("benchmarks").glob("run_*.sh"))
              if "formulation_sweep.py" in script.read_text()]
    assert len(sweeps) >= 3, sweeps
    for script in sweeps:
        named = set()
        for line in script.read_text().replace("\\\n", " ").splitlines():
            for block in re.findall(r"--configs ((?:[\w.]+\s*)+)", line):
                named |= set(block.split())
            # run_fair_protocol.sh: its IL forms, and the configurations it hands to its lanes
            for block in re.findall(r'IL_FORMS=\(([^)]*)\)|lane_sweep (?:"([\w\s$]+)"|(\w+)\s)', line):
                named |= {word for word in " ".join(block).split() if not word.startswith("$")}
        assert named and not named - set(sweep.CONFIGS), (script, named - set(sweep.CONFIGS))
        if "best_il" in script.read_text():
            # the phase that spends seeds on the best IL runs its "<name>_uniform" control, and the candidates are
            # the default and configurations an earlier phase runs
            (candidates,) = re.findall(r"IL_CANDIDATES=\(([^)]*)\)", script.read_text())
            il = set(candidates.split())
            assert il - {"il_cam_mass_warmup"} <= named, (script, il - named)
            assert il <= set(sweep.IL_VARIANTS), (script, il - set(sweep.IL_VARIANTS))
            assert all(f"{name}_uniform" in sweep.CONFIGS for name in il)


def test_curves_average_seeds_epoch_by_epoch_over_the_shortest_run():
    records = [{"history": {"val_accuracy": [0.5, 0.6, 0.7], "accuracy": [0.5, 0.7, 0.9]}},
               {"history": {"val_accuracy": [0.3, 0.4]}}]
    assert report.mean_curve(records, "val_accuracy") == [40.0, 50.0]
    assert report.mean_curve(records[:1], "accuracy") == [50.0, 70.0, 90.0]
    assert report.mean_curve(records, "accuracy") == []  # one seed lacks it: no curve rather than a partial mean


def test_every_configuration_of_a_large_regime_gets_its_own_line_style():
    styles = [plots.line_style(index) for index in range(20)]  # the long protocol plans about 15
    assert len(set(styles)) == len(styles)
    assert styles[0] == ("C0", ".") and styles[10][0] == "C0"  # colours repeat, markers tell them apart


def test_in_memory_footprint_reports_every_stage(tmp_path):
    footprint = load_script("in_memory_footprint")
    out = tmp_path / "footprint.json"
    footprint.main(["digits", "--protocol", "quick", "--limit-gb", "100", "--out", str(out)])
    report = json.loads(out.read_text())
    assert [s["stage"] for s in report["stages"]] == ["import", "arrays loaded", "pipelines built",
                                                       "one epoch and test read"]
    peaks = [s["peak_gb"] for s in report["stages"]]
    assert peaks == sorted(peaks) and report["peak_gb"] == peaks[-1] > 0.1  # TensorFlow alone is more
    assert report["images"] == 1797 and report["image_dtype"] == "float32" and report["within_limit"]
    assert abs(report["float32_gb"] - report["loaded_gb"]) < 1e-12 and report["commit"]


def test_class_structure_helpers_against_independent_computations():
    structure = load_script("class_structure")
    assert structure.normalized_entropy(np.full(4, 0.25)) == pytest.approx(1.0)
    assert structure.normalized_entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    table = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(structure.drop_diagonal(table), [[1 / 3, 2 / 3], [3 / 8, 5 / 8], [6 / 13, 7 / 13]])


def test_class_structure_reads_both_models_tables(tmp_path, capsys):
    import keras
    from conftest import tiny_backbone
    from scipy.stats import spearmanr

    import keras_introspect as ki

    structure = load_script("class_structure")
    x, y = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32"), np.arange(8) % 5
    il = ki.IntrospectiveModel(tiny_backbone(), class_targets=True)
    ols = ki.OnlineLabelSmoothingModel(tiny_backbone(seed=2))
    for model in (il, ols):
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        model.train_on_batch(x, y)
    sims = np.random.default_rng(1).uniform(-1, 1, size=(5, 5)).astype("float32")
    soft = np.random.default_rng(2).dirichlet(np.ones(5), size=5).astype("float32")
    il.class_similarity.assign(sims)
    ols.soft_labels.assign(soft)
    il.save(tmp_path / "il.keras")
    ols.save(tmp_path / "ols.keras")
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        (tmp_path / "train" / name).mkdir(parents=True)
    out = tmp_path / "structure.json"
    command = ["--il", str(tmp_path / "il.keras"), "--ols", str(tmp_path / "ols.keras"),
               "--classes", str(tmp_path / "train"), "--temperatures", "0.5", "2", "--out", str(out)]
    structure.main(command)
    results = json.loads(out.read_text())
    rows = results["rows"]
    tau = il.target_builder.temperature
    for c, row in enumerate(rows):
        others = [j for j in range(5) if j != c]
        il_row = np.exp(sims[c, others] / tau) / np.exp(sims[c, others] / tau).sum()
        ols_row = soft[c, others] / soft[c, others].sum()
        assert row["il_nearest"] == names[others[il_row.argmax()]]
        assert row["ols_nearest"] == names[others[ols_row.argmax()]]
        assert row["il_share"] == pytest.approx(il_row.max(), rel=1e-5)
        assert row["ols_share"] == pytest.approx(ols_row.max(), rel=1e-5)
        assert row["spearman"] == pytest.approx(spearmanr(il_row, ols_row).statistic, abs=1e-6)
    for row in results["spread"]:  # the same table read at other target temperatures
        logits = np.where(np.eye(5, dtype=bool), -np.inf, sims / row["temperature"])
        il_rows = structure.drop_diagonal(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
        ols_rows = structure.drop_diagonal(soft)
        assert row["il_share"] == pytest.approx(il_rows.max(1).mean(), rel=1e-5)
        assert row["l1_to_ols"] == pytest.approx(np.abs(il_rows - ols_rows).sum(1).mean(), rel=1e-5)
    assert [r["temperature"] for r in results["spread"]] == [0.5, 2.0]
    assert results["spread"][0]["il_entropy"] < results["spread"][1]["il_entropy"]  # hotter spreads more
    table = (tmp_path / "structure.md").read_text()
    assert table.count("\n| ") == 5 + 1 + 2  # a row per class; the τ table: header, a row per τ
    assert f"commit {results['commit']}" in table and "Provenance: `" in table  # beside the numbers
    with pytest.raises(SystemExit):  # never overwrites an earlier run's results
        structure.main(command)
    assert "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a model without the class-level table is named
        structure.main(["--il", str(tmp_path / "ols.keras")] + command[2:-1] + [str(tmp_path / "other.json")])
    assert "class_targets=True" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        structure.main(command[:6] + ["--temperatures", "0"] + command[-2:-1] + [str(tmp_path / "other.json")])
    assert "--temperatures must be positive" in capsys.readouterr().err


def test_calibration_reports_direction_and_checks_each_model_against_its_record(tmp_path, capsys):
    import keras

    import keras_introspect as ki
    from keras_introspect.benchmark import runner

    models, results = tmp_path / "models", tmp_path / "results.jsonl"
    load_script("formulation_sweep").main(
        ["--protocol", "quick", "--data", "digits", "--epochs", "1", "--configs", "standard", "--out", str(results),
         "--save-models", str(models), "--backup-root", str(tmp_path / "backups")])
    model_file = str(models / "quick-standard-seed0.keras")
    calibration = load_script("calibration")
    out = tmp_path / "calibration" / "quick.json"
    command = ["--protocol", "quick", "--data", "digits", "--models", model_file, "--results", str(results),
               "--out", str(out)]
    calibration.main(command)
    row = json.loads(out.read_text())["rows"][0]
    splits = recipes.make_splits(ki.data.load_arrays("digits"), protocols.get("quick", dataset="digits"), seed=0)
    probabilities = runner.test_probabilities(keras.saving.load_model(model_file), splits.test)
    labels = runner.held_out_labels(splits)
    accuracy, confidence = (probabilities.argmax(1) == labels).mean(), probabilities.max(1).mean()
    assert row["accuracy"] == pytest.approx(accuracy) and row["mean_confidence"] == pytest.approx(confidence, rel=1e-5)
    assert row["overconfidence"] == pytest.approx(confidence - accuracy, abs=1e-5)
    assert row["ece"] == pytest.approx(report.load(results)[0]["ece"], abs=1e-4) and row["checked_against_record"]
    assert sum(row["reliability"]["count"]) == len(labels) == 360
    table = (tmp_path / "calibration" / "quick.md").read_text()
    assert f"| quick-standard-seed0 | {100 * accuracy:.2f} |" in table and "Provenance: `" in table
    assert (tmp_path / "calibration" / "quick.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):  # never overwrites an earlier run's results
        calibration.main(command)
    assert "refusing to overwrite" in capsys.readouterr().err
    # a record that disagrees (here: as if the model had been trained on other data) is an error
    record = report.load(results)[0]
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(json.dumps({**record, "final_accuracy": record["final_accuracy"] - 0.05}) + "\n")
    other = tmp_path / "other.json"
    with pytest.raises(SystemExit):
        calibration.main(command[:7] + [str(tampered), "--out", str(other)])
    assert "its record says" in capsys.readouterr().err and not other.exists()
    unrelated = tmp_path / "unrelated.jsonl"
    unrelated.write_text(json.dumps({**record, "config": "label_smoothing"}) + "\n")
    with pytest.raises(SystemExit):  # a model the results file has no record of
        calibration.main(command[:7] + [str(unrelated), "--out", str(other)])
    assert "no record of standard seed 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calibration.main(["--protocol", "quick", "--data", "digits", "--models", "nowhere.keras", "--out", str(other)])
    assert "no such model file: nowhere.keras" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["formulation_sweep", "long_protocol"])
def test_the_committed_tables_regenerate_byte_identical_from_the_committed_records(name):
    """The tables quoted in docs/ are what `summarize.py --no-timing` makes of the committed records today."""
    records = report.load(f"benchmarks/results/{name}.jsonl")
    committed = open(f"benchmarks/results/{name}/results.md").read()
    assert report.markdown_table(records, timing=False, readings=VERDICT.readings) + "\n" == committed


def test_the_committed_fair_report_regenerates_byte_identical_from_the_committed_records():
    """The fair protocol's tables and reading in docs/method.md are what `fair_report.py` makes of the committed
    records today (a record committed without its regenerated report would leave them stale)."""
    fair_report = load_script("fair_report")
    records = report.load("benchmarks/results/fair_protocol.jsonl")
    assert fair_report.markdown(records) + "\n" == open("benchmarks/results/fair_protocol/results.md").read()


def test_every_quoted_table_is_its_committed_results_file():
    """A `<!-- results:NAME -->` block in the docs is `benchmarks/results/NAME/results.md`, not an older copy
    (docs/method.md once kept the long protocol's table in a retired format)."""
    quoted = {}
    for doc in ["README.md", *sorted(map(str, pathlib.Path("docs").glob("*.md")))]:
        for match in re.finditer(r"<!-- results:(\w+):begin -->\n(.*?)\n<!-- results:\1:end -->", open(doc).read(), re.S):
            table = pathlib.Path(f"benchmarks/results/{match.group(1)}/results.md")
            if table.exists():
                quoted[doc, match.group(1)] = match.group(2) == table.read_text().rstrip("\n")
    assert {name for _, name in quoted} >= {"formulation_sweep", "long_protocol", "fair_protocol"}
    assert all(quoted.values()), [key for key, same in quoted.items() if not same]


def test_table_cells_are_mean_and_standard_error_and_name_the_defaults_a_row_ran_with():
    rows = [{"config": c, "method": m, "options": o, "seed": seed, "final_accuracy": a, "best_accuracy": a,
             "commit": commit, "arch": "resnet20", "train_size": 100, "epochs": 2, "augment": True,
             "command": "x", "machine": "m", "tensorflow": "t", "keras": "k", "date": "2026-01-01"}
            for c, m, o, seed, a, commit in [("standard", "standard", {}, 0, 0.70, "aaa"),
                                             ("standard", "standard", {}, 1, 0.74, "aaa"),
                                             ("il", "il", {}, 0, 0.71, "bbb"),
                                             ("ls", "standard", {"label_smoothing": 0.1}, 0, 0.69, "ccc")]]
    table = report.markdown_table(rows, timing=False)
    # 70 and 74: mean 72, sample std 2.83, standard error 2.00
    assert "| standard | — | 0,1 | 72.00 ± 2.00 | +0.00 ± 0.00 |\n" in table
    assert "| il | defaults at bbb | 0 | 71.00 (1 seed) | +1.00 (seed 0) |\n" in table
    assert "| ls | label_smoothing=0.1 | 0 | 69.00 (1 seed) | -1.00 (seed 0) |" in table


def test_the_answer_says_in_words_what_the_paired_differences_show():
    def records(config, method, accuracies):
        return [{"config": config, "method": method, "options": {}, "seed": seed, "final_accuracy": a}
                for seed, a in enumerate(accuracies)]

    base = records("standard", "standard", [0.70, 0.72, 0.74])
    # IL: -1, -1.2, -0.8 points → mean -1.00, standard error 0.115
    il = records("il_x", "il", [0.69, 0.708, 0.732])
    # the rival: +0.5, -0.5, +0.3 → IL against it: -1.5, -0.7, -1.1 → mean -1.10, se 0.23: behind
    rival = [{**r, "options": {"label_smoothing": 0.1}} for r in records("ls", "standard", [0.705, 0.715, 0.743])]
    sentence, outcome = VERDICT.answer({"standard": base, "il_x": il, "ls": rival}, "On here")
    assert outcome == "behind"
    # the paired t-test decides: t = mean / se, two-sided p with 2 degrees of freedom, below 0.05 → behind
    t_base, t_rival = -1.0 / (0.2 / 3 ** 0.5), -1.1 / (0.4 / 3 ** 0.5)
    p_base, p_rival = (2 * stats.t.sf(abs(t), 2) for t in (t_base, t_rival))
    assert round(t_base, 2) == -8.66 and round(p_base, 3) == 0.013
    assert round(p_rival, 3) == 0.041
    assert sentence.startswith("On here, IL is behind standard training: -1.00 ± 0.12 points (mean ± standard "
                               "error over 3 seeds; paired t = -8.66, p = 0.013), and "
                               "behind the best teacher-free rival (ls): -1.10 ± 0.23 points (mean ± standard error "
                               f"over 3 seeds; paired t = {t_rival:.2f}, p = 0.041)")
    assert "il_x, picked on the test split among the 1 of 1 settings tried that ran on 3 seeds" in sentence
    level = records("il_y", "il", [0.71, 0.71, 0.74])  # +1, -1, 0: level
    assert VERDICT.answer({"standard": base, "il_y": level}, "On here")[0].startswith(
        "On here, IL is level with standard training: +0.00 ± 0.58 points (mean ± standard error over 3 seeds; "
        "paired t = 0.00, p = 1.000, no difference at the 5% level)")
    few = records("il_z", "il", [0.71])
    assert "not yet measured on enough seeds against standard training (+1.00 points on 1 seed)" in \
        VERDICT.answer({"standard": base, "il_z": few}, "On here")[0]
    assert VERDICT.answer({"standard": base}, "On here") is None


def test_the_fair_answer_waits_for_its_test_seeds_then_gives_t_and_p():
    answer = load_script("answer")
    pilot = [{"config": "standard", "method": "standard", "options": {}, "seed": 0, "test_accuracy": 0.7}]
    text, outcome = answer.fair_sentence(pilot)
    assert "is under way, its choices still being made on validation" in text and outcome is None

    def tested(pairs):
        return [{"config": c, "method": m, "options": {}, "seed": seed, "test_accuracy": a, "test_ece": 0.03,
                 "test_ece_scaled": 0.02}
                for seed, (b, i) in zip((2, 3, 4, 5, 6), pairs)
                for c, m, a in (("standard", "standard", b), ("il_default", "il", i))]

    ahead = [(0.70, 0.71), (0.72, 0.735), (0.71, 0.715), (0.69, 0.70), (0.73, 0.74)]
    text, outcome = answer.fair_sentence(pilot + tested(ahead))
    t = stats.ttest_rel([i for _, i in ahead], [b for b, _ in ahead])
    assert outcome == "ahead" and t.pvalue < 0.05
    assert (f"IL (its form il_default, chosen on validation) is ahead of standard training: +1.00 ± 0.16 points "
            f"(mean ± standard error over 5 seeds; paired t = {t.statistic:.2f}, p = {t.pvalue:.3f})") in text
    # A mean gain the t-test cannot tell from noise is "level", whatever its sign.
    noisy = [(0.70, 0.72), (0.72, 0.71), (0.71, 0.73), (0.69, 0.68), (0.73, 0.74)]
    text, outcome = answer.fair_sentence(pilot + tested(noisy))
    assert outcome == "level" and stats.ttest_rel([i for _, i in noisy], [b for b, _ in noisy]).pvalue >= 0.05
    assert "is level with standard training: +0.60 ± " in text and "no difference at the 5% level" in text
    behind = [(b, i - 0.03) for b, i in ahead]
    assert answer.fair_sentence(pilot + tested(behind))[1] == "behind"
    assert answer.FAIR_OPENER["behind"].startswith("No")
    text, outcome = answer.fair_sentence(pilot + tested(ahead[:1]))
    assert outcome is None and "not yet measured on enough seeds against standard training (+1.00 points, n = 1)" in text


def test_the_fair_reading_compares_il_with_every_rival_and_its_ece_with_and_without_temperature_scaling():
    fair_report = load_script("fair_report")

    def runs(config, method, accuracies, ece, scaled, options=None):
        return [{"config": config, "method": method, "options": options or {}, "seed": seed, "test_accuracy": a,
                 "test_ece": e, "test_ece_scaled": s}
                for seed, a, e, s in zip((2, 3, 4), accuracies, ece, scaled)]

    records = (runs("standard", "standard", [0.70, 0.72, 0.71], [0.05, 0.06, 0.07], [0.02, 0.02, 0.03])
               # a second IL form on one seed only: the verdict's form is the one on every seed
               + runs("il_other", "il", [0.99], [0.0], [0.0])
               + runs("il_default", "il", [0.69, 0.71, 0.70], [0.02, 0.02, 0.02], [0.021, 0.031, 0.041])
               + runs("label_smoothing", "label_smoothing", [0.70, 0.70, 0.71], [0.04, 0.04, 0.04],
                      [0.02, 0.02, 0.02]))
    sentences, comparison = fair_report.readings(records)
    assert comparison["n"] == 3 and comparison["mean"] == pytest.approx(-0.01)
    # IL − standard: -1, -1, -1 points: no spread, so no t-test; against label smoothing: -1, +1, -1
    assert sentences[0] == ("IL (its form il_default, chosen on validation) is not testable against standard "
                            "training: -1.00 points on each of its 3 seeds.")
    assert sentences[1] == ("Against the others, paired the same way (IL minus each, in points): not yet tested "
                            "against il_other (-30.00, n = 1, too few seeds for a test), level with label smoothing "
                            "(-0.33 ± 0.67, t = -0.50, p = 0.667, n = 3).")
    # ECE: IL − standard -3, -4, -5 points: lower; scaled +0.1, +1.1, +1.1: level
    raw = stats.ttest_rel([0.02] * 3, [0.05, 0.06, 0.07])
    scaled = stats.ttest_rel([0.021, 0.031, 0.041], [0.02, 0.02, 0.03])
    assert raw.pvalue < 0.05 <= scaled.pvalue
    assert sentences[2] == (f"Its test ECE is 2.00% against standard training's 6.00%, lower (-4.00 ± 0.58, "
                            f"t = {raw.statistic:.2f}, p = {raw.pvalue:.3f}, n = 3); after temperature scaling "
                            f"fitted on validation, the anchor practitioners use, 3.10% against 2.33%, level (+0.77 ± "
                            f"0.33, t = {scaled.statistic:.2f}, p = {scaled.pvalue:.3f}, n = 3).")
    # standard training a seed ahead of IL: the ECEs quoted are still those of the seeds both ran
    ahead = runs("standard", "standard", [0.72], [0.50], [0.50])
    assert fair_report.readings(records + [dict(ahead[0], seed=5)])[0][2] == sentences[2]
    assert fair_report.readings(records[:3]) == ([], None)  # no IL on a verdict seed yet


def test_the_readme_answer_is_todays_paragraph():
    answer = load_script("answer")
    readme = open("README.md").read()
    assert f"<!-- results:answer:begin -->\n{answer.paragraph()}\n<!-- results:answer:end -->" in readme


def test_a_record_made_in_a_notebook_names_no_kernel_file(monkeypatch):
    import sys
    import types

    from keras_introspect.benchmark import runner

    # a script that imports ipykernel (make_notebooks.py, through nbclient) keeps its command line
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(sys, "argv", ["tutorials/make_notebooks.py", "--only", "01_quickstart.ipynb"])
    assert runner.command_line().endswith("tutorials/make_notebooks.py --only 01_quickstart.ipynb")
    for kernel in (["/usr/lib/python3/site-packages/ipykernel_launcher.py", "-f", "/tmp/kernel-1234.json"],
                   ["/usr/local/lib/python3.11/dist-packages/colab_kernel_launcher.py", "-f", "/tmp/k.json"]):
        monkeypatch.setattr(sys, "argv", kernel)
        assert runner.provenance()["command"] == "a Jupyter notebook (no command line)"
