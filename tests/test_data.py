"""Data sources and pipelines, on real data (digits, the shared CIFAR-10 copy)."""

import numpy as np
import pytest
import tensorflow as tf

import keras_introspect as ki
from keras_introspect.data import DatasetNotFoundError
from keras_introspect.errors import InputError


def test_digits_is_the_zero_download_default():
    arrays = ki.data.load_arrays("digits")
    assert arrays.x_train.shape == (1437, 8, 8, 1) and arrays.x_test.shape == (360, 8, 8, 1)
    assert arrays.num_classes == 10
    assert np.bincount(arrays.y_test).min() >= 35  # stratified


def test_pipelines_normalize_batch_and_subset():
    arrays = ki.data.load_arrays("digits")
    splits = ki.data.make_pipelines(arrays, batch_size=32, train_size=500, seed=1)
    assert splits.num_train == 500
    x, y = next(iter(splits.train))
    assert x.shape == (32, 8, 8, 1) and y.dtype == tf.int32
    all_x = np.concatenate([b[0].numpy() for b in splits.train])
    np.testing.assert_allclose(all_x.mean(), 0.0, atol=1e-4)
    np.testing.assert_allclose(all_x.std(), 1.0, atol=1e-3)
    np.testing.assert_allclose(splits.denormalize(splits.x_test), arrays.x_test, atol=1e-5)


def test_normalization_statistics_are_exact_at_cifar_size():
    # 50,000 × 32 × 32 pixels per channel: a float32 accumulation saturates there.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50_000, 32, 32, 3), dtype=np.uint8)
    x[..., 1] //= 2
    y = np.arange(50_000) % 10
    arrays = ki.data.ArrayData("synthetic", x, y, x[:100], y[:100], [str(c) for c in range(10)])
    splits = ki.data.make_pipelines(arrays, batch_size=1000, augment=False)
    pixels = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(splits.mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(splits.std, pixels.std(axis=0), rtol=1e-5)


def test_in_memory_pipelines_keep_images_as_loaded_and_normalize_as_they_read():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(120, 16, 16, 3), dtype=np.uint8)
    y = np.arange(120) % 4
    arrays = ki.data.ArrayData("synthetic", x, y, x[:30], y[:30], list("abcd"))
    splits = ki.data.make_pipelines(arrays, batch_size=25, augment=False, train_size=80)
    # Held as loaded: a float32 copy would be 4x larger (and the shuffle buffer holds another).
    assert splits.images_train.dtype == np.uint8 and splits.images_train.shape == (80, 16, 16, 3)
    mean = splits.images_train.reshape(-1, 3).astype(np.float64).mean(axis=0)
    std = splits.images_train.reshape(-1, 3).astype(np.float64).std(axis=0)

    def expected(images):
        return (images.astype(np.float64) - mean) / std

    batches = list(splits.train_with_ids)
    ids = np.concatenate([b[0]["example_id"].numpy() for b in batches])
    images = np.concatenate([b[0]["images"].numpy() for b in batches])
    assert images.dtype == np.float32 and sorted(ids) == list(range(80))
    np.testing.assert_allclose(images, expected(splits.images_train[ids]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), splits.y_train[ids])
    # The numpy arrays come from the same float32 arithmetic as the pipelines: equal bit for bit.
    test = np.concatenate([b[0].numpy() for b in splits.test])
    np.testing.assert_allclose(test, expected(x[:30]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(splits.x_test, test)
    np.testing.assert_array_equal(splits.normalize(x[:30]), test)
    np.testing.assert_array_equal(splits.x_train[ids], images)
    np.testing.assert_array_equal(splits.preview(7)[0], test[:7])


def test_channel_statistics_do_not_depend_on_the_chunk():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(101, 5, 5, 3), dtype=np.uint8)
    x[..., 2] = 9  # a constant channel: std 1e-7, not 0
    pixels = x.reshape(-1, 3).astype(np.float64)
    for chunk in (1, 7, 100, 1000):
        mean, std = ki.data.pipeline.channel_statistics(x, chunk=chunk)
        assert mean.dtype == std.dtype == np.float32
        np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-7)
        np.testing.assert_allclose(std, pixels.std(axis=0) + 1e-7, rtol=1e-6)
        assert std[2] > 0


def test_stratified_subset_is_balanced_and_fixed():
    y = np.repeat(np.arange(10), 100)
    x = np.arange(1000)
    xa, ya = ki.data.stratified_subset(x, y, 200, seed=3)
    xb, _ = ki.data.stratified_subset(x, y, 200, seed=3)
    assert (np.bincount(ya) == 20).all()
    np.testing.assert_array_equal(xa, xb)


