"""The library's error for bad input.

Every check of what a user passed in — arguments, options, data, files,
models — raises `InputError` (a `ValueError`) or one of its subclasses, with
one sentence naming the problem. The command line prints these as one line
and exits with status 2; any other exception is a bug and keeps its
traceback. docs/reliability.md lists each bad input, what happens, and the
test that proves it.
"""

import numpy as np


class InputError(ValueError):
    """Bad input: an argument, option, file, dataset or model the library cannot use."""


class NonFiniteLossError(InputError):
    """Training produced a NaN or infinite loss (bad inputs or too high a learning rate)."""


def non_finite_weights(weights):
    """The paths of the weights holding a NaN or an infinity."""
    return [w.path for w in weights if not np.all(np.isfinite(np.asarray(w)))]


def check_finite_weights(model):
    """Refuse to save or export a model with NaN or infinite weights."""
    bad = non_finite_weights(model.weights)
    if bad:
        raise NonFiniteLossError(
            f"Model {model.name!r} has NaN or infinite values in {len(bad)} weights ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); it diverged and is not saved or exported."
        )
