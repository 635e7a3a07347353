"""The run summary: what each step did, read back from ML Metadata.

Everything here comes from the metadata store and the artifacts it points to,
so the summary of a run is the same whether it is printed at the end of the run
or later with `kpipe summary`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.components.evaluator import constants as evaluator_constants
from tfx.types import standard_component_specs as specs

from components import anomaly_gate, lr_finder, pusher, trainer
from pipeline import pipeline
from pipeline.config import PipelineConfig

# Outcomes of a run, as reported to people and as exit codes of the CLI.
PUSHED = "pushed"
ALREADY_SERVED = "already_served"
NOT_BLESSED = "not_blessed"
DATA_ANOMALIES = "data_anomalies"
BAD_INPUT = "bad_input"
FAILED = "failed"

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "ran",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.RUNNING: "interrupted",
    metadata_store_pb2.Execution.NEW: "interrupted",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass
class Step:
    node_id: str
    state: str
    duration_s: float


@dataclasses.dataclass
class RunSummary:
    """A run's outcome in the terms a person asks about."""

    pipeline_name: str
    run_id: str = ""
    outcome: str = FAILED
    steps: list[Step] = dataclasses.field(default_factory=list)
    anomalies: list[str] = dataclasses.field(default_factory=list)
    span: int | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    learning_rate_source: str | None = None
    lr_schedule: str | None = None
    sweep_plot: str | None = None
    accuracy: float | None = None
    metric: str = "sparse_categorical_accuracy"
    per_class_accuracy: dict[str, float] = dataclasses.field(default_factory=dict)
    binary_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    example_count: int | None = None
    had_baseline: bool | None = None
    blessed: bool | None = None
    infra_blessed: bool | None = None
    why: list[str] = dataclasses.field(default_factory=list)
    pushed_version: str | None = None
    pushed_path: str | None = None
    already_served_version: int | None = None
    wall_time_s: float | None = None
    error: str | None = None
    report_path: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        values = json.loads(text)
        values["steps"] = [Step(**step) for step in values.get("steps", [])]
        return cls(**values)


def open_store(config: PipelineConfig) -> metadata_store.MetadataStore:
    """The pipeline's metadata store, opened read-only."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    )
    return metadata_store.MetadataStore(connection)


def _latest_run_context(store) -> metadata_store_pb2.Context | None:
    runs = store.get_contexts_by_type("pipeline_run")
    return max(runs, key=lambda context: context.create_time_since_epoch, default=None)


def node_id_of(store, execution_id: int) -> str:
    """The pipeline node an execution belongs to, or "?"."""
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == "node":
            return context.name.split(".", 1)[-1]
    return "?"


def artifacts_of(store, execution_id: int) -> dict[tuple[int, str], list]:
    """(event type, key) -> artifacts of one execution."""
    events = store.get_events_by_execution_ids([execution_id])
    artifacts = {
        artifact.id: artifact
        for artifact in store.get_artifacts_by_id(
            [event.artifact_id for event in events]
        )
    }
    found: dict[tuple[int, str], list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        found.setdefault((event.type, key), []).append(artifacts[event.artifact_id])
    return found


def output_of(found, key):
    """The first artifact an execution output under `key`, or None."""
    for event_type in (
        metadata_store_pb2.Event.OUTPUT,
        metadata_store_pb2.Event.DECLARED_OUTPUT,
    ):
        if found.get((event_type, key)):
            return found[(event_type, key)][0]
    return None


def custom_property(artifact, name):
    """An MLMD artifact's custom property as a plain value, or None."""
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return value.WhichOneof("value") and getattr(value, value.WhichOneof("value"))


def _metric(metrics: dict, name: str) -> float | None:
    for sub_keys in metrics.values():
        for values in sub_keys.values():
            if name in values:
                value = values[name]
                number = value.get("doubleValue", value.get("int64Value"))
                # TFMA writes an undefined value (precision with no positive
                # prediction) as the string "NaN".
                return None if number is None else float(number)
    return None


def _read_evaluation(
    summary: RunSummary, uri: str, metric_name: str, config: PipelineConfig
) -> None:
    spec = config.data_spec
    names = spec.class_names
    for slice_key, metrics in tfma.load_eval_result(uri).slicing_metrics:
        accuracy = _metric(metrics, metric_name)
        if not slice_key:
            summary.accuracy = accuracy
            summary.metric = metric_name
            count = _metric(metrics, "example_count")
            summary.example_count = int(count) if count is not None else None
            if spec.binary:
                for name in BINARY_METRIC_KEYS:
                    value = _metric(metrics, name)
                    if value is not None:
                        summary.binary_metrics[name] = value
        elif len(slice_key) == 1 and slice_key[0][0] == spec.label_key:
            label = int(slice_key[0][1])
            name = names[label] if 0 <= label < len(names) else str(label)
            # A slice holds one class: ranking metrics such as AUC mean nothing
            # there, the share of its examples classified right does.
            summary.per_class_accuracy[name] = (
                _metric(metrics, "binary_accuracy") if spec.binary else accuracy
            )
    validation = tfma.load_validation_result(uri)
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            summary.why.append(
                f"{failure.metric_key.name}"
                f"{' (vs baseline)' if failure.metric_key.is_diff else ''}"
                f" = {failure.metric_value.double_value.value:.4f} fails "
                f"{_threshold_text(failure.metric_threshold)}"
            )


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        bound = threshold.value_threshold
        if bound.HasField("lower_bound"):
            return f"the lower bound {bound.lower_bound.value:.4f}"
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        if abs(change.absolute.value) < 1e-6:
            return "no drop against the baseline"
        return f"the allowed change {change.absolute.value:+.4f} against the baseline"
    return str(threshold).replace("\n", " ")


