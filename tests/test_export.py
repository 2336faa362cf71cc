"""SavedModel export: serving_default and explain signatures."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_backbone

import keras_introspect as ki
from keras_introspect.export import export_saved_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    path = export_saved_model(model, tmp_path_factory.mktemp("export") / "model")
    return model, tf.saved_model.load(path)


def test_serving_default_returns_probabilities(exported, images):
    model, served = exported
    out = served.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    expected = keras.ops.softmax(model.predict(images, verbose=0)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_explain_signature_matches_model_explain(exported, images):
    model, served = exported
    explain = served.signatures["explain"]
    out = explain(images=tf.constant(images), class_index=tf.constant([-1, -1, 2, 0]))
    predicted = np.argmax(model.predict(images, verbose=0), -1)
    np.testing.assert_array_equal(out["class_index"].numpy(), [predicted[0], predicted[1], 2, 0])
    expected = model.explain(images, classes=out["class_index"].numpy()).numpy()
    np.testing.assert_allclose(out["explanation"].numpy(), expected, atol=1e-5)


def test_bad_requests_fail_clearly(exported, images):
    _, served = exported
    explain = served.signatures["explain"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_index must be < 5"):
        explain(images=tf.constant(images), class_index=tf.constant([0, 1, 2, 5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per image"):
        explain(images=tf.constant(images), class_index=tf.constant([0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must have shape \(batch, 8, 8, 3\)"):
        served.signatures["serving_default"](images=tf.zeros((2, 9, 9, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        served.signatures["serving_default"](images=tf.zeros((2, 8, 8, 3), tf.int32))
