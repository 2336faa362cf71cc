"""The committed SavedModels: the stated accuracy holds, the REST example is real, the Keras file matches."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import class_subset

import keras_introspect as ki

# One test process runs this file: its module-scoped fixtures are built once (pytest.ini: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_saved_models")

ROOT = pathlib.Path(__file__).resolve().parents[1] / "saved_models"
MODELS = {"il_resnet20_cifar10": "cifar_dir", "il_resnet18w32_imagenette": "imagenette_dir"}


@pytest.fixture(scope="module", params=sorted(MODELS))
def committed(request):
    folder = ROOT / request.param
    if not (folder / "1" / "saved_model.pb").exists():
        pytest.fail(f"no SavedModel committed at {folder}/1")
    # The whole test split beside one training image per class: the tests read only the test split, and decoding
    # the whole training split was most of this file's setup time.
    source = request.getfixturevalue(MODELS[request.param])
    data = class_subset(source, f"{source.name}-1-all", {"train": 1, "test": None})
    metadata = json.loads((folder / "metadata.json").read_text())
    return folder, metadata, ki.data.load_arrays(str(data)), tf.saved_model.load(str(folder / "1"))


def test_stated_accuracy_holds_on_the_test_split(committed):
    folder, metadata, arrays, served = committed
    assert f"Test accuracy: {100 * metadata['test_accuracy']:.2f}%" in (folder / "README.md").read_text()
    assert metadata["class_names"] == list(arrays.class_names)
    correct = 0
    for start in range(0, len(arrays.y_test), 500):
        x = tf.constant(arrays.x_test[start:start + 500].astype("float32"))  # raw 0-255 pixels
        probs = served.signatures["serving_default"](images=x)["probabilities"].numpy()
        correct += int((probs.argmax(-1) == arrays.y_test[start:start + 500]).sum())
    assert correct / len(arrays.y_test) == pytest.approx(metadata["test_accuracy"], abs=1e-4)
    assert metadata["test_accuracy"] > 0.75


def test_the_rest_example_is_what_the_savedmodel_answers(committed):
    folder, metadata, arrays, served = committed
    body = json.loads((folder / "request.json").read_text())
    assert body["signature_name"] == "explain" and body["inputs"]["class_index"] == [-1]
    np.testing.assert_array_equal(np.asarray(body["inputs"]["images"]), arrays.x_test[:1])  # a real test image
    answer = ki.export.call_like_serving(served, body)["outputs"]
    committed_answer = json.loads((folder / "response.json").read_text())["outputs"]
    n = len(metadata["class_names"])
    assert np.asarray(committed_answer["probabilities"]).shape == (1, n)
    assert np.asarray(committed_answer["explanation"]).shape == (1, *metadata["explanation_shape"])
    for key in ("probabilities", "explanation"):
        np.testing.assert_allclose(answer[key], committed_answer[key], atol=1e-4)
    assert answer["class_index"] == committed_answer["class_index"]


def test_the_keras_file_is_the_served_model(committed):
    folder, metadata, arrays, served = committed
    model = keras.saving.load_model(folder / "model.keras")
    assert isinstance(model, ki.IntrospectiveModel) and getattr(model, "optimizer", None) is None
    raw = arrays.x_test[:8].astype("float32")
    x = (raw - np.array(metadata["normalization"]["mean"])) / np.array(metadata["normalization"]["std"])
    np.testing.assert_allclose(keras.ops.softmax(model.predict(x.astype("float32"), verbose=0)),
                               served.signatures["serving_default"](images=tf.constant(raw))["probabilities"],
                               atol=1e-5)
