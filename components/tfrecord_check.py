"""Checks TFRecord files of tf.Examples before the Beam pipeline reads them.

Beam reads a corrupt or truncated TFRecord file with an error deep inside a
worker, and a record with 783 pixels reaches the Trainer's reshape. Here every
file of a split is read once, in order, and each record is checked against the
data set's spec: a tf.Example, every feature present, of its kind, with its
number of values. Problems are listed together, each naming the file, the
record (numbered from 1) and the feature. Value ranges are left to the schema.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf
from google.protobuf.message import DecodeError
from tfx.dsl.io import fileio

from components import data_spec, features
from components.errors import InputDataError

# Enough to see the pattern of a problem without drowning in it.
MAX_REPORTED_ERRORS = 10
GZIP_MAGIC = b"\x1f\x8b"
# The tf.Example value list that holds each column kind.
_LIST_OF_KIND = {
    data_spec.FLOAT: "float_list",
    data_spec.INT: "int64_list",
    data_spec.STRING: "bytes_list",
}
_KIND_OF_LIST = {value: key for key, value in _LIST_OF_KIND.items()}


class TfRecordFormatError(InputDataError):
    """A TFRecord file cannot be read, or its records do not fit the spec."""


def expected_features(spec: data_spec.DataSpec) -> dict[str, tuple[str, int]]:
    """Feature name -> (column kind, number of values) that every record has."""
    expected = {spec.label_key: (data_spec.INT, 1)}
    if spec.kind == data_spec.IMAGE:
        expected[features.IMAGE_KEY] = (data_spec.INT, features.IMAGE_PIXELS)
    else:
        expected.update({column.name: (column.kind, 1) for column in spec.columns})
    return expected


def record_problems(record: bytes, expected: dict[str, tuple[str, int]]) -> list[str]:
    """What is wrong with one serialized record, feature by feature."""
    try:
        example = tf.train.Example.FromString(record)
    except DecodeError:
        return ["not a tf.Example"]
    problems = []
    present = example.features.feature
    for name, (kind, count) in expected.items():
        feature = present.get(name)
        stored = feature.WhichOneof("kind") if feature is not None else None
        if stored is None:
            problems.append(f"feature '{name}' is missing")
            continue
        if stored != _LIST_OF_KIND[kind]:
            problems.append(
                f"feature '{name}' holds {_KIND_OF_LIST[stored]} values, "
                f"expected {kind}"
            )
            continue
        found = len(getattr(feature, stored).value)
        if found != count:
            problems.append(
                f"feature '{name}' has {found} value{'s' * (found != 1)}, "
                f"expected {count} (value count)"
            )
    return problems


def _compression(path: str) -> str:
    """GZIP or none, from the file's first bytes; the name must agree.

    Beam's reader chooses the compression by the file name, so gzip data in a
    file not named .gz would be read as garbage inside a worker.
    """
    with fileio.open(path, "rb") as stream:
        head = stream.read(2)
    gzipped = head == GZIP_MAGIC
    if gzipped != path.endswith(".gz"):
        raise TfRecordFormatError(
            f"{path}: "
            + (
                "is gzip-compressed but its name does not end in .gz"
                if gzipped
                else "its name ends in .gz but it is not gzip-compressed"
            )
            + "; rename it so the reader uses the right compression"
        )
    return "GZIP" if gzipped else ""


def _tensorflow_reason(error: tf.errors.OpError) -> str:
    """TensorFlow's reason for a failed read, without its op and function names."""
    reason = error.message.splitlines()[0]
    reason = re.sub(r"\{\{[^}]*\}\}\s*", "", reason)
    reason = re.sub(r"\s*\[Op:[^\]]*\].*$", "", reason)
    return reason.replace("' failed with ", ": ").strip()


def check_file(path: str, spec: data_spec.DataSpec) -> int:
    """Reads one TFRecord file and checks each record; returns the count.

    Raises:
      TfRecordFormatError: the file is not TFRecord, is corrupt or truncated,
        or records do not fit the spec; the message names the file, the
        record and the feature.
    """
    expected = expected_features(spec)
    compression = _compression(path)
    problems: list[str] = []
    hidden = 0
    count = 0
    records = iter(tf.data.TFRecordDataset(path, compression))
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except tf.errors.DataLossError as error:
            where = f"after record {count}" if count else "at its first record"
            raise TfRecordFormatError(
                f"{path}: not a readable TFRecord file: corrupt or truncated "
                f"{where} ({_tensorflow_reason(error)})"
            ) from None
        count += 1
        for problem in record_problems(record.numpy(), expected):
            if len(problems) < MAX_REPORTED_ERRORS:
                problems.append(f"{path} record {count}: {problem}")
            else:
                hidden += 1
    if problems:
        more = f"\n  ... and {hidden} more" if hidden else ""
        raise TfRecordFormatError(
            f"{len(problems) + hidden} problem(s) in TFRecord data:\n  "
            + "\n  ".join(problems)
            + more
        )
    return count


def check_split(pattern: str, spec: data_spec.DataSpec) -> int:
    """Checks every file a split's pattern matches; returns the record count.

    Raises:
      TfRecordFormatError: no file matches, a file is bad, or the split holds
        no record at all.
    """
    paths = sorted(path for path in fileio.glob(pattern) if not fileio.isdir(path))
    if not paths:
        folder = os.path.dirname(pattern)
        raise TfRecordFormatError(
            f"no TFRecord file matches {pattern}"
            + (" (the folder is empty)" if fileio.isdir(folder) else "")
        )
    total = sum(check_file(path, spec) for path in paths)
    if not total:
        raise TfRecordFormatError(
            f"{pattern}: the split has no records ({len(paths)} empty file(s))"
        )
    return total
