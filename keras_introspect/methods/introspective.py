"""Introspective learning: a classifier distils its own self-explanations.

At every training step the model explains its prediction for every class
(or for the true class plus the top-k others), compares the true class's
explanation with each class's, turns the similarities into a soft label q,
and distils q into itself as knowledge distillation distils a teacher:

    loss = (1 - a) · CE(y, softmax(z)) + a · T² · KL(q ‖ softmax(z / T))

with q held constant. See docs/method.md for the formulation and evidence.
"""

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import explainers as explainer_lib
from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect import soft_targets as targets_lib
from keras_introspect.errors import InputError
from keras_introspect.methods import registry, tables
from keras_introspect.methods.base import ClassifierTrainer, maybe_stop_recording

MASS_SCHEDULES = ("constant", "linear")

# The explainer's options, offered flat by the `il` method (`--explainer grad_cam --layer NAME`).
EXPLAINER_OPTIONS = {
    "explainer": options.Option("cam", str, "explainer in the training step", choices=explainer_lib.TRAINING_NAMES),
    "layer": options.Option(None, str, "layer explained by grad_cam (default: the last spatial layer)"),
    "relu": options.Option(False, bool, "ReLU on CAM / Grad-CAM maps"),
}
# The soft-target builder's options under the names the `il` method gives them (its `temperature` is τ).
TARGET_OPTION_NAMES = {"form": "form", "similarity": "similarity", "center": "center",
                       "target_temperature": "temperature", "epsilon": "epsilon"}


