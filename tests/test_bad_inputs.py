"""The corpus of bad inputs: every kind the pipeline must stop or accept, in one table.

Each row builds a small fixture, runs the same check the pipeline runs on it
(the CSV, IDX and TFRecord pre-checks, TFDV against the curated schema with
the anomaly gate's record naming, the train/eval skew check, the config
loader) and asserts the outcome: an error naming the file, record or line and
the feature, an ERROR anomaly on the feature, or acceptance. Kinds that need a
whole pipeline run are covered by the tests listed in COVERED_ELSEWHERE, which
are checked to exist.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from components import (
    anomaly_gate,
    csv_example_gen,
    data_spec,
    features,
    idx,
    idx_example_gen,
    record_check,
    split_skew,
    tfrecord_check,
)
from components.errors import InputDataError
from components.idx_example_gen import to_example
from pipeline.config import SCHEMAS_DIR, ConfigError, load_config
from tests.conftest import write_idx_pair

TABLE = data_spec.DataSpec(
    name="table",
    format=data_spec.CSV,
    label_key="label",
    class_names=("no", "yes"),
    columns=(
        data_spec.FeatureColumn("count", data_spec.INT),
        data_spec.FeatureColumn("size", data_spec.FLOAT),
        data_spec.FeatureColumn("note", data_spec.STRING),
    ),
)
IMAGES = data_spec.DataSpec(
    name="images",
    format=data_spec.TFRECORD,
    label_key=features.LABEL_KEY,
    class_names=features.CLASS_NAMES,
)
HEADER = "count,size,note,label\n"
GOOD_ROW = "3,1.5,fine,yes\n"


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input and what must happen to it.

    Attributes:
      name: the test id.
      kind: the kind of bad input, as a person would describe it.
      run: builds the fixture under a folder and runs the check on it; returns
        the anomalies found, or what was read when the input is accepted.
      expected: a regular expression the error (or the one ERROR anomaly,
        as the gate prints it) must match; ACCEPTED when the input is fine.
      error: the exception type that must be raised, or None for anomalies
        and accepted inputs.
    """

    name: str
    kind: str
    run: Callable
    expected: str
    error: type[Exception] | None = InputDataError


ACCEPTED = "accepted"


# CSV tables, through the typed CSV reader's pre-check.


def _csv(tmp_path, text, name="train/data.csv"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _check_csv(text):
    return lambda tmp_path: csv_example_gen.check_file(_csv(tmp_path, text), TABLE)


def _read_csv(text):
    def run(tmp_path):
        path = _csv(tmp_path, text)
        csv_example_gen.check_file(path, TABLE)
        return list(csv_example_gen.read_examples(path, TABLE))

    return run


def _empty_csv_folder(tmp_path):
    (tmp_path / "train").mkdir()
    return csv_example_gen.find_files(str(tmp_path / "train" / "*.csv"))


# IDX files, through the IDX reader's checks.


def _idx_pair(tmp_path, images=None, labels=None, compress=True):
    images = np.zeros((3, 28, 28)) if images is None else images
    labels = [1, 2, 3] if labels is None else labels
    return write_idx_pair(tmp_path, "train", images, labels, compress=compress)


def _truncated_idx(tmp_path):
    images_path, labels_path = _idx_pair(tmp_path, compress=False)
    with open(images_path, "r+b") as stream:
        stream.truncate(os.path.getsize(images_path) - 100)
    return idx.check_pair(images_path, labels_path)


def _wrong_magic_idx(tmp_path):
    images_path, labels_path = _idx_pair(tmp_path, compress=False)
    with open(images_path, "r+b") as stream:
        stream.write(b"\x00\x00\x0d\x03")
    return idx.check_pair(images_path, labels_path)


def _idx_count_mismatch(tmp_path):
    return idx.check_pair(*_idx_pair(tmp_path, labels=[1, 2]))


def _idx_split(images=None, labels=None):
    def run(tmp_path):
        _idx_pair(tmp_path, images, labels)
        return idx_example_gen.check_split(str(tmp_path / "train-*"))

    return run


def _empty_idx_folder(tmp_path):
    return idx_example_gen.check_split(str(tmp_path / "train-*"))


# TFRecord files of tf.Examples, through the TFRecord pre-check.


def _image_example(pixels=784, label=1, image_kind="int64_list", with_label=True):
    feature = {}
    if image_kind == "int64_list":
        feature["image"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[7] * pixels)
        )
    else:
        feature["image"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=[7.0] * pixels)
        )
    if with_label:
        label_feature = (
            tf.train.Feature(bytes_list=tf.train.BytesList(value=[label]))
            if isinstance(label, bytes)
            else tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
        )
        feature["label"] = label_feature
    return tf.train.Example(
        features=tf.train.Features(feature=feature)
    ).SerializeToString()


