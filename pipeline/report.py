"""The run report: one self-contained HTML page per run, beside its summary.

It gathers what a person reviewing a run asks about: the data's statistics and
anomalies per split, the learning-rate sweep, the training curves, TFMA's
metrics with a confusion matrix, whether the model was blessed and against
what, and the lineage of the served version in ML Metadata. Images are
embedded as data: URIs and the styles are inline, so the page opens offline.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os

import numpy as np
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import standard_component_specs as specs

from components import anomaly_gate, features, lr_finder, pusher, trainer
from pipeline import data_views, pipeline, summary
from pipeline.config import PipelineConfig

LATEST_REPORT = "latest.html"
STATISTICS_FILE = "FeatureStats.pb"
CANDIDATE_MODEL = "candidate"
BASELINE_MODEL = "baseline"
PIPELINE_RUN_CONTEXT = "pipeline_run"
PUSHED_MODEL_TYPE = "PushedModel"


class ReportError(RuntimeError):
    """The report cannot be built: no such run, or no record of it."""


# ---------------------------------------------------------------- confusion


def confusion_matrix(evaluation_uri: str, num_classes: int) -> np.ndarray | None:
    """Counts [true class, top predicted class] of the overall slice.

    Read from TFMA's MultiClassConfusionMatrixPlot of the candidate model;
    None when the evaluation has no such plot (a run from before it was
    configured).
    """
    for plots in tfma.load_plots(evaluation_uri):
        if plots.slice_key.single_slice_keys:
            continue
        for item in plots.plot_keys_and_values:
            if item.key.model_name == BASELINE_MODEL:
                continue
            at_thresholds = item.value.multi_class_confusion_matrix_at_thresholds
            if not at_thresholds.matrices:
                continue
            matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
            # The default threshold 0 counts every example under its top class.
            for entry in at_thresholds.matrices[0].entries:
                actual, predicted = entry.actual_class_id, entry.predicted_class_id
                if 0 <= actual < num_classes and 0 <= predicted < num_classes:
                    matrix[actual, predicted] += int(round(entry.num_weighted_examples))
            return matrix
    return None


# ---------------------------------------------------------------- lineage


@dataclasses.dataclass
class ServedLineage:
    """Where the newest served version came from, as ML Metadata records it."""

    version: str
    folder: str
    model_uri: str
    pushed_by_run: str
    trained_by_run: str
    examples_uri: str
    span: int | None


def _producer(store, artifact_id: int):
    """The first execution that output the artifact (later ones were cached)."""
    outputs = [
        event
        for event in store.get_events_by_artifact_ids([artifact_id])
        if event.type == metadata_store_pb2.Event.OUTPUT
    ]
    if not outputs:
        return None
    executions = store.get_executions_by_id([event.execution_id for event in outputs])
    return min(executions, key=lambda item: item.create_time_since_epoch)


def _run_name(store, execution_id: int) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == PIPELINE_RUN_CONTEXT:
            return context.name
    return "?"


def _input(store, execution_id: int, key: str):
    found = summary.artifacts_of(store, execution_id)
    artifacts = found.get((metadata_store_pb2.Event.INPUT, key))
    return artifacts[0] if artifacts else None


def served_lineage(store, serving_model_dir: str) -> ServedLineage | None:
    """The lineage of the highest version in the serving folder that this
    pipeline pushed, or None when it pushed nothing that is still there."""
    on_disk = set(pusher.existing_versions(serving_model_dir))
    pushed = []
    for artifact in store.get_artifacts_by_type(PUSHED_MODEL_TYPE):
        version = summary.custom_property(artifact, "pushed_version")
        is_pushed = summary.custom_property(artifact, "pushed")
        if is_pushed and version and int(version) in on_disk:
            pushed.append((int(version), artifact))
    if not pushed:
        return None
    version, artifact = max(pushed, key=lambda item: item[0])
    push = _producer(store, artifact.id)
    model = push and _input(store, push.id, specs.MODEL_KEY)
    training = model and _producer(store, model.id)
    examples = training and _input(store, training.id, specs.EXAMPLES_KEY)
    return ServedLineage(
        version=str(version),
        folder=summary.custom_property(artifact, "pushed_destination") or "",
        model_uri=model.uri if model else "?",
        pushed_by_run=_run_name(store, push.id) if push else "?",
        trained_by_run=_run_name(store, training.id) if training else "?",
        examples_uri=examples.uri if examples else "?",
        span=summary.custom_property(examples, "span") if examples else None,
    )


# ---------------------------------------------------------------- the run


@dataclasses.dataclass
class RunArtifacts:
    """The URIs of one run's artifacts that the report reads."""

    statistics: str | None = None
    anomalies: str | None = None
    split_names: list[str] = dataclasses.field(default_factory=list)
    examples: str | None = None
    model: str | None = None
    model_run: str | None = None
    sweep: str | None = None
    evaluation: str | None = None


