"""One table of the training methods: name → model class, options and defaults.

Each method's module registers it beside its class (`register(...)` at the end of the
file); its options come from the class's own `OPTIONS` declaration (`keras_introspect.options`).
The Python API (`build_method`), the command line (`keras-introspect train --method NAME` and
its option flags) and the benchmark all read `METHODS`.

Adding a method: one new module under `methods/` with the model class and its `register(...)`
call, and its import in `methods/__init__.py` (see docs/extending.md).

Example:
>>> spec = METHODS["label_smoothing"]
>>> spec.defaults()
{'label_smoothing': 0.1}
>>> model = build_method("label_smoothing", backbone, label_smoothing=0.2)
"""

import dataclasses

from keras_introspect.options import OptionError

ROLES = ("baseline", "il", "rival", "teacher", "peer")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A training method: the model class, which of its options it offers and with what defaults.

    Attributes:
        name: the method's name (`--method NAME`).
        model: the `ClassifierTrainer` subclass; its `method_options()` declares the options.
        summary: one line for `--help` and the docs.
        only: the names of the model's options this method offers (`None`: all of them).
        overrides: `{name: default}` where this method's default differs from the class's
            (label smoothing is `StandardModel` with `label_smoothing=0.1`).
        teacher: whether the method needs a trained teacher (`teacher=` path or model).
        teacher_hint: what that teacher should be, for the error when it is missing.
        curriculum: whether `fit` feeds it through an `InstanceSequenceCurriculum` (ISL).
        example_ids: whether its model takes `num_examples` (the training
            set's size) for per-example state; the model's
            `needs_example_ids` then says whether its data must carry ids.
        role: its part in a comparison: one of `ROLES`.
    """

    name: str
    model: type
    summary: str
    only: tuple | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    teacher: bool = False
    teacher_hint: str = ""
    curriculum: bool = False
    example_ids: bool = False
    role: str = "rival"

    @property
    def options(self):
        """`{name: Option}` of this method, read from its model class."""
        declared = self.model.method_options()
        names = declared if self.only is None else self.only
        return {name: dataclasses.replace(declared[name], default=self.overrides.get(name, declared[name].default))
                for name in names}

    def defaults(self):
        return {name: option.default for name, option in self.options.items()}

    def resolve(self, **options):
        """All options of the method, checked, with defaults filled in.

        Raises:
            OptionError: for an option the method does not have or a bad value.
        """
        declared = self.options
        unknown = sorted(set(options) - set(declared) - {"teacher"})
        if unknown:
            raise OptionError(
                f"Method {self.name!r} has no option {', '.join(unknown)}; its options are "
                f"{sorted(declared) or 'none'}."
            )
        resolved = self.defaults()
        for name, value in options.items():
            if name != "teacher" and value is not None:
                resolved[name] = declared[name].check(name, value)
        return resolved

    def build(self, backbone, teacher=None, num_examples=None, **options):
        """The method's model around `backbone` (`num_examples`: the training set's size, for per-example state)."""
        kwargs = self.resolve(**options)
        if self.example_ids:
            kwargs["num_examples"] = num_examples
        if self.teacher:
            if teacher is None:
                raise OptionError(f"Method {self.name} needs a teacher: a .keras file or a trained model "
                                  f"(CLI: --teacher PATH){self.teacher_hint or '.'}")
            kwargs["teacher"] = teacher
        elif teacher is not None:
            raise OptionError(f"Method {self.name} takes no teacher.")
        return self.model.from_options(backbone, **kwargs)


METHODS = {}


def register(name, model, summary, **attributes):
    """Adds a method to `METHODS` (called beside its model class; see `MethodSpec` for `attributes`).

    Returns:
        The `MethodSpec`.
    """
    if name in METHODS:
        raise ValueError(f"Method {name!r} is registered twice.")
    attributes.setdefault("role", "teacher" if attributes.get("teacher") else "rival")
    spec = MethodSpec(name, model, summary, **attributes)
    if spec.role not in ROLES:
        raise ValueError(f"Method {name!r}: role must be one of {ROLES}, got {spec.role!r}.")
    unknown = (set(spec.overrides) | set(spec.only or ())) - set(model.method_options())
    if unknown:
        raise ValueError(f"Method {name!r}: {model.__name__} has no option {sorted(unknown)}.")
    METHODS[name] = spec
    return spec


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
