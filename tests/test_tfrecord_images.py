"""Image TFRecords as input: the config, and the checked import executor."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components import data_spec, tfrecord_example_gen
from components.idx_example_gen import to_example
from components.tfrecord_check import TfRecordFormatError
from pipeline.config import SCHEMAS_DIR, load_config
from pipeline.pipeline import input_config
from tests.conftest import learnable_images

FASHION_MNIST_SCHEMA = str(SCHEMAS_DIR / "fashion_mnist" / "schema.pbtxt")


def write_image_records(path, images, labels, options=None):
    """Writes images as tf.Examples with `image` (784 int64) and `label`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for pixels, label in zip(images, labels, strict=True):
            writer.write(to_example(np.ravel(pixels), int(label)).SerializeToString())


def _config(data_dir, tmp_path):
    return load_config(
        overrides=[
            "pipeline_name=images",
            "data.dataset=custom",
            "data.format=tfrecord",
            "data.num_classes=10",
            f"data.data_dir={data_dir}",
            f"data.schema_path={FASHION_MNIST_SCHEMA}",
            f"output_dir={tmp_path / 'out'}",
        ],
        environ={},
    )


def test_tfrecord_data_without_columns_is_images_with_an_image_preset(tmp_path):
    (tmp_path / "data").mkdir()
    config = _config(tmp_path / "data", tmp_path)
    assert config.data_spec.kind == data_spec.IMAGE
    assert config.data_spec.feature_names == ("image",)
    assert config.training.preset == "cnn"


def _run_executor(config, output_dir):
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    data_dir = config.data.data_dir
    exec_properties = {
        specs.INPUT_BASE_KEY: data_dir,
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            input_config(data_dir, data_spec.TFRECORD)
        ),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output()),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        tfrecord_example_gen.DATA_SPEC_KEY: json.dumps(config.data_spec.to_json_dict()),
    }
    tfrecord_example_gen.Executor().Do(
        {}, {specs.EXAMPLES_KEY: [examples]}, exec_properties
    )


def test_clean_image_records_are_imported_exactly(tmp_path):
    images, labels = learnable_images(12)
    data = tmp_path / "data"
    write_image_records(data / "train" / "a.tfrecord", images[:8], labels[:8])
    write_image_records(data / "eval" / "b.tfrecord.gz", images[8:], labels[8:], "GZIP")
    _run_executor(_config(data, tmp_path), tmp_path / "out")

    for split, count in (("train", 8), ("eval", 4)):
        files = tf.io.gfile.glob(str(tmp_path / "out" / f"Split-{split}" / "*"))
        records = [
            tf.train.Example.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(files, "GZIP")
        ]
        got = sorted(
            (
                example.features.feature["label"].int64_list.value[0],
                tuple(example.features.feature["image"].int64_list.value),
            )
            for example in records
        )
        offset = 0 if split == "train" else 8
        want = sorted(
            (int(label), tuple(int(v) for v in np.ravel(pixels)))
            for pixels, label in zip(
                images[offset : offset + count],
                labels[offset : offset + count],
                strict=True,
            )
        )
        assert got == want


def test_a_short_image_fails_the_executor_before_any_split_is_written(tmp_path):
    images, labels = learnable_images(6)
    data = tmp_path / "data"
    write_image_records(data / "train" / "a.tfrecord", images[:4], labels[:4])
    bad = to_example(np.zeros(784, np.uint8), 3)
    del bad.features.feature["image"].int64_list.value[-1]
    path = data / "eval" / "b.tfrecord"
    write_image_records(path, images[4:], labels[4:])
    with tf.io.TFRecordWriter(str(data / "eval" / "c.tfrecord")) as writer:
        writer.write(bad.SerializeToString())
    with pytest.raises(TfRecordFormatError) as error:
        _run_executor(_config(data, tmp_path), tmp_path / "out")
    assert str(error.value) == (
        "1 problem(s) in TFRecord data:\n"
        f"  {data / 'eval' / 'c.tfrecord'} record 1: feature 'image' has 783 "
        "values, expected 784 (value count)"
    )
    assert not (tmp_path / "out" / "Split-train").exists()
