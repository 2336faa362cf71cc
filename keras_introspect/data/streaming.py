"""Streaming input pipelines: images decoded from files (or TFDS) as they are needed.

Memory does not grow with the number of images: the pipeline holds the
list of file names, a shuffle buffer of names, and a few batches in flight.
Every image goes through the same steps, in parallel:

    read → decode (JPEG, PNG, BMP, GIF first frame; grey and RGBA → RGB)
         → resize (the policy below) → normalize → batch → prefetch

**Resize policy** (`augment` selects the training transform):

* evaluation, and training without augmentation: the shorter side is
  resized to the target and the centre cropped (`center_crop_resize`);
* `"random_resized_crop"` (the default above 32 px, for photographs): a random
  crop covering 35–100% of the image with aspect ratio 3/4–4/3, resized to the
  target, and a random horizontal flip (Inception-style, with fast.ai's
  Imagenette scale range);
* `"pad_crop_flip"` (the default up to 32 px, CIFAR-sized data): the
  evaluation view, padded by an eighth of its side (4 px at 32 px), randomly
  cropped back, randomly flipped.

**Normalization statistics** (per-channel mean and standard deviation of the
training images as the evaluation transform shows them) come from one
streaming pass over the training files, accumulated in float64. The same
pass checks that every training and held-out file decodes; an undecodable
file stops with an error naming it, or is left out with
`skip_bad_files=True`, and the count is reported.
"""

import os

import numpy as np
import tensorflow as tf

from keras_introspect.data import preprocessing as preprocessing_lib
from keras_introspect.data import sources
from keras_introspect.data.files import BadImageError, FileList, center_crop_resize, decode, list_image_folder
from keras_introspect.data.pipeline import DataSplits, pad_crop_flip, stratified_subset, with_example_id
from keras_introspect.errors import InputError

AUGMENTATIONS = ("auto", "random_resized_crop", "pad_crop_flip", "none")


def image_size_arg(size):
    """`64`, `(64, 48)`, `"64"` or `"64,48"` → `(height, width)`."""
    if size is None:
        return None
    if isinstance(size, str):
        parts = [p for p in size.replace("x", ",").split(",") if p.strip()]
        try:
            size = tuple(int(p) for p in parts)
        except ValueError:
            raise InputError(f"image_size must be H or H,W in pixels, got {size!r}.") from None
    if isinstance(size, bool):
        raise InputError(f"image_size must be whole pixels (H or (H, W)), got {size!r}.")
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    sides = tuple(size) if isinstance(size, (tuple, list)) else (size,)
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) and not
           (isinstance(s, (float, np.floating)) and float(s).is_integer()) for s in sides):
        raise InputError(f"image_size must be whole pixels (H or (H, W)), got {size!r}.")
    size = tuple(int(s) for s in sides)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 8 or max(size) > 4096:
        raise InputError(f"image_size must be one or two sizes between 8 and 4096 pixels, got {size}.")
    return size


def random_resized_crop(image, size, seed, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop of `scale` of the area and aspect `ratio`, resized to `size`, randomly flipped."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=crop_seed, area_range=scale,
        aspect_ratio_range=ratio, max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, extent)
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def resolve_augmentation(augment, size):
    if augment is True or augment == "auto":
        return "pad_crop_flip" if max(size) <= 32 else "random_resized_crop"
    if augment is False or augment is None:
        return "none"
    if augment not in AUGMENTATIONS:
        raise InputError(f"Unknown augmentation {augment!r}; choose one of {AUGMENTATIONS}.")
    return augment


def interleave_classes(files):
    """The files in round-robin order of their classes (the first images then show every class)."""
    rank = np.zeros(len(files.labels), "int64")
    for label in np.unique(files.labels):
        members = np.flatnonzero(files.labels == label)
        rank[members] = np.arange(len(members))
    order = np.lexsort((files.labels, rank))
    return FileList([files.paths[i] for i in order], files.labels[order])


def _decoded(paths, size):
    """`(path, evaluation view)` for every file that decodes; the others are dropped."""
    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = ds.map(lambda p: (p, center_crop_resize(decode(p), size)), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=False)
    return ds.ignore_errors()


class ChannelStatistics:
    """Per-channel mean and standard deviation of streamed image batches, accumulated in float64."""

    def __init__(self):
        self.total, self.squares, self.count = np.zeros(3), np.zeros(3), 0

    def add(self, images):
        pixels = np.asarray(images).reshape(-1, 3).astype(np.float64)
        self.total += pixels.sum(0)
        self.squares += (pixels**2).sum(0)
        self.count += len(pixels)

    def result(self):
        """`(mean, std)` as float32 (std with 1e-7 added, as for in-memory data)."""
        if self.count == 0:
            raise BadImageError("None of the training images decodes.")
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0)) + 1e-7
        return mean.astype("float32"), std.astype("float32")