def run_artifacts(store, run_id: str) -> RunArtifacts:
    """The artifacts the steps of one pipeline run output or were served."""
    found = RunArtifacts()
    context = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    if context is None:
        return found
    by_node = {
        summary.node_id_of(store, execution.id): summary.artifacts_of(
            store, execution.id
        )
        for execution in store.get_executions_by_context(context.id)
    }

    def uri(node_id: str, key: str) -> str | None:
        artifact = summary.output_of(by_node.get(node_id, {}), key)
        return artifact.uri if artifact is not None else None

    found.examples = uri(pipeline.EXAMPLE_GEN, specs.EXAMPLES_KEY)
    found.statistics = uri("StatisticsGen", specs.STATISTICS_KEY)
    anomalies = summary.output_of(
        by_node.get(pipeline.EXAMPLE_VALIDATOR, {}), specs.ANOMALIES_KEY
    )
    if anomalies is not None:
        found.anomalies = anomalies.uri
        found.split_names = json.loads(anomalies.properties["split_names"].string_value)
    found.model = uri(pipeline.TRAINER, specs.MODEL_KEY)
    found.model_run = uri(pipeline.TRAINER, specs.MODEL_RUN_KEY)
    found.sweep = uri(pipeline.LR_FINDER, "sweep")
    found.evaluation = uri(pipeline.EVALUATOR, specs.EVALUATION_KEY)
    return found


# ---------------------------------------------------------------- images


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss, the metric and the learning rate per epoch, train and validation."""
    plt = _pyplot()
    metrics = [
        name
        for name in history
        if name not in ("loss", "lr", "learning_rate") and not name.startswith("val_")
    ]
    panels = ["loss", *metrics]
    rate_key = "lr" if "lr" in history else "learning_rate"
    has_rate = rate_key in history
    figure, axes = plt.subplots(
        1, len(panels) + has_rate, figsize=(4.2 * (len(panels) + has_rate), 3.4)
    )
    axes = np.atleast_1d(axes)
    for axis, name in zip(axes, panels, strict=False):
        epochs = np.arange(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("epoch")
        axis.legend()
        axis.grid(alpha=0.3)
    if has_rate:
        axis = axes[-1]
        epochs = np.arange(1, len(history[rate_key]) + 1)
        axis.plot(epochs, history[rate_key], marker="o", color="tab:green")
        axis.set_yscale("log")
        axis.set_title("learning rate")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return _figure_png(figure)


def confusion_matrix_png(matrix: np.ndarray, class_names: list[str]) -> bytes:
    """The matrix as a heat map, counts written in each cell."""
    plt = _pyplot()
    size = max(3.5, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            axis.text(
                column,
                row,
                str(matrix[row, column]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if matrix[row, column] > threshold else "black",
            )
    figure.tight_layout()
    return _figure_png(figure)


# ---------------------------------------------------------------- evaluation


@dataclasses.dataclass
class Judgement:
    """One bounded metric: the candidate's value, the baseline's, the bounds."""

    metric: str
    candidate: float | None
    baseline: float | None
    difference: float | None
    lower_bound: float | None
    allowed_change: float | None


def _double(value) -> float | None:
    if value.HasField("double_value"):
        return value.double_value.value
    return None


def judgements(evaluation_uri: str) -> list[Judgement]:
    """The metrics with thresholds in the run's eval config, on the overall slice."""
    result = tfma.load_eval_result(evaluation_uri)
    bounds = {}
    for metrics_spec in result.config.metrics_specs:
        for metric in metrics_spec.metrics:
            for per_slice in metric.per_slice_thresholds:
                threshold = per_slice.threshold
                lower = (
                    threshold.value_threshold.lower_bound.value
                    if threshold.value_threshold.HasField("lower_bound")
                    else None
                )
                change = (
                    threshold.change_threshold.absolute.value
                    if threshold.HasField("change_threshold")
                    else None
                )
                bounds[metric.class_name] = (lower, change)
    names = {
        summary.TFMA_METRIC_NAMES.get(class_name, class_name): class_name
        for class_name in bounds
    }
    values: dict[str, dict[str, float | None]] = {name: {} for name in names}
    for metrics in tfma.load_metrics(evaluation_uri):
        if metrics.slice_key.single_slice_keys:
            continue
        for item in metrics.metric_keys_and_values:
            if item.key.name not in values:
                continue
            if item.key.is_diff:
                role = "difference"
            elif item.key.model_name == BASELINE_MODEL:
                role = "baseline"
            else:
                role = "candidate"
            values[item.key.name][role] = _double(item.value)
    return [
        Judgement(
            metric=name,
            candidate=values[name].get("candidate"),
            baseline=values[name].get("baseline"),
            difference=values[name].get("difference"),
            lower_bound=bounds[names[name]][0],
            allowed_change=bounds[names[name]][1],
        )
        for name in names
    ]


