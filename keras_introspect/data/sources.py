"""Where images come from: tensorflow-datasets, local ImageFolders, scikit-learn.

Every source returns an `ArrayData`: uint8 (or float) images and int labels in
memory. CIFAR-sized sets fit comfortably (50,000 × 32 × 32 × 3 = 150 MB), and
having arrays makes fixed, stratified subsets and exact normalization
statistics simple.
"""

import os
import random

import numpy as np
import tensorflow as tf

from keras_introspect.data import files as files_lib
from keras_introspect.data.files import DatasetNotFoundError
from keras_introspect.data.pipeline import ArrayData
from keras_introspect.errors import InputError


def digits(test_fraction=0.2, seed=0):
    """scikit-learn's 8×8 handwritten digits (1,797 images, bundled, no download).

    Returns:
        `ArrayData` with float32 images in [0, 1] of shape `(n, 8, 8, 1)` and a
        stratified train/test split (1,437 / 360 at the default fraction).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype("float32")[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target.astype("int32"), test_size=test_fraction,
        random_state=seed, stratify=bunch.target,
    )
    return ArrayData("digits", x_train, y_train, x_test, y_test, [str(d) for d in range(10)])


def tfds_dataset(name, data_dir=None, download=False, image_size=None):
    """A dataset from tensorflow-datasets, in memory (e.g. `"cifar10"`, `"imagenette/160px-v2"`).

    Args:
        name: TFDS name.
        data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).
        download: allow TFDS to download and prepare it.
        image_size: `(height, width)` every image is centre-cropped to the
            aspect of and resized to (antialiased bilinear, rounded back to
            uint8), for datasets whose images differ in size; `None` keeps
            them as stored (they must share one size).

    Returns:
        `ArrayData` of the `train` split and the held-out one (`test`, else
        `validation`).

    Raises:
        DatasetNotFoundError: when it is not prepared under `data_dir` and may
            not (or cannot) be downloaded; the message says how to use local data.

    Example:
    >>> arrays = tfds_dataset("imagenette/160px-v2", image_size=(128, 128), download=True)
    """
    builder = prepared_builder(name, data_dir=data_dir, download=download)
    splits = list(builder.info.splits)
    held_out = next((split for split in ("test", "validation") if split in splits), None)
    if "train" not in splits or held_out is None:
        raise InputError(f"TFDS dataset {name!r} has splits {splits}; in-memory loading needs train and test "
                         "(or validation).")
    label_names = builder.info.features["label"].names
    train, test = (_tfds_split_arrays(builder, split, image_size) for split in ("train", held_out))
    return ArrayData(name, *train, *test, label_names)


def _tfds_split_arrays(builder, split, image_size):
    import tensorflow_datasets as tfds

    if image_size is None:
        x, y = tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True, batch_size=-1))
        return x, y.astype("int32")
    size = tuple(int(side) for side in image_size)

    def resize(image, label):
        image = files_lib.center_crop_resize(tf.cast(image, tf.float32), size)
        return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8), label

    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
    batches = list(tfds.as_numpy(ds))
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]).astype("int32")


def prepared_builder(name, data_dir=None, download=False):
    """The TFDS builder of a prepared dataset (downloading it first if allowed).

    Raises:
        DatasetNotFoundError: when it is not prepared under `data_dir` and may
            not (or cannot) be downloaded; the message says how to use local data.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if download:
            builder.download_and_prepare()
        elif not builder.is_prepared():
            raise FileNotFoundError(builder.data_dir)
    except Exception as error:  # TFDS raises several types for "not there / offline"
        raise DatasetNotFoundError(
            f"Dataset {name!r} is not prepared under data_dir={data_dir or '~/tensorflow_datasets'} "
            f"and was not downloaded ({type(error).__name__}: {error}). Either run once "
            f"with network access and download=True (CLI: --download), point data_dir "
            f"(--data-dir) at a prepared TFDS copy, or pass a local image folder "
            f"with train/<class>/*.jpg and test/<class>/*.jpg as the dataset."
        ) from None
    return builder


def _decode_all(paths, batch_size=1024):
    """All images of `paths` decoded as RGB uint8: their pixels end to end, and their shapes.

    Batches of flattened images (a ragged batch: no padding when sizes differ) rather than one
    eager step per image, which took three times as long for CIFAR-10's 50,000 training files.
    """
    def flat(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.reshape(image, [-1]), tf.shape(image)

    pixels, shapes = [], []
    for batch, batch_shapes in tf.data.Dataset.from_tensor_slices(paths).map(
            flat, num_parallel_calls=tf.data.AUTOTUNE).ragged_batch(batch_size):
        pixels.append(batch.flat_values.numpy())
        shapes.append(batch_shapes.numpy())
    return np.concatenate(pixels), np.concatenate(shapes)


def image_folder(path):
    """A local ImageFolder in memory: `path/train/<class>/*` and `path/test/<class>/*`.

    The files are listed by the same rule as the streamed loader (`files.list_image_folder`:
    hidden files and folders, such as `.ipynb_checkpoints/`, and files that are not images are
    ignored), so both give the same classes and label indices (alphabetical order of the class
    folders). Images are decoded as RGB uint8 and must share one size (stream them with
    `image_size` otherwise).

    Raises:
        DatasetNotFoundError: when `path` or its splits are missing.
        BadImageError: naming files that cannot be decoded.
        InputError: images of different sizes.
    """
    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"Dataset directory {path!r} does not exist.")
    missing = [s for s in ("train", "test") if not os.path.isdir(os.path.join(path, s))]
    if missing:
        raise DatasetNotFoundError(
            f"Dataset directory {path!r} has no {' or '.join(missing)} split; an "
            "ImageFolder needs train/<class>/<image> and test/<class>/<image>."
        )
    classes, train, test, _ = files_lib.list_image_folder(path)
    arrays = {}
    for split, files in (("train", train), ("test", test)):
        if not files.paths:
            raise DatasetNotFoundError(f"The {split} split of {path!r} contains no images.")
        # The order TFDS's ImageFolder gave (sorted, then shuffled with the split's name as seed), which
        # the committed records' subsets and validation splits were drawn from.
        order = list(range(len(files.paths)))
        random.Random(split).shuffle(order)
        files = files_lib.FileList([files.paths[i] for i in order], files.labels[order])
        try:
            images, shapes = _decode_all(files.paths)
        except tf.errors.InvalidArgumentError:
            bad = files_lib.undecodable(files.paths)
            raise files_lib.BadImageError(
                f"{len(bad)} file(s) of the {split} split cannot be decoded as images: {'; '.join(bad[:5])}. "
                "Remove them (in-memory loading cannot skip files; the streamed pipeline can: "
                "ki.data.load(path, skip_bad_files=True))."
            ) from None
        sizes = sorted({tuple(shape) for shape in shapes.tolist()})
        if len(sizes) > 1:
            raise InputError(f"The {split} split of {path!r} has images of {len(sizes)} sizes ({sizes[:3]}...); "
                             "in-memory loading needs one size: stream them resized with "
                             "ki.data.load(path, image_size=...).")
        arrays[split] = (images.reshape((len(shapes),) + sizes[0]), files.labels.astype("int32"))
    return ArrayData(os.path.basename(os.path.normpath(path)), *arrays["train"], *arrays["test"], list(classes))


