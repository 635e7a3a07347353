"""The anomaly gate: stops the pipeline when the data has ERROR anomalies.

ExampleValidator records anomalies but lets the pipeline go on. The gate reads
its output for every split and fails, naming each anomaly and its first
offending records, so the Trainer (which runs after the gate) never sees bad
data and nothing is pushed. It also compares the eval split's statistics with
the train split's (components/split_skew.py) and fails on a skewed eval split.
"""

import dataclasses
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components import features, metadata_lookup

SCHEMA_DIFF_FILE = "SchemaDiff.pb"


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One anomaly of one feature in one split, as a person reads it."""

    split: str
    feature: str
    severity: str
    short_description: str
    description: str

    def __str__(self) -> str:
        return (
            f"split '{self.split}', feature '{self.feature}': "
            f"{self.short_description}: {self.description}"
        )


class DataAnomaliesError(RuntimeError):
    """The data has ERROR anomalies against the curated schema."""

    def __init__(self, anomalies: list[Anomaly], span: int | None = None):
        self.anomalies = anomalies
        self.span = span
        lines = "\n".join(f"  - {anomaly}" for anomaly in anomalies)
        where = f" in span {span}" if span is not None else ""
        super().__init__(
            f"{len(anomalies)} data anomal{'y' if len(anomalies) == 1 else 'ies'}"
            f"{where} against the schema; training stopped:\n{lines}"
        )


def anomalies_of_split(split: str, proto: anomalies_pb2.Anomalies) -> list[Anomaly]:
    """The anomalies TFDV recorded for one split, feature by feature."""
    found = []
    for feature, info in sorted(proto.anomaly_info.items()):
        found.append(
            Anomaly(
                split=split,
                feature=feature,
                severity=anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                short_description=info.short_description,
                description=info.description,
            )
        )
    if proto.HasField("dataset_anomaly_info"):
        info = proto.dataset_anomaly_info
        found.append(
            Anomaly(
                split=split,
                feature="(dataset)",
                severity=anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                short_description=info.short_description,
                description=info.description,
            )
        )
    return found


def read_anomalies(uri: str, split_names: list[str]) -> list[Anomaly]:
    """Reads every split's anomalies from an ExampleAnomalies artifact's folder."""
    found = []
    for split in split_names:
        path = os.path.join(uri, f"Split-{split}", SCHEMA_DIFF_FILE)
        proto = anomalies_pb2.Anomalies()
        with fileio.open(path, "rb") as stream:
            proto.ParseFromString(stream.read())
        found.extend(anomalies_of_split(split, proto))
    return found


def blocking(anomalies: list[Anomaly]) -> list[Anomaly]:
    """The anomalies that stop a run: those of ERROR severity."""
    return [anomaly for anomaly in anomalies if anomaly.severity == "ERROR"]


def located_errors(
    anomalies: list[Anomaly],
    schema,
    records_of_split,
) -> list[Anomaly]:
    """The ERROR anomalies, each naming the first records that break it.

    Args:
      anomalies: every split's anomalies.
      schema: the schema they were found against.
      records_of_split: split name -> iterable of (file, record number,
        serialized tf.Example) of that split.
    """
    from components import record_check  # It imports this module.

    located = []
    for split in dict.fromkeys(anomaly.split for anomaly in anomalies):
        errors = blocking([anomaly for anomaly in anomalies if anomaly.split == split])
        if errors:
            located.extend(
                record_check.name_records(errors, schema, records_of_split(split))
            )
    return located


@component
def AnomalyGate(  # noqa: N802 - TFX component names are CamelCase.
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
):
    """Fails the run when a split has an ERROR anomaly or the splits are skewed.

    Each anomaly names its first offending records, numbered from 1 in the
    ExampleGen's output files; a train/eval skew names the feature and the
    distance.
    """
    from components import record_check, split_skew  # They import this module.

    schema_proto = io_utils.SchemaReader().read(
        io_utils.get_only_uri_in_dir(schema.uri)
    )
    split_names = artifact_utils.decode_split_names(anomalies.split_names)

    def records_of_split(split):
        folder = artifact_utils.get_split_uri([examples], split)
        return record_check.tfrecord_records(
            sorted(fileio.glob(os.path.join(folder, "*")))
        )

    errors = located_errors(
        read_anomalies(anomalies.uri, split_names), schema_proto, records_of_split
    )
    if not errors and {features.TRAIN_SPLIT, features.EVAL_SPLIT} <= set(split_names):
        errors = split_skew.split_skew(
            stats_artifact_utils.load_statistics(
                statistics, features.TRAIN_SPLIT
            ).proto(),
            stats_artifact_utils.load_statistics(
                statistics, features.EVAL_SPLIT
            ).proto(),
            schema_proto,
        )
    if errors:
        # ExampleValidator leaves the span unset on its output; the examples
        # that were validated carry it.
        raise DataAnomaliesError(errors, span=metadata_lookup.artifact_span(examples))
