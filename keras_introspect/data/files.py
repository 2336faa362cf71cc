"""Image files on disk: the class folders of an ImageFolder, and one image decoded and resized.

The lowest layer of `data/`: the in-memory loaders (`sources`) and the streamed ones
(`streaming`) list and read files through it, so both see the same classes, label indices
and pixels.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_introspect.errors import InputError


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class DatasetNotFoundError(InputError, FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable."""


def image_files(folder):
    """Sorted paths of the visible image files in `folder` (by extension), the one listing rule of both loaders.

    Raises:
        DatasetNotFoundError: an image entry cannot be read (a symbolic link loop, say), named.
    """
    paths = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        check_name(entry.path)
        try:
            is_file = entry.is_file()
        except OSError as error:
            raise DatasetNotFoundError(f"{entry.path} cannot be read ({error.strerror}); remove or repair it.") from None
        if is_file:
            paths.append(entry.path)
    return paths


def check_name(path):
    """Refuse a file or folder name that is not valid UTF-8 (TensorFlow's string tensors need it)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise DatasetNotFoundError(f"{path.encode('utf-8', 'backslashreplace').decode()!r} is not a UTF-8 name; "
                                   "rename it (TensorFlow reads file names as UTF-8).") from None


def class_folders(directory):
    """Sorted names of the visible sub-directories of `directory` (one per class).

    Raises:
        DatasetNotFoundError: an entry cannot be read (a symbolic link loop, say), named.
    """
    names = []
    for entry in os.scandir(directory):
        try:
            is_dir = entry.is_dir()
        except OSError as error:
            raise DatasetNotFoundError(f"{entry.path} cannot be read ({error.strerror}); remove or repair it.") from None
        if is_dir and not entry.name.startswith("."):
            check_name(entry.path)
            names.append(entry.name)
    return sorted(names)


def check_class_folders(path, splits):
    """Every split has the same classes, at least two, none of them empty.

    Raises:
        DatasetNotFoundError: naming the classes that differ between splits,
            the empty class folders, or the single class.
    """
    classes = {split: class_folders(os.path.join(path, split)) for split in splits}
    for split in splits:  # a class folder linked to another would put the same images under two labels
        real = {}
        for name in classes[split]:
            target = os.path.realpath(os.path.join(path, split, name))
            if target in real:
                raise DatasetNotFoundError(f"Class folders {real[target]!r} and {name!r} of the {split} split of "
                                           f"{path!r} are the same folder ({target}); each class needs its own images.")
            real[target] = name
    first = splits[0]
    for split in splits[1:]:
        only_first = sorted(set(classes[first]) - set(classes[split]))
        only_other = sorted(set(classes[split]) - set(classes[first]))
        if only_first or only_other:
            raise DatasetNotFoundError(
                f"The {first} and {split} splits of {path!r} have different classes: only in {first}: "
                f"{only_first or 'none'}; only in {split}: {only_other or 'none'}. A model can only be "
                "tested on the classes it was trained on."
            )
    if len(classes[first]) < 2:
        raise DatasetNotFoundError(
            f"{os.path.join(path, first)!r} has {len(classes[first])} class folder(s) "
            f"({', '.join(classes[first]) or 'none'}); a classifier needs at least two classes, "
            "each a folder of images."
        )
    for split in splits:
        empty = [c for c in classes[split] if not image_files(os.path.join(path, split, c))]
        if empty:
            raise DatasetNotFoundError(
                f"Class folder(s) {empty} of the {split} split of {path!r} hold no image files "
                f"({', '.join(IMAGE_EXTENSIONS)}).")
    return classes[first]


HELD_OUT_NAMES = ("test", "val", "validation")


class BadImageError(InputError):
    """Files that are not decodable images."""


def decode(path):
    """A file's image as float32 RGB in [0, 255] of shape `(h, w, 3)`."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.ensure_shape(image, (None, None, 3))
    return tf.cast(image, tf.float32)


def center_crop_resize(image, size):
    """Crop the centre to the target's aspect ratio, then resize (= shorter side resized, centre cropped)."""
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    target = size[0] / size[1]
    crop_h = tf.minimum(height, width * target)
    crop_w = tf.minimum(width, height / target)
    top = tf.cast((height - crop_h) / 2.0, tf.int32)
    left = tf.cast((width - crop_w) / 2.0, tf.int32)
    image = tf.image.crop_to_bounding_box(image, top, left, tf.cast(crop_h, tf.int32), tf.cast(crop_w, tf.int32))
    return tf.image.resize(image, size, method="bilinear", antialias=True)


@dataclasses.dataclass
class FileList:
    """The files of one split and their integer labels."""

    paths: list
    labels: np.ndarray


