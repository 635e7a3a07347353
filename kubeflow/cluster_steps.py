"""Steps that replace, on a cluster, what only a local run or Vertex provides.

Open-source Kubeflow Pipelines v2 runs container and importer executors only:
TFX's Resolver compiles to a `resolver` executor and a file-based ExampleGen's
span look-up to a `pre_cache_check` hook, which only Vertex AI runs. Here:

- `LatestBlessedModel` is a container step that asks the cluster's metadata
  store for the newest blessed model of the pipeline and copies it to its
  output (an empty output, marked `found=0`, when there is none yet);
- `SpanResolvingIdxExecutor`, `SpanResolvingCsvExecutor` and
  `SpanResolvingTfrecordExecutor` resolve the `{SPAN}` pattern inside the
  executor (the newest span) and record span, version and fingerprint on the
  examples, as TFX's driver does locally;
- `OptionalBaselineEvaluatorExecutor` treats an empty baseline as none, so the
  first model is judged against the absolute bound alone.
"""

from typing import Any

from absl import logging
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import io_utils, proto_utils

from components import (
    csv_example_gen,
    idx_example_gen,
    metadata_lookup,
    tfrecord_example_gen,
)

FOUND_PROPERTY = "found"
SAVED_MODEL_FILE = "saved_model.pb"


@component
def LatestBlessedModel(  # noqa: N802 - TFX component names are CamelCase.
    model: OutputArtifact[standard_artifacts.Model],
    metadata_connection: Parameter[str],
    pipeline_name: Parameter[str],
):
    """Copies the pipeline's newest blessed model to `model`, if there is one."""
    store = metadata_lookup.open_store(metadata_connection)
    source = metadata_lookup.latest_blessed_model_uri(store, pipeline_name)
    if source is None or not fileio.exists(source):
        logging.info("No blessed model of '%s' yet: no baseline", pipeline_name)
        model.set_int_custom_property(FOUND_PROPERTY, 0)
        return
    io_utils.copy_dir(source, model.uri)
    model.set_int_custom_property(FOUND_PROPERTY, 1)
    logging.info("Baseline: the blessed model at %s", source)


def has_saved_model(model_uri: str) -> bool:
    """True when a Model folder holds an exported model (Format-Serving/...)."""
    return any(
        name.endswith(SAVED_MODEL_FILE)
        for _, _, files in fileio.walk(model_uri)
        for name in files
    )


class OptionalBaselineEvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator, with an empty baseline model read as no baseline."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        baselines = input_dict.get(specs.BASELINE_MODEL_KEY) or []
        if baselines and not has_saved_model(baselines[0].uri):
            input_dict = {
                key: value
                for key, value in input_dict.items()
                if key != specs.BASELINE_MODEL_KEY
            }
        super().Do(input_dict, output_dict, exec_properties)


def resolve_newest_span(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The exec properties with {SPAN} patterns replaced by the newest span.

    Also sets span, version and input fingerprint, as TFX's ExampleGen driver
    does before a local run.
    """
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], input_config)
    range_config = None
    if exec_properties.get(specs.RANGE_CONFIG_KEY):
        range_config = range_config_pb2.RangeConfig()
        proto_utils.json_to_proto(exec_properties[specs.RANGE_CONFIG_KEY], range_config)
    input_base = exec_properties[specs.INPUT_BASE_KEY]
    fingerprint, span, version = (
        example_gen_utils.calculate_splits_fingerprint_span_and_version(
            input_base, input_config.splits, range_config
        )
    )
    for split in input_config.splits:
        split.pattern = example_gen_utils.get_pattern_for_span_version(
            split.pattern,
            is_match_span=example_gen_utils.SPAN_SPEC in split.pattern,
            is_match_date=False,
            is_match_version=example_gen_utils.VERSION_SPEC in split.pattern,
            span=span,
            version=version,
        )
    resolved = dict(exec_properties)
    resolved[specs.INPUT_CONFIG_KEY] = proto_utils.proto_to_json(input_config)
    resolved[example_gen_utils.SPAN_PROPERTY_NAME] = span
    resolved[example_gen_utils.VERSION_PROPERTY_NAME] = version
    resolved[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = fingerprint
    return resolved


def _mark_span(output_dict, exec_properties: dict[str, Any]) -> None:
    for examples in output_dict[specs.EXAMPLES_KEY]:
        examples.span = exec_properties[example_gen_utils.SPAN_PROPERTY_NAME]
        examples.set_int_custom_property(
            example_gen_utils.SPAN_PROPERTY_NAME,
            exec_properties[example_gen_utils.SPAN_PROPERTY_NAME],
        )
        if exec_properties[example_gen_utils.VERSION_PROPERTY_NAME] is not None:
            examples.version = exec_properties[example_gen_utils.VERSION_PROPERTY_NAME]
        examples.set_string_custom_property(
            example_gen_utils.FINGERPRINT_PROPERTY_NAME,
            exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME],
        )


class SpanResolvingIdxExecutor(idx_example_gen.Executor):
    """The IDX ExampleGen executor, finding the newest span itself."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        resolved = resolve_newest_span(exec_properties)
        _mark_span(output_dict, resolved)
        super().Do(input_dict, output_dict, resolved)


class SpanResolvingCsvExecutor(csv_example_gen.Executor):
    """The CSV ExampleGen executor, finding the newest span itself."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        resolved = resolve_newest_span(exec_properties)
        _mark_span(output_dict, resolved)
        super().Do(input_dict, output_dict, resolved)


class SpanResolvingTfrecordExecutor(tfrecord_example_gen.Executor):
    """The checked TFRecord ExampleGen executor, finding the newest span itself."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        resolved = resolve_newest_span(exec_properties)
        _mark_span(output_dict, resolved)
        super().Do(input_dict, output_dict, resolved)


SPAN_RESOLVING_EXECUTORS = {
    idx_example_gen.Executor: SpanResolvingIdxExecutor,
    csv_example_gen.Executor: SpanResolvingCsvExecutor,
    tfrecord_example_gen.Executor: SpanResolvingTfrecordExecutor,
}