@keras.saving.register_keras_serializable(package="keras_introspect")
class IntrospectiveModel(ClassifierTrainer):
    """A classifier that learns from its own explanations during `fit`.

    Args:
        backbone: Functional or Sequential classifier (logits or softmax).
        explainer: an `Explainer` or its name (`"cam"`, `"grad_cam"`,
            `"vanilla_gradients"`, `"gradient_input"`); default `CAM()` (signed maps).
            Offline-only explainers (SmoothGrad, Integrated Gradients) are rejected.
        soft_targets: an `ExplanationSoftTargets` (how similarities become q).
        alpha: weight a of the distillation term.
        temperature: T of the distillation KL.
        explained_classes: `"all"`, or an int k to explain the true class plus
            the k classes with the highest other logits (the rest get q = 0).
        warmup_epochs: epochs of plain cross-entropy before distillation starts.
        ramp_epochs: epochs over which a then rises linearly to `alpha`.
        target_ema: m > 0 smooths each example's target over epochs,
            q̄ ← m · q̄ + (1 - m) · q, as PS-KD smooths predictions; the
            training data must then carry example ids (`data.with_example_id`)
            and `num_examples` be given. 0 (default): off.
        class_targets: replace each example's similarities by its class's:
            an exponential moving average over steps (momentum
            `class_momentum`) of the mean similarity between class c's
            true-class explanation and every class's explanation — a stable
            non-true distribution per class, the explanation counterpart of
            Online Label Smoothing. Needs `explained_classes="all"`.
        class_momentum: momentum of that average.
        mass_schedule: `"constant"` (default) or `"linear"`: the non-true mass
            ε of the `mass` form rises as ε · (t + 1) / T over epochs t of T,
            as PS-KD's weight does.
        num_examples: the training set's size (with `target_ema`).
        **kwargs: passed to `keras.Model`.

    Example:
    >>> backbone = ki.architectures.resnet20(num_classes=10)
    >>> model = ki.IntrospectiveModel(backbone)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
    ...               metrics=["accuracy"])
    >>> model.fit(train_ds, validation_data=test_ds, epochs=30)
    >>> q = model.soft_targets(x, y)
    >>> maps = model.explain(x)
    """

    TRAIN_TERMS = ("cross_entropy", "distillation", "alpha", "target_true_mass", "target_entropy")
    NESTED_OBJECTS = ("backbone", "explainer")
    OPTIONS = {
        "alpha": options.distillation_weight(0.5),
        "temperature": options.distillation_temperature(1.0),
        "explained_classes": options.Option("all", int, "'all', or k: the true class and the k other top classes",
                                            choices=("all",), minimum=1),
        "warmup_epochs": options.Option(5, int, "epochs of plain cross-entropy before distilling", minimum=0),
        "ramp_epochs": options.Option(5, int, "epochs over which alpha then rises to its value", minimum=0),
        "target_ema": options.Option(0.0, float, "average each example's target over epochs with this momentum "
                                     "(0: off)", range="unit-open"),
        "class_targets": options.Option(False, bool, "use each class's running mean similarities instead of the "
                                        "example's"),
        "class_momentum": options.Option(0.99, float, "momentum of the class means", range="unit-open"),
        "mass_schedule": options.Option("constant", str, "non-true mass over training (linear: rises as PS-KD's "
                                        "weight)", choices=MASS_SCHEDULES),
    }

    def __init__(
        self,
        backbone,
        explainer=None,
        soft_targets=None,
        alpha=0.5,
        temperature=1.0,
        explained_classes="all",
        warmup_epochs=5,
        ramp_epochs=5,
        target_ema=0.0,
        class_targets=False,
        class_momentum=0.99,
        mass_schedule="constant",
        num_examples=None,
        **kwargs,
    ):
        super().__init__(backbone, **kwargs)
        # CAM (signed maps): free to compute, and negative evidence is what
        # tells the classes apart (docs/method.md).
        self.explainer = explainer_lib.get("cam" if explainer is None else explainer)
        if self.explainer.offline_only:
            raise InputError(
                f"{type(self.explainer).__name__} needs several forward passes and "
                f"cannot run inside the training step; choose one of {explainer_lib.TRAINING_NAMES}."
            )
        self.source_layer = self.explainer.source_layer(backbone)
        if soft_targets is None:
            soft_targets = targets_lib.ExplanationSoftTargets()
        elif isinstance(soft_targets, dict):
            soft_targets = keras.saving.deserialize_keras_object(soft_targets)
        self.target_builder = soft_targets
        checked = self._check_options(
            alpha=alpha, temperature=temperature, explained_classes=explained_classes, warmup_epochs=warmup_epochs,
            ramp_epochs=ramp_epochs, target_ema=target_ema, class_targets=class_targets,
            class_momentum=class_momentum, mass_schedule=mass_schedule,
        )
        self.alpha = checked["alpha"]
        self.temperature = checked["temperature"]
        self.explained_classes = _check_explained_classes(checked["explained_classes"], self.num_classes)
        self.warmup_epochs = checked["warmup_epochs"]
        self.ramp_epochs = checked["ramp_epochs"]
        self._init_variants(checked, num_examples)

    def _init_variants(self, checked, num_examples):
        """The optional target variants; each adds its state only when switched on."""
        if checked["mass_schedule"] != "constant" and self.target_builder.form != "mass":
            raise InputError("mass_schedule schedules the non-true mass of the 'mass' form; use form='mass'.")
        if checked["class_targets"] and self.explained_classes != "all":
            raise InputError("class_targets averages similarities to every class: use explained_classes='all'.")
        self.target_ema = checked["target_ema"]
        self.class_targets = checked["class_targets"]
        self.class_momentum = checked["class_momentum"]
        self.mass_schedule = checked["mass_schedule"]
        self.num_examples = None if num_examples is None else int(num_examples)
        self.needs_example_ids = self.target_ema > 0
        if self.needs_example_ids:
            if self.num_examples is None or self.num_examples < 1:
                raise InputError("target_ema keeps a target per training example: pass num_examples "
                                 "(the training set's size).")
            self.example_targets = tables.table_variable(self, "example_targets",
                                                         (self.num_examples, self.num_classes))
            self.example_seen = tables.table_variable(self, "example_seen", (self.num_examples,))
        if self.class_targets:
            self.class_similarity = tables.table_variable(self, "class_similarity",
                                                          (self.num_classes, self.num_classes))
            self.class_seen = tables.table_variable(self, "class_seen", (self.num_classes,))
        if self.mass_schedule != "constant":
            self.total_epochs = self.add_weight(name="total_epochs", shape=(), initializer="ones",
                                                trainable=False, dtype="float32")

    # -- construction from flat options (the `il` method, the command line) --------------
    @classmethod
    def method_options(cls):
        """IL's flat options: the explainer's, the soft-target builder's (as `TARGET_OPTION_NAMES`) and its own."""
        targets = targets_lib.ExplanationSoftTargets.OPTIONS
        renamed = {flat: targets[name] for flat, name in TARGET_OPTION_NAMES.items()}
        return {**EXPLAINER_OPTIONS, **renamed, **cls.OPTIONS}

    @classmethod
    def from_options(cls, backbone, explainer="cam", layer=None, relu=False, num_examples=None, **flat):
        """The model from flat options: explainer and soft-target objects built from theirs."""
        explainer = explainer_lib.get(explainer)
        if hasattr(explainer, "relu"):
            explainer.relu = bool(relu)
        if layer is not None:
            if not hasattr(explainer, "layer"):
                raise options.OptionError(f"The {type(explainer).__name__} explainer has no layer to choose; "
                                          "drop the layer option.")
            explainer.layer = layer
        targets = targets_lib.ExplanationSoftTargets(**{name: flat.pop(f) for f, name in TARGET_OPTION_NAMES.items()
                                                        if f in flat})
        return cls(backbone, explainer=explainer, soft_targets=targets, num_examples=num_examples, **flat)

    # -- schedule -------------------------------------------------------------
    def current_alpha(self):
        """a for the current epoch: 0 during warm-up, then a linear ramp."""
        progress = self.epoch - float(self.warmup_epochs) + 1.0
        if self.ramp_epochs > 0:
            factor = tf.clip_by_value(progress / float(self.ramp_epochs), 0.0, 1.0)
        else:
            factor = tf.cast(progress > 0.0, tf.float32)
        return self.alpha * factor

    def current_epsilon(self):
        """The non-true mass of this epoch: ε, or ε · (t + 1) / T with the linear schedule."""
        if self.mass_schedule == "constant":
            return None
        return self.target_builder.epsilon * tf.minimum((self.epoch + 1.0) / tf.maximum(self.total_epochs, 1.0), 1.0)

    # -- the variants' state -------------------------------------------------------
    def _class_similarities(self, sims, labels):
        """Update the per-class average of similarity rows with this global batch; return it per example."""
        by_class = tf.one_hot(labels, self.num_classes)  # (batch, classes)
        sums = tables.sum_across_replicas(tf.matmul(by_class, sims, transpose_a=True))
        counts = tables.sum_across_replicas(tf.reduce_sum(by_class, axis=0))
        present = counts > 0
        batch_mean = sums / tf.maximum(counts, 1.0)[:, None]
        # A class's first batch sets its row; later ones move it by (1 - momentum).
        momentum = tf.where(self.class_seen > 0.5, self.class_momentum, 0.0)[:, None]
        updated = momentum * self.class_similarity + (1.0 - momentum) * batch_mean
        self.class_similarity.assign(tf.where(present[:, None], updated, self.class_similarity))
        self.class_seen.assign(tf.where(present, 1.0, self.class_seen))
        return tf.gather(tf.convert_to_tensor(self.class_similarity), labels)

    def _smoothed_over_epochs(self, q, ids):
        """Each example's target averaged over the epochs (its first one taken as it is)."""
        seen = tf.gather(tf.convert_to_tensor(self.example_seen), ids)[:, None]
        previous = tf.gather(tf.convert_to_tensor(self.example_targets), ids)
        smoothed = tf.where(seen > 0.5, self.target_ema * previous + (1.0 - self.target_ema) * q, q)
        all_ids, all_q = tables.gather_across_replicas(ids, smoothed)
        tables.set_rows(self.example_targets, all_ids, all_q)
        self.example_seen.assign(tf.tensor_scatter_nd_update(
            tf.convert_to_tensor(self.example_seen), all_ids[:, None], tf.ones_like(all_ids, tf.float32)))
        return smoothed

    # -- self-explanation --------------------------------------------------------
    def _select_classes(self, logits, labels):
        """Classes to explain and the true class's position among them."""
        if self.explained_classes == "all":
            return None, labels
        masked = tf.where(
            tf.one_hot(labels, self.num_classes) > 0.5, tf.float32.min, logits
        )
        others = tf.math.top_k(masked, k=self.explained_classes).indices
        classes = tf.concat([labels[:, None], others], axis=1)
        return classes, tf.zeros_like(labels)

    def view_keys(self):
        return [(), () if self.source_layer is None else (self.source_layer,)]

    def introspect(self, x, labels, training=False, tape=None, example_ids=None):
        """One forward pass, the self-explanations and the soft targets.

        Args:
            x: input batch.
            labels: `(batch,)` int32 true classes.
            training: run the backbone in training mode (the training step).
            tape: the outer tape of a training step, kept off the
                explanation work.
            example_ids: `(batch,)` indices in the training set (training
                with `target_ema` only): the smoothed targets are updated.

        Returns:
            `(logits, maps, q)`: float32 logits, the `(batch, k, ...)` maps and
            the `(batch, classes)` soft targets (gradient stopped).
        """
        view = self.view(() if self.source_layer is None else (self.source_layer,))
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            x = tf.cast(x, self.compute_dtype)
        with tf.GradientTape(persistent=True) as inner:
            if self.source_layer is None:
                inner.watch(x)
            outputs = backbones.call_taps(view, x, training)
            logits = tf.cast(outputs[-1], tf.float32)
        source = x if self.source_layer is None else outputs[0]
        with maybe_stop_recording(tape):
            classes, reference = self._select_classes(tf.stop_gradient(logits), labels)
            maps = self.explainer.maps_from_tape(inner, source, logits, classes, backbone=self.backbone)
            sims = self.target_builder.similarities(maps, reference)
            if self.class_targets and training:
                sims = self._class_similarities(sims, labels)
            elif self.class_targets:  # inspection: the averages as they stand
                sims = tf.gather(tf.convert_to_tensor(self.class_similarity), labels)
            q = self.target_builder.from_similarities(sims, reference, epsilon=self.current_epsilon())
            if classes is not None:
                q = targets_lib.scatter_to_classes(q, classes, self.num_classes)
            if example_ids is not None:
                q = self._smoothed_over_epochs(q, example_ids)
        del inner
        return logits, maps, tf.stop_gradient(q)

    def compute_terms(self, x, targets, labels, tape):
        ids = None
        if self.needs_example_ids:
            x, ids = tables.split_example_ids(x, self.num_examples)
        logits, _, q = self.introspect(x, labels, training=True, tape=tape, example_ids=ids)
        ce = loss_lib.cross_entropy(targets, logits)
        exclude = labels if self.target_builder.form == "nontarget" else None
        distill = loss_lib.distillation_kl(q, logits, self.temperature, exclude=exclude)
        alpha = self.current_alpha()
        loss = (1.0 - alpha) * ce + alpha * distill
        terms = {
            "cross_entropy": ce,
            "distillation": distill,
            "alpha": tf.fill(tf.shape(ce), alpha),
            "target_true_mass": tf.gather(q, labels, batch_dims=1),
            "target_entropy": targets_lib.entropy(q),
        }
        return logits, loss, terms

    # -- user-facing inspection ---------------------------------------------------
    def soft_targets(self, x, y):
        """The soft labels the model teaches itself on `(x, y)` (inference mode).

        Returns:
            `(batch, classes)` numpy-convertible float32 tensor; rows sum to 1.
        """
        backbones.check_batch(self.backbone, x, "soft_targets")
        _, labels = self.prepare_targets(y)
        if x.shape[0] is not None and labels.shape[0] is not None and x.shape[0] != labels.shape[0]:
            raise InputError(f"soft_targets got {x.shape[0]} inputs and {labels.shape[0]} labels; give one per input.")
        return self.introspect(x, labels, training=False)[2]

    def explain(self, x, classes=None):
        """Self-explanations with the training explainer, in inference mode.

        Args:
            x: `(batch, ...)` inputs.
            classes: `None` for the predicted class, an int or `(batch,)` array
                for one class per sample, `"all"` for every class.

        Returns:
            `(batch, ...)` maps for one class per sample, or `(batch, classes, ...)`
            for `"all"`.
        """
        backbones.check_batch(self.backbone, x)
        if isinstance(classes, str):
            if classes != "all":
                raise InputError(f"classes must be None, an int, an array or 'all'; got {classes!r}.")
            return self.explainer(self.backbone, x, None)
        if classes is None:
            classes = tf.argmax(self.logits(x), axis=-1, output_type=tf.int32)
        return self.explainer(self.backbone, x, classes)[:, 0]

    # -- serialization --------------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            "explainer": keras.saving.serialize_keras_object(self.explainer),
            "soft_targets": keras.saving.serialize_keras_object(self.target_builder),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "explained_classes": self.explained_classes,
            "warmup_epochs": self.warmup_epochs,
            "ramp_epochs": self.ramp_epochs,
            "target_ema": self.target_ema,
            "class_targets": self.class_targets,
            "class_momentum": self.class_momentum,
            "mass_schedule": self.mass_schedule,
            "num_examples": self.num_examples,
        }


def _check_explained_classes(value, num_classes):
    """The declared check passed: here only the bound that depends on the number of classes."""
    if value == "all":
        return "all"
    if value > num_classes - 1:
        raise InputError(
            f"explained_classes={value} must be between 1 and {num_classes - 1} "
            "(the number of non-true classes), or 'all'."
        )
    return value if value < num_classes - 1 else "all"


registry.register("il", IntrospectiveModel, "introspective learning: distil soft labels from self-explanations",
                  example_ids=True, role="il")
