"""Shared by whatever writes files: path checks (the command line's run directories, the exports) and
whole-file replacement (state files a run reads back when it resumes)."""

import json
import os


def inside(path, directory):
    """Whether `path` is `directory` or lies inside it (symbolic links resolved).

    Example:
    >>> inside("/data/photos/train", "/data/photos"), inside("/data/other", "/data/photos")
    (True, False)
    """
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def write_json(path, value, **options):
    """Replace the file at `path` with `value` as JSON, whole or not at all.

    The JSON goes to `path + ".tmp"` first and replaces `path` in one rename, so a crash, a full disk or a
    value that does not serialize leaves the earlier file as it was (and no `.tmp` behind).

    Args:
        path: the file to write.
        value: anything `json.dump` takes.
        **options: passed to `json.dump` (`indent`, `default`, ...).

    Example:
    >>> write_json("/tmp/epoch_seconds.json", {"0": 41.2}, indent=2)
    """
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w") as f:
            json.dump(value, f, **options)
            f.write("\n")
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    os.replace(temporary, path)