def _tfrecord(tmp_path, records, name="train/data.tfrecord"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    options = "GZIP" if name.endswith(".gz") else None
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _check_tfrecords(records, name="train/data.tfrecord"):
    def run(tmp_path):
        _tfrecord(tmp_path, records, name)
        return tfrecord_check.check_split(str(tmp_path / "train" / "*"), IMAGES)

    return run


def _damaged_tfrecord(damage):
    def run(tmp_path):
        path = _tfrecord(tmp_path, [_image_example() for _ in range(3)])
        content = bytearray(open(path, "rb").read())
        with open(path, "wb") as stream:
            stream.write(damage(content))
        return tfrecord_check.check_split(str(tmp_path / "train" / "*"), IMAGES)

    return run


def _flip_byte(content):
    content[len(content) // 2] ^= 0xFF
    return bytes(content)


def _not_a_tfrecord(tmp_path):
    _csv(tmp_path, HEADER + GOOD_ROW * 20, "train/data.tfrecord")
    return tfrecord_check.check_split(str(tmp_path / "train" / "*"), IMAGES)


def _empty_tfrecord_folder(tmp_path):
    (tmp_path / "train").mkdir()
    return tfrecord_check.check_split(str(tmp_path / "train" / "*"), IMAGES)


def _gzip_named_plain(tmp_path):
    path = _tfrecord(tmp_path, [_image_example()], "train/data.tfrecord.gz")
    os.rename(path, path[: -len(".gz")])
    return tfrecord_check.check_split(str(tmp_path / "train" / "*"), IMAGES)


# Values against the curated schemas: TFDV statistics, validated as the
# pipeline's ExampleValidator does, records named as the anomaly gate does.


def _schema(name):
    return tfdv.load_schema_text(str(SCHEMAS_DIR / name / "schema.pbtxt"))


def _anomalies(tmp_path, schema_name, good, bad):
    schema = _schema(schema_name)
    path = str(tmp_path / "train.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for example in good + bad:
            writer.write(example.SerializeToString())
    statistics = tfdv.generate_statistics_from_tfrecord(
        path, stats_options=tfdv.StatsOptions(schema=schema)
    )
    found = anomaly_gate.anomalies_of_split(
        features.TRAIN_SPLIT,
        tfdv.validate_statistics(statistics, schema, environment="TRAINING"),
    )
    return anomaly_gate.located_errors(
        found, schema, lambda split: record_check.tfrecord_records([path])
    )


def _image_anomaly(pixels, label):
    def run(tmp_path):
        good = [to_example(np.full(784, 7, np.uint8), n) for n in range(10)]
        bad = tf.train.Example.FromString(_image_example(label=label))
        bad.features.feature["image"].int64_list.value[:] = pixels
        return _anomalies(tmp_path, "fashion_mnist", good, [bad])

    return run


def _circle(x, label):
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x])),
                "y": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
        )
    )


def _circle_anomaly(x, label):
    def run(tmp_path):
        good = [_circle(0.1 * n, n % 2) for n in range(10)]
        return _anomalies(tmp_path, "circles", good, [_circle(x, label)])

    return run


