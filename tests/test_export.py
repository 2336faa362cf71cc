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
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must have shape \(batch, 8, 8, 3\)"):
        served.signatures["serving_default"](images=tf.zeros((2, 8, 8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        served.signatures["serving_default"](images=tf.zeros((2, 8, 8, 3), tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one more axis than a single image"):
        served.signatures["serving_default"](images=tf.zeros((8, 8, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one image"):
        served.signatures["serving_default"](images=tf.zeros((0, 8, 8, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per image"):
        explain(images=tf.constant(images), class_index=tf.constant(1))


def test_explainer_by_name_and_no_export_of_a_diverged_model(tmp_path, images):
    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    served = tf.saved_model.load(export_saved_model(model, tmp_path / "named", explainer="grad_cam"))
    maps = served.signatures["explain"](images=tf.constant(images), class_index=tf.constant([0, 1, 2, 3]))
    expected = ki.explainers.GradCAM()(model, images, np.array([0, 1, 2, 3]))[:, 0]
    np.testing.assert_allclose(maps["explanation"].numpy(), expected, atol=1e-5)
    kernel = model.backbone.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(ki.methods.base.NonFiniteLossError, match="NaN or infinite values"):
        export_saved_model(model, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_saved_model_cli_runs_both_signatures(tmp_path, images):
    import shutil
    import subprocess

    cli = shutil.which("saved_model_cli")
    assert cli, "saved_model_cli is installed with TensorFlow"
    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    path = export_saved_model(model, tmp_path / "model")
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "classes.npy", np.array([-1, 0, 1, 2], "int32"))
    show = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True, check=True).stdout
    assert "signature_def['serving_default']" in show and "signature_def['explain']" in show
    for signature, inputs in [
        ("serving_default", f"images={tmp_path / 'images.npy'}"),
        ("explain", f"images={tmp_path / 'images.npy'};class_index={tmp_path / 'classes.npy'}"),
    ]:
        run = subprocess.run(
            [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", signature,
             "--inputs", inputs, "--outdir", str(tmp_path / signature)],
            capture_output=True, text=True,
        )
        assert run.returncode == 0, run.stderr[-2000:]
    probs = np.load(tmp_path / "serving_default" / "probabilities.npy")
    np.testing.assert_allclose(probs, keras.ops.softmax(model.predict(images, verbose=0)), atol=1e-5)
    maps = np.load(tmp_path / "explain" / "explanation.npy")
    np.testing.assert_allclose(maps[1:], model.explain(images[1:], classes=np.array([0, 1, 2])), atol=1e-5)


TRAINING_OPS = ("AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp", "ResourceApplyGradientDescent",
                "ResourceApplyKerasMomentum", "ResourceApplyMomentum")


def test_serving_graph_has_no_training_ops(exported):
    _, served = exported
    for name in ("serving_default", "explain"):
        graph = served.signatures[name].graph.as_graph_def()
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        ops = {n.op for n in nodes}
        assert not ops & set(TRAINING_OPS), (name, ops & set(TRAINING_OPS))
        for node in nodes:
            if node.op.startswith("FusedBatchNorm"):
                assert not node.attr["is_training"].b


def test_normalization_is_applied_inside_the_signatures(tmp_path, images):
    model = ki.IntrospectiveModel(tiny_backbone(seed=6))
    mean, std = np.array([120.0, 110.0, 100.0], "float32"), np.array([60.0, 50.0, 70.0], "float32")
    raw = images * std + mean
    served = tf.saved_model.load(export_saved_model(model, tmp_path / "m", normalization=(mean, std)))
    probs = served.signatures["serving_default"](images=tf.constant(raw))["probabilities"].numpy()
    np.testing.assert_allclose(probs, keras.ops.softmax(model.predict(images, verbose=0)), atol=1e-5)
    maps = served.signatures["explain"](images=tf.constant(raw), class_index=tf.constant([1, 1, 1, 1]))["explanation"]
    np.testing.assert_allclose(maps.numpy(), model.explain(images, classes=np.ones(4, "int32")), atol=1e-5)


def test_keras_model_export_works_and_agrees_with_export_saved_model(tmp_path, images):
    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    model.export(str(tmp_path / "keras_way"))
    ours = tf.saved_model.load(export_saved_model(model, tmp_path / "library_way"))
    theirs = tf.saved_model.load(str(tmp_path / "keras_way"))
    for name, args in [("serving_default", {"images": tf.constant(images)}),
                       ("explain", {"images": tf.constant(images), "class_index": tf.constant([-1, 0, 1, 2])})]:
        a, b = ours.signatures[name](**args), theirs.signatures[name](**args)
        for key in a:
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6)
    standard = ki.StandardModel(tiny_backbone(seed=5))
    standard.export(str(tmp_path / "standard"))
    served = tf.saved_model.load(str(tmp_path / "standard")).signatures["serving_default"]
    np.testing.assert_allclose(served(images=tf.constant(images))["probabilities"].numpy(),
                               keras.ops.softmax(standard.predict(images, verbose=0)), atol=1e-5)