def summarize(
    config: PipelineConfig, metric_name: str, not_before_ms: int = 0
) -> RunSummary:
    """Builds the summary of the newest run in the pipeline's metadata store.

    Args:
      config: the pipeline's config; it locates the metadata store.
      metric_name: the Keras class name of the evaluated metric.
      not_before_ms: ignore runs recorded before this time (ms since the
        epoch), so a run that stopped before it was recorded is not mistaken
        for the previous one.
    """
    summary = RunSummary(pipeline_name=config.pipeline_name)
    if not os.path.exists(config.metadata_path):
        summary.error = f"no metadata store at {config.metadata_path}; nothing has run"
        return summary
    store = open_store(config)
    run = _latest_run_context(store)
    if run is None or run.create_time_since_epoch < not_before_ms:
        summary.error = "no run of this invocation is recorded in the metadata store"
        return summary
    summary.run_id = run.name
    executions = sorted(
        store.get_executions_by_context(run.id),
        key=lambda item: item.create_time_since_epoch,
    )
    outputs = {}
    for execution in executions:
        node_id = node_id_of(store, execution.id)
        duration_ms = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        )
        summary.steps.append(
            Step(
                node_id=node_id,
                state=_STATE_NAMES.get(execution.last_known_state, "unknown"),
                duration_s=round(duration_ms / 1000.0, 1),
            )
        )
        outputs[node_id] = artifacts_of(store, execution.id)

    found = outputs.get(pipeline.EXAMPLE_VALIDATOR)
    anomalies_artifact = found and output_of(found, specs.ANOMALIES_KEY)
    if anomalies_artifact is not None:
        split_names = json.loads(
            anomalies_artifact.properties["split_names"].string_value
        )
        errors = anomaly_gate.blocking(
            anomaly_gate.read_anomalies(anomalies_artifact.uri, split_names)
        )
        summary.anomalies = [str(anomaly) for anomaly in errors]
    examples = output_of(outputs.get(pipeline.EXAMPLE_GEN, {}), specs.EXAMPLES_KEY)
    if examples is not None:
        # TFX keeps the span as a custom property in the metadata store.
        summary.span = custom_property(examples, "span")

    found = outputs.get(pipeline.TRAINER)
    model_run = found and output_of(found, specs.MODEL_RUN_KEY)
    if model_run is not None:
        history_path = os.path.join(model_run.uri, trainer.HISTORY_FILE)
        if os.path.exists(history_path):
            with open(history_path) as stream:
                record = json.load(stream)
            summary.epochs = len(record["history"].get("loss", []))
            summary.learning_rate = record["settings"]["schedule"][
                "initial_learning_rate"
            ]
            summary.learning_rate_source = record.get("learning_rate_source")
            summary.lr_schedule = record["settings"]["schedule"]["name"]

    found = outputs.get(pipeline.LR_FINDER)
    sweep = found and output_of(found, "sweep")
    if sweep is not None:
        summary.sweep_plot = os.path.join(sweep.uri, lr_finder.SWEEP_PLOT)

    found = outputs.get(pipeline.EVALUATOR)
    if found:
        evaluation = output_of(found, specs.EVALUATION_KEY)
        blessing = output_of(found, specs.BLESSING_KEY)
        # The Evaluator records the baseline's id on the blessing. The input
        # events cannot tell: when the baseline is the candidate model itself,
        # the metadata store keeps one event for the two roles.
        if blessing is not None:
            summary.had_baseline = (
                custom_property(
                    blessing,
                    evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
                )
                is not None
            )
        if evaluation is not None:
            _read_evaluation(summary, evaluation.uri, _metric_key(metric_name), config)
        if blessing is not None:
            summary.blessed = bool(custom_property(blessing, "blessed"))

    found = outputs.get(pipeline.INFRA_VALIDATOR)
    infra_blessing = found and output_of(found, specs.BLESSING_KEY)
    if infra_blessing is not None:
        summary.infra_blessed = bool(custom_property(infra_blessing, "blessed"))
        if not summary.infra_blessed:
            summary.why.append(
                "InfraValidator: the model did not load or answer in "
                f"{config.serving.image}:{config.serving.image_tag} "
                "(its log in the run output says why)"
            )

    found = outputs.get(pipeline.PUSHER)
    pushed_model = found and output_of(found, specs.PUSHED_MODEL_KEY)
    if pushed_model is not None and custom_property(pushed_model, "pushed"):
        summary.pushed_version = custom_property(pushed_model, "pushed_version")
        summary.pushed_path = custom_property(pushed_model, "pushed_destination")
    elif pushed_model is not None:
        summary.already_served_version = custom_property(
            pushed_model, pusher.ALREADY_SERVED_KEY
        )

    summary.outcome = decide_outcome(summary)
    return summary


