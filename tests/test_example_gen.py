"""The IDX ExampleGen executor on real Beam, with small files."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components import features, idx, idx_example_gen
from pipeline.pipeline import input_config
from tests.conftest import write_idx_pair


def _run_executor(input_base, output_dir, max_examples=None):
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    exec_properties = {
        specs.INPUT_BASE_KEY: str(input_base),
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            input_config(str(input_base))
        ),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output()),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        idx_example_gen.MAX_EXAMPLES_KEY: max_examples,
    }
    idx_example_gen.Executor().Do({}, {specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def _read_split(output_dir, split):
    files = tf.io.gfile.glob(os.path.join(output_dir, f"Split-{split}", "*"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    parsed = []
    for record in records:
        example = tf.train.Example.FromString(record.numpy())
        feature = example.features.feature
        parsed.append(
            (
                list(feature[features.IMAGE_KEY].int64_list.value),
                list(feature[features.LABEL_KEY].int64_list.value),
            )
        )
    return sorted(parsed, key=lambda item: item[0])


def test_writes_train_and_eval_examples_with_exact_values(tmp_path):
    rng = np.random.default_rng(1)
    train_images = rng.integers(0, 256, size=(12, 28, 28))
    eval_images = rng.integers(0, 256, size=(5, 28, 28))
    write_idx_pair(tmp_path / "data", "train", train_images, np.arange(12) % 10)
    write_idx_pair(tmp_path / "data", "t10k", eval_images, [9, 8, 7, 6, 5])
    artifact = _run_executor(tmp_path / "data", tmp_path / "out")

    assert artifact.split_names == '["train", "eval"]'
    train = _read_split(tmp_path / "out", "train")
    expected = sorted(
        (image.ravel().tolist(), [label % 10])
        for label, image in enumerate(train_images)
    )
    assert train == expected
    eval_records = _read_split(tmp_path / "out", "eval")
    assert sorted(label for _, (label,) in eval_records) == [5, 6, 7, 8, 9]
    assert all(len(pixels) == features.IMAGE_PIXELS for pixels, _ in eval_records)


def test_cap_keeps_the_first_records_of_each_split(tmp_path):
    images = np.stack([np.full((28, 28), value) for value in range(10)])
    write_idx_pair(tmp_path / "data", "train", images, range(10))
    write_idx_pair(tmp_path / "data", "t10k", images, range(10))
    _run_executor(tmp_path / "data", tmp_path / "out", max_examples=3)
    assert [label for _, (label,) in _read_split(tmp_path / "out", "train")] == [
        0,
        1,
        2,
    ]
    assert len(_read_split(tmp_path / "out", "eval")) == 3


def test_span_folders_are_used_when_present(tmp_path):
    config = input_config(str(tmp_path))
    assert [split.pattern for split in config.splits] == [
        "train-*-ubyte*",
        "t10k-*-ubyte*",
    ]
    (tmp_path / "span-1").mkdir()
    config = input_config(str(tmp_path))
    assert [split.pattern for split in config.splits] == [
        "span-{SPAN}/train-*-ubyte*",
        "span-{SPAN}/t10k-*-ubyte*",
    ]


def test_truncated_file_fails_before_beam_and_names_it(tmp_path):
    write_idx_pair(
        tmp_path / "data", "train", np.zeros((8, 28, 28)), [1] * 8, compress=False
    )
    write_idx_pair(tmp_path / "data", "t10k", np.zeros((2, 28, 28)), [1] * 2)
    images_path = tmp_path / "data" / "train-images-idx3-ubyte"
    images_path.write_bytes(images_path.read_bytes()[:-1])
    with pytest.raises(idx.IdxFormatError, match="truncated") as error:
        _run_executor(tmp_path / "data", tmp_path / "out")
    assert str(images_path) in str(error.value)
    assert not (tmp_path / "out" / "Split-train").exists()


def test_images_of_the_wrong_size_are_refused_naming_the_file(tmp_path):
    write_idx_pair(tmp_path / "data", "train", np.zeros((3, 27, 28)), [1, 2, 3])
    write_idx_pair(tmp_path / "data", "t10k", np.zeros((2, 28, 28)), [1, 2])
    with pytest.raises(
        idx.IdxFormatError, match="27x28 pixels, expected 28x28"
    ) as error:
        _run_executor(tmp_path / "data", tmp_path / "out")
    assert "train-images-idx3-ubyte.gz" in str(error.value)
