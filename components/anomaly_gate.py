"""The anomaly gate: stops the pipeline when the data has ERROR anomalies.

ExampleValidator records anomalies but lets the pipeline go on. The gate reads
its output for every split and fails, naming each anomaly, so the Trainer (which
runs after the gate) never sees bad data and nothing is pushed.
"""

import dataclasses
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

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


@component
def AnomalyGate(  # noqa: N802 - TFX component names are CamelCase.
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    examples: InputArtifact[standard_artifacts.Examples],
):
    """Fails the run when any split has an ERROR anomaly."""
    split_names = artifact_utils.decode_split_names(anomalies.split_names)
    errors = blocking(read_anomalies(anomalies.uri, split_names))
    if errors:
        # ExampleValidator leaves the span unset on its output; the examples
        # that were validated carry it.
        raise DataAnomaliesError(errors, span=examples.span)
