"""Each option is declared once (`OPTIONS` on its class): the constructor, the registry and the CLI agree with it."""

import inspect
import math

import pytest

from conftest import tiny_backbone
from keras_introspect import ExplanationSoftTargets, architectures
from keras_introspect.methods import introspective, registry
from keras_introspect.options import RANGES, Option, OptionError, check_all

MODEL_CLASSES = sorted({spec.model for spec in registry.METHODS.values()}, key=lambda cls: cls.__name__)


def constructor_defaults(callable_):
    return {name: p.default for name, p in inspect.signature(callable_).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("cls", [*MODEL_CLASSES, ExplanationSoftTargets], ids=lambda c: c.__name__)
def test_every_constructor_default_is_the_declared_one(cls):
    defaults = constructor_defaults(cls.__init__)
    assert cls.OPTIONS, cls
    for name, option in cls.OPTIONS.items():
        assert name in defaults, f"{cls.__name__} declares {name} but its constructor has no such argument"
        assert defaults[name] == option.default, (cls.__name__, name)


def test_the_il_methods_explainer_options_default_to_what_from_options_uses():
    defaults = constructor_defaults(introspective.IntrospectiveModel.from_options)
    for name, option in introspective.EXPLAINER_OPTIONS.items():
        assert defaults[name] == option.default, name
    # The flat names cover the targets' options exactly once, τ under its own name.
    flat = introspective.IntrospectiveModel.method_options()
    assert flat["target_temperature"] is ExplanationSoftTargets.OPTIONS["temperature"]
    assert flat["temperature"] is introspective.IntrospectiveModel.OPTIONS["temperature"]


def out_of_range(option):
    """Values just outside an option's declared range (none for an unbounded one)."""
    if option.kind is float and option.range:
        low, high, low_in, high_in, _ = RANGES[option.range]
        bad = [low - 1.0] + ([] if low_in else [low])
        return bad + ([] if not math.isfinite(high) else [high + 1.0] + ([] if high_in else [high]))
    if option.kind is int and option.minimum is not None:
        return [option.minimum - 1]
    if option.kind is str and option.choices:
        return ["no-such-choice"]
    if option.kind is bool:
        return ["yes"]
    return []


def student(spec):
    # FRSKD refines features at two or more resolutions; the tiny backbone has one.
    if spec.name == "frskd":
        return architectures.resnet_cifar(8, 5, input_shape=(8, 8, 3))
    return tiny_backbone(num_classes=5)


def construct(spec, **options):
    return spec.build(student(spec), teacher=tiny_backbone(num_classes=5) if spec.teacher else None,
                      num_examples=8, **options)


@pytest.mark.parametrize("spec", list(registry.METHODS.values()), ids=lambda s: s.name)
def test_every_method_refuses_each_option_outside_its_declaration_and_keeps_the_default(spec):
    model = construct(spec)
    for name, option in spec.options.items():
        # The built model holds the declared default (IL's explainer and targets options live on those objects).
        holder = model.target_builder if name in introspective.TARGET_OPTION_NAMES else model
        attribute = introspective.TARGET_OPTION_NAMES.get(name, name)
        if hasattr(holder, attribute) and name not in ("explainer", "layer", "relu"):
            value = getattr(holder, attribute)
            assert value == option.default, (spec.name, name, value)
        for bad in out_of_range(option):
            with pytest.raises(OptionError, match=f"Option {name} must"):
                construct(spec, **{name: bad})
            # The model class checks the same declaration when called directly, not only through the registry.
            if name in spec.model.OPTIONS:
                kwargs = {"teacher": tiny_backbone(num_classes=5)} if spec.teacher else {}
                kwargs.update({"num_examples": 8} if spec.example_ids else {})
                with pytest.raises(OptionError, match=f"Option {name} must"):
                    spec.model(student(spec), **kwargs, **{name: bad})


@pytest.mark.parametrize("option, good, bad, message", [
    (Option(0.5, float, "", range="unit"), [0.0, 1.0, 1], [1.0001, -0.1, math.inf, math.nan, "0.5", True],
     "Option x must"),
    (Option(1.0, float, "", range="positive"), [1e-9, 1e9], [0.0, -1.0], "must be > 0"),
    (Option(0.0, float, "", range="unit-open"), [0.0, 0.999], [1.0], r"must be in \[0, 1\)"),
    (Option(0.5, float, "", range="open-unit"), [0.001], [0.0, 1.0], r"must be in \(0, 1\)"),
    (Option(2, int, "", minimum=2), [2, 3, 4.0], [1, 2.5, "3"], "Option x must"),
    (Option("all", int, "", choices=("all",), minimum=1), ["all", 1], ["some", 0], "Option x must"),
    (Option("a", str, "", choices=("a", "b")), ["a", "b"], ["c", 1], "Option x must"),
    (Option(False, bool, ""), [True, False], [1, "true"], "must be True or False"),
])
def test_option_check_accepts_its_range_and_names_what_it_refuses(option, good, bad, message):
    for value in good:
        checked = option.check("x", value)
        assert checked == value and type(checked) is (option.kind if value != "all" else str)
    for value in bad:
        with pytest.raises(OptionError, match=message):
            option.check("x", value)


def test_parse_turns_command_line_text_into_the_kind_only():
    assert Option(2, int, "", minimum=2).parse("x", "7") == 7
    assert Option("all", int, "", choices=("all",)).parse("x", "all") == "all"
    assert Option(0.1, float, "", range="unit").parse("x", "3.5") == 3.5  # range: checked later, per method
    with pytest.raises(OptionError, match="Option x must be an integer, got '2.5'"):
        Option(2, int, "").parse("x", "2.5")
    with pytest.raises(OptionError, match="Option x must be a number, got 'abc'"):
        Option(0.1, float, "").parse("x", "abc")


def test_check_all_refuses_an_undeclared_name():
    with pytest.raises(OptionError, match=r"No option beta; the options are \['alpha'\]"):
        check_all({"alpha": Option(0.5, float, "")}, beta=1.0)


def test_register_refuses_a_second_name_an_unknown_option_and_an_unknown_role():
    model = registry.METHODS["standard"].model
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("standard", model, "again")
    with pytest.raises(ValueError, match="has no option"):
        registry.register("new_method", model, "x", overrides={"nope": 1.0})
    with pytest.raises(ValueError, match="role must be one of"):
        registry.register("new_method", model, "x", role="judge")
    assert "new_method" not in registry.METHODS


def test_a_method_default_override_changes_only_that_method():
    assert registry.METHODS["label_smoothing"].defaults() == {"label_smoothing": 0.1}
    assert registry.METHODS["standard"].defaults() == {}
    assert registry.METHODS["label_smoothing"].model.OPTIONS["label_smoothing"].default == 0.0
