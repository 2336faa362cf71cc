"""The library's error for bad input.

Every check of what a user passed in — arguments, options, data, files,
models — raises `InputError` (a `ValueError`) or one of its subclasses, with
one sentence naming the problem. The command line prints these as one line
and exits with status 2; any other exception is a bug and keeps its
traceback. docs/reliability.md lists each bad input, what happens, and the
test that proves it.
"""


class InputError(ValueError):
    """Bad input: an argument, option, file, dataset or model the library cannot use."""