# ---------------------------------------------------------------- the page


def _escape(value) -> str:
    return html.escape(str(value))


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _table(header: list[str] | None, rows: list[list]) -> str:
    head = (
        "<tr>" + "".join(f"<th>{_escape(cell)}</th>" for cell in header) + "</tr>"
        if header
        else ""
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{_escape(cell)}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _image(png: bytes, alt: str) -> str:
    return f"<img alt='{_escape(alt)}' src='{_png_data_uri(png)}'>"


def _overview(result: summary.RunSummary) -> str:
    good = result.outcome in (summary.PUSHED, summary.ALREADY_SERVED)
    rows = [
        [step.node_id, step.state, f"{step.duration_s:.1f} s"] for step in result.steps
    ]
    return (
        f"<p>Outcome: <span class='{'good' if good else 'bad'}'>"
        f"{_escape(result.outcome)}</span>"
        + (f"; wall time {result.wall_time_s:.1f} s" if result.wall_time_s else "")
        + (f"; data span {result.span}" if result.span is not None else "")
        + "</p>"
        + (f"<p class='bad'>Error: {_escape(result.error)}</p>" if result.error else "")
        + _table(["step", "state", "duration"], rows)
    )


def _data_section(artifacts: RunArtifacts, result: summary.RunSummary) -> str:
    if artifacts.statistics is None:
        return "<p>No statistics were computed in this run.</p>"
    splits = artifacts.split_names or [features.TRAIN_SPLIT, features.EVAL_SPLIT]
    statistics = {}
    for split in splits:
        path = os.path.join(artifacts.statistics, f"Split-{split}", STATISTICS_FILE)
        if os.path.exists(path):
            statistics[split] = tfdv.load_stats_binary(path)
    anomalies = {}
    if artifacts.anomalies is not None:
        for split in splits:
            path = os.path.join(
                artifacts.anomalies, f"Split-{split}", anomaly_gate.SCHEMA_DIFF_FILE
            )
            if os.path.exists(path):
                with open(path, "rb") as stream:
                    anomalies[split] = anomalies_pb2.Anomalies.FromString(stream.read())
    stopped = (
        "<p class='bad'>The anomaly gate stopped the run: nothing was trained "
        "or pushed.</p>"
        if result.anomalies
        else ""
    )
    return (
        f"<h3>Anomalies</h3>{stopped}{data_views.anomalies_section(anomalies)}"
        "<h3>Statistics</h3>"
        + data_views.statistics_section(
            statistics, features.TRAIN_SPLIT, features.EVAL_SPLIT
        )
        + (
            f"<p>Examples: <code>{_escape(artifacts.examples)}</code></p>"
            if artifacts.examples
            else ""
        )
    )


def _training_section(artifacts: RunArtifacts, result: summary.RunSummary) -> str:
    parts = []
    if artifacts.sweep is not None:
        plot = os.path.join(artifacts.sweep, lr_finder.SWEEP_PLOT)
        if os.path.exists(plot):
            with open(plot, "rb") as stream:
                parts.append(
                    "<h3>Learning-rate sweep</h3>"
                    + _image(stream.read(), "learning-rate sweep")
                )
    history_path = (
        os.path.join(artifacts.model_run, trainer.HISTORY_FILE)
        if artifacts.model_run
        else None
    )
    if history_path is None or not os.path.exists(history_path):
        parts.append("<p>Nothing was trained in this run.</p>")
        return "".join(parts)
    with open(history_path) as stream:
        record = json.load(stream)
    schedule = record["settings"]["schedule"]
    parts.append(
        f"<p>Preset {_escape(record['settings']['preset'])}, "
        f"{len(record['history'].get('loss', []))} epochs, learning rate "
        f"{schedule['initial_learning_rate']:.3g} from the "
        f"{_escape(record.get('learning_rate_source', 'config'))}, schedule "
        f"{_escape(schedule['name'])}.</p>"
        "<h3>Training curves</h3>"
        + _image(training_curves_png(record["history"]), "training curves")
    )
    return "".join(parts)


def _evaluation_section(
    artifacts: RunArtifacts, result: summary.RunSummary, class_names: list[str]
) -> str:
    if artifacts.evaluation is None:
        return "<p>No model was evaluated in this run.</p>"
    overall = [
        [result.metric, _format(result.accuracy)],
        ["example count", result.example_count],
        *[
            [name, _format(value)]
            for name, value in result.binary_metrics.items()
            if name != result.metric
        ],
    ]
    # In class-id order, as the confusion matrix is.
    per_class = [
        [name, _format(result.per_class_accuracy[name])]
        for name in [
            *class_names,
            *sorted(set(result.per_class_accuracy) - set(class_names)),
        ]
        if name in result.per_class_accuracy
    ]
    parts = [
        "<h3>Overall</h3>" + _table(["metric", "value"], overall),
    ]
    if per_class:
        parts.append(
            "<h3>Per class</h3>"
            + _table(["class", "share classified right"], per_class)
        )
    matrix = confusion_matrix(artifacts.evaluation, len(class_names))
    if matrix is not None:
        parts.append(
            "<h3>Confusion matrix</h3><p>Rows: true class; columns: the class "
            "with the highest probability.</p>"
            + _image(confusion_matrix_png(matrix, class_names), "confusion matrix")
            + "<details><summary>The counts as a table</summary>"
            + _table(
                ["true \\ predicted", *class_names],
                [
                    [name, *row.tolist()]
                    for name, row in zip(class_names, matrix, strict=True)
                ],
            )
            + "</details>"
        )
    else:
        parts.append("<p>This evaluation holds no confusion matrix.</p>")
    return "".join(parts)


def _change_text(change: float | None) -> str:
    # The config's bound carries a tiny slack so that an equal model passes.
    if change is not None and abs(change) < 1e-6:
        return "no drop"
    return "-" if change is None else f"{change:+.4f}"


def _blessing_section(artifacts: RunArtifacts, result: summary.RunSummary) -> str:
    if result.blessed is None:
        return "<p>No model was judged in this run.</p>"
    basis = (
        "against the absolute bound and the served baseline"
        if result.had_baseline
        else "against the absolute bound alone (no blessed baseline yet)"
    )
    verdict = (
        f"<p>Blessed: <span class='{'good' if result.blessed else 'bad'}'>"
        f"{'yes' if result.blessed else 'no'}</span>, judged {basis}.</p>"
    )
    rows = [
        [
            judgement.metric,
            _format(judgement.candidate),
            _format(judgement.baseline),
            _format(judgement.difference),
            _format(judgement.lower_bound),
            _change_text(judgement.allowed_change),
        ]
        for judgement in judgements(artifacts.evaluation)
    ]
    if result.infra_blessed is not None:
        verdict += (
            "<p>Loaded and answered in TF Serving (InfraValidator): "
            f"{'yes' if result.infra_blessed else 'no'}.</p>"
        )
    reasons = "".join(f"<li>{_escape(reason)}</li>" for reason in result.why)
    return (
        verdict
        + _table(
            [
                "metric",
                "candidate",
                "baseline",
                "candidate - baseline",
                "lower bound",
                "allowed change",
            ],
            rows,
        )
        + (f"<p>Why not:</p><ul>{reasons}</ul>" if reasons else "")
    )


def _push_section(result: summary.RunSummary, lineage: ServedLineage | None) -> str:
    if result.pushed_version:
        pushed = (
            f"<p>This run pushed version {_escape(result.pushed_version)} to "
            f"<code>{_escape(result.pushed_path)}</code>.</p>"
        )
    elif result.already_served_version:
        pushed = (
            f"<p>Nothing new was pushed: version {result.already_served_version} "
            "already serves this exact model.</p>"
        )
    else:
        pushed = "<p>This run pushed nothing.</p>"
    if lineage is None:
        return pushed + "<p>No version pushed by this pipeline is served.</p>"
    rows = [
        ["served version", lineage.version],
        ["version folder", lineage.folder],
        ["pushed by run", lineage.pushed_by_run],
        ["model", lineage.model_uri],
        ["trained by run", lineage.trained_by_run],
        ["examples", lineage.examples_uri],
        ["data span", "-" if lineage.span is None else lineage.span],
    ]
    return (
        pushed
        + "<h3>Lineage of the served version (ML Metadata)</h3>"
        + _table(None, rows)
    )


def render(config: PipelineConfig, result: summary.RunSummary) -> str:
    """The report page of one run, from its summary and its metadata store."""
    artifacts = RunArtifacts()
    lineage = None
    if result.run_id and os.path.exists(config.metadata_path):
        store = summary.open_store(config)
        artifacts = run_artifacts(store, result.run_id)
        lineage = served_lineage(store, config.serving_model_dir)
    class_names = list(config.data_spec.class_names)
    title = f"Run {result.run_id or '(none)'} of pipeline '{result.pipeline_name}'"
    sections = [
        ("Run", _overview(result)),
        ("Data", _data_section(artifacts, result)),
        ("Training", _training_section(artifacts, result)),
        ("Evaluation", _evaluation_section(artifacts, result, class_names)),
        ("Blessing", _blessing_section(artifacts, result)),
        ("Push and lineage", _push_section(result, lineage)),
    ]
    body = "".join(f"<h2>{_escape(name)}</h2>{content}" for name, content in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_escape(title)}</title><style>{data_views.STYLE}</style>"
        f"</head><body><h1>{_escape(title)}</h1>{body}</body></html>"
    )