def test_pad_crop_flip_keeps_shape_and_content():
    image = tf.reshape(tf.range(32 * 32 * 3, dtype=tf.float32), (32, 32, 3))
    out = ki.data.pad_crop_flip(image, tf.constant([1, 2], tf.int64))
    assert out.shape == (32, 32, 3)
    same = ki.data.pad_crop_flip(image, tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(out.numpy(), same.numpy())
    # Every output is a 32×32 window of the 4-pixel reflect-padded image, possibly mirrored;
    # over seeds the windows move and half of them are mirrored.
    padded = np.pad(image.numpy(), ((4, 4), (4, 4), (0, 0)), mode="reflect")
    windows, flips = set(), 0
    for seed in range(40):
        out = ki.data.pad_crop_flip(image, tf.constant([seed, 7], tf.int64)).numpy()
        for flipped in (False, True):
            candidate = out[:, ::-1] if flipped else out
            hits = [(i, j) for i in range(9) for j in range(9)
                    if np.array_equal(candidate, padded[i:i + 32, j:j + 32])]
            if hits:
                windows.add(hits[0])
                flips += flipped
                break
        else:
            raise AssertionError(f"seed {seed}: the output is no window of the padded image")
    assert len(windows) > 10 and 8 < flips < 32


def test_image_folder_reads_the_shared_cifar10(cifar_arrays):
    arrays = cifar_arrays
    assert arrays.x_train.shape == (50000, 32, 32, 3) and arrays.x_test.shape == (10000, 32, 32, 3)
    assert arrays.class_names[:3] == ["airplane", "automobile", "bird"]
    assert (np.bincount(arrays.y_test) == 1000).all()


def test_image_folder_decodes_every_file_as_pil_does_and_refuses_mixed_sizes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    expected = {}
    for split, count in (("train", 5), ("test", 3)):
        for label, name in enumerate(("cat", "dog")):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                path = tmp_path / split / name / f"{i}.png"  # lossless: pixels compare exactly
                Image.fromarray(rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)).save(path)
                expected[np.asarray(Image.open(path)).tobytes()] = label
    arrays = ki.data.load_arrays(str(tmp_path))
    assert arrays.x_train.shape == (10, 6, 4, 3) and arrays.x_test.shape == (6, 6, 4, 3)
    assert arrays.x_train.dtype == np.uint8
    for x, y in ((arrays.x_train, arrays.y_train), (arrays.x_test, arrays.y_test)):
        assert [expected[image.tobytes()] for image in x] == y.tolist()  # every image once, with its label
    assert len({image.tobytes() for image in arrays.x_train}) == 10

    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(tmp_path / "test" / "dog" / "short.png")
    with pytest.raises(InputError, match=r"test split .* has images of 2 sizes \(\[\(5, 4, 3\), \(6, 4, 3\)\]"):
        ki.data.load_arrays(str(tmp_path))


def test_missing_dataset_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ki.data.load_arrays(str(tmp_path / "nowhere"))
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no test split"):
        ki.data.load_arrays(str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="Unknown dataset 'mnist3'"):
        ki.data.load_arrays("mnist3")


def test_tfds_offline_error_says_how_to_use_local_data(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="local image folder"):
        ki.data.load_arrays("cifar10", data_dir=str(tmp_path))


