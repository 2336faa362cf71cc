"""Training recipes shared by the command line, the benchmarks and the tutorials.

A recipe is the part of an experiment that is not the method: optimizer,
learning-rate schedule, weight decay. Keeping it in one place means every
method in a comparison trains with exactly the same budget.
"""

import keras

from keras_introspect import explainers as explainer_lib
from keras_introspect.methods import (
    FRSKDModel,
    InstanceSequenceCurriculum,
    IntrospectiveModel,
    MutualLearningModel,
    StandardModel,
    TeacherDistillationModel,
    TeacherFreeModel,
)
from keras_introspect.soft_targets import ExplanationSoftTargets

METHODS = ("il", "standard", "label_smoothing", "confidence_penalty", "kd", "tfkd", "tfkd_self", "dml", "frskd", "isl")


def sgd(learning_rate, epochs, steps_per_epoch, momentum=0.9, weight_decay=5e-4, schedule="cosine"):
    """SGD with momentum, decoupled weight decay and a per-step LR schedule.

    Args:
        learning_rate: peak learning rate.
        epochs, steps_per_epoch: the training length the schedule spans.
        momentum: SGD momentum.
        weight_decay: decoupled decay; BatchNorm parameters and biases are
            excluded, as is usual for CIFAR ResNets.
        schedule: `"cosine"` (to zero), `"step"` (×0.1 at 50% and 75%) or `"constant"`.
    """
    total = max(1, epochs * steps_per_epoch)
    if schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)
    elif schedule == "step":  # ×0.1 at 50% and 75% of training (epochs 100 and 150 of 200)
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [total // 2, 3 * total // 4], [learning_rate, learning_rate * 0.1, learning_rate * 0.01]
        )
    elif schedule == "constant":
        lr = learning_rate
    else:
        raise ValueError(f"Unknown schedule {schedule!r}; use 'cosine', 'step' or 'constant'.")
    optimizer = keras.optimizers.SGD(lr, momentum=momentum, weight_decay=weight_decay or None)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def build_method(method, backbone, **options):
    """A training method around `backbone`, by name.

    Args:
        method: one of `METHODS`.
        backbone: the classifier.
        **options: method options. For `"il"`: `explainer`, `layer`, `relu`,
            `form`, `similarity`, `center`, `target_temperature`, `epsilon`,
            `alpha`, `temperature`, `explained_classes`, `warmup_epochs`,
            `ramp_epochs`. For `"label_smoothing"`: `label_smoothing`; for
            `"confidence_penalty"`: `confidence_penalty`. For `"kd"`: `teacher`
            (model or `.keras` path), `alpha`, `temperature`, `teacher_targets`.
            For `"dml"`: `num_peers`.
    """
    if method == "standard":
        return StandardModel(backbone)
    if method == "label_smoothing":
        return StandardModel(backbone, label_smoothing=options.get("label_smoothing", 0.1))
    if method == "confidence_penalty":
        return StandardModel(backbone, confidence_penalty=options.get("confidence_penalty", 0.1))
    if method == "frskd":
        return FRSKDModel(backbone)
    if method == "tfkd":
        return TeacherFreeModel(backbone)
    if method in ("kd", "tfkd_self", "isl"):
        if not options.get("teacher"):
            raise ValueError(
                f"Method {method} needs a teacher: a .keras file (CLI: --teacher PATH); for tfkd_self, "
                "a model of the student's architecture trained with --method standard."
            )
        kd_keys = ("teacher", "alpha", "temperature", "teacher_targets")
        return TeacherDistillationModel(backbone, **{k: options[k] for k in kd_keys if options.get(k) is not None})
    if method == "dml":
        return MutualLearningModel(backbone, num_peers=options.get("num_peers", 2))
    if method == "il":
        return IntrospectiveModel(backbone, **il_options(**options))
    raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")


IL_DEFAULTS = dict(
    explainer="cam",
    layer=None,
    relu=False,
    form="mass",
    similarity="cosine",
    center=True,
    target_temperature=0.1,
    epsilon=0.1,
    alpha=0.5,
    temperature=1.0,
    explained_classes="all",
    warmup_epochs=5,
    ramp_epochs=5,
)


def il_options(**options):
    """Flat IL options (as the CLI takes them) → `IntrospectiveModel` kwargs."""
    unknown = set(options) - set(IL_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown introspective-learning options: {sorted(unknown)}.")
    o = {**IL_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    explainer = explainer_lib.get(o["explainer"])
    if hasattr(explainer, "relu"):
        explainer.relu = bool(o["relu"])
    if o["layer"] is not None:
        if not hasattr(explainer, "layer"):
            raise ValueError(f"The {o['explainer']} explainer has no layer to choose; drop --layer.")
        explainer.layer = o["layer"]
    targets = ExplanationSoftTargets(
        form=o["form"], similarity=o["similarity"], center=o["center"],
        temperature=o["target_temperature"], epsilon=o["epsilon"],
    )
    return dict(
        explainer=explainer, soft_targets=targets, alpha=o["alpha"], temperature=o["temperature"],
        explained_classes=o["explained_classes"], warmup_epochs=o["warmup_epochs"],
        ramp_epochs=o["ramp_epochs"],
    )


def train(model, method, splits, epochs, verbose=1, callbacks=()):
    """Fit `model` on `splits` the way `method` trains; returns the history dict.

    Every method uses `model.fit`; `"isl"` feeds it through an
    `InstanceSequenceCurriculum` (same number of steps per epoch).
    """
    callbacks = list(callbacks)
    data = splits.train
    if method == "isl":
        curriculum = InstanceSequenceCurriculum(
            splits.x_train, splits.y_train, splits.batch_size, epochs, phases=min(4, max(2, epochs)),
            augment=splits.augment,
        )
        data = curriculum.dataset()
        callbacks.append(curriculum)
    history = model.fit(data, validation_data=splits.test, epochs=epochs, verbose=verbose, callbacks=callbacks)
    return history.history
