"""Where images come from: tensorflow-datasets, local ImageFolders, scikit-learn.

Every source returns an `ArrayData`: uint8 (or float) images and int labels in
memory. CIFAR-sized sets fit comfortably (50,000 × 32 × 32 × 3 = 150 MB), and
having arrays makes fixed, stratified subsets and exact normalization
statistics simple.
"""

import dataclasses
import os
import random

import numpy as np
import tensorflow as tf
from keras_introspect.errors import InputError


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class DatasetNotFoundError(InputError, FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable."""


@dataclasses.dataclass
class ArrayData:
    """Train and test arrays of one dataset.

    Attributes:
        name: the dataset's name.
        x_train, y_train, x_test, y_test: images `(n, h, w, c)` and int labels.
        class_names: names in label order.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def splits(self, batch_size=128, augment=True, train_size=None, seed=0, subset_seed=None, eval_batch_size=None,
               preprocessing=None):
        """Normalized, batched pipelines of these arrays (`data.make_pipelines`)."""
        from keras_introspect.data.pipeline import make_pipelines

        return make_pipelines(self, batch_size=batch_size, augment=augment, train_size=train_size, seed=seed,
                              subset_seed=subset_seed, eval_batch_size=eval_batch_size, preprocessing=preprocessing)

    def validation_split(self, fraction, seed=0):
        """These arrays with a stratified `fraction` of the training images held out as the held-out split.

        What model selection needs: choices are made on images held out from the training set, and the
        test split stays untouched for the final verdict. The held-out images are the same for every
        `seed` of a run (they depend on `seed` here only, default 0).

        Args:
            fraction: share of each class's training images to hold out, in (0, 1).
            seed: seed of the (stratified) draw.

        Returns:
            `ArrayData` whose `x_train`/`y_train` are the remaining training images and whose
            `x_test`/`y_test` are the validation images; the test split is not in it.

        Example:
        >>> fit_data = ki.data.load_arrays("cifar10").validation_split(0.1)   # 45,000 / 5,000
        """
        fraction = float(fraction)
        if not 0.0 < fraction < 1.0:
            raise InputError(f"validation fraction must be in (0, 1), got {fraction}.")
        counts = np.bincount(np.asarray(self.y_train))
        if counts[counts > 0].min() * fraction < 1:
            raise InputError(f"a validation fraction of {fraction} holds out no image of the smallest class "
                             f"({counts[counts > 0].min()} training images); use a larger fraction.")
        from sklearn.model_selection import train_test_split

        x_fit, x_val, y_fit, y_val = train_test_split(self.x_train, self.y_train, test_size=fraction,
                                                      random_state=seed, stratify=self.y_train)
        return ArrayData(f"{self.name} (validation {fraction:g})", x_fit, y_fit, x_val, y_val, list(self.class_names))


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
    from keras_introspect.data.streaming import center_crop_resize

    size = tuple(int(side) for side in image_size)

    def resize(image, label):
        image = center_crop_resize(tf.cast(image, tf.float32), size)
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


def image_folder(path):
    """A local ImageFolder in memory: `path/train/<class>/*` and `path/test/<class>/*`.

    The files are listed by the same rule as the streamed loader (`streaming.list_image_folder`:
    hidden files and folders, such as `.ipynb_checkpoints/`, and files that are not images are
    ignored), so both give the same classes and label indices (alphabetical order of the class
    folders). Images are decoded as RGB uint8 and must share one size (stream them with
    `image_size` otherwise).

    Raises:
        DatasetNotFoundError: when `path` or its splits are missing.
        BadImageError: naming files that cannot be decoded.
        InputError: images of different sizes.
    """
    from keras_introspect.data import streaming

    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"Dataset directory {path!r} does not exist.")
    missing = [s for s in ("train", "test") if not os.path.isdir(os.path.join(path, s))]
    if missing:
        raise DatasetNotFoundError(
            f"Dataset directory {path!r} has no {' or '.join(missing)} split; an "
            "ImageFolder needs train/<class>/<image> and test/<class>/<image>."
        )
    classes, train, test, _ = streaming.list_image_folder(path)
    arrays = {}
    for split, files in (("train", train), ("test", test)):
        if not files.paths:
            raise DatasetNotFoundError(f"The {split} split of {path!r} contains no images.")
        # The order TFDS's ImageFolder gave (sorted, then shuffled with the split's name as seed), which
        # the committed records' subsets and validation splits were drawn from.
        order = list(range(len(files.paths)))
        random.Random(split).shuffle(order)
        files = streaming.FileList([files.paths[i] for i in order], files.labels[order])
        decoded = tf.data.Dataset.from_tensor_slices(files.paths).map(
            lambda p: tf.ensure_shape(tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False),
                                      (None, None, 3)), num_parallel_calls=tf.data.AUTOTUNE)
        try:
            images = [image.numpy() for image in decoded]
        except tf.errors.InvalidArgumentError:
            bad = streaming.scan_files(files, (8, 8))[0]
            raise streaming.BadImageError(
                f"{len(bad)} file(s) of the {split} split cannot be decoded as images: {'; '.join(bad[:5])}. "
                "Remove them (in-memory loading cannot skip files; the streamed pipeline can: "
                "ki.data.load(path, skip_bad_files=True))."
            ) from None
        sizes = sorted({image.shape for image in images})
        if len(sizes) > 1:
            raise InputError(f"The {split} split of {path!r} has images of {len(sizes)} sizes ({sizes[:3]}...); "
                             "in-memory loading needs one size: stream them resized with "
                             "ki.data.load(path, image_size=...).")
        arrays[split] = (np.stack(images), files.labels.astype("int32"))
    return ArrayData(os.path.basename(os.path.normpath(path)), *arrays["train"], *arrays["test"], list(classes))


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


def stratified_subset(x, y, size, seed=0):
    """A fixed class-balanced subset of `size` examples (same for every method)."""
    if size is not None and (isinstance(size, bool) or not float(size).is_integer()):
        raise InputError(f"train_size must be a whole number of examples, got {size!r}.")
    if size is None or size >= len(y):
        return x, y
    if size < 1:
        raise InputError(f"train_size must be >= 1, got {size}.")
    from sklearn.model_selection import train_test_split

    classes = len(np.unique(y))
    if size < classes:
        raise InputError(f"train_size {size} is smaller than the {classes} classes; a stratified subset needs at "
                         "least one image of each.")
    x_sub, _, y_sub, _ = train_test_split(x, y, train_size=int(size), random_state=seed, stratify=y)
    return x_sub, y_sub