def decide_outcome(summary: RunSummary) -> str:
    """The outcome the facts gathered in a summary add up to."""
    if summary.anomalies:
        return DATA_ANOMALIES
    if summary.pushed_version:
        return PUSHED
    if summary.already_served_version:
        return ALREADY_SERVED
    pusher_ran = any(step.node_id == pipeline.PUSHER for step in summary.steps)
    if pusher_ran and False in (summary.blessed, summary.infra_blessed):
        return NOT_BLESSED
    return FAILED


# TFMA's names for the Keras metric classes the config can name.
TFMA_METRIC_NAMES = {
    "SparseCategoricalAccuracy": "sparse_categorical_accuracy",
    "BinaryAccuracy": "binary_accuracy",
    "AUC": "auc",
    "Precision": "precision",
    "Recall": "recall",
}
BINARY_METRIC_KEYS = ("binary_accuracy", "auc", "precision", "recall", "calibration")


def _metric_key(class_name: str) -> str:
    """TFMA's metric name for a Keras metric class name."""
    return TFMA_METRIC_NAMES[class_name]


def _metric_label(metric: str) -> str:
    if metric.endswith("accuracy"):
        return "accuracy"
    return "AUC" if metric == "auc" else metric.replace("_", " ")


def render(summary: RunSummary) -> str:
    """The summary as a few lines a person reads in seconds."""
    lines = [f"Run {summary.run_id or '(none)'} of pipeline '{summary.pipeline_name}'"]
    for step in summary.steps:
        lines.append(f"  {step.node_id:<32} {step.state:<11} {step.duration_s:>7.1f} s")
    if summary.anomalies:
        lines.append(
            f"Data anomalies ({len(summary.anomalies)})"
            + (f" in span {summary.span}" if summary.span is not None else "")
            + "; nothing trained or pushed:"
        )
        lines.extend(f"  - {anomaly}" for anomaly in summary.anomalies)
    elif summary.outcome == BAD_INPUT:
        lines.append("Data: could not be read; nothing trained or pushed")
    elif any(step.node_id == pipeline.EXAMPLE_VALIDATOR for step in summary.steps):
        lines.append("Data anomalies: none")
    if summary.learning_rate is not None:
        lines.append(
            f"Learning rate: {summary.learning_rate:.3g} from the "
            f"{summary.learning_rate_source}, schedule {summary.lr_schedule}"
            + (f" (sweep plot: {summary.sweep_plot})" if summary.sweep_plot else "")
        )
    if summary.accuracy is not None:
        lines.append(
            f"Test {_metric_label(summary.metric)}: {summary.accuracy:.4f} "
            f"on {summary.example_count} eval examples"
            + (f" after {summary.epochs} epochs" if summary.epochs else "")
        )
        if summary.binary_metrics:
            lines.append(
                "  on class 1's probability: "
                + ", ".join(
                    f"{name} {value:.4f}"
                    for name, value in summary.binary_metrics.items()
                )
            )
        if summary.per_class_accuracy:
            worst = sorted(
                summary.per_class_accuracy.items(), key=lambda item: item[1]
            )[:3]
            lines.append(
                "  weakest classes: "
                + ", ".join(f"{name} {value:.3f}" for name, value in worst)
            )
    if summary.blessed is not None:
        basis = (
            "against the absolute bound and the baseline"
            if summary.had_baseline
            else "against the absolute bound alone (no blessed baseline yet)"
        )
        lines.append(f"Blessed: {'yes' if summary.blessed else 'no'}, judged {basis}")
    if summary.infra_blessed is not None:
        lines.append(
            "Loaded in TF Serving (InfraValidator): "
            + ("yes" if summary.infra_blessed else "no")
        )
    if summary.blessed is not None or summary.infra_blessed is not None:
        lines.extend(f"  - {reason}" for reason in summary.why)
    if summary.pushed_version:
        lines.append(
            f"Pushed: version {summary.pushed_version} at {summary.pushed_path}"
        )
    elif summary.already_served_version:
        lines.append(
            f"Pushed: nothing new; version {summary.already_served_version} "
            "already serves this exact model"
        )
    else:
        lines.append("Pushed: nothing")
    if summary.error:
        lines.append(f"Error: {summary.error}")
    if summary.wall_time_s is not None:
        lines.append(f"Wall time: {summary.wall_time_s:.1f} s")
    if summary.report_path:
        lines.append(f"Report: {summary.report_path}")
    lines.append(f"Outcome: {summary.outcome}")
    return "\n".join(lines)
