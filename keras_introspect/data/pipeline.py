"""tf.data input pipelines: normalization, CIFAR augmentation, batching."""

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from keras_introspect.data import preprocessing as preprocessing_lib
from keras_introspect.errors import InputError


def normalize(images, normalization):
    """Images as loaded → a model's input, with the statistics recorded beside it.

    Args:
        images: pixels as loaded (e.g. raw 0-255), `(..., channels)`.
        normalization: `{"mean": [...], "std": [...]}` per channel, as `metadata.json` of a saved
            model, a teacher's record or `DataSplits.normalization` hold it.

    Returns:
        float32 `(images - mean) / std`, the arithmetic of the training pipelines.

    Raises:
        InputError: statistics that are malformed, not finite, a std ≤ 0, or neither one per
            channel nor one for all.

    Example:
    >>> x = ki.data.normalize(raw, json.load(open("saved_models/NAME/metadata.json"))["normalization"])
    """
    images = np.asarray(images).astype("float32")
    if normalization is None:
        raise InputError('normalization must be {"mean": [...], "std": [...]}, got None.')
    mean, std = (np.asarray(value, "float32") for value in
                 preprocessing_lib.as_mean_std(normalization, channels=images.shape[-1]))
    return (images - mean) / std


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


@dataclasses.dataclass
class DataSplits:
    """Batched train/test pipelines plus what a model needs to know.

    Attributes:
        train, test: `tf.data.Dataset`s of `(normalized images, int labels)`.
        train_examples: the training set before batching (shuffled and
            augmented), for per-replica pipelines (`fit_distributed`).
        train_examples_with_ids: the same examples as
            `({"images": x, "example_id": i}, y)`, `i` the example's index in
            the training set (`with_example_id`), for methods with per-example
            state; `train_with_ids` batches them like `train`.
        class_names, input_shape, num_classes: dataset facts.
        mean, std: per-channel statistics used to normalize (train split).
        num_train, num_test: example counts.
        images_train, y_train: the training images (as loaded, not yet
            normalized) and labels after subsetting (None when streamed from
            files); `x_train` normalizes them on first use.
        images_test, y_test: the same for the test split; `x_test`.
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    train_examples: tf.data.Dataset
    train_examples_with_ids: tf.data.Dataset
    class_names: list
    input_shape: tuple
    mean: np.ndarray
    std: np.ndarray
    num_train: int
    num_test: int
    images_test: np.ndarray
    y_test: np.ndarray
    images_train: np.ndarray
    y_train: np.ndarray
    batch_size: int = 128
    augment: bool = True
    pixel_max: float | None = None  # 255 or 1: the range of the images as loaded (None: guessed from the mean)

    # The pipelines hold the images as loaded (uint8 for photos) and normalize each example as it
    # is read: a normalized float32 copy is 4× larger, and the shuffle buffer holds another
    # (~10 GB instead of ~2.5 GB for Imagenette at 128 px). The arrays below are made on demand.
    @functools.cached_property
    def x_test(self):
        """The normalized test images (None when streamed from files; `preview` serves both)."""
        return None if self.images_test is None else self.normalize(self.images_test)

    @functools.cached_property
    def x_train(self):
        """The normalized training images after subsetting (None when streamed from files)."""
        return None if self.images_train is None else self.normalize(self.images_train)

    def normalize(self, images):
        """Images as loaded → the model's input: `(images - mean) / std` per channel, float32.

        The same arithmetic as the pipelines, so the values agree bit for bit.

        Example:
        >>> x = splits.normalize(arrays.x_test[:4])   # raw uint8 pixels in
        """
        return normalize(images, self.normalization)

    @property
    def num_classes(self):
        return len(self.class_names)

    def preview(self, count):
        """The first `count` held-out examples as normalized numpy arrays `(x, y)`, for plots."""
        if self.images_test is not None:
            return self.normalize(self.images_test[:count]), np.asarray(self.y_test[:count])
        xs, ys = [], []
        for x, y in self.test.unbatch().take(count):
            xs.append(x.numpy())
            ys.append(int(y))
        return np.stack(xs), np.asarray(ys, "int32")

    @property
    def train_with_ids(self):
        """`train` with each example's index: `({"images": x, "example_id": i}, y)` batches."""
        return self.train_examples_with_ids.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)

    def denormalize(self, images):
        """Back to the [0, 1] range for display."""
        images = np.asarray(images) * self.std + self.mean
        return np.clip(images / self.scale, 0.0, 1.0)

    @property
    def normalization(self):
        """The per-channel statistics as JSON-ready lists, as recorded beside runs and teachers."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @property
    def scale(self):
        if self.pixel_max is not None:
            return self.pixel_max
        return 255.0 if self.mean.max() > 1.5 else 1.0


def with_example_id(x, y, index):
    """`(x, y, i)` → `({"images": x, "example_id": i}, y)`: the input format of methods with per-example state.

    Example:
    >>> ds = tf.data.Dataset.from_tensor_slices((x, y, np.arange(len(y)))).map(with_example_id)
    """
    return {"images": x, "example_id": tf.cast(index, tf.int32)}, y


def pad_crop_flip(image, seed, pad=None):
    """Standard CIFAR augmentation: pad, random crop back, random h-flip.

    Args:
        image: `(height, width, channels)` float tensor.
        seed: `(2,)` int64 stateless seed.
        pad: reflection padding in pixels; default an eighth of the smaller
            side, at least 4 (4 at 32 px as in the CIFAR papers, 16 at 128 px).
    """
    height, width = image.shape[0], image.shape[1]
    if pad is None:
        pad = max(4, min(height, width) // 8)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    image = tf.image.stateless_random_crop(padded, [height, width, image.shape[-1]], crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def make_pipelines(arrays, batch_size=128, augment=True, train_size=None, seed=0, eval_batch_size=None,
                   subset_seed=None, preprocessing=None):
    """Build normalized, batched, prefetched train/test datasets.

    Args:
        arrays: an `ArrayData`.
        batch_size: training batch size.
        augment: pad-4 crop and horizontal flip for training (images ≥ 16 px
            only; digits are not flipped).
        train_size: a fixed, stratified subset of the training set (`None` = all).
        seed: seed of the shuffling and the augmentation (and of the subset
            unless `subset_seed` is given).
        subset_seed: seed of the training subset, to keep one subset fixed
            while `seed` varies (benchmarks).
        eval_batch_size: test batch size (default `batch_size`).
        preprocessing: what the backbone expects (`data.preprocessing`):
            `"standardize"` (default, the training images' statistics),
            `"raw"` or a `keras.applications` family such as `"resnet_v2"`.

    Returns:
        `DataSplits`.
    """
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    subset_seed = seed if subset_seed is None else subset_seed
    x_train, y_train = stratified_subset(arrays.x_train, arrays.y_train, train_size, subset_seed)
    own = channel_statistics(x_train) if preprocessing in (None, "standardize") else None
    mean, std = preprocessing_lib.statistics(preprocessing, own, channels=arrays.input_shape[-1])

    def normalize(images):
        return (tf.cast(images, tf.float32) - mean) / std

    # Every example carries its index in the training set, for methods that keep per-example
    # state (PS-KD); the shuffle order depends only on the seed and the count, not on that.
    indexed = tf.data.Dataset.from_tensor_slices((x_train, y_train, np.arange(len(y_train), dtype="int32")))
    indexed = indexed.shuffle(len(y_train), seed=seed, reshuffle_each_iteration=True)
    augment = bool(augment) and min(arrays.input_shape[:2]) >= 16
    if augment:
        # Padding and cropping move pixels without changing them, so normalizing first is exact.
        randomness = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        indexed = tf.data.Dataset.zip((indexed, randomness)).map(
            lambda xyi, s: (pad_crop_flip(normalize(xyi[0]), s), xyi[1], xyi[2]), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        indexed = indexed.map(lambda x, y, i: (normalize(x), y, i), num_parallel_calls=tf.data.AUTOTUNE)
    examples = indexed.map(lambda x, y, i: (x, y))
    examples_with_ids = indexed.map(with_example_id)
    train = examples.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)
    test = tf.data.Dataset.from_tensor_slices((arrays.x_test, arrays.y_test))
    test = test.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    test = test.batch(int(eval_batch_size or batch_size)).prefetch(tf.data.AUTOTUNE)
    return DataSplits(
        train=train, test=test, train_examples=examples, train_examples_with_ids=examples_with_ids,
        class_names=list(arrays.class_names), input_shape=arrays.input_shape, mean=mean, std=std,
        num_train=len(y_train), num_test=len(arrays.y_test),
        images_test=arrays.x_test, y_test=arrays.y_test, images_train=x_train, y_train=y_train,
        batch_size=int(batch_size), augment=augment, pixel_max=pixel_max(arrays.x_train),
    )


def pixel_max(images):
    """The largest pixel value of images as loaded: 255 for 8-bit images, else 1 when they lie in [0, 1]."""
    images = np.asarray(images)
    return 255.0 if images.dtype == np.uint8 or images.size and float(images.max()) > 1.5 else 1.0


def channel_statistics(images, chunk=256):
    """Per-channel mean and standard deviation of `(n, h, w, c)` images, as float32.

    Accumulated in float64 (a float32 sum over 50,000 × 32 × 32 pixels saturates: it gave 83.9
    for every CIFAR-10 channel instead of ~120), a chunk at a time so that no float64 copy of the
    whole set is made; 1e-7 is added to the std so that a constant channel does not divide by 0.

    Returns:
        `(mean, std)`, each of shape `(c,)`.
    """
    mean = images.mean(axis=(0, 1, 2), dtype=np.float64)
    squares = np.zeros_like(mean)
    for start in range(0, len(images), chunk):
        deviation = images[start:start + chunk].astype(np.float64)
        deviation -= mean
        deviation *= deviation
        squares += deviation.sum(axis=(0, 1, 2))
    std = np.sqrt(squares / (images.size // images.shape[-1]))
    return mean.astype("float32"), (std + 1e-7).astype("float32")
