"""Inspecting a classifier: its logits, its layers, and views that tap them.

Every method in this library wraps a *backbone*: a Functional or Sequential
`keras.Model` that maps images to class scores. The explainers need two
things the backbone does not hand out directly: the pre-softmax logits (a
backbone may end in a softmax) and the output of an inner layer (Grad-CAM,
CAM). This module builds those views once, sharing the backbone's layers and
weights, so a single forward pass yields everything a training step needs.
"""

import weakref

import keras
import tensorflow as tf
from keras import ops

from keras_introspect.errors import InputError

class BackboneError(InputError):
    """Raised when a model cannot serve as a classifier backbone."""


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def _probe(num_classes):
    """Logit-like rows (seeded, well spread) on which a softmax is recognised by its values."""
    return tf.random.stateless_normal((3, num_classes), seed=(7, 11)) * 3.0


def computes_softmax(fn, num_classes):
    """Whether `fn` maps a `(batch, classes)` tensor to its softmax over the last axis.

    Checked on values, not names: `tf.nn.softmax` (named `softmax_v2`),
    `keras.activations.softmax`, `"softmax"` and a lambda calling either all
    pass; an identity, sigmoid or a softmax over another axis does not.
    """
    with tf.init_scope():  # evaluated eagerly, also when asked while a step is traced
        z = _probe(num_classes)
        try:
            out = tf.convert_to_tensor(fn(z))
        except Exception:  # not a function of one tensor: not a softmax
            return False
        if tuple(out.shape) != tuple(z.shape):
            return False
        return bool(tf.reduce_all(tf.abs(tf.cast(out, tf.float32) - tf.nn.softmax(z)) < 1e-5))


