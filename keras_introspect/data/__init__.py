"""Datasets: in memory (digits, CIFAR arrays) or streamed from image folders and TFDS."""

import os

from keras_introspect.data import preprocessing
from keras_introspect.data.files import IMAGENETTE_WNIDS, BadImageError, DatasetNotFoundError, class_folders, \
    label_map
from keras_introspect.data.pipeline import ArrayData, DataSplits, make_pipelines, normalize, pad_crop_flip, \
    stratified_subset, with_example_id
from keras_introspect.data.sources import digits, image_folder, tfds_dataset
from keras_introspect.data.streaming import ImageFolderSource, TFDSSource, image_size_arg, resolve_augmentation
from keras_introspect.errors import InputError

# The datasets known by name, each read in memory: `None` for the bundled digits, else (TFDS name, image size).
# Imagenette's photos differ in size; the `long` protocol uses them at 128 px.
NAMED = {"digits": None, "cifar10": ("cifar10", None), "cifar100": ("cifar100", None),
         "imagenette": ("imagenette/160px-v2", (128, 128))}


def load_arrays(dataset="digits", data_dir=None, download=False):
    """In-memory arrays of a dataset given by name or by ImageFolder path.

    Args:
        dataset: `"digits"`, `"cifar10"`, `"cifar100"`, `"imagenette"` (TFDS
            `imagenette/160px-v2` centre-cropped and resized to 128×128), or a
            directory with `train/<class>/*` and `test/<class>/*`.
        data_dir: TFDS data directory for the TFDS names.
        download: let TFDS download a missing dataset.
    """
    if dataset in NAMED:
        if NAMED[dataset] is None:
            return digits()
        name, image_size = NAMED[dataset]
        return tfds_dataset(name, data_dir=data_dir, download=download, image_size=image_size)
    if os.path.sep in str(dataset) or os.path.isdir(str(dataset)):
        return image_folder(dataset)
    raise DatasetNotFoundError(
        f"Unknown dataset {dataset!r}: use {', '.join(NAMED)} or the path of an "
        "ImageFolder directory (train/<class>/*, test/<class>/*)."
    )


def open_source(dataset="digits", image_size=None, validation_split=None, skip_bad_files=False, data_dir=None,
                download=False):
    """A dataset by name or path, in memory or streamed from files.

    Args:
        dataset: `"digits"` (bundled, 8×8); `"cifar10"` / `"cifar100"` (TFDS,
            in memory at 32×32, streamed when `image_size` is given);
            `"imagenette"` (TFDS `imagenette/160px-v2` in memory at 128 px, as
            the `long` protocol reads it; streamed when `image_size` is given); another
            TFDS name (streamed, e.g. `"imagenette/160px-v2"`); or the path of
            an image folder (streamed; `train/` with `test/`, `val/` or
            `validation/`, or class folders with `validation_split`).
        image_size: `H`, `(H, W)` or `"H,W"`: the size images are resized to
            (folders: default the first image's size).
        validation_split: held-out fraction of a folder of class folders.
        skip_bad_files: leave undecodable files out instead of stopping.
        data_dir, download: TFDS data directory, and whether TFDS may download.

    Returns:
        An `ArrayData` or a streaming source (`ImageFolderSource`,
        `TFDSSource`); each builds pipelines with `.splits(batch_size, ...)`.
    """
    dataset = str(dataset)
    if dataset == "digits" and image_size is not None:
        raise InputError("digits are 8×8 images; drop image_size.")
    # The bundled digits win over a folder of that name; any other name is a folder first.
    if dataset != "digits" and os.path.isdir(os.path.expanduser(dataset)):
        return ImageFolderSource(dataset, image_size=image_size, validation_split=validation_split,
                                 skip_bad_files=skip_bad_files)
    if dataset.startswith(("/", ".", "~")) or os.path.sep in dataset and not _is_tfds_name(dataset):
        raise DatasetNotFoundError(f"Dataset directory {dataset!r} does not exist.")
    if validation_split is not None:
        hint = (f" (for a validation split of its training images: ki.data.load_arrays({dataset!r})"
                ".validation_split(0.1))" if dataset in NAMED else "")
        raise InputError(f"{dataset} comes with its own test split; validation_split holds out part of a folder of "
                         f"class folders{hint}.")
    if dataset in NAMED and image_size is None:
        return load_arrays(dataset, data_dir=data_dir, download=download)
    if _is_tfds_name(dataset):
        return TFDSSource(dataset, image_size, data_dir=data_dir, download=download)
    raise DatasetNotFoundError(
        f"Unknown dataset {dataset!r}: use {', '.join(NAMED)}, another TensorFlow Datasets name "
        "(with image_size), or the path of an image folder (train/<class>/*, test/<class>/*)."
    )


def _is_tfds_name(name):
    import tensorflow_datasets as tfds

    return name.split("/")[0].split(":")[0] in tfds.list_builders()


def load(dataset="digits", batch_size=128, augment=True, train_size=None, seed=0, image_size=None,
         validation_split=None, skip_bad_files=False, data_dir=None, download=False, preprocessing=None):
    """A dataset's train and held-out pipelines (see `open_source` and `make_pipelines`).

    `preprocessing` matches the pixels to the backbone (`data.preprocessing`): `"standardize"`
    (default, the dataset's statistics), `"raw"` (0–255, for bases with their preprocessing
    inside) or a `keras.applications` family such as `"resnet_v2"`; `splits.normalization` and
    the export take the same scaling, so served requests stay raw 0–255 pixels.

    Example:
    >>> splits = ki.data.load("cifar10", batch_size=128, train_size=10_000)
    >>> splits = ki.data.load("photos/", image_size=128, validation_split=0.1)   # streamed
    >>> splits = ki.data.load("photos/", image_size=224, preprocessing="raw")    # for EfficientNetV2
    >>> model.fit(splits.train, validation_data=splits.test, epochs=15)
    """
    source = open_source(dataset, image_size=image_size, validation_split=validation_split,
                         skip_bad_files=skip_bad_files, data_dir=data_dir, download=download)
    return source.splits(batch_size=batch_size, augment=augment, train_size=train_size, seed=seed,
                         preprocessing=preprocessing)


__all__ = [
    "ArrayData",
    "BadImageError",
    "DataSplits",
    "class_folders",
    "DatasetNotFoundError",
    "ImageFolderSource",
    "TFDSSource",
    "digits",
    "image_folder",
    "image_size_arg",
    "load",
    "load_arrays",
    "make_pipelines",
    "NAMED",
    "open_source",
    "preprocessing",
    "pad_crop_flip",
    "resolve_augmentation",
    "stratified_subset",
    "tfds_dataset",
    "with_example_id",
]
