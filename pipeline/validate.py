"""`kpipe validate`: checks a data folder against the curated schema, no training.

The data is read by the same readers as the pipeline's ExampleGens, so a file
the pipeline cannot read fails here with the same message. Statistics and
anomalies come from TFDV, and the same rule as the pipeline's anomaly gate
decides: any ERROR anomaly fails the check. The anomalies are written as text
and as an HTML page with TFDV's own anomalies table and statistics view.
"""

from __future__ import annotations

import dataclasses
import html
import os
import tempfile
from collections.abc import Iterator

import tensorflow as tf
import tensorflow_data_validation as tfdv

from components import (
    anomaly_gate,
    csv_example_gen,
    data_spec,
    features,
    idx,
    record_check,
    split_skew,
    tfrecord_check,
)
from components.idx_example_gen import check_split as check_idx_split
from components.idx_example_gen import to_example
from pipeline import data_views, pipeline
from pipeline.config import PipelineConfig

TRAINING_ENVIRONMENT = "TRAINING"
ANOMALIES_TEXT = "anomalies.txt"
REPORT_HTML = "validation.html"


@dataclasses.dataclass
class ValidationResult:
    """Per split: the record count and every anomaly; and where the files are."""

    record_counts: dict[str, int]
    anomalies: list[anomaly_gate.Anomaly]
    text_path: str
    html_path: str

    @property
    def errors(self) -> list[anomaly_gate.Anomaly]:
        return anomaly_gate.blocking(self.anomalies)


def _split_patterns(config: PipelineConfig) -> dict[str, str]:
    """The file pattern of each split in the newest span (or the folder itself)."""
    data_dir = config.data.data_dir
    spans = sorted(
        int(name.split("-", 1)[1])
        for name in tf.io.gfile.listdir(data_dir)
        if name.startswith("span-") and name.split("-", 1)[1].isdigit()
    )
    splits = pipeline.input_config(data_dir, config.data_spec.format)
    return {
        split.name: os.path.join(
            data_dir, split.pattern.replace("{SPAN}", str(spans[-1]) if spans else "")
        )
        for split in splits.splits
    }


def _records(config: PipelineConfig, pattern: str) -> Iterator[tuple[str, int, bytes]]:
    """(file, record number in the file from 1, serialized tf.Example)."""
    spec = config.data_spec
    limit = config.data.max_examples_per_split or None
    if spec.format == data_spec.IDX:
        images, labels = check_idx_split(pattern)
        for number, (pixels, label) in enumerate(
            idx.iter_records(images, labels, limit), start=1
        ):
            yield images, number, to_example(pixels, label).SerializeToString()
        return
    if spec.format == data_spec.TFRECORD:
        tfrecord_check.check_split(pattern, spec)
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        raise csv_example_gen.CsvFormatError(f"no file matches {pattern}")
    for path in paths:
        if spec.format == data_spec.CSV:
            csv_example_gen.check_file(path, spec, limit)
            examples = csv_example_gen.read_examples(path, spec, limit)
            for number, example in enumerate(examples, start=1):
                yield path, number, example.SerializeToString()
        else:
            compression = "GZIP" if path.endswith(".gz") else ""
            records = tf.data.TFRecordDataset(path, compression)
            for number, record in enumerate(records, start=1):
                yield path, number, record.numpy()


def validate_data(config: PipelineConfig, output_dir: str) -> ValidationResult:
    """Computes statistics per split, validates them and writes the reports.

    Raises:
      InputDataError: a file cannot be read; nothing is validated.
    """
    schema = tfdv.load_schema_text(config.schema_file)
    # Labelled data is training data; a schema without environments has one.
    environment = (
        TRAINING_ENVIRONMENT
        if TRAINING_ENVIRONMENT in schema.default_environment
        else None
    )
    os.makedirs(output_dir, exist_ok=True)
    counts: dict[str, int] = {}
    found: list[anomaly_gate.Anomaly] = []
    statistics_by_split = {}
    with tempfile.TemporaryDirectory() as scratch:
        for split, pattern in _split_patterns(config).items():
            records_path = os.path.join(scratch, f"{split}.tfrecord")
            count = 0
            with tf.io.TFRecordWriter(records_path) as writer:
                for _, _, record in _records(config, pattern):
                    writer.write(record)
                    count += 1
            counts[split] = count
            # With the schema, categorical features get the value counts the
            # train/eval skew check measures.
            statistics = tfdv.generate_statistics_from_tfrecord(
                records_path, stats_options=tfdv.StatsOptions(schema=schema)
            )
            statistics_by_split[split] = statistics
            anomalies = anomaly_gate.anomalies_of_split(
                split,
                tfdv.validate_statistics(statistics, schema, environment=environment),
            )
            if anomaly_gate.blocking(anomalies):
                anomalies = _with_records(config, pattern, schema, anomalies)
            found.extend(anomalies)
    train = statistics_by_split.get(features.TRAIN_SPLIT)
    evaluation = statistics_by_split.get(features.EVAL_SPLIT)
    if train is not None and evaluation is not None:
        found.extend(split_skew.split_skew(train, evaluation, schema))
    text_path = os.path.join(output_dir, ANOMALIES_TEXT)
    with open(text_path, "w") as stream:
        stream.write(_text(config, counts, found))
    html_path = os.path.join(output_dir, REPORT_HTML)
    with open(html_path, "w") as stream:
        stream.write(_html(config, counts, found, statistics_by_split))
    return ValidationResult(counts, found, text_path, html_path)


def _with_records(config, pattern, schema, anomalies):
    """The anomalies, each naming the first records that break its feature."""
    return record_check.name_records(anomalies, schema, _records(config, pattern))


def _text(config, counts, found) -> str:
    lines = [
        f"Data: {config.data.data_dir}",
        f"Schema: {config.schema_file}",
        "Records: " + ", ".join(f"{split} {count}" for split, count in counts.items()),
    ]
    errors = anomaly_gate.blocking(found)
    if not found:
        lines.append("Anomalies: none")
    else:
        lines.append(f"Anomalies: {len(found)} ({len(errors)} ERROR)")
        lines.extend(f"  - [{anomaly.severity}] {anomaly}" for anomaly in found)
    return "\n".join(lines) + "\n"


def _html(config, counts, found, statistics_by_split) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(anomaly.split)}</td>"
        f"<td>{html.escape(anomaly.feature)}</td>"
        f"<td>{html.escape(anomaly.severity)}</td>"
        f"<td>{html.escape(anomaly.short_description)}</td>"
        f"<td>{html.escape(anomaly.description)}</td></tr>"
        for anomaly in found
    )
    table = (
        "<table border='1'><tr><th>split</th><th>feature</th><th>severity</th>"
        f"<th>anomaly</th><th>description</th></tr>{rows}</table>"
        if found
        else "<p>No anomalies.</p>"
    )
    statistics_view = data_views.statistics_section(
        statistics_by_split, features.TRAIN_SPLIT, features.EVAL_SPLIT
    )
    counts_text = ", ".join(f"{split} {count}" for split, count in counts.items())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Validation of {html.escape(config.data.data_dir)}</title></head>"
        f"<body><h1>Validation of {html.escape(config.data.data_dir)}</h1>"
        f"<p>Schema: {html.escape(config.schema_file)}<br>Records: "
        f"{html.escape(counts_text)}</p><h2>Anomalies</h2>{table}"
        f"<h2>Statistics</h2>{statistics_view}</body></html>"
    )
