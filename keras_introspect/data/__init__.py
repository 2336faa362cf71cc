"""Datasets: CIFAR through tensorflow-datasets, local ImageFolders, sklearn digits."""

import os

from keras_introspect.data.pipeline import DataSplits, make_pipelines, pad_crop_flip, with_example_id
from keras_introspect.data.sources import (
    ArrayData,
    DatasetNotFoundError,
    digits,
    image_folder,
    stratified_subset,
    tfds_dataset,
)

TFDS_NAMES = ("cifar10", "cifar100")


def load_arrays(dataset="digits", data_dir=None, download=False):
    """In-memory arrays of a dataset given by name or by ImageFolder path.

    Args:
        dataset: `"digits"`, `"cifar10"`, `"cifar100"`, or a directory with
            `train/<class>/*` and `test/<class>/*`.
        data_dir: TFDS data directory for the CIFAR names.
        download: let TFDS download a missing dataset.
    """
    if dataset == "digits":
        return digits()
    if dataset in TFDS_NAMES:
        return tfds_dataset(dataset, data_dir=data_dir, download=download)
    if os.path.sep in str(dataset) or os.path.isdir(str(dataset)):
        return image_folder(dataset)
    raise DatasetNotFoundError(
        f"Unknown dataset {dataset!r}: use digits, cifar10, cifar100 or the path of an "
        "ImageFolder directory (train/<class>/*, test/<class>/*)."
    )


def load(dataset="digits", batch_size=128, augment=True, train_size=None, seed=0, data_dir=None, download=False):
    """Load a dataset and build its pipelines (see `make_pipelines`).

    Example:
    >>> splits = ki.data.load("cifar10", batch_size=128, train_size=10_000)
    >>> model.fit(splits.train, validation_data=splits.test, epochs=15)
    """
    arrays = load_arrays(dataset, data_dir=data_dir, download=download)
    return make_pipelines(arrays, batch_size=batch_size, augment=augment, train_size=train_size, seed=seed)


__all__ = [
    "ArrayData",
    "DataSplits",
    "DatasetNotFoundError",
    "digits",
    "image_folder",
    "load",
    "load_arrays",
    "make_pipelines",
    "pad_crop_flip",
    "stratified_subset",
    "tfds_dataset",
    "with_example_id",
]
