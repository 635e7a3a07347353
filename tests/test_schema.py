"""The curated Fashion-MNIST schema finds each kind of bad record (TFDV, real)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import anomaly_gate, features
from components.idx_example_gen import to_example
from pipeline.config import SCHEMAS_DIR

SCHEMA_PATH = str(SCHEMAS_DIR / "fashion_mnist" / "schema.pbtxt")


def _example(pixels, label):
    feature = {
        features.IMAGE_KEY: tf.train.Feature(
            int64_list=tf.train.Int64List(value=pixels)
        )
    }
    if label is not None:
        feature[features.LABEL_KEY] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label])
        )
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _anomalies(tmp_path, bad_examples):
    good = [to_example(np.full(784, 7, np.uint8), label) for label in range(10)]
    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for example in good + bad_examples:
            writer.write(example.SerializeToString())
    statistics = tfdv.generate_statistics_from_tfrecord(path)
    return tfdv.validate_statistics(statistics, tfdv.load_schema_text(SCHEMA_PATH))


def test_clean_records_have_no_anomalies(tmp_path):
    assert not _anomalies(tmp_path, []).anomaly_info


@pytest.mark.parametrize(
    "bad, feature, reason",
    [
        (_example([300] + [0] * 783, 1), "image", "INT_TYPE_BIG_INT"),
        (_example([-1] + [0] * 783, 1), "image", "INT_TYPE_SMALL_INT"),
        (_example([0] * 784, 10), "label", "INT_TYPE_BIG_INT"),
        (_example([0] * 783, 1), "image", "FEATURE_TYPE_LOW_NUMBER_VALUES"),
        (_example([0] * 785, 1), "image", "FEATURE_TYPE_HIGH_NUMBER_VALUES"),
        (_example([0] * 784, None), "label", "FEATURE_TYPE_LOW_FRACTION_PRESENT"),
    ],
    ids=[
        "pixel-300",
        "pixel-minus-1",
        "label-10",
        "783-pixels",
        "785-pixels",
        "no-label",
    ],
)
def test_each_bad_record_is_an_error_anomaly_on_its_feature(
    tmp_path, bad, feature, reason
):
    anomalies = _anomalies(tmp_path, [bad])
    assert set(anomalies.anomaly_info) == {feature}
    info = anomalies.anomaly_info[feature]
    assert info.severity == anomalies_pb2.AnomalyInfo.ERROR
    assert reason in [
        anomalies_pb2.AnomalyInfo.Type.Name(item.type) for item in info.reason
    ]


def test_gate_message_names_split_feature_and_problem(tmp_path):
    anomalies = _anomalies(tmp_path, [_example([0] * 784, 10)])
    split_dir = tmp_path / "anomalies" / "Split-train"
    split_dir.mkdir(parents=True)
    (split_dir / anomaly_gate.SCHEMA_DIFF_FILE).write_bytes(
        anomalies.SerializeToString()
    )
    clean = tmp_path / "anomalies" / "Split-eval"
    clean.mkdir()
    (clean / anomaly_gate.SCHEMA_DIFF_FILE).write_bytes(b"")

    found = anomaly_gate.read_anomalies(str(tmp_path / "anomalies"), ["train", "eval"])
    blocking = anomaly_gate.blocking(found)
    assert [(item.split, item.feature) for item in blocking] == [("train", "label")]
    message = str(anomaly_gate.DataAnomaliesError(blocking, span=3))
    assert message.startswith("1 data anomaly in span 3 against the schema")
    assert "split 'train', feature 'label'" in message
    assert "Unexpectedly large value: 10" in message