def _list_class_files(directory, classes):
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = image_files(os.path.join(directory, name))
        paths += found
        labels += [label] * len(found)
    return FileList(paths, np.asarray(labels, "int32"))


def list_image_folder(path, validation_split=None, seed=0):
    """Class names and the training / held-out file lists of an image folder.

    Layouts: `path/train/<class>/*` with `path/{test,val,validation}/<class>/*`;
    or `path/<class>/*` with `validation_split` (a stratified, seeded fraction
    is held out). Hidden files and files that are not images (by extension)
    are ignored.

    Returns:
        `(class_names, train FileList, held-out FileList, held-out split name)`.

    Raises:
        DatasetNotFoundError: for a missing folder, no held-out split, class
            sets that differ, one class, or empty class folders.
    """
    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"Dataset directory {path!r} does not exist.")
    held_out = [name for name in HELD_OUT_NAMES if os.path.isdir(os.path.join(path, name))]
    if os.path.isdir(os.path.join(path, "train")):
        if validation_split is not None:
            raise InputError(f"{path!r} has a train/ folder: its held-out split is {held_out or 'missing'}; "
                             "validation_split is for a folder of class folders.")
        if not held_out:
            raise DatasetNotFoundError(
                f"{path!r} has train/ but no test/, val/ or validation/ folder; add one, or point at train/ "
                "itself with validation_split=0.1 (CLI: --validation-split 0.1).")
        if len(held_out) > 1:
            raise InputError(f"{path!r} has several held-out folders {held_out}; keep one.")
        classes = check_class_folders(path, ("train", held_out[0]))
        train = _list_class_files(os.path.join(path, "train"), classes)
        test = _list_class_files(os.path.join(path, held_out[0]), classes)
        return classes, train, test, held_out[0]
    if validation_split is None:
        raise DatasetNotFoundError(
            f"{path!r} has no train/ folder; for a folder of class folders give validation_split "
            "(e.g. 0.1; CLI: --validation-split 0.1).")
    if not 0.0 < validation_split < 1.0:
        raise InputError(f"validation_split must be in (0, 1), got {validation_split}.")
    classes = check_class_folders(os.path.dirname(path.rstrip(os.sep)) or ".",
                                          (os.path.basename(path.rstrip(os.sep)),))
    files = _list_class_files(path, classes)
    from sklearn.model_selection import train_test_split

    try:
        train_idx, test_idx = train_test_split(np.arange(len(files.paths)), test_size=validation_split,
                                               random_state=seed, stratify=files.labels)
    except ValueError as error:
        raise InputError(f"Cannot hold out {validation_split} of {path!r} per class: {error}") from None
    pick = lambda idx: FileList([files.paths[i] for i in sorted(idx)], files.labels[np.sort(idx)])  # noqa: E731
    return classes, pick(train_idx), pick(test_idx), f"validation_split={validation_split}"


def undecodable(paths):
    """The paths among `paths` whose contents do not decode as an image (one pass over all of them)."""
    ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(lambda p: (p, tf.shape(decode(p))))
    seen = {p.decode() for p, _ in ds.ignore_errors().as_numpy_iterator()}
    return [p for p in paths if p not in seen]


# Imagenette's ten classes: TFDS `imagenette/*` names them by WordNet id, a folder copy by name.
IMAGENETTE_WNIDS = {"n01440764": "tench", "n02102040": "english_springer", "n02979186": "cassette_player",
                    "n03000684": "chain_saw", "n03028079": "church", "n03394916": "french_horn",
                    "n03417042": "garbage_truck", "n03425413": "gas_pump", "n03445777": "golf_ball",
                    "n03888257": "parachute"}


def label_map(source_names, model_names, synonyms=IMAGENETTE_WNIDS):
    """Where each class of a data source sits in a model's classes, by name.

    Args:
        source_names: the source's class names, in its label order (TFDS's WordNet ids, folder names).
        model_names: the class names the model learnt, in its output order (its `metadata.json`).
        synonyms: `{source name: model name}` for sources that name classes otherwise.

    Returns:
        int array `m` with `model_label = m[source_label]`.

    Raises:
        InputError: naming the source classes the model does not know.

    Example:
    >>> y_model = ki.data.label_map(source.class_names, metadata["class_names"])[y]
    """
    model_names = list(model_names)
    names = [synonyms.get(name, name) for name in source_names]
    unknown = [name for name in names if name not in model_names]
    if unknown:
        raise InputError(f"the model knows no class named {', '.join(map(repr, unknown))}; its classes are "
                         f"{model_names}.")
    return np.array([model_names.index(name) for name in names], "int64")