def test_imagenette_reads_in_memory_from_tfds_at_the_long_protocols_size(tmp_path, monkeypatch):
    """`load_arrays("imagenette")` (the `long` protocol's name; Colab): TFDS photos of several sizes,
    centre-cropped and resized to 128 px. A prepared TFDS builder of local PNGs stands in for the
    download; the crop must remove the green bands beside the centred square."""
    import tensorflow_datasets as tfds
    from PIL import Image

    red = np.array([200, 30, 30], np.uint8)
    for split in ("train", "validation"):
        for label, count in (("a", 2), ("b", 1)):
            for i in range(count):
                wide = i % 2 == 0
                image = np.empty((160, 240, 3) if wide else (200, 160, 3), np.uint8)
                image[:] = (0, 255, 0)
                if wide:
                    image[:, 40:200] = red
                else:
                    image[20:180] = red
                folder = tmp_path / "src" / split / label
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{i}.png")
    builder = tfds.folder_dataset.ImageFolder(str(tmp_path / "src"))
    asked = []

    def prepared_builder(name, data_dir=None, download=False):
        asked.append((name, data_dir, download))
        return builder

    monkeypatch.setattr(ki.data.sources, "prepared_builder", prepared_builder)
    arrays = ki.data.load_arrays("imagenette", data_dir="tfds-dir", download=True)
    assert asked == [("imagenette/160px-v2", "tfds-dir", True)]
    assert arrays.class_names == ["a", "b"]
    for x, y in ((arrays.x_train, arrays.y_train), (arrays.x_test, arrays.y_test)):
        assert x.shape == (3, 128, 128, 3) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, np.broadcast_to(red, x.shape))
        assert sorted(y.tolist()) == [0, 0, 1] and y.dtype == np.int32

    only_train = tmp_path / "only_train"
    (only_train / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(only_train / "train" / "a" / "0.png")
    builder = tfds.folder_dataset.ImageFolder(str(only_train))
    with pytest.raises(ki.errors.InputError, match=r"has splits \['train'\]; in-memory loading needs train and test"):
        ki.data.tfds_dataset("local", image_size=(8, 8))


def test_subset_stays_fixed_while_the_seed_varies():
    arrays = ki.data.load_arrays("digits")
    a = ki.data.make_pipelines(arrays, train_size=300, seed=1, subset_seed=0)
    b = ki.data.make_pipelines(arrays, train_size=300, seed=2, subset_seed=0)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    first_a, first_b = next(iter(a.train))[1].numpy(), next(iter(b.train))[1].numpy()
    assert not np.array_equal(first_a, first_b)  # different data order


def test_named_datasets_come_from_one_table_and_refuse_what_does_not_apply_to_them(monkeypatch):
    """`NAMED` routes both loaders; a new name there is known to both, and their messages list it."""
    assert ki.data.open_source("digits").name == "digits"
    for name in ki.data.NAMED:
        with pytest.raises(InputError, match=rf"{name} comes with its own test split.*load_arrays\('{name}'\)"):
            ki.data.open_source(name, validation_split=0.1)
    with pytest.raises(InputError, match="digits are 8×8 images; drop image_size"):
        ki.data.open_source("digits", image_size=32)
    monkeypatch.setitem(ki.data.NAMED, "tiny_digits", None)  # None: the bundled digits
    assert ki.data.load_arrays("tiny_digits").x_train.shape[1:] == (8, 8, 1)
    with pytest.raises(DatasetNotFoundError, match="use digits, cifar10, cifar100, imagenette, tiny_digits or"):
        ki.data.load_arrays("mnist3")


def test_normalize_with_recorded_statistics_matches_the_pipelines_and_checks_its_input():
    import keras_introspect as ki

    arrays = ki.data.load_arrays("digits")
    splits = ki.data.make_pipelines(arrays, batch_size=32)
    raw = arrays.x_test[:5]
    expected = (raw.astype("float32") - splits.mean) / splits.std
    np.testing.assert_array_equal(ki.data.normalize(raw, splits.normalization), expected)
    np.testing.assert_array_equal(splits.normalize(raw), expected)
    # One value for all channels broadcasts, as export_saved_model takes it.
    np.testing.assert_array_equal(ki.data.normalize(np.full((1, 2, 2, 3), 5.0), {"mean": [1.0], "std": [2.0]}),
                                  np.full((1, 2, 2, 3), 2.0, "float32"))
    for bad, message in [({"mean": [1.0, 2.0], "std": [2.0]}, "2 values for a model with 3"),
                         ({"mean": [1.0]}, "lacks \\['std'\\]"), (None, "normalization must be"),
                         ({"mean": [0.0, 0.0, np.nan], "std": [1.0]}, "not finite"),
                         ({"mean": [0.0], "std": [1.0, 0.0, 1.0]}, "must be > 0"),
                         ({"mean": ["a"], "std": [1.0]}, "must be numbers")]:
        with pytest.raises(InputError, match=message):
            ki.data.normalize(np.zeros((2, 4, 4, 3)), bad)


def test_label_map_puts_a_sources_classes_where_the_model_has_them():
    import keras_introspect as ki

    model = ["tench", "english_springer", "cassette_player", "chain_saw", "church", "french_horn",
             "garbage_truck", "gas_pump", "golf_ball", "parachute"]
    tfds_names = sorted(ki.data.IMAGENETTE_WNIDS)  # WordNet ids, in TFDS's order
    mapping = ki.data.label_map(tfds_names, model)
    assert [model[i] for i in mapping] == [ki.data.IMAGENETTE_WNIDS[n] for n in tfds_names]
    assert list(ki.data.label_map(["b", "a"], ["a", "b"])) == [1, 0]
    with pytest.raises(InputError, match="no class named 'zebra'"):
        ki.data.label_map(["a", "zebra"], ["a", "b"])
