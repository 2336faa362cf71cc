"""The path Colab users take: Imagenette from TensorFlow Datasets, exercised without a download through
`tfds.testing.mock_data` (random images with the dataset's features; the split sizes come from a
hand-written dataset_info, since this TFDS release ships no imagenette metadata for mocking)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import splits as splits_lib

import keras_introspect as ki


@pytest.fixture
def mocked_imagenette(tmp_path):
    builder = tfds.builder("imagenette/160px-v2", data_dir=str(tmp_path))
    builder.info.set_splits(splits_lib.SplitDict([
        splits_lib.SplitInfo(name="train", shard_lengths=[12], num_bytes=0, filename_template=None),
        splits_lib.SplitInfo(name="validation", shard_lengths=[6], num_bytes=0, filename_template=None)]))
    builder.data_path.mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        yield str(tmp_path)


def test_streamed_tfds_imagenette_as_the_notebooks_load_it_on_colab(mocked_imagenette):
    source = ki.data.open_source("imagenette/160px-v2", image_size=32, download=True, data_dir=mocked_imagenette)
    splits = source.splits(batch_size=4, augment=False)
    x, y = next(iter(splits.train))
    assert x.shape == (4, 32, 32, 3) and len(splits.class_names) == 10
    assert splits.class_names[0] == "n01440764"  # TFDS names the classes by WordNet id (notebook 02 maps them)
    assert np.all(np.isfinite(splits.mean)) and np.all(splits.std > 0)
    model = ki.IntrospectiveModel(ki.architectures.get("digits_cnn", 10, (32, 32, 3)), warmup_epochs=0)
    model.compile(optimizer="sgd")
    history = model.fit(splits.train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_in_memory_tfds_imagenette_at_the_long_protocols_size(mocked_imagenette):
    arrays = ki.data.load_arrays("imagenette", data_dir=mocked_imagenette, download=True)
    assert arrays.x_train.shape == (12, 128, 128, 3) and arrays.x_test.shape[1:] == (128, 128, 3)
    assert arrays.x_train.dtype == np.uint8 and arrays.num_classes == 10
