"""The keras-introspect command line, end to end."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli

import keras_introspect as ki
from keras_introspect.cli.main import main


def test_default_train_writes_every_artefact(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--epochs", "3", "--output", str(out), "--verbose", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch 3/3" in result.stdout
    for name in ("history.csv", "history.json", "metrics.json", "curves.png", "reliability.png", "explanations.png",
                 "model.keras"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "serving" / "il" / "1" / "saved_model.pb").exists()  # TF Serving's <name>/<version>/
    assert f"--model_base_path={out / 'serving' / 'il'}" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert metrics["method"] == "il" and metrics["dataset"] == "digits"
    assert metrics["test_accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    assert metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert len((out / "history.csv").read_text().splitlines()) == 4
    # The calibration error is that of the exported model's answers on the test split.
    arrays = ki.data.load_arrays("digits")
    served = tf.saved_model.load(str(out / "serving" / "il" / "1"))
    probabilities = served.signatures["serving_default"](images=tf.constant(arrays.x_test))["probabilities"].numpy()
    assert (probabilities.argmax(1) == arrays.y_test).mean() == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert metrics["test_ece"] == pytest.approx(ki.metrics.expected_calibration_error(arrays.y_test, probabilities),
                                                abs=1e-5)
    assert f"ECE {metrics['test_ece']:.4f}" in result.stdout


def test_standard_method_and_il_knobs(tmp_path):
    assert main(["train", "--method", "standard", "--epochs", "1", "--output", str(tmp_path / "s"), "--verbose", "0"]) == 0
    assert main([
        "train", "--epochs", "1", "--output", str(tmp_path / "il"), "--verbose", "0", "--explainer", "grad_cam",
        "--form", "softmax", "--target-temperature", "0.5", "--explained-classes", "3", "--warmup-epochs", "1",
    ]) == 0
    config = json.loads((tmp_path / "il" / "metrics.json").read_text())["config"]
    assert config["explained_classes"] == 3 and config["warmup_epochs"] == 1
    served = tf.saved_model.load(str(tmp_path / "il" / "serving" / "il" / "1"))
    probabilities = served.signatures["serving_default"](images=tf.zeros((2, 8, 8, 1)))["probabilities"]
    np.testing.assert_allclose(probabilities.numpy().sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "/no/such/dir"], "does not exist"),
        (["--dataset", "imagenet"], "Unknown dataset"),
        (["--arch", "vgg"], "Unknown architecture"),
        (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
        (["--explained-classes", "many"], "--explained-classes"),
        (["--epsilon", "1.5"], "epsilon must be in"),
        (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["--lr", "nan"], "argument --lr: must be a finite number, got nan"),
        (["--lr", "-1"], "argument --lr: must be > 0.0, got -1"),
        (["--lr", "inf"], "argument --lr: must be a finite number"),
        (["--weight-decay", "-1"], "argument --weight-decay: must be >= 0.0, got -1"),
        (["--train-size", "0"], "argument --train-size: must be >= 1"),
        (["--bn-momentum", "1"], "argument --bn-momentum: must be < 1.0"),
        (["--alpha", "nan"], "alpha must be a finite number"),
        (["--temperature", "0"], "temperature must be > 0"),
        (["--warmup-epochs", "-1"], "warmup_epochs must be >= 0"),
        (["--method", "standard", "--alpha", "0.5"], "--alpha is not an option of --method standard"),
        (["--method", "magic"], "invalid choice: 'magic'"),
        (["--export-name", "my/model"], "argument --export-name: model name 'my/model': use letters, digits"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_clear_line(tmp_path, capsys, args, message):
    code = main(["train", "--output", str(tmp_path / "run"), "--verbose", "0", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("keras-introspect: error:"), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.incomplete").exists()


def test_a_bad_command_line_is_one_line_not_the_usage_text():
    result = run_cli("train", "--method", "magic")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    # TensorFlow's own start-up lines may precede it; ours is one line, without the usage text.
    ours = [line for line in result.stderr.splitlines() if "keras-introspect" in line]
    assert len(ours) == 1 and ours[0].startswith("keras-introspect: error:") and "usage:" not in result.stderr


def test_every_method_runs_from_the_command_line(tmp_path):
    from keras_introspect import recipes

    teacher = tmp_path / "standard" / "model.keras"
    for method in ("standard", *[m for m in recipes.METHODS if m not in ("standard", "il")]):
        args = ["train", "--method", method, "--epochs", "2", "--output", str(tmp_path / method), "--verbose", "0"]
        if method in ("kd", "tfkd_self", "isl"):
            args += ["--teacher", str(teacher)]
        assert main(args) == 0, method
        metrics = json.loads((tmp_path / method / "metrics.json").read_text())
        assert metrics["test_accuracy"] > 0.2, method


def test_teacher_methods_need_an_existing_teacher(tmp_path, capsys):
    assert main(["train", "--method", "kd", "--output", str(tmp_path), "--verbose", "0"]) == 2
    assert "--method kd needs --teacher" in capsys.readouterr().err
    assert main(["train", "--method", "isl", "--teacher", str(tmp_path / "none.keras"), "--output", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_teacher_trained_on_other_normalization_is_refused(tmp_path, capsys):
    teacher = tmp_path / "teacher"
    assert main(["train", "--method", "standard", "--epochs", "1", "--output", str(teacher), "--verbose", "0"]) == 0
    metrics = json.loads((teacher / "metrics.json").read_text())
    metrics["normalization"]["mean"] = [m * 1.5 + 1.0 for m in metrics["normalization"]["mean"]]
    (teacher / "metrics.json").write_text(json.dumps(metrics))
    args = ["train", "--method", "kd", "--teacher", str(teacher / "model.keras"), "--epochs", "1",
            "--output", str(tmp_path / "kd"), "--verbose", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "input normalization mean" in err and "Retrain the teacher" in err
    assert not (tmp_path / "kd" / "model.keras").exists()


def test_the_long_protocol_without_data_names_both_ways_to_get_it(tmp_path, capsys):
    """Its dataset, TFDS's imagenette, cannot be fetched here: the error names download and a local folder."""
    code = main(["benchmark", "--protocol", "long", "--methods", "standard", "--data-dir", str(tmp_path / "tfds"),
                 "--output", str(tmp_path / "bench")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Dataset 'imagenette/160px-v2' is not prepared" in err and "--download" in err
    assert "local image folder" in err
    assert not (tmp_path / "bench").exists()


def option_values(option):
    """Values a method's option must accept (its default and inclusive bounds) and refuse (outside them)."""
    import math

    from keras_introspect.options import RANGES

    accept, refuse = [option.default], []
    if option.kind is float and option.range:
        low, high, low_in, high_in, _ = RANGES[option.range]
        accept += [low] if low_in else [low + 1e-6]
        accept += [high] if high_in and math.isfinite(high) else []
        refuse += [] if low_in else [low]
        refuse += [low - 1.0]
        refuse += [high + 1.0] if math.isfinite(high) else []
        refuse += [] if high_in or not math.isfinite(high) else [high]
    if option.kind is int and option.minimum is not None:
        accept.append(option.minimum)
        refuse.append(option.minimum - 1)
    if option.kind is int and option.choices:
        accept += list(option.choices)
        refuse.append("no-such-word")
    if option.kind is str and option.choices:
        accept += list(option.choices)
        refuse.append("no-such-choice")
    return [v for v in accept if v is not None], refuse


def test_every_methods_options_are_checked_against_that_methods_own_declaration():
    """`--method frskd --alpha 2.0` is FRSKD's own default; IL's range for --alpha must not refuse it."""
    from keras_introspect.cli.main import CliError, build_parser, method_options
    from keras_introspect.methods.registry import METHODS
    from keras_introspect.options import OptionError

    def parse(method, name, value):
        flag = "--" + name.replace("_", "-")
        argv = ["train", "--method", method] + (["--teacher", __file__] if METHODS[method].teacher else [])
        argv += [flag if value else f"--no-{name.replace('_', '-')}"] if isinstance(value, bool) else [flag, str(value)]
        return method_options(build_parser().parse_args(argv))

    checked = 0
    for method, spec in METHODS.items():
        for name, option in spec.options.items():
            accept, refuse = option_values(option)
            for value in accept:
                assert parse(method, name, value)[name] == value, (method, name, value)
            for value in refuse:
                with pytest.raises((OptionError, CliError)):
                    parse(method, name, value)
                checked += 1
    assert parse("frskd", "alpha", 2.0) == {"alpha": 2.0}
    assert checked > 20