def ends_in_softmax(backbone):
    """Whether the backbone's last layer applies a softmax (so logits are its pre-softmax values).

    Recognised by what the last layer computes: a `Softmax` layer, an
    `Activation`/`Lambda` layer whose function is a softmax, or a layer whose
    `activation` is one (`Dense(10, activation=tf.nn.softmax)`).

    Args:
        backbone: a built Functional or Sequential `keras.Model`.
    """
    last = backbone.layers[-1]
    classes = backbone.outputs[0].shape[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    if classes is None or len(backbone.outputs[0].shape) != 2:
        return False
    if isinstance(last, keras.layers.Lambda):
        return computes_softmax(last, classes)
    activation = getattr(last, "activation", None)
    return activation is not None and computes_softmax(activation, classes)


def outputs_look_like_probabilities(backbone):
    """Whether the backbone's outputs on random inputs are non-negative rows summing to 1."""
    with tf.init_scope():
        shape = [2 if d is None else d for d in backbone.inputs[0].shape]
        x = tf.random.stateless_normal(shape, seed=(3, 5))
        out = tf.cast(tf.nest.flatten(backbone(x, training=False))[0], tf.float32)
        return bool(tf.reduce_all(out >= 0.0)) and bool(tf.reduce_all(tf.abs(tf.reduce_sum(out, -1) - 1.0) < 1e-4))


@keras.saving.register_keras_serializable(package="keras_introspect")
class PreActivation(keras.layers.Layer):
    """Calls a layer with its activation bypassed, sharing its weights.

    Used to recover logits from a `Dense(..., activation="softmax")` head
    without changing the user's model.

    Args:
        layer: a built layer with an `activation` attribute.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.wrapped = layer

    def call(self, inputs):
        activation = self.wrapped.activation
        # Swapping the attribute for the duration of the call is the only
        # generic way to reuse a layer's own `call` (Dense, Conv, EinsumDense)
        # without its activation.
        self.wrapped.activation = keras.activations.linear
        try:
            return self.wrapped.call(inputs)
        finally:
            self.wrapped.activation = activation


_CHECKED = weakref.WeakKeyDictionary()


def check_classifier(backbone):
    """Validate that `backbone` is a built classifier with graph access (once per backbone).

    Args:
        backbone: the model to check.

    Returns:
        The number of classes.

    Raises:
        BackboneError: naming what is wrong with the model.
    """
    if not isinstance(backbone, keras.Model):
        raise BackboneError(
            f"The backbone must be a keras.Model, got {type(backbone).__name__}."
        )
    if backbone not in _CHECKED:
        _CHECKED[backbone] = _check_classifier(backbone)
    return _CHECKED[backbone]


def _check_classifier(backbone):
    if isinstance(backbone, keras.Sequential) and not is_graph_model(backbone):
        raise BackboneError(
            f"The Sequential backbone {backbone.name!r} has no input yet, so its logits and layers cannot be "
            "tapped: start it with keras.Input(shape), e.g. keras.Sequential([keras.Input((32, 32, 3)), ...])."
        )
    if not is_graph_model(backbone):
        raise BackboneError(
            f"The backbone {backbone.name!r} is a subclassed model. keras-introspect "
            "needs a Functional or Sequential model (built with an Input) so that it "
            "can read its logits and inner layers. Wrap your layers with the "
            "Functional API, e.g. keras.Model(inputs, outputs)."
        )
    if len(backbone.outputs) != 1:
        raise BackboneError(
            f"The backbone {backbone.name!r} has {len(backbone.outputs)} outputs; "
            "a classifier with exactly one output of shape (batch, classes) is needed."
        )
    shape = tuple(backbone.outputs[0].shape)
    if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
        raise BackboneError(
            f"The backbone {backbone.name!r} outputs shape {shape}; a classifier "
            "giving logits or softmax probabilities of shape (batch, classes) with "
            "at least 2 classes is needed."
        )
    squashed = squashing_head(backbone)
    if squashed:
        raise BackboneError(
            f"The backbone {backbone.name!r} ends in {squashed}; keras-introspect needs logits "
            "(no activation) or a softmax output."
        )
    if not ends_in_softmax(backbone) and outputs_look_like_probabilities(backbone):
        raise BackboneError(
            f"The backbone {backbone.name!r} outputs probabilities, but its last layer "
            f"({type(backbone.layers[-1]).__name__} {backbone.layers[-1].name!r}) is not one whose "
            "logits can be recovered. End the model in Dense(classes) (logits), or put the softmax "
            "in a layer of its own: keras.layers.Softmax() or Dense(classes, activation='softmax')."
        )
    return int(shape[-1])


PARAMETER_FREE_HEADS = (keras.layers.Activation, keras.layers.Lambda, keras.layers.ReLU, keras.layers.LeakyReLU,
                        keras.layers.ELU, keras.layers.PReLU)


def squashing_head(backbone):
    """A description of the last layer when it squashes logits (sigmoid, ReLU, tanh, softplus, ...), else None.

    Decided by what it computes, as the softmax check is: its activation (or, for a
    parameter-free layer such as `ReLU()` or `Lambda(tf.math.sigmoid)`, the layer itself) is
    applied to spread logit-like values; outputs that are all non-negative or all within
    [-1, 1] are not logits.
    """
    last = backbone.layers[-1]
    classes = backbone.outputs[0].shape[-1]
    if ends_in_softmax(backbone) or classes is None:
        return None
    if isinstance(last, PARAMETER_FREE_HEADS) and not isinstance(last, keras.layers.PReLU):
        function = last
    else:
        function = getattr(last, "activation", None)
        if function is None or function in (keras.activations.linear,):
            return None
    with tf.init_scope():
        z = _probe(classes)
        try:
            out = tf.cast(tf.convert_to_tensor(function(z)), tf.float32)
        except Exception:  # not a function of one (batch, classes) tensor: leave it to the other checks
            return None
        if tuple(out.shape) != tuple(z.shape) or bool(tf.reduce_all(tf.abs(out - z) < 1e-6)):
            return None  # an identity
        if bool(tf.reduce_all(out >= 0.0)) or bool(tf.reduce_all(tf.abs(out) <= 1.0)):
            name = _activation_name(last) or type(last).__name__
            return f"a layer that squashes its outputs ({type(last).__name__} {last.name!r}, {name})"
    return None


def check_channels_last(backbone):
    """Refuse a backbone with `channels_first` layers for the explainers that read feature maps.

    CAM and Grad-CAM treat a feature map as `(batch, height, width, channels)`; on a
    `channels_first` map they would silently average over the wrong axes.

    Raises:
        BackboneError: naming the first such layer.
    """
    for layer in [backbone, *getattr(backbone, "_flatten_layers", lambda: [])()]:
        if getattr(layer, "data_format", None) == "channels_first":
            raise BackboneError(
                f"The backbone {backbone.name!r} has channels_first layers ({type(layer).__name__} {layer.name!r}); "
                "CAM and Grad-CAM read (batch, height, width, channels) maps. Build it channels_last, or use an "
                "input-gradient explainer (vanilla_gradients, gradient_input)."
            )


def check_batch(backbone, x, what="explain"):
    """Refuse inputs that are not a batch of what `backbone` takes (one image without its batch axis, say).

    Raises:
        InputError: naming the expected and the given shapes.
    """
    expected = tuple(backbone.inputs[0].shape[1:])
    if not hasattr(x, "shape"):
        raise InputError(f"{what} takes one array or tensor of shape (batch, {', '.join(map(str, expected))}); got a "
                         f"{type(x).__name__} (stack a list with np.stack; for a tf.data.Dataset, call it on each "
                         "batch).")
    shape = tuple(x.shape)
    if len(shape) == len(expected) and all(e is None or e == g for e, g in zip(expected, shape)):
        raise InputError(f"{what} takes a batch of shape (batch, {', '.join(map(str, expected))}); got one input of "
                         f"shape {shape}: add the batch axis (x[None]).")
    if len(shape) != len(expected) + 1:
        raise InputError(f"{what} takes a batch of shape (batch, {', '.join(map(str, expected))}); got shape {shape}.")


def is_graph_model(model):
    """True for models whose layer graph can be tapped (Functional, Sequential with an Input)."""
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def logits_tensor(backbone):
    """The symbolic pre-softmax logits of a graph backbone."""
    last = backbone.layers[-1]
    output = backbone.outputs[0]
    if not ends_in_softmax(backbone):
        return output
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation, keras.layers.Lambda)):
        return last.input
    return PreActivation(last, name=f"{last.name}_logits")(last.input)


# A layer inside a nested model (a Keras Applications base used as a layer) is addressed as "base/inner".
SEPARATOR = "/"


def model_input(model):
    """What to build a view on: the model's single input tensor (or its list of inputs).

    `model.inputs`, not `model.input`: a `keras.Sequential` built with an `Input` has the former
    but raises on the latter ("has never been called and thus has no defined input").
    """
    inputs = model.inputs
    return inputs[0] if len(inputs) == 1 else inputs


def nested_models(backbone):
    """The graph models used as layers of `backbone` (e.g. a Keras Applications base)."""
    return [layer for layer in backbone.layers if isinstance(layer, keras.Model) and is_graph_model(layer)]


def conv_layer_names(backbone):
    """Names of the layers with a rank-4 (batch, height, width, channels) output.

    A nested model's own rank-4 layers are listed as `"base/inner"`, before the base itself.
    """
    names = []
    nested = nested_models(backbone)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer in nested:
            names.extend(f"{layer.name}{SEPARATOR}{inner}" for inner in conv_layer_names(layer))
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            names.append(layer.name)
    return names


def last_conv_layer_name(backbone):
    """The last layer with a spatial (rank-4) output: Grad-CAM's default target."""
    names = conv_layer_names(backbone)
    if not names:
        raise BackboneError(
            f"The backbone {backbone.name!r} has no layer with a (batch, height, "
            "width, channels) output, so Grad-CAM/CAM cannot be applied; use an "
            "input-gradient explainer instead."
        )
    return names[-1]


def get_layer(backbone, name):
    """`backbone.get_layer(name)`, also for `"base/inner"` (a layer inside a nested model), with an
    error that lists the valid names."""
    try:
        if SEPARATOR in name:
            base, inner = name.split(SEPARATOR, 1)
            base = backbone.get_layer(base)
            if base not in nested_models(backbone):
                raise ValueError(f"{base.name} is not a nested model")
            return get_layer(base, inner)
        return backbone.get_layer(name)
    except (ValueError, BackboneError):
        spatial = conv_layer_names(backbone)
        bases = [model.name for model in nested_models(backbone)]
        raise BackboneError(
            f"The backbone {backbone.name!r} has no layer named {name!r}. "
            f"Spatial layers near the end are: {', '.join(spatial[-8:])}"
            + (f"; a layer inside the nested model(s) {', '.join(bases)} is addressed as "
               f"'{bases[0]}{SEPARATOR}<layer>' ({len(spatial) - 8} more spatial names: "
               "backbones.conv_layer_names)." if bases else ".")
        ) from None


def graph_output(backbone, name):
    """The output of layer `name` in `backbone`'s own graph.

    For a nested model `layer.output` is the output of *its* graph, which is not connected to the
    backbone's inputs; its call in the backbone's graph is the one node Keras records for it.
    """
    layer = get_layer(backbone, name)
    if layer not in nested_models(backbone):
        return layer.output
    return outer_call(backbone, layer).output_tensors[0]


def outer_call(backbone, model):
    """The one call of a nested `model` in `backbone`'s graph (its Keras node: input and output tensors)."""
    nodes = model._inbound_nodes  # Keras keeps no public handle on a nested model's call
    if len(nodes) != 1:
        raise BackboneError(f"The nested model {model.name!r} is called {len(nodes)} times in {backbone.name!r}; "
                            "explanations need a model called once.")
    return nodes[0]


def gap_dense_head(backbone):
    """Find a global-average-pool → Dense head, the structure CAM needs.

    Returns:
        `(feature_layer_name, dense_layer)`: the layer whose output is pooled
        and the Dense layer producing the logits.

    Raises:
        BackboneError: if the head has another structure.
    """
    check_channels_last(backbone)
    dense = backbone.layers[-1]
    if ends_in_softmax(backbone) and isinstance(dense, (keras.layers.Softmax, keras.layers.Activation,
                                                        keras.layers.Lambda)):
        dense = _producer(dense)
    dense = _skip_dropout(dense)
    if not isinstance(dense, keras.layers.Dense):
        raise BackboneError(
            f"CAM needs a GlobalAveragePooling2D → Dense head; the backbone "
            f"{backbone.name!r} ends in {type(dense).__name__}. Use GradCAM instead."
        )
    pool = _skip_dropout(_producer(dense))
    if not isinstance(pool, keras.layers.GlobalAveragePooling2D):
        raise BackboneError(
            f"CAM needs a GlobalAveragePooling2D → Dense head; the Dense layer "
            f"{dense.name!r} is fed by {type(pool).__name__}. Use GradCAM instead."
        )
    return _producer(pool).name, dense


def _skip_dropout(layer):
    """The first layer at or before `layer` that is not a Dropout."""
    while isinstance(layer, keras.layers.Dropout):
        layer = _producer(layer)
    return layer


def _producer(layer):
    """The layer whose output feeds `layer` (single-input layers only).

    Read from the input tensor's `_keras_history` (private): the public route, matching
    `layer.input` against each layer's `output`, fails for a nested base (its `output` is its
    inner graph's tensor, not the outer call's) and for Sequential models (tested in
    tests/test_user_backbones.py).
    """
    return layer.input._keras_history.operation


def tap_model(backbone, layer_names=()):
    """A Functional view returning `[*layer outputs, logits]` in one pass.

    Args:
        backbone: a checked graph backbone.
        layer_names: inner layers whose outputs to return first.

    Returns:
        A `keras.Model` sharing the backbone's layers and weights.
    """
    if any(SEPARATOR in name for name in layer_names):
        return NestedTaps(backbone, layer_names)
    outputs = [graph_output(backbone, name) for name in layer_names]
    outputs.append(logits_tensor(backbone))
    return keras.Model(model_input(backbone), outputs, name=f"{backbone.name}_taps")


class NestedTaps:
    """A view returning `[*inner layer outputs, logits]` for layers inside one nested model.

    A nested model's inner layers belong to its own graph, so no Functional model of the backbone
    can return them; this view runs the backbone in three parts that share its layers and weights:
    the layers before the base, the base with its inner outputs added, and the layers after it.
    `training` reaches each part as `backbone(x, training=...)` would pass it (in Keras 3 an outer
    `training` overrides a `training=False` recorded in the graph; a base frozen with
    `trainable=False` runs its BatchNorm in inference mode either way).

    Args:
        backbone: a checked graph backbone.
        layer_names: `"base/inner"` addresses, all inside the same nested model.
    """

    def __init__(self, backbone, layer_names):
        bases = {name.split(SEPARATOR, 1)[0] for name in layer_names}
        if len(bases) != 1:
            raise BackboneError(f"Layers {list(layer_names)} must all lie inside one nested model of "
                                f"{backbone.name!r} (addressed as 'base/inner'), or be that model.")
        base = backbone.get_layer(bases.pop())
        node = outer_call(backbone, base)
        entry, exit_ = node.input_tensors[0], node.output_tensors[0]
        # the base's own name taps its output (FRSKD's last stage, say)
        inner = [base.outputs[0] if name == base.name else get_layer(backbone, name).output for name in layer_names]
        self.name = f"{backbone.name}_taps"
        self.before = None if entry is model_input(backbone) else keras.Model(model_input(backbone), entry)
        self.base = keras.Model(model_input(base), [*inner, base.outputs[0]], name=f"{base.name}_taps")
        self.after = keras.Model(exit_, logits_tensor(backbone), name=f"{backbone.name}_head")

    def __call__(self, x, training=False):
        h = x if self.before is None else self.before(x, training=training)
        *taps, out = self.base(h, training=training)
        return [*taps, self.after(out, training=training)]


_TAP_CACHE = weakref.WeakKeyDictionary()


def cached_tap_model(backbone, layer_names=()):
    """`tap_model`, built once per backbone and layer set.

    The cache lives here, keyed weakly by the backbone, so that explainers
    hold no model and a backbone that is dropped frees its views.
    """
    views = _TAP_CACHE.setdefault(backbone, {})
    key = tuple(layer_names)
    if key not in views:
        views[key] = tap_model(backbone, key)
    return views[key]


class Untracked:
    """Holds an object out of Keras's attribute tracking.

    The wrapper models keep Functional *views* of their backbone; tracking them
    would save the same weights a second time under another path.
    """

    def __init__(self, value):
        self.value = value


def float32_logits(logits):
    """Logits in float32, whatever the mixed-precision compute dtype."""
    return ops.cast(logits, "float32")


def call_taps(view, x, training=False):
    """Run a `tap_model` view; always a list `[*layer outputs, logits]`.

    (A Functional model built with a one-element output list returns the bare
    tensor, so indexing its result directly would slice the batch.)
    """
    return tf.nest.flatten(view(x, training=training))
