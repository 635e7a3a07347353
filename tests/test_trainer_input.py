"""The Trainer's input pipeline: a cached split yields the same examples as a
streamed one, and grouping steps per execution leaves training unchanged."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import features, idx_example_gen, schedules, trainer
from tests.conftest import learnable_images

SCHEMA_PATH = "schemas/fashion_mnist/schema.pbtxt"
COUNT = 300


def _factory(file_pattern, options, schema):
    return tfxio.TFExampleRecord(file_pattern, schema=schema).TensorFlowDataset(options)


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    """Gzip TFRecords of tf.Examples, as ExampleGen writes them."""
    folder = tmp_path_factory.mktemp("Split-train")
    images, labels = learnable_images(COUNT, seed=5)
    path = str(folder / "data_tfrecord-00000-of-00001.gz")
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(path, options) as writer:
        for pixels, label in zip(images, labels, strict=True):
            record = idx_example_gen.to_example(pixels.reshape(-1), label)
            writer.write(record.SerializeToString())
    return [str(folder / "*")], images.reshape(COUNT, -1), labels


def _dataset(files, shuffle, cache, batch_size=32):
    schema = tfx.utils.parse_pbtxt_file(SCHEMA_PATH, schema_pb2.Schema())
    return trainer.make_dataset(
        files, _factory, schema, batch_size, shuffle, seed=7, cache=cache
    )


def _pass(dataset):
    pixels, labels, sizes = [], [], []
    for batch, label in dataset:
        pixels.append(batch[features.IMAGE_KEY].numpy())
        labels.append(label.numpy())
        sizes.append(len(label))
    return np.concatenate(pixels), np.concatenate(labels), sizes


@pytest.mark.parametrize("cache", [False, True])
def test_an_unshuffled_split_comes_in_file_order(split_files, cache):
    files, images, labels = split_files
    pixels, read_labels, sizes = _pass(_dataset(files, shuffle=False, cache=cache))
    assert sizes == [32] * 9 + [12]
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, images.astype(np.float32))
    np.testing.assert_array_equal(read_labels, labels.reshape(-1, 1))


def test_a_cached_split_is_reshuffled_every_pass(split_files):
    files, images, labels = split_files
    dataset = _dataset(files, shuffle=True, cache=True)
    first_pixels, first_labels, _ = _pass(dataset)
    second_pixels, second_labels, _ = _pass(dataset)
    assert not np.array_equal(first_labels, second_labels)
    assert not np.array_equal(first_labels.ravel(), labels)
    for pixels, read_labels in (
        (first_pixels, first_labels),
        (second_pixels, second_labels),
    ):
        order = np.lexsort(pixels.T[::-1])
        expected = np.lexsort(images.astype(np.float32).T[::-1])
        np.testing.assert_array_equal(pixels[order], images[expected])
        np.testing.assert_array_equal(read_labels.ravel()[order], labels[expected])


def test_only_small_splits_are_cached(split_files, monkeypatch):
    files, _, _ = split_files
    assert trainer.fits_in_memory(files)
    monkeypatch.setattr(trainer, "CACHE_MAX_FILE_BYTES", 100)
    assert not trainer.fits_in_memory(files)


def test_grouped_steps_train_the_same_weights(split_files):
    files, _, _ = split_files
    settings = trainer.TrainingSettings(
        preset="dense",
        epochs=2,
        batch_size=32,
        seed=3,
        schedule=schedules.ScheduleSpec(),
    )
    weights = {}
    for steps in (1, trainer.STEPS_PER_EXECUTION):
        data = _dataset(files, shuffle=False, cache=True)
        model, history = trainer.train(settings, data, None, steps_per_execution=steps)
        weights[steps] = (model.get_weights(), history["loss"])
    single, grouped = weights[1], weights[trainer.STEPS_PER_EXECUTION]
    np.testing.assert_allclose(single[1], grouped[1], rtol=1e-4)
    for one, other in zip(single[0], grouped[0], strict=True):
        np.testing.assert_allclose(one, other, rtol=1e-3, atol=1e-5)


def test_a_streamed_split_of_unknown_length_still_trains(split_files):
    files, _, _ = split_files
    settings = trainer.TrainingSettings(
        preset="seed_dense",
        epochs=1,
        batch_size=32,
        seed=3,
        schedule=schedules.ScheduleSpec(),
    )
    data = _dataset(files, shuffle=True, cache=False)
    _, history = trainer.train(settings, data, data)
    assert np.isfinite(history["loss"][0])
    assert np.isfinite(history["val_loss"][0])