def scan_files(files, size, statistics=False):
    """Decode every file once: the undecodable ones, and optionally the per-channel mean and std.

    Returns:
        `(bad paths, mean or None, std or None)`; statistics in float64 over
        every pixel of the evaluation views.
    """
    seen = set()
    accumulated = ChannelStatistics()
    for paths, images in _decoded(files.paths, size).batch(64).prefetch(2):
        seen.update(p.decode() for p in paths.numpy())
        if statistics:
            accumulated.add(images)
    bad = [p for p in files.paths if p not in seen]
    return (bad, *accumulated.result()) if statistics else (bad, None, None)


def drop_bad(files, bad, split, skip_bad_files):
    if not bad:
        return files
    if not skip_bad_files:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise BadImageError(f"{len(bad)} file(s) of the {split} split cannot be decoded as images: {shown}. "
                            "Remove them, or pass skip_bad_files=True (CLI: --skip-bad-files) to leave them out.")
    print(f"Skipped {len(bad)} undecodable file(s) of the {split} split (e.g. {bad[0]}).", flush=True)
    keep = [i for i, p in enumerate(files.paths) if p not in set(bad)]
    lost = sorted(set(files.labels.tolist()) - set(files.labels[keep].tolist()))
    if lost:
        raise BadImageError(f"Every file of class index(es) {lost} in the {split} split is undecodable; skipping them "
                            "would train or test without the class. Repair or replace those files.")
    if not keep:
        raise BadImageError(f"Every file of the {split} split is undecodable.")
    return FileList([files.paths[i] for i in keep], files.labels[keep])


class StreamingSource:
    """What every streamed source has: classes, an image size, and normalization statistics."""

    class_names: list
    image_size: tuple
    mean: np.ndarray
    std: np.ndarray

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_shape(self):
        return (*self.image_size, 3)


class ImageFolderSource(StreamingSource):
    """A folder of images, streamed: `splits()` builds the pipelines of one run.

    Args:
        path: the folder (see `list_image_folder` for the layouts).
        image_size: `(height, width)` the images are resized to; default: the
            size of the first training image.
        validation_split: for a folder of class folders, the held-out fraction.
        skip_bad_files: leave undecodable files out (reporting how many)
            instead of stopping with an error naming them.
        seed: seed of the held-out split of `validation_split`.

    Example:
    >>> source = ImageFolderSource("photos/", image_size=128, validation_split=0.1)
    >>> splits = source.splits(batch_size=64)
    """

    def __init__(self, path, image_size=None, validation_split=None, skip_bad_files=False, seed=0):
        self.path = os.path.expanduser(str(path))
        self.name = os.path.basename(os.path.normpath(self.path))
        self.class_names, train, test, self.held_out = list_image_folder(path, validation_split, seed)
        if image_size is None:
            image_size = first_image_size(train, skip_bad_files)
        self.image_size = image_size_arg(image_size)
        bad, self.mean, self.std = scan_files(train, self.image_size, statistics=True)
        self.train = drop_bad(train, bad, "train", skip_bad_files)
        self.test = interleave_classes(drop_bad(test, scan_files(test, self.image_size)[0], self.held_out,
                                                skip_bad_files))
        self.skipped = len(train.paths) - len(self.train.paths) + len(test.paths) - len(self.test.paths)
        if self.skipped:
            self.mean, self.std = scan_files(self.train, self.image_size, statistics=True)[1:]

    def load(self, path):
        return center_crop_resize(decode(path), self.image_size)

    def splits(self, batch_size=128, augment="auto", train_size=None, seed=0, subset_seed=None,
               eval_batch_size=None, preprocessing=None):
        """Streaming train/test pipelines (see `data.make_pipelines` for the arguments)."""
        files = self.train
        if train_size is not None and train_size < len(files.paths):
            index, _ = stratified_subset(np.arange(len(files.paths)), files.labels, train_size,
                                                 seed if subset_seed is None else subset_seed)
            index = np.sort(index)
            files = FileList([files.paths[i] for i in index], files.labels[index])
        examples = tf.data.Dataset.from_tensor_slices(
            (files.paths, files.labels, np.arange(len(files.paths), dtype="int32")))
        test = tf.data.Dataset.from_tensor_slices((self.test.paths, self.test.labels))
        return build_splits(self, examples, lambda p: decode(p), test.map(lambda p, y: (self.load(p), y),
                            num_parallel_calls=tf.data.AUTOTUNE), len(files.paths), len(self.test.paths),
                            batch_size, augment, seed, eval_batch_size, preprocessing=preprocessing)


def first_image_size(files, skip_bad_files):
    """The size of the first training image that decodes: the default `image_size` of a folder.

    Raises:
        BadImageError: the first file does not decode (without `skip_bad_files`), or none does.
    """
    for path in files.paths:
        try:
            size = tuple(int(s) for s in decode(path).shape[:2])
            if min(size) < 8:
                raise BadImageError(f"{path} is {size[0]}×{size[1]} pixels and, as the first image, would set "
                                    "image_size; give image_size (CLI: --image-size) for the whole folder.")
            return size
        except tf.errors.OpError:
            if not skip_bad_files:
                raise BadImageError(f"{path} cannot be decoded as an image (its size would set image_size); remove "
                                    "it, give image_size, or pass skip_bad_files=True.") from None
    raise BadImageError("No training file decodes as an image.")


