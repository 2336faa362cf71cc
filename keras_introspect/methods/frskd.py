"""FRSKD: Feature Refinement via Self-Knowledge Distillation (Ji et al., CVPR 2021).

An auxiliary *self-teacher* reads the classifier's stage features, refines
them with BiFPN-style fusion (top-down then bottom-up paths, fast normalized
fusion weights, depthwise-separable convolutions, `width` × the stage
channels), and classifies from the refined top feature. Both networks train
jointly:

    L = CE(y, p) + CE(y, p_t) + a · T² · KL(p_t^T ‖ p^T) + b · Σ_i ‖A(F_i) − A(R_i)‖²

with p_t^T the self-teacher's softened output and R_i its refined features
held constant, and A the attention map of Zagoruyko & Komodakis (the
L2-normalized channel mean of F²; the squared difference is averaged over
positions). Defaults a = 2, b = 100, T = 4, width 2 are the official CIFAR
settings. Only the classifier is used by `call`, `predict` and export.
"""

import keras
import tensorflow as tf
from keras import layers

from keras_introspect import backbones
from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect.methods import registry
from keras_introspect.methods.base import ClassifierTrainer


@keras.saving.register_keras_serializable(package="keras_introspect")
class FastNormalizedFusion(layers.Layer):
    """BiFPN's fusion: Σ relu(w_i) x_i / (Σ relu(w_i) + ε), one weight per input."""

    def __init__(self, epsilon=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shapes):
        self.fusion_weights = self.add_weight(
            name="fusion_weights", shape=(len(input_shapes),), initializer="ones", trainable=True
        )

    def call(self, inputs):
        weights = keras.ops.relu(self.fusion_weights)
        total = keras.ops.sum(weights) + self.epsilon
        return sum(weights[i] * x for i, x in enumerate(inputs)) / total

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def stage_layer_names(backbone):
    """The last layer of each spatial resolution: the classifier's stage outputs."""
    last_of_size = {}
    for name in backbones.conv_layer_names(backbone):
        last_of_size[tuple(backbones.get_layer(backbone, name).output.shape[1:3])] = name
    # The top-down path doubles each stage's size, so stages halve exactly: from the smallest size up,
    # a size is a stage when it doubles the last one kept (padding layers' odd sizes are left out).
    stages = []
    for size in sorted(last_of_size, reverse=False):
        if not stages or size == tuple(2 * side for side in stages[-1]):
            stages.append(size)
    names = [last_of_size[size] for size in sorted(stages, reverse=True)]
    if len(names) < 2:
        raise backbones.BackboneError(
            f"FRSKD needs features at two or more resolutions; {backbone.name!r} has {len(names)}."
        )
    return names


