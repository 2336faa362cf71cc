"""One table of the training methods: name → model class, options and defaults.

The Python API (`build_method`), the command line (`keras-introspect train
--method NAME` and its option flags) and the benchmark all read `METHODS`, so
a method's options and defaults are spelled out once, here.

Example:
>>> spec = METHODS["label_smoothing"]
>>> spec.defaults()
{'label_smoothing': 0.1}
>>> model = build_method("label_smoothing", backbone, label_smoothing=0.2)
"""

import dataclasses
import math
from typing import Any, Callable

from keras_introspect import explainers as explainer_lib
from keras_introspect.errors import InputError
from keras_introspect.methods.frskd import FRSKDModel
from keras_introspect.methods.introspective import IntrospectiveModel
from keras_introspect.methods.mutual import MutualLearningModel
from keras_introspect.methods.online_label_smoothing import OnlineLabelSmoothingModel
from keras_introspect.methods.progressive_self_kd import ProgressiveSelfKDModel
from keras_introspect.methods.standard import StandardModel
from keras_introspect.methods.teacher_free import TeacherFreeModel
from keras_introspect.methods.teacher_kd import TEACHER_TARGETS, TeacherDistillationModel
from keras_introspect.soft_targets import FORMS, ExplanationSoftTargets
from keras_introspect.soft_targets.similarity import SIMILARITIES

# Numeric ranges an option may be required to lie in: (low, high, low inclusive, high inclusive).
RANGES = {
    "positive": (0.0, math.inf, False, False),
    "non-negative": (0.0, math.inf, True, False),
    "unit": (0.0, 1.0, True, True),
    "unit-open": (0.0, 1.0, True, False),
    "open-unit": (0.0, 1.0, False, False),
}
RANGE_TEXT = {"positive": "> 0", "non-negative": ">= 0", "unit": "in [0, 1]", "unit-open": "in [0, 1)",
              "open-unit": "in (0, 1)"}


class OptionError(InputError):
    """An option of a method is unknown, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One user-facing option of a method.

    Attributes:
        default: the value used when the option is not given.
        kind: `float`, `int`, `str` or `bool`.
        help: one line for `--help`.
        choices: the allowed values of a `str` option.
        range: a key of `RANGES` for numbers (finite numbers always).
        minimum: the smallest allowed `int`.
    """

    default: Any
    kind: type
    help: str
    choices: tuple | None = None
    range: str | None = None
    minimum: int | None = None

    def check(self, name, value):
        """`value` converted to `kind`, or an `OptionError` naming the problem."""
        if value is None:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise OptionError(f"Option {name} must be True or False, got {value!r}.")
            return value
        if self.kind is str:
            value = str(value)
            if self.choices and value not in self.choices:
                raise OptionError(f"Option {name} must be one of {self.choices}, got {value!r}.")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"Option {name} must be a number, got {value!r}.")
        if self.kind is int:
            if value != int(value):
                raise OptionError(f"Option {name} must be a whole number, got {value!r}.")
            value = int(value)
            if self.minimum is not None and value < self.minimum:
                raise OptionError(f"Option {name} must be >= {self.minimum}, got {value}.")
            return value
        value = float(value)
        if not math.isfinite(value):
            raise OptionError(f"Option {name} must be a finite number, got {value}.")
        if self.range:
            low, high, low_in, high_in = RANGES[self.range]
            if value < low or value > high or (value == low and not low_in) or (value == high and not high_in):
                raise OptionError(f"Option {name} must be {RANGE_TEXT[self.range]}, got {value}.")
        return value