def build_splits(source, examples, load_raw, test_views, num_train, num_test, batch_size, augment, seed,
                 eval_batch_size=None, shuffle_buffer=None, preprocessing=None):
    """Streaming `DataSplits` from `(item, label, index)` examples and a test set of evaluation views.

    `load_raw(item)` gives the full decoded image (float32, 0–255) of a
    training item; the training transform, normalization, shuffling and
    batching are the same for every source. `shuffle_buffer` (default: all
    examples) bounds the memory when the items are images rather than names.
    """
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    size = source.image_size
    policy = resolve_augmentation(augment, size)
    statistics = preprocessing_lib.statistics(preprocessing, (source.mean, source.std), channels=3)
    mean, std = (tf.constant(v) for v in statistics)

    def train_view(item, label, index, random_seed):
        image = load_raw(item)
        if policy == "random_resized_crop":
            image = random_resized_crop(image, size, random_seed)
        else:
            image = center_crop_resize(image, size)
            if policy == "pad_crop_flip":
                image = pad_crop_flip(image, random_seed)
        return (image - mean) / std, label, index

    examples = examples.shuffle(shuffle_buffer or num_train, seed=seed, reshuffle_each_iteration=True)
    randomness = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    indexed = tf.data.Dataset.zip((examples, randomness)).map(
        lambda e, s: train_view(*e, s), num_parallel_calls=tf.data.AUTOTUNE)
    train_examples = indexed.map(lambda x, y, i: (x, y))
    test = test_views.map(lambda x, y: ((x - mean) / std, y))
    return DataSplits(
        train=train_examples.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE),
        test=test.batch(int(eval_batch_size or batch_size)).prefetch(tf.data.AUTOTUNE),
        train_examples=train_examples, train_examples_with_ids=indexed.map(with_example_id),
        class_names=list(source.class_names), input_shape=(*size, 3), mean=statistics[0],
        std=statistics[1], num_train=int(num_train), num_test=int(num_test),
        images_test=None, y_test=None, images_train=None, y_train=None, batch_size=int(batch_size),
        augment=policy != "none", pixel_max=255.0,
    )


class TFDSSource(StreamingSource):
    """A TensorFlow Datasets image dataset, streamed (e.g. `imagenette/160px-v2` on Colab).

    Args:
        name: the TFDS name.
        image_size: `(height, width)`; required.
        data_dir: TFDS data directory.
        download: let TFDS download and prepare it.
        train_split, test_split: split names; the held-out one defaults to the
            first of `test`, `validation` the dataset has.
    """

    def __init__(self, name, image_size, data_dir=None, download=False, train_split="train", test_split=None):
        self.name = name
        self.image_size = image_size_arg(image_size)
        if self.image_size is None:
            raise InputError(f"Streaming {name!r} from TFDS needs image_size (CLI: --image-size).")
        self.builder = sources.prepared_builder(name, data_dir=data_dir, download=download)
        splits = list(self.builder.info.splits)
        self.test_split = test_split or next((s for s in ("test", "validation") if s in splits), None)
        if self.test_split is None or train_split not in splits:
            raise InputError(f"TFDS dataset {name!r} has splits {splits}; name the train and held-out ones.")
        self.train_split = train_split
        self.class_names = self.builder.info.features["label"].names
        self.num_train = self.builder.info.splits[train_split].num_examples
        self.num_test = self.builder.info.splits[self.test_split].num_examples
        accumulated = ChannelStatistics()
        for images in self._read(train_split).map(lambda x, y: center_crop_resize(tf.cast(x, tf.float32),
                                                                                  self.image_size),
                                                  num_parallel_calls=tf.data.AUTOTUNE).batch(64):
            accumulated.add(images)
        self.mean, self.std = accumulated.result()

    def _read(self, split):
        """uint8 RGB images (grey and RGBA converted) and int32 labels."""
        ds = self.builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        return ds.map(lambda x, y: (tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x[..., :3],
                                    tf.cast(y, tf.int32)))

    def splits(self, batch_size=128, augment="auto", train_size=None, seed=0, subset_seed=None,
               eval_batch_size=None, preprocessing=None):
        if train_size is not None:
            raise InputError("train_size is not supported for streamed TFDS data; use an image folder or arrays.")
        examples = tf.data.Dataset.zip((self._read(self.train_split),
                                        tf.data.Dataset.range(self.num_train).map(lambda i: tf.cast(i, tf.int32))))
        examples = examples.map(lambda xy, i: (xy[0], xy[1], i))
        test = self._read(self.test_split).map(
            lambda x, y: (center_crop_resize(tf.cast(x, tf.float32), self.image_size), y),
            num_parallel_calls=tf.data.AUTOTUNE)
        # The items are decoded images, not names: a bounded shuffle buffer keeps memory flat.
        return build_splits(self, examples, lambda x: tf.cast(x, tf.float32), test, self.num_train, self.num_test,
                            batch_size, augment, seed, eval_batch_size, shuffle_buffer=min(self.num_train, 2048),
                            preprocessing=preprocessing)