def report_path(config: PipelineConfig, run_id: str) -> str:
    """Beside the run's summary: `<output_dir>/runs/<pipeline>/<run id>.html`."""
    safe_run_id = (run_id or "unknown").replace(":", "-")
    return os.path.join(
        config.output_dir, "runs", config.pipeline_name, f"{safe_run_id}.html"
    )


def write(config: PipelineConfig, result: summary.RunSummary) -> str:
    """Writes the run's page and `latest.html` beside it; returns the page's path."""
    page = render(config, result)
    path = report_path(config, result.run_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for target in (path, os.path.join(os.path.dirname(path), LATEST_REPORT)):
        with open(target, "w") as stream:
            stream.write(page)
    return path


def rebuild(config: PipelineConfig, run_id: str | None = None) -> str:
    """Writes the report of the latest run, or of the given run, again.

    Raises:
      ReportError: there is no record of that run.
    """
    from pipeline import local_runner

    if run_id is None:
        result = local_runner.read_latest(config)
        if result is None:
            result = summary.summarize(config, config.evaluation.metric)
            if not result.run_id:
                raise ReportError(result.error or "no run is recorded")
    else:
        record = report_path(config, run_id)[: -len(".html")] + ".json"
        if not os.path.exists(record):
            raise ReportError(
                f"no record of run '{run_id}' at {record}; the runs recorded "
                f"are the .json files in {os.path.dirname(record)}"
            )
        with open(record) as stream:
            result = summary.RunSummary.from_json(stream.read())
    result.report_path = report_path(config, result.run_id)
    return write(config, result)
