"""Imagenette (natural photographs) streamed from its folder, trained from the command line."""

import json

from keras_introspect.cli.main import main


def test_imagenette_trains_from_the_command_line_and_beats_chance(imagenette_small_dir, tmp_path):
    out = tmp_path / "imagenette"
    # ResNet-20 on the photos resized to 32 px (ResNet-18 at 64 px took 5 minutes of CI; the saved model's
    # test covers it); 90 steps: BatchNorm statistics averaged over ~10 steps (momentum 0.9) rather than
    # Keras's ~100.
    # 200 training and 50 test photos per class (`imagenette_small_dir`): evaluating all 3,925 test photos after
    # every epoch took about 40% of this test's time.
    code = main(["train", "--dataset", str(imagenette_small_dir), "--image-size", "32", "--arch", "resnet20",
                 "--method", "il", "--warmup-epochs", "1", "--ramp-epochs", "1", "--train-size", "1500",
                 "--epochs", "3", "--batch-size", "50", "--lr", "0.05", "--bn-momentum", "0.9", "--output", str(out),
                 "--verbose", "2"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_size"] == 1500 and metrics["config"]["backbone"] == "resnet20"
    assert metrics["test_accuracy"] > 0.2  # 10 classes: chance is 0.1; 500 test photos
    history = json.loads((out / "history.json").read_text())
    assert history["alpha"] == [0.0, 0.5, 0.5]
    assert (out / "explanations.png").stat().st_size > 20_000  # photographs with their maps overlaid
