"""The drift gate: stops a run whose new span drifted too far from the previous one.

TFDV compares two spans' statistics only for features whose schema entry has a
`drift_comparator` (an `infinity_norm` or `jensen_shannon_divergence`
threshold); the gate honours whatever the schema says and adds no threshold of
its own. The previous span's statistics are looked up in the metadata store, so
the first span, or a schema with no comparator, passes.
"""

import dataclasses
import os

import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import features, metadata_lookup
from components.errors import InputDataError

STATISTICS_FILE = "FeatureStats.pb"
SCHEMA_FILE = "schema.pbtxt"
DRIFT_REASONS = (
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
)


@dataclasses.dataclass(frozen=True)
class Drift:
    """One feature whose distribution moved past its schema's threshold."""

    feature: str
    description: str

    def __str__(self) -> str:
        return f"feature '{self.feature}': {self.description}"


class SpanDriftError(InputDataError):
    """The new span's distribution moved too far from the previous span's."""

    def __init__(self, drifts: list[Drift], span: int, previous_span: int):
        self.drifts = drifts
        self.previous_span = previous_span
        lines = "\n".join(f"  - {drift}" for drift in drifts)
        super().__init__(
            f"span {span} drifted from span {previous_span} past the schema's "
            f"drift_comparator threshold; training stopped:\n{lines}"
        )


def read_statistics(statistics_uri: str, split: str = features.TRAIN_SPLIT):
    """One split's DatasetFeatureStatisticsList from a statistics folder."""
    return tfdv.load_stats_binary(
        os.path.join(statistics_uri, f"Split-{split}", STATISTICS_FILE)
    )


def find_drift(current, previous, schema: schema_pb2.Schema) -> list[Drift]:
    """Features whose drift_comparator threshold the two statistics exceed."""
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    found = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = [reason for reason in info.reason if reason.type in DRIFT_REASONS]
        if reasons:
            found.append(
                Drift(feature, "; ".join(reason.description for reason in reasons))
            )
    return found


def has_drift_comparator(schema: schema_pb2.Schema) -> bool:
    return any(feature.HasField("drift_comparator") for feature in schema.feature)


@component
def DriftGate(  # noqa: N802 - TFX component names are CamelCase.
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    examples: InputArtifact[standard_artifacts.Examples],
    metadata_connection: Parameter[str],
    pipeline_name: Parameter[str],
):
    """Fails the run when the new span drifted from the previous span."""
    schema_proto = io_utils.parse_pbtxt_file(
        os.path.join(schema.uri, SCHEMA_FILE), schema_pb2.Schema()
    )
    if not has_drift_comparator(schema_proto):
        logging.info("Drift check: the schema sets no drift_comparator")
        return
    span = metadata_lookup.artifact_span(examples)
    previous = metadata_lookup.previous_span_statistics(
        metadata_lookup.open_store(metadata_connection), pipeline_name, span
    )
    if previous is None:
        logging.info("Drift check: no statistics of a span before span %d", span)
        return
    previous_span, previous_uri = previous
    drifts = find_drift(
        read_statistics(statistics.uri), read_statistics(previous_uri), schema_proto
    )
    if drifts:
        raise SpanDriftError(drifts, span, previous_span)
    logging.info(
        "Drift check: span %d is within the schema's bounds of span %d",
        span,
        previous_span,
    )
