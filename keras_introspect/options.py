"""A method's options, declared once: name, default, kind, range and help.

Every training method (and the soft-target builder) declares its options in a class attribute
`OPTIONS = {name: Option(...)}`. The constructor checks its arguments against it, the registry
(`methods.registry`) offers them by name, and the command line builds its flags and checks their values
from it — so a default, a range or a help text is written in exactly one place.

Example:
>>> alpha = Option(0.5, float, "weight of the distillation term", range="unit")
>>> alpha.check("alpha", 0.3)
0.3
>>> check_all({"alpha": alpha}, alpha=2.0)
Traceback (most recent call last):
OptionError: Option alpha must be in [0, 1], got 2.0.
"""

import dataclasses
import math
from typing import Any

from keras_introspect.errors import InputError

# Numeric ranges an option may be required to lie in: (low, high, low inclusive, high inclusive, text).
RANGES = {
    "positive": (0.0, math.inf, False, False, "> 0"),
    "non-negative": (0.0, math.inf, True, False, ">= 0"),
    "unit": (0.0, 1.0, True, True, "in [0, 1]"),
    "unit-open": (0.0, 1.0, True, False, "in [0, 1)"),
    "open-unit": (0.0, 1.0, False, False, "in (0, 1)"),
}


class OptionError(InputError):
    """An option of a method is unknown, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One user-facing option.

    Attributes:
        default: the value used when the option is not given.
        kind: `float`, `int`, `str` or `bool`.
        help: one line for `--help` and the docs.
        choices: the allowed values of a `str` option; for an `int` option, words allowed besides
            numbers (`explained_classes="all"`).
        range: a key of `RANGES`, for a `float` (which must always be finite).
        minimum: the smallest allowed `int`.
    """

    default: Any
    kind: type
    help: str
    choices: tuple | None = None
    range: str | None = None
    minimum: int | None = None

    def check(self, name, value):
        """`value` converted to `kind`, or an `OptionError` naming the problem (`None` passes as `None`)."""
        if value is None:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise OptionError(f"Option {name} must be True or False, got {value!r}.")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise OptionError(f"Option {name} must be a string, got {value!r}.")
            if self.choices and value not in self.choices:
                raise OptionError(f"Option {name} must be one of {self.choices}, got {value!r}.")
            return value
        if self.choices and value in self.choices:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            words = f" or one of {self.choices}" if self.choices else ""
            raise OptionError(f"Option {name} must be a number{words}, got {value!r}.")
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
            low, high, low_in, high_in, text = RANGES[self.range]
            if value < low or value > high or (value == low and not low_in) or (value == high and not high_in):
                raise OptionError(f"Option {name} must be {text}, got {value}.")
        return value

    def parse(self, name, text):
        """The option's value from command-line text (kind only; `check` then tests the range)."""
        if self.kind is str or (self.choices and text in self.choices):
            return text
        try:
            return self.kind(text)
        except ValueError:
            kind = "an integer" if self.kind is int else "a number"
            words = f" or one of {self.choices}" if self.choices else ""
            raise OptionError(f"Option {name} must be {kind}{words}, got {text!r}.") from None


def check_all(declared, **values):
    """`values` checked against the `declared` options (`{name: Option}`), as a dict.

    Raises:
        OptionError: for a name not declared or a value its option refuses.
    """
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise OptionError(f"No option {', '.join(unknown)}; the options are {sorted(declared) or 'none'}.")
    return {name: declared[name].check(name, value) for name, value in values.items()}


def distillation_weight(default):
    """The `alpha` of a distillation method: weight a of its soft-label term, in [0, 1]."""
    return Option(default, float, "weight of the distillation term", range="unit")


def distillation_temperature(default):
    """The `temperature` T at which a distillation method softens both distributions."""
    return Option(default, float, "distillation temperature T", range="positive")
