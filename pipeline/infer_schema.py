"""`kpipe infer-schema`: a draft schema from the data's statistics, for curation.

TFDV infers types, shapes and string domains from the train split; this adds
what a curated schema of this project always has (every column required, the
label's class-id range, TRAINING and SERVING environments without the label in
SERVING, skew and drift bounds on the label's class shares) and lists each
numeric column's observed range as a comment, so a person can decide the
bounds. The pipeline imports the curated file; it never infers a schema on its
own.
"""

from __future__ import annotations

import os
import tempfile

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from components import csv_example_gen, data_spec, features
from pipeline import pipeline
from pipeline.config import PipelineConfig

TRAINING_ENVIRONMENT = "TRAINING"
SERVING_ENVIRONMENT = "SERVING"


class InferSchemaError(RuntimeError):
    """The draft cannot be written; the message says why."""


# The most any class's share may differ between train and eval, or between
# consecutive spans (L-infinity distance).
LABEL_SHARE_THRESHOLD = 0.1


def _train_files(config: PipelineConfig) -> list[str]:
    splits = pipeline.input_config(config.data.data_dir, config.data_spec.format)
    pattern = next(
        split.pattern for split in splits.splits if split.name == features.TRAIN_SPLIT
    ).replace("{SPAN}", "*")
    paths = sorted(tf.io.gfile.glob(os.path.join(config.data.data_dir, pattern)))
    if not paths:
        raise InferSchemaError(
            f"no train files match {os.path.join(config.data.data_dir, pattern)}"
        )
    return paths


def _write_records(config: PipelineConfig, paths: list[str], destination: str) -> int:
    spec = config.data_spec
    count = 0
    with tf.io.TFRecordWriter(destination) as writer:
        for path in paths:
            if spec.format == data_spec.CSV:
                records = (
                    example.SerializeToString()
                    for example in csv_example_gen.read_examples(path, spec)
                )
            else:
                compression = "GZIP" if path.endswith(".gz") else ""
                records = (
                    record.numpy()
                    for record in tf.data.TFRecordDataset(path, compression)
                )
            for record in records:
                writer.write(record)
                count += 1
    return count


def draft_schema(config: PipelineConfig) -> tuple[schema_pb2.Schema, str, int]:
    """The draft schema, a comment block of observed ranges, and the row count."""
    spec = config.data_spec
    if spec.format == data_spec.IDX:
        raise InferSchemaError(
            "IDX image data uses the curated image schema "
            "(schemas/fashion_mnist/schema.pbtxt); infer-schema is for tables"
        )
    paths = _train_files(config)
    with tempfile.TemporaryDirectory() as folder:
        records_path = os.path.join(folder, "train.tfrecord")
        count = _write_records(config, paths, records_path)
        statistics = tfdv.generate_statistics_from_tfrecord(
            records_path, stats_options=tfdv.StatsOptions(num_top_values=50)
        )
    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    in_schema = {feature.name: feature for feature in schema.feature}
    if spec.label_key not in in_schema:
        raise InferSchemaError(
            f"the label {spec.label_key!r} is not in the data; it has "
            f"{sorted(in_schema)}"
        )
    for feature in schema.feature:
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
    label = in_schema[spec.label_key]
    label.ClearField("domain_info")
    label.int_domain.min = 0
    label.int_domain.max = spec.num_classes - 1
    label.int_domain.is_categorical = True
    label.not_in_environment.append(SERVING_ENVIRONMENT)
    # Train/eval skew (checked by the anomaly gate) and span-to-span drift of
    # the class shares, with the bound the built-in schemas use.
    label.skew_comparator.infinity_norm.threshold = LABEL_SHARE_THRESHOLD
    label.drift_comparator.infinity_norm.threshold = LABEL_SHARE_THRESHOLD
    schema.default_environment.extend([TRAINING_ENVIRONMENT, SERVING_ENVIRONMENT])
    ranges = _observed_ranges(statistics, spec)
    return schema, ranges, count


def _observed_ranges(statistics, spec: data_spec.DataSpec) -> str:
    lines = []
    numeric = {
        column.name for column in spec.columns if column.kind != data_spec.STRING
    }
    for feature in statistics.datasets[0].features:
        name = feature.path.step[0] if feature.path.step else feature.name
        if name in numeric and feature.HasField("num_stats"):
            stats = feature.num_stats
            lines.append(
                f"#   {name}: min {stats.min:.6g}, max {stats.max:.6g}, "
                f"mean {stats.mean:.6g}"
            )
    return "\n".join(sorted(lines))


def write_draft(config: PipelineConfig, output_path: str, overwrite: bool) -> int:
    """Writes the draft schema; returns the number of rows it was inferred from."""
    if os.path.exists(output_path) and not overwrite:
        raise InferSchemaError(
            f"{output_path} exists; it may hold curation. Pass --overwrite to "
            "replace it, or --output to write elsewhere"
        )
    schema, ranges, count = draft_schema(config)
    header = (
        f"# Draft inferred by `kpipe infer-schema` from {count} train rows of\n"
        f"# {config.data.data_dir}. Curate it before training: add value ranges\n"
        "# (float_domain / int_domain) where the data has hard limits, and check\n"
        "# every string domain. Observed numeric ranges:\n"
        f"{ranges}\n"
    )
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    temporary = f"{output_path}.incoming"
    tfdv.write_schema_text(schema, temporary)
    with open(temporary) as stream:
        body = stream.read()
    with open(temporary, "w") as stream:
        stream.write(header + body)
    os.replace(temporary, output_path)
    return count
