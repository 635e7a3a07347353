"""Train/eval skew: the eval split's distributions against the train split's.

A feature with a `skew_comparator` in the curated schema is compared between
the two splits with TFDV's own comparison (`validate_statistics` with the eval
statistics as `serving_statistics`). An eval split whose label mix differs
from the train split's by more than the threshold measures the model on a
different problem than it was trained for; the anomaly gate stops the run.

TFDV computes the L-infinity distance of a categorical feature from its value
counts, which the statistics only hold when they were generated with the
schema (`StatsOptions(schema=...)`, or StatisticsGen's `schema` input);
without it the distance is silently 0, so `split_skew` refuses such
statistics.
"""

from __future__ import annotations

import re

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import anomaly_gate, features

TRAINING_ENVIRONMENT = "TRAINING"
SKEW = "Train/eval skew"
_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity distance",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: (
        "Jensen-Shannon divergence"
    ),
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE: (
        "normalized absolute difference"
    ),
}
_MOST_DIFFERENT = re.compile(r"The feature value with maximum difference is: (.*)$")


def _compared_features(schema: schema_pb2.Schema) -> list[str]:
    return [
        feature.name
        for feature in schema.feature
        if feature.HasField("skew_comparator")
    ]


def _has_value_counts(
    statistics: statistics_pb2.DatasetFeatureStatisticsList, name: str
) -> bool:
    for dataset in statistics.datasets:
        for feature in dataset.features:
            if feature.path.step == [name] or feature.name == name:
                return feature.HasField("string_stats")
    return False


def split_skew(
    train_statistics: statistics_pb2.DatasetFeatureStatisticsList,
    eval_statistics: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
) -> list[anomaly_gate.Anomaly]:
    """The features whose eval distribution is too far from the train one.

    Args:
      train_statistics, eval_statistics: TFDV statistics of the two splits,
        generated with the schema.
      schema: the curated schema; its `skew_comparator` entries say which
        features are compared and with which threshold.

    Returns:
      One ERROR anomaly per feature over its threshold, on the eval split,
      naming the distance and the threshold.

    Raises:
      ValueError: a compared categorical feature has no value counts in the
        statistics (they were generated without the schema).
    """
    compared = _compared_features(schema)
    if not compared:
        return []
    by_name = {feature.name: feature for feature in schema.feature}
    for name in compared:
        categorical = by_name[name].type == schema_pb2.BYTES or (
            by_name[name].int_domain.is_categorical
        )
        comparator = by_name[name].skew_comparator
        if (
            categorical
            and comparator.HasField("infinity_norm")
            and not all(
                _has_value_counts(stats, name)
                for stats in (train_statistics, eval_statistics)
            )
        ):
            raise ValueError(
                f"feature '{name}': the statistics hold no value counts, so "
                "the train/eval L-infinity distance cannot be measured; "
                "generate them with the schema"
            )
    environment = (
        TRAINING_ENVIRONMENT
        if TRAINING_ENVIRONMENT in schema.default_environment
        else None
    )
    result = tfdv.validate_statistics(
        train_statistics,
        schema,
        environment=environment,
        serving_statistics=eval_statistics,
    )
    found = []
    for info in result.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in info.skew_measurements:
            if measurement.value <= measurement.threshold:
                continue
            measure = _MEASURE_NAMES.get(measurement.type, "distance")
            description = (
                f"{measure} {measurement.value:.4f} between the "
                f"{features.TRAIN_SPLIT} and {features.EVAL_SPLIT} distributions, "
                f"above the schema's threshold {measurement.threshold:g}"
            )
            most_different = _most_different_value(result, name)
            if most_different:
                description += f"; the value that differs most is {most_different}"
            found.append(
                anomaly_gate.Anomaly(
                    split=features.EVAL_SPLIT,
                    feature=name,
                    severity="ERROR",
                    short_description=SKEW,
                    description=description,
                )
            )
    return found


def _most_different_value(result: anomalies_pb2.Anomalies, name: str) -> str:
    info = result.anomaly_info.get(name)
    if info is None:
        return ""
    for reason in info.reason:
        match = _MOST_DIFFERENT.search(reason.description)
        if match:
            return match.group(1).strip()
    return ""
