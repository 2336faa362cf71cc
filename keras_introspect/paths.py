"""Path checks shared by whatever writes: the command line's run directories and the exports."""

import os


def inside(path, directory):
    """Whether `path` is `directory` or lies inside it (symbolic links resolved).

    Example:
    >>> inside("/data/photos/train", "/data/photos"), inside("/data/other", "/data/photos")
    (True, False)
    """
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory
