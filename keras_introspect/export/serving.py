"""TensorFlow Serving's model layout: `<base>/<name>/<version>/`, plus REST examples.

TF Serving watches a model's base directory (`--model_base_path`, or
`/models/<MODEL_NAME>` in its Docker image) and serves the highest numbered
sub-directory; anything else in the base directory is ignored. So an export
for serving goes into a new integer version folder, and an existing version is
never written over: a newer model is a new version that the server picks up.
"""

import json
import os
import re

import numpy as np

from keras_introspect.errors import InputError
from keras_introspect.export.saved_model import export_saved_model

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model_name(name):
    """Refuse a model name TF Serving cannot take as a folder and a URL part."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"model name {name!r}: use letters, digits, '_', '.' or '-' (it becomes a URL part)")
    return name


def versions(model_dir):
    """The integer versions present in a TF Serving model directory, ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit() and os.path.isdir(os.path.join(model_dir, n)))


def export_for_serving(model, base_dir, name, version=None, normalization=None, explainer=None):
    """Export `model` as version `version` of model `name` under `base_dir`.

    Writes `base_dir/name/version/` (a SavedModel with the `serving_default`
    and `explain` signatures of `export_saved_model`), which TensorFlow
    Serving serves with `--model_name=name --model_base_path=base_dir/name`.

    Args:
        model: a library method model or a graph backbone.
        base_dir: the directory that holds the models (TF Serving's
            `--model_config_file` root, or `/models` in its Docker image).
        name: the model's name in request URLs (`/v1/models/<name>:predict`).
        version: a positive integer; default one more than the highest
            version present (1 for a new model). An existing version is
            refused rather than overwritten.
        normalization: `(mean, std)` per channel, or a dict with `mean` and
            `std` (e.g. `DataSplits.normalization`): the training
            normalization, applied inside the signatures so that requests carry
            raw 0–255 pixels. Without it the signatures expect inputs
            normalized as in training.
        explainer: the `explain` signature's explainer (default the model's).

    Returns:
        The version directory written.

    Example:
    >>> path = export_for_serving(model, "serving", "il", normalization=splits.normalization)
    >>> path
    'serving/il/1'
    """
    check_model_name(name)
    model_dir = os.path.join(base_dir, name)
    present = versions(model_dir)
    if version is None:
        version = (present[-1] + 1) if present else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise InputError(f"version must be a positive integer (TF Serving's folder name); got {version!r}")
    path = os.path.join(model_dir, str(int(version)))
    if os.path.exists(path):
        raise InputError(f"{path} exists: version {version} of {name!r} is already exported. Export a new "
                         "version (leave version=None for the next one) instead of overwriting it.")
    return export_saved_model(model, path, explainer=explainer, normalization=normalization)


def rest_request(images, class_index=None):
    """The JSON body of a TF Serving REST `:predict` request for raw images.

    Args:
        images: `(batch, H, W, C)` raw pixel values (0–255).
        class_index: for the `explain` signature, one class per image (`-1` =
            the predicted class); None for `serving_default`.

    Returns:
        A dict to send as JSON ("columnar" `inputs` format). Whole pixel values
        are written as integers, which TF Serving reads into the float input.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise InputError(f"images must be a batch (batch, height, width, channels); got shape {images.shape}")
    pixels = images.astype(np.int64).tolist() if np.array_equal(images, np.round(images)) else images.tolist()
    if class_index is None:
        return {"signature_name": "serving_default", "inputs": {"images": pixels}}
    return {"signature_name": "explain",
            "inputs": {"images": pixels, "class_index": np.asarray(class_index, np.int64).reshape(-1).tolist()}}


def call_like_serving(served, body):
    """Run a REST request body against a loaded SavedModel, as TF Serving would.

    Returns the response body TF Serving sends for a columnar request:
    `{"outputs": {...}}` with one entry per signature output (a bare list when
    the signature has one output).
    """
    import tensorflow as tf

    signature = served.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    inputs = {k: tf.constant(np.asarray(v), specs[k].dtype) for k, v in body["inputs"].items()}
    outputs = {k: v.numpy().tolist() for k, v in signature(**inputs).items()}
    return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}


def write_rest_example(served, images, directory, class_index=-1):
    """Write `request.json` and `response.json` for one real request.

    The response is what the loaded SavedModel returns for the request's body
    (`call_like_serving`), so the pair is a checked example, not a sketch.
    Returns the two paths.
    """
    body = rest_request(images, [class_index] * len(images))
    paths = os.path.join(directory, "request.json"), os.path.join(directory, "response.json")
    with open(paths[0], "w") as f:
        json.dump(body, f, separators=(",", ":"))
    with open(paths[1], "w") as f:
        json.dump(call_like_serving(served, body), f, separators=(",", ":"))
    return paths
