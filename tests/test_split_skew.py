"""Label drift and train/eval skew found by TFDV with the curated schemas."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from components import anomaly_gate, record_check, split_skew, tabular_data
from components.idx_example_gen import to_example
from pipeline.config import SCHEMAS_DIR

SCHEMA_NAMES = ("fashion_mnist", "circles", "breast_cancer")


def _schema(name):
    return tfdv.load_schema_text(str(SCHEMAS_DIR / name / "schema.pbtxt"))


def _label_example(label):
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
            }
        )
    )


def _statistics(tmp_path, name, labels, schema):
    path = str(tmp_path / f"{name}.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label in labels:
            writer.write(_label_example(int(label)).SerializeToString())
    return tfdv.generate_statistics_from_tfrecord(
        path, stats_options=tfdv.StatsOptions(schema=schema)
    )


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_builtin_schema_flags_a_drifted_label_distribution(tmp_path, name):
    schema = _schema(name)
    classes = (
        schema.feature[
            [feature.name for feature in schema.feature].index("label")
        ].int_domain.max
        + 1
    )
    balanced = [index % classes for index in range(400)]
    # Class 0 goes from 1/classes of the records to (120 + 280/classes)/400.
    drifted = [0] * 120 + [index % classes for index in range(280)]
    previous = _statistics(tmp_path, "previous", balanced, schema)
    current = _statistics(tmp_path, "current", drifted, schema)

    same = tfdv.validate_statistics(previous, schema, previous_statistics=previous)
    assert "label" not in same.anomaly_info
    result = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    info = result.anomaly_info["label"]
    assert "Linfty distance between current and previous" in info.description
    [measured] = [
        item for item in result.drift_skew_info if item.path.step == ["label"]
    ]
    expected = (120 + 280 / classes) / 400 - 1 / classes
    assert expected > 0.1
    assert measured.drift_measurements[0].value == pytest.approx(expected)
    assert measured.drift_measurements[0].threshold == pytest.approx(0.1)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_builtin_schema_has_training_and_serving_environments(name):
    schema = _schema(name)
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    [label] = [feature for feature in schema.feature if feature.name == "label"]
    assert list(label.not_in_environment) == ["SERVING"]


def test_a_skewed_eval_split_is_an_error_naming_feature_and_distance(tmp_path):
    schema = _schema("fashion_mnist")
    train = _statistics(tmp_path, "train", [i % 10 for i in range(1000)], schema)
    skewed_eval = _statistics(tmp_path, "eval", [3] * 50 + list(range(10)) * 5, schema)

    [anomaly] = split_skew.split_skew(train, skewed_eval, schema)
    assert (anomaly.split, anomaly.feature, anomaly.severity) == (
        "eval",
        "label",
        "ERROR",
    )
    # Class 3 is 0.1 of train and 0.55 of eval.
    assert str(anomaly) == (
        "split 'eval', feature 'label': Train/eval skew: L-infinity distance "
        "0.4500 between the train and eval distributions, above the schema's "
        "threshold 0.1; the value that differs most is 3"
    )
    assert anomaly_gate.blocking([anomaly]) == [anomaly]


def test_a_balanced_eval_split_passes_the_skew_check(tmp_path):
    schema = _schema("fashion_mnist")
    train = _statistics(tmp_path, "train", [i % 10 for i in range(1000)], schema)
    evaluation = _statistics(tmp_path, "eval", [i % 10 for i in range(200)], schema)
    assert split_skew.split_skew(train, evaluation, schema) == []


def test_statistics_without_value_counts_are_refused_not_read_as_no_skew(tmp_path):
    schema = _schema("fashion_mnist")
    path = str(tmp_path / "labels.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label in range(10):
            writer.write(_label_example(label).SerializeToString())
    without_schema = tfdv.generate_statistics_from_tfrecord(path)
    with pytest.raises(
        ValueError, match="feature 'label'.*generate them with the schema"
    ):
        split_skew.split_skew(without_schema, without_schema, schema)


@pytest.mark.parametrize("name", ["circles", "breast_cancer"])
def test_the_builtin_tables_pass_their_own_skew_check(tmp_path, name):
    schema = _schema(name)
    paths = tabular_data.write_builtin(name, str(tmp_path / "data"))
    statistics = {}
    for split, csv_path in paths.items():
        _, labels = tabular_data.read_csv(csv_path)
        statistics[split] = _statistics(tmp_path, split, labels, schema)
    assert split_skew.split_skew(statistics["train"], statistics["eval"], schema) == []


def test_the_gate_names_the_first_offending_records_of_each_split(tmp_path):
    schema = _schema("fashion_mnist")
    good = to_example(np.full(784, 7, np.uint8), 1).SerializeToString()
    label_10 = to_example(np.zeros(784, np.uint8), 10).SerializeToString()
    records = {
        "train": [("data_tfrecord-00000-of-00001.gz", n, good) for n in range(1, 4)]
        + [("data_tfrecord-00000-of-00001.gz", 4, label_10)],
        "eval": [("eval.gz", 1, good)],
    }
    anomalies = [
        anomaly_gate.Anomaly(
            "train",
            "label",
            "ERROR",
            "Out-of-range values",
            "Unexpectedly large value: 10.",
        ),
        anomaly_gate.Anomaly("eval", "image", "WARNING", "a warning", "not blocking"),
    ]
    [located] = anomaly_gate.located_errors(anomalies, schema, records.__getitem__)
    assert str(located) == (
        "split 'train', feature 'label': Out-of-range values: Unexpectedly large "
        "value: 10. (in data_tfrecord-00000-of-00001.gz record 4)"
    )


def test_records_beyond_the_named_ones_are_counted(tmp_path):
    schema = _schema("fashion_mnist")
    short = to_example(np.zeros(783, np.uint8), 1).SerializeToString()
    records = [("part.gz", n, short) for n in range(1, 9)]
    anomaly = anomaly_gate.Anomaly("train", "image", "ERROR", "Missing values", "x")
    [named] = record_check.name_records([anomaly], schema, records)
    assert named.description == (
        "x (in part.gz record 1, part.gz record 2, part.gz record 3, "
        "part.gz record 4, part.gz record 5 and 3 more)"
    )
