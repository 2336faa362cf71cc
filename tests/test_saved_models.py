"""The committed SavedModel: loads, serves both signatures, and has the stated accuracy."""

import json
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

import keras_introspect as ki

MODEL = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "il_resnet20_cifar10"


def test_stated_accuracy_holds_on_the_cifar10_test_split(cifar_dir):
    if not (MODEL / "1" / "saved_model.pb").exists():
        pytest.fail(f"no SavedModel committed at {MODEL}")
    stated = json.loads((MODEL / "metadata.json").read_text())["test_accuracy"]
    readme = (MODEL / "README.md").read_text()
    assert f"{100 * stated:.2f}%" in readme
    arrays = ki.data.load_arrays(str(cifar_dir))
    served = tf.saved_model.load(str(MODEL / "1"))
    correct = 0
    for start in range(0, 10000, 1000):
        x = tf.constant(arrays.x_test[start:start + 1000].astype("float32"))
        probs = served.signatures["serving_default"](images=x)["probabilities"].numpy()
        correct += int((probs.argmax(-1) == arrays.y_test[start:start + 1000]).sum())
    assert correct / 10000 == pytest.approx(stated, abs=1e-4)
    out = served.signatures["explain"](images=tf.constant(arrays.x_test[:2].astype("float32")),
                                       class_index=tf.constant([-1, 3]))
    assert out["explanation"].shape == (2, 8, 8) and int(out["class_index"][1]) == 3
    assert re.search(r"Test accuracy: [0-9.]+%", readme)
