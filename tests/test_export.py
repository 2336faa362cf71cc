"""SavedModel export: serving_default and explain signatures."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_backbone

import keras_introspect as ki
from keras_introspect.errors import InputError
from keras_introspect.export import export_saved_model

# One test process runs this file: its module-scoped fixtures are built once (pytest.ini: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_export")


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
    import subprocess
    import sys

    # through the running interpreter: a kernel's PATH need not hold the environment's bin/ (issue 13)
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    path = export_saved_model(model, tmp_path / "model")
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "classes.npy", np.array([-1, 0, 1, 2], "int32"))
    show = subprocess.run([*cli, "show", "--dir", path, "--all"], capture_output=True, text=True, check=True).stdout
    assert "signature_def['serving_default']" in show and "signature_def['explain']" in show
    for signature, inputs in [
        ("serving_default", f"images={tmp_path / 'images.npy'}"),
        ("explain", f"images={tmp_path / 'images.npy'};class_index={tmp_path / 'classes.npy'}"),
    ]:
        run = subprocess.run(
            [*cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", signature,
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


def test_every_weight_is_stored_once(tmp_path, images):
    """Keras's own tracking would write each weight twice (keras-team/keras#23553)."""
    backbone = tiny_backbone(seed=6, batchnorm=True)
    path = export_saved_model(backbone, tmp_path / "model")
    reader = tf.train.load_checkpoint(str(tmp_path / "model" / "variables" / "variables"))
    stored = {key: shape for key, shape in reader.get_variable_to_shape_map().items() if key.endswith("VARIABLE_VALUE")}
    assert sum(int(np.prod(shape)) for shape in stored.values()) == sum(int(np.prod(w.shape)) for w in backbone.weights)
    served = tf.saved_model.load(path)
    assert len(served.variables) == len(backbone.weights)
    assert len(served.trainable_variables) == len(backbone.trainable_weights)
    values = sorted(v.numpy().tobytes() for v in served.variables)
    assert values == sorted(w.numpy().tobytes() for w in backbone.weights)
    out = served.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(out, keras.ops.softmax(backbone.predict(images, verbose=0)).numpy(), atol=1e-5)


def test_normalization_is_applied_inside_the_signatures(tmp_path, images):
    model = ki.IntrospectiveModel(tiny_backbone(seed=6))
    mean, std = np.array([120.0, 110.0, 100.0], "float32"), np.array([60.0, 50.0, 70.0], "float32")
    raw = images * std + mean
    served = tf.saved_model.load(export_saved_model(model, tmp_path / "m", normalization=(mean, std)))
    probs = served.signatures["serving_default"](images=tf.constant(raw))["probabilities"].numpy()
    np.testing.assert_allclose(probs, keras.ops.softmax(model.predict(images, verbose=0)), atol=1e-5)
    maps = served.signatures["explain"](images=tf.constant(raw), class_index=tf.constant([1, 1, 1, 1]))["explanation"]
    np.testing.assert_allclose(maps.numpy(), model.explain(images, classes=np.ones(4, "int32")), atol=1e-5)
    # the dict of DataSplits.normalization, through Keras's own model.export
    model.export(str(tmp_path / "keras_way"), normalization={"mean": mean.tolist(), "std": std.tolist()})
    served = tf.saved_model.load(str(tmp_path / "keras_way"))
    np.testing.assert_allclose(served.signatures["serving_default"](images=tf.constant(raw))["probabilities"], probs,
                               atol=1e-6)
    with pytest.raises(InputError, match="normalization must be \\(mean, std\\) per channel .* got float"):
        export_saved_model(model, tmp_path / "bad", normalization=0.5)
    assert not (tmp_path / "bad").exists()


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


# -- TF Serving's layout and REST examples ----------------------------------------------------

def test_export_for_serving_writes_numbered_versions_and_never_overwrites(tmp_path, images):

    model = ki.IntrospectiveModel(tiny_backbone(seed=5))
    first = ki.export.export_for_serving(model, tmp_path, "il")
    assert first == str(tmp_path / "il" / "1") and (tmp_path / "il" / "1" / "saved_model.pb").is_file()
    (tmp_path / "il" / "README.md").write_text("TF Serving ignores what is not a number")
    assert ki.export.export_for_serving(model, tmp_path, "il") == str(tmp_path / "il" / "2")
    assert ki.export.export_for_serving(model, tmp_path, "il", version=7).endswith("7")
    assert ki.export.versions(tmp_path / "il") == [1, 2, 7]
    stamp = (tmp_path / "il" / "1" / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(InputError, match="version 2 of 'il' is already exported"):
        ki.export.export_for_serving(model, tmp_path, "il", version=2)
    assert (tmp_path / "il" / "1" / "saved_model.pb").stat().st_mtime_ns == stamp
    for bad in (0, -1, "3", 1.5, True):
        with pytest.raises(InputError, match="positive integer"):
            ki.export.export_for_serving(model, tmp_path, "il", version=bad)
    for bad in ("", "a/b", "../up", " il"):
        with pytest.raises(InputError, match="model name"):
            ki.export.export_for_serving(model, tmp_path, bad)
    with pytest.raises(InputError, match="lacks \\['std'\\]"):
        ki.export.export_for_serving(model, tmp_path, "x", normalization={"mean": [0, 0, 0]})


def test_rest_example_round_trips_through_the_signatures(tmp_path, images):
    import json

    model = ki.IntrospectiveModel(tiny_backbone(seed=6))
    mean, std = np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 70.0])
    raw = np.round(images * std + mean)  # whole pixel values, as a photo has
    path = ki.export.export_for_serving(model, tmp_path, "il", normalization={"mean": mean, "std": std})
    served = tf.saved_model.load(path)
    request_path, response_path = ki.export.write_rest_example(served, raw[:2], tmp_path)
    body = json.loads(open(request_path).read())
    assert body["signature_name"] == "explain" and body["inputs"]["class_index"] == [-1, -1]
    assert isinstance(body["inputs"]["images"][0][0][0][0], int)  # raw 0-255 pixels, not normalized floats
    response = json.loads(open(response_path).read())["outputs"]
    assert np.asarray(response["probabilities"]).shape == (2, 5)
    assert np.asarray(response["explanation"]).shape == (2, *model.explain(images[:1]).shape[1:])
    # independent of the helper: the model itself, on the normalized pixels
    x = ((raw[:2] - mean) / std).astype("float32")
    np.testing.assert_allclose(response["probabilities"], keras.ops.softmax(model.predict(x, verbose=0)), atol=1e-5)
    np.testing.assert_array_equal(response["class_index"], np.argmax(model.predict(x, verbose=0), -1))
    default = ki.export.call_like_serving(served, ki.export.rest_request(raw[:3]))
    assert np.asarray(default["outputs"]).shape == (3, 5)  # one output: a bare list, as TF Serving answers
    with pytest.raises(InputError, match="must be a batch"):
        ki.export.rest_request(raw[0])