def _skewed_eval(tmp_path):
    schema = _schema("circles")
    statistics = {}
    for split, labels in (("train", [0, 1] * 50), ("eval", [0] * 40 + [1] * 10)):
        path = str(tmp_path / f"{split}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for number, label in enumerate(labels):
                writer.write(_circle(0.01 * number, label).SerializeToString())
        statistics[split] = tfdv.generate_statistics_from_tfrecord(
            path, stats_options=tfdv.StatsOptions(schema=schema)
        )
    return split_skew.split_skew(statistics["train"], statistics["eval"], schema)


# Configs, through the loader.


def _config(text):
    def run(tmp_path):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return load_config(str(path), environ={})

    return run


CASES = [
    # CSV tables
    Case(
        "csv-int-as-float",
        "an INT column arriving as a float",
        _check_csv(HEADER + "1.5,1.5,fine,yes\n"),
        r"data\.csv: 1 problem\n  line 2, column 'count': '1\.5' is not an integer",
    ),
    Case(
        "csv-int-as-question-mark",
        "an INT column holding '?'",
        _check_csv(HEADER + "?,1.5,fine,yes\n"),
        r"data\.csv: 1 problem\n  line 2, column 'count': '\?' is not an integer",
    ),
    Case(
        "csv-float-as-string",
        "a FLOAT column holding text",
        _check_csv(HEADER + GOOD_ROW + "3,big,fine,yes\n"),
        r"data\.csv: 1 problem\n  line 3, column 'size': 'big' is not a number",
    ),
    Case(
        "csv-blank-cell",
        "a blank cell in a number column",
        _check_csv(HEADER + "3,,fine,yes\n"),
        r"data\.csv: 1 problem\n  line 2, column 'size': the cell is blank",
    ),
    Case(
        "csv-missing-label",
        "a row without its label",
        _check_csv(HEADER + "3,1.5,fine,\n"),
        r"data\.csv: 1 problem\n  line 2, column 'label': the label is blank",
    ),
    Case(
        "csv-unknown-class-name",
        "a label that is not one of the class names",
        _check_csv(HEADER + "3,1.5,fine,maybe\n"),
        r"line 2, column 'label': 'maybe' is neither a class id nor one of the "
        r"class names \['no', 'yes'\]",
    ),
    Case(
        "csv-wrong-field-count",
        "a row with a field too many",
        _check_csv(HEADER + "3,1.5,fine,yes,extra\n"),
        r"data\.csv: 1 problem\n  line 2: 5 fields where the header has 4",
    ),
    Case(
        "csv-missing-column",
        "a file without one of the configured columns",
        _check_csv("count,note,label\n3,fine,yes\n"),
        r"data\.csv.*'size'",
    ),
    Case(
        "csv-no-records",
        "a split whose file has a header and no rows",
        _check_csv(HEADER),
        r"data\.csv has a header but no records",
    ),
    Case(
        "csv-empty-folder",
        "a split folder without CSV files",
        _empty_csv_folder,
        r"no CSV file matches .*/train/\*\.csv",
    ),
    Case(
        "csv-quoted-comma",
        "quoted fields holding commas and quotes (must be accepted)",
        _read_csv(HEADER + '3,1.5,"fine, ""really""",yes\n'),
        ACCEPTED,
        error=None,
    ),
    # IDX files
    Case(
        "idx-truncated",
        "a truncated IDX images file",
        _truncated_idx,
        r"train-images-idx3-ubyte.*truncated",
    ),
    Case(
        "idx-wrong-magic",
        "an IDX file with a wrong magic number",
        _wrong_magic_idx,
        r"train-images-idx3-ubyte.*magic number",
    ),
    Case(
        "idx-count-mismatch",
        "IDX images and labels that differ in count",
        _idx_count_mismatch,
        r"train-images-idx3-ubyte.*train-labels-idx1-ubyte",
    ),
    Case(
        "idx-wrong-image-size",
        "32x32 images where 28x28 are expected",
        _idx_split(images=np.zeros((3, 32, 32))),
        r"train-images-idx3-ubyte\.gz: images are 32x32 pixels, expected 28x28",
    ),
    Case(
        "idx-no-records",
        "an IDX pair that holds no images",
        _idx_split(images=np.zeros((0, 28, 28)), labels=np.zeros(0)),
        r"train-images-idx3-ubyte\.gz holds no records",
    ),
    Case(
        "idx-empty-folder",
        "a data folder without IDX files",
        _empty_idx_folder,
        r"no IDX files match .*train-\*",
    ),
    # TFRecord files
    Case(
        "tfrecord-truncated",
        "a truncated TFRecord file",
        _damaged_tfrecord(lambda content: bytes(content[:-30])),
        r"data\.tfrecord: not a readable TFRecord file: corrupt or truncated "
        r"after record 2 \(truncated record at \d+: [^{}\[]*\)$",
    ),
    Case(
        "tfrecord-corrupt",
        "a TFRecord file with a damaged byte (checksum mismatch)",
        _damaged_tfrecord(_flip_byte),
        r"data\.tfrecord: not a readable TFRecord file: corrupt or truncated",
    ),
    Case(
        "tfrecord-not-tfrecord",
        "a CSV file where TFRecord files are expected",
        _not_a_tfrecord,
        r"data\.tfrecord: not a readable TFRecord file.*at its first record",
    ),
    Case(
        "tfrecord-gzip-misnamed",
        "gzip-compressed TFRecords in a file not named .gz",
        _gzip_named_plain,
        r"data\.tfrecord: is gzip-compressed but its name does not end in \.gz",
    ),
    Case(
        "tfrecord-empty-folder",
        "a split folder without files",
        _empty_tfrecord_folder,
        r"no TFRecord file matches .*/train/\* \(the folder is empty\)",
    ),
    Case(
        "tfrecord-no-records",
        "a split whose only file holds no records",
        _check_tfrecords([]),
        r"/train/\*: the split has no records \(1 empty file\(s\)\)",
    ),
    Case(
        "tfrecord-not-an-example",
        "a record that is not a tf.Example",
        _check_tfrecords([_image_example(), b"\xff\xfe not a proto"]),
        r"data\.tfrecord record 2: not a tf\.Example",
    ),
    Case(
        "tfrecord-float-pixels",
        "an INT feature stored as floats",
        _check_tfrecords([_image_example(image_kind="float_list")]),
        r"data\.tfrecord record 1: feature 'image' holds float values, "
        r"expected int",
    ),
    Case(
        "tfrecord-string-label",
        "an INT label stored as a string",
        _check_tfrecords([_image_example(), _image_example(label=b"7")]),
        r"data\.tfrecord record 2: feature 'label' holds string values, "
        r"expected int",
    ),
    Case(
        "C02-783-pixels",
        "C02: one TFRecord whose image has 783 values instead of 784",
        _check_tfrecords([_image_example(), _image_example(pixels=783)]),
        r"data\.tfrecord record 2: feature 'image' has 783 values, expected 784 "
        r"\(value count\)",
    ),
    Case(
        "tfrecord-785-pixels",
        "an image with one value too many",
        _check_tfrecords([_image_example(pixels=785)], "train/part.tfrecord.gz"),
        r"part\.tfrecord\.gz record 1: feature 'image' has 785 values",
    ),
    Case(
        "tfrecord-missing-label",
        "a record without its label",
        _check_tfrecords([_image_example(with_label=False)]),
        r"data\.tfrecord record 1: feature 'label' is missing",
    ),
    # Values against the curated schema (C01)
    Case(
        "C01-pixel-300",
        "C01: a pixel value of 300",
        _image_anomaly([300] + [0] * 783, 1),
        r"split 'train', feature 'image': Out-of-range values: .*large value: 300"
        r".*\(in train\.tfrecord record 11\)",
        error=None,
    ),
    Case(
        "C01-pixel-minus-1",
        "C01: a pixel value of -1",
        _image_anomaly([-1] + [0] * 783, 1),
        r"feature 'image': Out-of-range values: .*small value: -1"
        r".*\(in train\.tfrecord record 11\)",
        error=None,
    ),
    Case(
        "C01-label-10",
        "C01: label 10 with ten classes",
        _image_anomaly([0] * 784, 10),
        r"feature 'label': Out-of-range values: Unexpectedly large value: 10\. "
        r"\(in train\.tfrecord record 11\)",
        error=None,
    ),
    Case(
        "C01-binary-label-2",
        "C01: label 2 in a two-class table",
        _circle_anomaly(0.3, 2),
        r"feature 'label': Out-of-range values: Unexpectedly large value: 2\. "
        r"\(in train\.tfrecord record 11\)",
        error=None,
    ),
    Case(
        "float-out-of-range",
        "a coordinate far outside the schema's range",
        _circle_anomaly(3.0, 1),
        r"feature 'x': Out-of-range values: .*\(in train\.tfrecord record 11\)",
        error=None,
    ),
    Case(
        "train-eval-skew",
        "an eval split whose class mix differs from the train split's",
        _skewed_eval,
        r"split 'eval', feature 'label': Train/eval skew: L-infinity distance "
        r"0\.3000 between the train and eval distributions, above the schema's "
        r"threshold 0\.1",
        error=None,
    ),
    # Configs (C04, C05)
    Case(
        "C04-no-threshold",
        "C04: an evaluation config without a bound",
        _config(
            "evaluation:\n  metric: SparseCategoricalAccuracy\n  lower_bound: null\n"
        ),
        r"evaluation\.lower_bound: expected a number",
        error=ConfigError,
    ),
    Case(
        "C05-one-hot-metric",
        "C05: CategoricalAccuracy on integer class ids",
        _config("evaluation:\n  metric: CategoricalAccuracy\n"),
        r"evaluation\.metric.*integer class ids.*SparseCategoricalAccuracy",
        error=ConfigError,
    ),
]

# Kinds that take a whole pipeline run or a trained model; the tests that
# cover them, as path::name.
COVERED_ELSEWHERE = {
    "C02 through the real pipeline: image TFRecords with a 783-value record, "
    "exit 3 naming file, record and feature": (
        "tests/test_e2e_tfrecord_images.py::"
        "test_a_783_value_image_stops_the_pipeline_naming_file_record_and_feature"
    ),
    "C03: C01's rows in the train split of a full run; the gate stops Trainer "
    "and Pusher, exit 3, served model unchanged": (
        "tests/test_e2e.py::test_5_span_with_a_bad_label_stops_before_training"
    ),
    "C05: SparseCategoricalAccuracy with 7 of 10 right is exactly 0.7": (
        "tests/test_evaluation.py::"
        "test_sparse_accuracy_on_integer_labels_is_exactly_the_share_right"
    ),
    "a truncated IDX file in a new span of a full run: exit 3 naming the file": (
        "tests/test_e2e.py::test_6_truncated_file_in_a_new_span_is_named"
    ),
}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_bad_input_gets_its_expected_outcome(tmp_path, case):
    if case.error is not None:
        with pytest.raises(case.error) as raised:
            case.run(tmp_path)
        assert re.search(case.expected, str(raised.value)), str(raised.value)
        return
    result = case.run(tmp_path)
    if case.expected == ACCEPTED:
        [example] = result
        assert example.features.feature["note"].bytes_list.value == [b'fine, "really"']
        assert example.features.feature["label"].int64_list.value == [1]
        return
    errors = anomaly_gate.blocking(result)
    assert len(errors) == 1, [str(anomaly) for anomaly in result]
    assert re.search(case.expected, str(errors[0])), str(errors[0])


def test_the_corpus_covers_at_least_25_kinds():
    assert len({case.name for case in CASES}) == len(CASES)
    assert len(CASES) + len(COVERED_ELSEWHERE) >= 25


@pytest.mark.parametrize("kind", sorted(COVERED_ELSEWHERE))
def test_kinds_covered_elsewhere_point_to_real_tests(kind):
    path, name = COVERED_ELSEWHERE[kind].split("::")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, path)) as stream:
        assert f"def {name}(" in stream.read(), COVERED_ELSEWHERE[kind]


def test_a_clean_image_tfrecord_split_passes_the_pre_check(tmp_path):
    records = [_image_example(label=n) for n in range(10)]
    _tfrecord(tmp_path, records[:4], "train/a.tfrecord")
    _tfrecord(tmp_path, records[4:], "train/b.tfrecord.gz")
    assert tfrecord_check.check_split(str(tmp_path / "train" / "*"), IMAGES) == 10
    with gzip.open(tmp_path / "train" / "b.tfrecord.gz") as stream:
        assert stream.read(1)
