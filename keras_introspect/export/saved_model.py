"""TF SavedModel export with a `serving_default` and an `explain` signature."""

import os
import shutil

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import explainers as explainer_lib
from keras_introspect.data.preprocessing import as_mean_std
from keras_introspect.errors import InputError, check_finite_weights
from keras_introspect.paths import inside


def export_saved_model(model, path, explainer=None, normalization=None, overwrite=False):
    """Write `model` as a TF SavedModel for TensorFlow Serving.

    Signatures:
        `serving_default(images) -> {"probabilities"}`: class probabilities.
        `explain(images, class_index) -> {"probabilities", "class_index",
        "explanation"}`: the self-explanation map for `class_index` per image
        (`-1` = the predicted class). Out-of-range indices fail with an error.

    Args:
        model: a library method model (e.g. `IntrospectiveModel`) or a graph
            backbone.
        path: output directory.
        explainer: the explainer for the `explain` signature; default the
            model's own (`model.explainer`) or `CAM()`; an explainer or its name.
        normalization: optional `(mean, std)` per channel, or a dict with
            `mean` and `std` (`DataSplits.normalization`), as used in
            training (`DataSplits.mean`, `.std`). The signatures then take raw
            images (e.g. pixel values 0–255) and normalize them themselves.
        overwrite: replace a SavedModel (or any non-empty directory) already at
            `path`; refused otherwise. The new export is written beside it and
            takes its place only once complete.

    Returns:
        The path written.

    Raises:
        InputError: `path` is not empty and `overwrite` is False; the
            normalization is not finite, has a std ≤ 0 or does not match the
            model's channels.

    Example:
    >>> export_saved_model(model, "exported/")
    >>> served = tf.saved_model.load("exported/")
    >>> served.signatures["explain"](images=x, class_index=tf.constant([-1] * len(x)))
    """
    if not str(path).strip():
        raise InputError("export path is empty; name a folder for the SavedModel.")
    path = os.path.normpath(os.path.expanduser(str(path)))
    if inside(os.getcwd(), path):
        raise InputError(f"export path {path!r} is the current directory or holds it; name a sub-folder.")
    if os.path.islink(path):
        raise InputError(f"export path {path!r} is a symbolic link; give the folder it points to "
                         f"({os.path.realpath(path)!r}) or another path.")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"export path {path!r} is a file; a SavedModel is a folder: give another path.")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)) and not overwrite:
        raise InputError(f"{path} exists and is not empty; pass overwrite=True to replace it, or export elsewhere.")
    backbone = getattr(model, "backbone", model)
    num_classes = backbones.check_classifier(backbone)
    check_finite_weights(backbone)
    explainer = explainer_lib.get(explainer or getattr(model, "explainer", None) or "cam")
    explainer.source_layer(backbone)  # fails early for a backbone the explainer cannot read
    logits_view = backbones.tap_model(backbone)
    input_shape = tuple(backbone.inputs[0].shape[1:])

    archive = keras.export.ExportArchive()
    track_variables(archive, backbone)  # logits_view shares them
    images_spec = tf.TensorSpec(None, tf.float32, name="images")  # shape checked at run time: see `checked`

    normalization = as_mean_std(normalization, channels=input_shape[-1])
    if normalization is not None:
        mean = tf.constant(normalization[0], tf.float32)
        std = tf.constant(normalization[1], tf.float32)

    def normalize(images):
        return images if normalization is None else (images - mean) / std

    def checked(images):
        """`images` after run-time checks of its shape, with that shape made static.

        The signatures declare no shape: a loaded signature does not enforce a
        declared one, and a tensor of another rank would then reach kernels
        that abort the server instead of answering with an error.
        """
        shape = ", ".join(map(str, input_shape))
        expected = tf.constant(input_shape, tf.int32)
        # Padded to four entries, the comparison is valid whatever rank arrives.
        size = tf.concat([tf.shape(images), [-1, -1, -1, -1]], axis=0)[:4]
        fits = tf.logical_and(tf.equal(tf.rank(images), 4), tf.reduce_all(tf.equal(size[1:], expected)))
        check = tf.debugging.Assert(fits, [f"images must have shape (batch, {shape}): a batch of images, one more "
                                           "axis than a single image; got shape", tf.shape(images)])
        with tf.control_dependencies([check]):
            nonempty = tf.debugging.Assert(size[0] > 0, ["images must hold at least one image"])
        with tf.control_dependencies([nonempty]):
            return tf.ensure_shape(images, (None, *input_shape))

    def probabilities(images):
        logits = backbones.call_taps(logits_view, images)[-1]
        return tf.nn.softmax(tf.cast(logits, tf.float32))

    @tf.function(input_signature=[images_spec])
    def serve(images):
        return {"probabilities": probabilities(normalize(checked(images)))}

    @tf.function(input_signature=[images_spec, tf.TensorSpec(None, tf.int32, name="class_index")])
    def explain(images, class_index):
        # A scalar becomes a list of one, which then meets the one-entry-per-image check.
        class_index = tf.reshape(class_index, [-1])
        images = normalize(checked(images))
        probs = probabilities(images)
        checks = [
            tf.debugging.assert_equal(tf.shape(class_index)[0], tf.shape(images)[0],
                                      message="class_index must have one entry per image"),
            tf.debugging.assert_less(class_index, num_classes,
                                     message=f"class_index must be < {num_classes} (or -1 for the predicted class)"),
            tf.debugging.assert_greater_equal(class_index, -1, message="class_index must be >= -1"),
        ]
        with tf.control_dependencies([c for c in checks if c is not None]):
            class_index = tf.identity(class_index)
        predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
        chosen = tf.where(class_index < 0, predicted, class_index)
        maps = explainer.explain_batch(backbone, images, chosen[:, None])[:, 0]
        return {"probabilities": probs, "class_index": chosen, "explanation": maps}

    archive.add_endpoint("serve", serve)
    archive.add_endpoint("explain", explain)
    if not os.path.exists(path):
        archive.write_out(path, verbose=False)
        return path
    # Replacing: the old export stays whole until the new one is complete.
    staging = f"{path}.writing-{os.getpid()}"
    try:
        archive.write_out(staging, verbose=False)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replaced = f"{path}.replaced-{os.getpid()}"
    os.rename(path, replaced)
    os.rename(staging, path)
    shutil.rmtree(replaced) if os.path.isdir(replaced) else os.remove(replaced)
    return path


def track_variables(archive, model):
    """`archive.track(model)` for a model whose weights are all Keras variables, storing each once.

    `track()` records Keras's variable wrappers while the traced endpoints capture the
    `tf.Variable`s inside them: two objects per weight, which TensorFlow's checkpoint cannot
    de-duplicate, so every weight was written twice (2× the SavedModel's size and 2× the
    variables' memory in TF Serving; keras-team/keras#23553). Tracking the `tf.Variable`s
    themselves writes each once, and `loaded.variables` still lists them.
    """
    for collection, variables in ((archive.variables, model.variables),
                                  (archive.trainable_variables, model.trainable_variables),
                                  (archive.non_trainable_variables, model.non_trainable_variables)):
        collection.extend(_tf_variable(variable) for variable in variables)


def _tf_variable(variable):
    inner = getattr(variable, "value", None) if isinstance(variable, keras.Variable) else None
    return inner if isinstance(inner, tf.Variable) else variable
