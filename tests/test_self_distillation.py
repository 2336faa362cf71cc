"""PS-KD and Online Label Smoothing: losses against hand computations, state, round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_backbone

import keras_introspect as ki
from keras_introspect.errors import InputError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 8, 8, 3)).astype("float32")
Y = (np.arange(24) % 5).astype("int32")


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def cross_entropy(q, z):
    return -(q * np.log(softmax(z.astype("float64")))).sum(-1)


def with_ids(batch_size=8):
    return tf.data.Dataset.from_tensor_slices((X, Y, np.arange(24))).map(ki.data.with_example_id).batch(batch_size)


def test_pskd_target_mixes_label_and_last_epoch_prediction():
    model = ki.ProgressiveSelfKDModel(tiny_backbone(seed=1), num_examples=24, alpha=0.8)
    table = RNG.dirichlet(np.ones(5), size=24).astype("float32")
    model.predictions.assign(table)
    model.epoch.assign(2.0)
    model.total_epochs.assign(4.0)
    ids = np.array([3, 17, 0, 9])
    onehot = np.eye(5, dtype="float32")[Y[ids]]
    logits, loss, terms = model.compute_terms({"images": X[ids], "example_id": ids}, onehot, Y[ids], None)
    alpha = 0.8 * 3 / 4  # a_T (t + 1) / T at t = 2
    z = model.backbone(X[ids]).numpy()
    np.testing.assert_allclose(loss.numpy(), cross_entropy((1 - alpha) * onehot + alpha * table[ids], z), rtol=1e-5)
    np.testing.assert_allclose(terms["alpha"].numpy(), alpha, rtol=1e-6)
    # The rows of this batch now hold its predictions; the others are untouched.
    stored = model.predictions.numpy()
    np.testing.assert_allclose(stored[ids], softmax(z), atol=1e-6)
    others = np.setdiff1d(np.arange(24), ids)
    np.testing.assert_array_equal(stored[others], table[others])


def test_pskd_first_epoch_is_plain_cross_entropy_and_fit_sets_the_schedule():
    model = ki.ProgressiveSelfKDModel(tiny_backbone(seed=1), num_examples=24)
    onehot = np.eye(5, dtype="float32")[Y[:4]]
    _, loss, _ = model.compute_terms({"images": X[:4], "example_id": np.arange(4)}, onehot, Y[:4], None)
    np.testing.assert_allclose(loss.numpy(), cross_entropy(onehot, model.backbone(X[:4]).numpy()), rtol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"])
    history = model.fit(with_ids(), epochs=4, verbose=0)
    np.testing.assert_allclose(history.history["alpha"], [0.2, 0.4, 0.6, 0.8], rtol=1e-6)
    assert float(model.total_epochs.numpy()) == 4.0
    # Every example's row holds a distribution from the last epoch.
    np.testing.assert_allclose(model.predictions.numpy().sum(-1), 1.0, atol=1e-5)


def test_pskd_needs_example_ids_and_valid_ones():
    model = ki.ProgressiveSelfKDModel(tiny_backbone(), num_examples=24)
    model.compile(optimizer="sgd")
    with pytest.raises(InputError, match="keeps state per training example"):
        model.fit(X, Y, epochs=1, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="example_id must be < num_examples"):
        model.train_on_batch({"images": X[:2], "example_id": np.array([0, 24])}, Y[:2])
    with pytest.raises(InputError, match="keeps per-example state: pass num_examples"):
        ki.methods.registry.build_method("pskd", tiny_backbone())


def test_ols_soft_labels_are_last_epochs_mean_correct_predictions():
    model = ki.OnlineLabelSmoothingModel(tiny_backbone(seed=2), alpha=0.5, smoothing=0.1)
    first = model.soft_labels.numpy()
    np.testing.assert_allclose(np.diag(first), 0.9, rtol=1e-6)
    np.testing.assert_allclose(first[0, 1:], 0.1 / 4, rtol=1e-5)
    # Learning rate 0: the weights, hence the predictions, stay those of the start.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    z = model.backbone(X).numpy()
    p, correct = softmax(z), z.argmax(-1) == Y
    expected = np.zeros((5, 5))
    for c in range(5):
        members = correct & (Y == c)
        if members.any():
            expected[c] = p[members].mean(0)
    model.epoch.assign(1.0)  # the first step of the next epoch turns the statistics into soft labels
    onehot = np.eye(5, dtype="float32")[Y[:4]]
    _, loss, terms = model.compute_terms(X[:4], onehot, Y[:4], None)
    np.testing.assert_allclose(model.soft_labels.numpy(), expected, atol=1e-5)
    hand = 0.5 * cross_entropy(onehot, z[:4]) + 0.5 * cross_entropy(expected[Y[:4]], z[:4])
    np.testing.assert_allclose(loss.numpy(), hand, rtol=1e-5)
    assert correct.any() and not correct.all()


@pytest.mark.parametrize("method", ["pskd", "ols"])
def test_self_distillation_methods_save_load_and_export(tmp_path, method):
    from keras_introspect.methods import registry

    model = registry.build_method(method, tiny_backbone(seed=3), num_examples=24)
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"])
    model.fit(with_ids() if method == "pskd" else tf.data.Dataset.from_tensor_slices((X, Y)).batch(8), epochs=2,
              verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded) is type(model) and loaded.get_config()["alpha"] == model.get_config()["alpha"]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    served = tf.saved_model.load(ki.export.export_saved_model(model, tmp_path / "export"))
    probabilities = served.signatures["serving_default"](images=tf.constant(X[:3]))["probabilities"]
    np.testing.assert_allclose(probabilities.numpy(), softmax(model.backbone(X[:3]).numpy()), atol=1e-5)