def explained_classes_value(value):
    """`"all"` or a positive int, from an int or a string (the command line's)."""
    if value in (None, "all") or isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OptionError(f"Option explained_classes must be 'all' or an integer, got {value!r}.") from None


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A training method: the model class, its options and how they become constructor arguments.

    Attributes:
        name: the method's name (`--method NAME`).
        model: the `ClassifierTrainer` subclass.
        summary: one line for `--help` and the docs.
        options: `{name: Option}`.
        teacher: whether the method needs a trained teacher (`teacher=` path or model).
        curriculum: whether `fit` feeds it through an `InstanceSequenceCurriculum` (ISL).
        example_ids: whether its model takes `num_examples` (the training
            set's size) for per-example state; the model's
            `needs_example_ids` then says whether its data must carry ids.
        to_kwargs: turns checked options into constructor keyword arguments
            (default: passed as they are).
    """

    name: str
    model: type
    summary: str
    options: dict = dataclasses.field(default_factory=dict)
    teacher: bool = False
    curriculum: bool = False
    example_ids: bool = False
    to_kwargs: Callable | None = None

    def defaults(self):
        return {name: option.default for name, option in self.options.items()}

    def resolve(self, **options):
        """All options of the method, checked, with defaults filled in.

        Raises:
            OptionError: for an option the method does not have or a bad value.
        """
        unknown = sorted(set(options) - set(self.options) - {"teacher"})
        if unknown:
            raise OptionError(
                f"Method {self.name!r} has no option {', '.join(unknown)}; its options are "
                f"{sorted(self.options) or 'none'}."
            )
        resolved = self.defaults()
        for name, value in options.items():
            if name == "teacher" or value is None:
                continue
            if name == "explained_classes":
                value = explained_classes_value(value)
                resolved[name] = value if value == "all" else self.options[name].check(name, value)
            else:
                resolved[name] = self.options[name].check(name, value)
        return resolved

    def build(self, backbone, teacher=None, num_examples=None, **options):
        """The method's model around `backbone` (`num_examples`: the training set's size, for per-example state)."""
        resolved = self.resolve(**options)
        kwargs = self.to_kwargs(resolved) if self.to_kwargs else dict(resolved)
        if self.example_ids:
            kwargs["num_examples"] = num_examples
        if self.teacher:
            if teacher is None:
                raise OptionError(
                    f"Method {self.name} needs a teacher: a .keras file or a trained model (CLI: --teacher PATH)"
                    + ("; for tfkd_self, a model of the student's architecture trained with --method standard."
                       if self.name == "tfkd_self" else ".")
                )
            kwargs["teacher"] = teacher
        elif teacher is not None:
            raise OptionError(f"Method {self.name} takes no teacher.")
        return self.model(backbone, **kwargs)


def _il_kwargs(o):
    """Flat IL options → `IntrospectiveModel` arguments (explainer and soft-target objects)."""
    explainer = explainer_lib.get(o["explainer"])
    if hasattr(explainer, "relu"):
        explainer.relu = bool(o["relu"])
    if o["layer"] is not None:
        if not hasattr(explainer, "layer"):
            raise OptionError(f"The {o['explainer']} explainer has no layer to choose; drop the layer option.")
        explainer.layer = o["layer"]
    targets = ExplanationSoftTargets(
        form=o["form"], similarity=o["similarity"], center=o["center"],
        temperature=o["target_temperature"], epsilon=o["epsilon"],
    )
    return dict(
        explainer=explainer, soft_targets=targets, alpha=o["alpha"], temperature=o["temperature"],
        explained_classes=o["explained_classes"], warmup_epochs=o["warmup_epochs"], ramp_epochs=o["ramp_epochs"],
        target_ema=o["target_ema"], class_targets=o["class_targets"], class_momentum=o["class_momentum"],
        mass_schedule=o["mass_schedule"],
    )


def _alpha(default):
    return Option(default, float, "weight of the distillation term", range="unit")


def _temperature(default):
    return Option(default, float, "distillation temperature T", range="positive")


_KD_OPTIONS = {
    "alpha": _alpha(0.9),
    "temperature": _temperature(4.0),
    "teacher_targets": Option("teacher", str, "what the student sees: the teacher's soft labels, or their "
                              "non-true part shuffled or made uniform", choices=TEACHER_TARGETS),
}

IL_OPTIONS = {
    "explainer": Option("cam", str, "explainer in the training step",
                        choices=("cam", "grad_cam", "vanilla_gradients", "gradient_input")),
    "layer": Option(None, str, "layer explained by grad_cam (default: the last spatial layer)"),
    "relu": Option(False, bool, "ReLU on CAM / Grad-CAM maps"),
    "form": Option("mass", str, "how similarities become a soft label", choices=FORMS),
    "similarity": Option("cosine", str, "similarity of two explanation maps", choices=SIMILARITIES),
    "center": Option(True, bool, "subtract each map's mean before comparing"),
    "target_temperature": Option(0.1, float, "softmax temperature over similarities", range="positive"),
    "epsilon": Option(0.1, float, "mass on the non-true classes (form=mass)", range="unit-open"),
    "alpha": _alpha(0.5),
    "temperature": _temperature(1.0),
    "explained_classes": Option("all", int, "'all', or k: the true class and the k other top classes",
                                minimum=1),
    "warmup_epochs": Option(5, int, "epochs of plain cross-entropy before distilling", minimum=0),
    "ramp_epochs": Option(5, int, "epochs over which alpha then rises to its value", minimum=0),
    "target_ema": Option(0.0, float, "average each example's target over epochs with this momentum (0: off)",
                         range="unit-open"),
    "class_targets": Option(False, bool, "use each class's running mean similarities instead of the example's"),
    "class_momentum": Option(0.99, float, "momentum of the class means", range="unit-open"),
    "mass_schedule": Option("constant", str, "non-true mass over training (linear: rises as PS-KD's weight)",
                            choices=("constant", "linear")),
}

METHODS = {
    spec.name: spec
    for spec in (
        MethodSpec("il", IntrospectiveModel, "introspective learning: distil soft labels from self-explanations",
                   IL_OPTIONS, example_ids=True, to_kwargs=_il_kwargs),
        MethodSpec("standard", StandardModel, "cross-entropy with the labels"),
        MethodSpec("label_smoothing", StandardModel, "cross-entropy with uniformly smoothed labels",
                   {"label_smoothing": Option(0.1, float, "mass spread uniformly over all classes",
                                              range="unit-open")}),
        MethodSpec("confidence_penalty", StandardModel, "cross-entropy minus a multiple of the output entropy",
                   {"confidence_penalty": Option(0.1, float, "weight of the output entropy",
                                                 range="non-negative")}),
        MethodSpec("kd", TeacherDistillationModel, "knowledge distillation from a trained teacher",
                   _KD_OPTIONS, teacher=True),
        MethodSpec("tfkd", TeacherFreeModel, "teacher-free KD: a hand-made virtual teacher",
                   {"correct_prob": Option(0.99, float, "the virtual teacher's true-class probability",
                                           range="open-unit"),
                    "temperature": _temperature(20.0), "alpha": _alpha(0.1),
                    "multiplier": Option(10.0, float, "extra scale of the distillation term",
                                         range="non-negative")}),
        MethodSpec("tfkd_self", TeacherDistillationModel, "teacher-free KD: a trained copy of the student teaches",
                   _KD_OPTIONS, teacher=True),
        MethodSpec("dml", MutualLearningModel, "deep mutual learning: peers teach each other",
                   {"num_peers": Option(2, int, "number of peers trained together", minimum=2)}),
        MethodSpec("frskd", FRSKDModel, "FRSKD: a feature-refining self-teacher",
                   {"alpha": Option(2.0, float, "weight of the soft-label term", range="non-negative"),
                    "beta": Option(100.0, float, "weight of the feature term", range="non-negative"),
                    "temperature": _temperature(4.0)}),
        MethodSpec("pskd", ProgressiveSelfKDModel, "PS-KD: targets mix the label with the model's own "
                   "last-epoch prediction, with a rising weight",
                   {"alpha": Option(0.8, float, "weight of the last-epoch prediction at the end of training",
                                    range="unit")}, example_ids=True),
        MethodSpec("ols", OnlineLabelSmoothingModel, "online label smoothing: class-wise soft labels from the "
                   "last epoch's correct predictions",
                   {"alpha": Option(0.5, float, "weight of the hard-label term", range="unit"),
                    "smoothing": Option(0.1, float, "label smoothing of the first epoch's soft labels",
                                        range="unit-open")}),
        MethodSpec("isl", TeacherDistillationModel, "instance-level sequence learning: KD on an easy-to-hard "
                   "curriculum", _KD_OPTIONS, teacher=True, curriculum=True),
    )
}


def get(name):
    """The `MethodSpec` of a method name."""
    if name not in METHODS:
        raise OptionError(f"Unknown method {name!r}; choose one of {tuple(METHODS)}.")
    return METHODS[name]


def build_method(method, backbone, teacher=None, num_examples=None, **options):
    """A training method around `backbone`, by name (see `METHODS` for the options).

    Args:
        method: a name in `METHODS`.
        backbone: the classifier.
        teacher: for the teacher methods, a `.keras` path or a trained model.
        num_examples: for methods with per-example state (PS-KD), the training set's size.
        **options: the method's options; those not given take the defaults.

    Returns:
        The method's `ClassifierTrainer`.

    Example:
    >>> model = build_method("il", backbone, warmup_epochs=0)
    """
    return get(method).build(backbone, teacher=teacher, num_examples=num_examples, **options)
