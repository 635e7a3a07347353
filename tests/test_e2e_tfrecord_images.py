"""C02 through the real pipeline: image TFRecords with a record of 783 pixels.

The run reads custom TFRecord images with the Fashion-MNIST schema; one train
record has 783 values. The TFRecord pre-check in the ExampleGen stops the run
before Beam reads the data: exit 3, the file, record and feature named,
nothing trained, nothing pushed, never padded.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components.idx_example_gen import to_example
from pipeline.config import SCHEMAS_DIR
from tests.conftest import learnable_images
from tests.test_tfrecord_images import write_image_records

pytestmark = pytest.mark.e2e

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_783_value_image_stops_the_pipeline_naming_file_record_and_feature(
    tmp_path,
):
    images, labels = learnable_images(150)
    data = tmp_path / "data" / "span-1"
    write_image_records(data / "eval" / "data.tfrecord", images[100:], labels[100:])
    train_path = data / "train" / "data.tfrecord"
    write_image_records(train_path, images[:100], labels[:100])
    short = to_example(np.full(784, 9, np.uint8), 4)
    del short.features.feature["image"].int64_list.value[-1]
    with tf.io.TFRecordWriter(str(data / "train" / "late.tfrecord")) as writer:
        writer.write(
            to_example(np.ravel(images[0]), int(labels[0])).SerializeToString()
        )
        writer.write(short.SerializeToString())
    out = tmp_path / "out"

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            "--output-dir",
            str(out),
            "--set",
            "pipeline_name=images",
            "--set",
            "data.dataset=custom",
            "--set",
            "data.format=tfrecord",
            "--set",
            "data.num_classes=10",
            "--set",
            f"data.data_dir={tmp_path / 'data'}",
            "--set",
            f"data.schema_path={SCHEMAS_DIR / 'fashion_mnist' / 'schema.pbtxt'}",
            "--preset",
            "seed_dense",
            "--epochs",
            "1",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 3, output[-3000:]
    expected = (
        f"{data / 'train' / 'late.tfrecord'} record 2: feature 'image' has 783 "
        "values, expected 784 (value count)"
    )
    assert expected in completed.stdout, output[-3000:]
    summary = json.loads((out / "runs" / "images" / "latest.json").read_text())
    assert summary["outcome"] == "bad_input"
    assert expected in summary["error"]
    assert [step["node_id"] for step in summary["steps"]] == ["ExampleGen"]
    assert not (out / "serving_model" / "images").exists() or not os.listdir(
        out / "serving_model" / "images"
    )
