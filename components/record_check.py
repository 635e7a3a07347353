"""Finds the records behind an anomaly, for `kpipe validate` and the anomaly gate.

TFDV's anomalies describe a split's statistics ("Out-of-range values"), not
which records caused them. Given the records themselves, this module names the
first ones that break each anomalous feature's rules in the schema, so both
the command and the pipeline's gate say where to look, in the same words.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components import anomaly_gate

# Records named per anomaly; enough to find the pattern in the data.
MAX_NAMED_RECORDS = 5

# The tf.Example value list each schema type is stored in.
_KIND_OF_TYPE = {
    schema_pb2.INT: "int64_list",
    schema_pb2.FLOAT: "float_list",
    schema_pb2.BYTES: "bytes_list",
}


def _values(feature: tf.train.Feature) -> list:
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def _out_of_domain(values, domain) -> bool:
    return any(
        (domain.HasField("min") and value < domain.min)
        or (domain.HasField("max") and value > domain.max)
        for value in values
    )


def breaks_schema(
    feature: tf.train.Feature | None, schema_feature: schema_pb2.Feature
) -> bool:
    """Whether one record's value of a feature breaks the schema's rules for it.

    Args:
      feature: the record's feature, or None when the record lacks it.
      schema_feature: the feature's entry in the schema.
    """
    if feature is None or feature.WhichOneof("kind") is None:
        return True
    kind = feature.WhichOneof("kind")
    expected_kind = _KIND_OF_TYPE.get(schema_feature.type)
    if expected_kind and kind != expected_kind:
        return True
    values = _values(feature)
    count = schema_feature.value_count
    if count.max and not count.min <= len(values) <= count.max:
        return True
    dims = [dim.size for dim in schema_feature.shape.dim]
    if dims and len(values) != _product(dims):
        return True
    if schema_feature.HasField("int_domain") and kind == "int64_list":
        return _out_of_domain(values, schema_feature.int_domain)
    if schema_feature.HasField("float_domain") and kind == "float_list":
        return _out_of_domain(values, schema_feature.float_domain)
    return False


def _product(dims: list[int]) -> int:
    result = 1
    for size in dims:
        result *= size
    return result


def name_records(
    anomalies: list[anomaly_gate.Anomaly],
    schema: schema_pb2.Schema,
    records: Iterable[tuple[str, int, bytes]],
) -> list[anomaly_gate.Anomaly]:
    """The anomalies, each ERROR one naming the first records that break it.

    Args:
      anomalies: one split's anomalies.
      schema: the schema they were found against.
      records: (file, record number in the file from 1, serialized
        tf.Example) for every record of that split, in file order.

    Returns:
      The same anomalies in the same order; the description of each one on a
      schema feature ends with "(in FILE record N, ... and K more)".
    """
    by_name = {feature.name: feature for feature in schema.feature}
    wanted = {a.feature for a in anomaly_gate.blocking(anomalies)} & set(by_name)
    if not wanted:
        return list(anomalies)
    named: dict[str, list[str]] = {name: [] for name in wanted}
    counts = dict.fromkeys(wanted, 0)
    for path, number, record in records:
        example = tf.train.Example.FromString(record)
        for name in wanted:
            if breaks_schema(example.features.feature.get(name), by_name[name]):
                counts[name] += 1
                if len(named[name]) < MAX_NAMED_RECORDS:
                    named[name].append(f"{os.path.basename(path)} record {number}")
    located = []
    for anomaly in anomalies:
        found = named.get(anomaly.feature)
        if found:
            more = counts[anomaly.feature] - len(found)
            where = ", ".join(found) + (f" and {more} more" if more else "")
            anomaly = dataclasses.replace(
                anomaly, description=f"{anomaly.description} (in {where})"
            )
        located.append(anomaly)
    return located


def tfrecord_records(paths: Iterable[str]) -> Iterable[tuple[str, int, bytes]]:
    """(file, record number from 1, record) of TFRecord files, gzip or not."""
    for path in paths:
        compression = "GZIP" if path.endswith(".gz") else ""
        for number, record in enumerate(
            tf.data.TFRecordDataset(path, compression), start=1
        ):
            yield path, number, record.numpy()