def _unit(x, filters, name, separable=True):
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(filters, 3 if separable else 1, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_self_teacher(feature_shapes, num_classes, width=2, name="self_teacher"):
    """The BiFPN self-teacher: stage features → `[logits, *refined features]`.

    Args:
        feature_shapes: `(h, w, c)` of each stage, highest resolution first.
        num_classes: its classifier's outputs.
        width: channel multiplier of each level (relative to the stage).
    """
    inputs = [keras.Input(shape, name=f"stage{i + 1}") for i, shape in enumerate(feature_shapes)]
    channels = [int(width * shape[-1]) for shape in feature_shapes]
    n = len(inputs)
    lateral = [_unit(x, channels[i], f"lateral{i + 1}", separable=False) for i, x in enumerate(inputs)]
    top_down = [None] * n
    top_down[-1] = lateral[-1]
    for i in reversed(range(n - 1)):
        ratio = feature_shapes[i][0] // feature_shapes[i + 1][0]
        up = layers.UpSampling2D(ratio, name=f"up{i + 1}")(top_down[i + 1])
        up = _unit(up, channels[i], f"up{i + 1}_proj", separable=False)
        fused = FastNormalizedFusion(name=f"td{i + 1}_fusion")([lateral[i], up])
        top_down[i] = _unit(fused, channels[i], f"td{i + 1}")
    refined = [top_down[0]]
    for i in range(1, n):
        ratio = feature_shapes[i - 1][0] // feature_shapes[i][0]
        down = layers.Conv2D(channels[i], 3, strides=ratio, padding="same", use_bias=False, name=f"down{i + 1}")(refined[-1])
        parts = [lateral[i], top_down[i], down] if i < n - 1 else [lateral[i], down]
        fused = FastNormalizedFusion(name=f"bu{i + 1}_fusion")(parts)
        refined.append(_unit(fused, channels[i], f"bu{i + 1}"))
    pooled = layers.GlobalAveragePooling2D(name="st_gap")(refined[-1])
    logits = layers.Dense(num_classes, name="st_logits")(pooled)
    return keras.Model(inputs, [logits, *refined], name=name)


def attention_map(features):
    """L2-normalized channel mean of squared activations, flattened: `(batch, h*w)`."""
    features = tf.cast(features, tf.float32)
    attention = tf.reduce_mean(tf.square(features), axis=-1)
    attention = tf.reshape(attention, [tf.shape(attention)[0], -1])
    return tf.math.l2_normalize(attention, axis=-1)


@keras.saving.register_keras_serializable(package="keras_introspect")
class FRSKDModel(ClassifierTrainer):
    """The classifier plus a jointly trained BiFPN self-teacher.

    Args:
        backbone: the classifier (Functional, with spatial stages).
        alpha: a, weight of the KL to the self-teacher.
        beta: b, weight of the attention-map distillation.
        temperature: T.
        width: self-teacher channel multiplier.
        feature_layers: stage outputs to refine (default: the last layer of
            each spatial resolution).

    Example:
    >>> model = ki.FRSKDModel(ki.architectures.resnet20())
    """

    TRAIN_TERMS = ("cross_entropy", "teacher_cross_entropy", "distillation", "attention")
    OPTIONS = {
        "alpha": options.Option(2.0, float, "weight of the soft-label term", range="non-negative"),
        "beta": options.Option(100.0, float, "weight of the feature term", range="non-negative"),
        "temperature": options.distillation_temperature(4.0),
        "width": options.Option(2, int, "channel multiplier of the self-teacher", minimum=1),
    }

    def __init__(self, backbone, alpha=2.0, beta=100.0, temperature=4.0, width=2, feature_layers=None, **kwargs):
        super().__init__(backbone, **kwargs)
        checked = self._check_options(alpha=alpha, beta=beta, temperature=temperature, width=width)
        self.feature_layers = list(feature_layers or stage_layer_names(backbone))
        shapes = [tuple(backbones.get_layer(backbone, n).output.shape[1:]) for n in self.feature_layers]
        self.self_teacher = build_self_teacher(shapes, self.num_classes, checked["width"])
        self.alpha, self.beta = checked["alpha"], checked["beta"]
        self.temperature, self.width = checked["temperature"], checked["width"]

    def view_keys(self):
        return [(), tuple(self.feature_layers)]

    def compute_terms(self, x, targets, labels, tape):
        del labels, tape
        outputs = backbones.call_taps(self.view(tuple(self.feature_layers)), x, True)
        features, logits = outputs[:-1], backbones.float32_logits(outputs[-1])
        teacher_outputs = tf.nest.flatten(self.self_teacher(features, training=True))
        teacher_logits, refined = tf.cast(teacher_outputs[0], tf.float32), teacher_outputs[1:]
        ce = loss_lib.cross_entropy(targets, logits)
        teacher_ce = loss_lib.cross_entropy(targets, teacher_logits)
        soft = tf.stop_gradient(tf.nn.softmax(teacher_logits / self.temperature))
        distill = loss_lib.distillation_kl(soft, logits, self.temperature)
        attention = tf.add_n([
            tf.reduce_mean(tf.square(attention_map(f) - tf.stop_gradient(attention_map(r))), axis=-1)
            for f, r in zip(features, refined)
        ])
        loss = ce + teacher_ce + self.alpha * distill + self.beta * attention
        terms = {"cross_entropy": ce, "teacher_cross_entropy": teacher_ce, "distillation": distill,
                 "attention": attention}
        return logits, loss, terms

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha, "beta": self.beta, "temperature": self.temperature,
            "width": self.width, "feature_layers": self.feature_layers,
        }


registry.register("frskd", FRSKDModel, "FRSKD: a feature-refining self-teacher")
