"""Runs the pipeline on this machine with LocalDagRunner and Beam's DirectRunner.

The run's summary is built from the metadata store afterwards and written to
`<output_dir>/runs/<pipeline_name>/latest.json` beside a copy named by run id.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from absl import logging
from tfx import v1 as tfx

from components.anomaly_gate import DataAnomaliesError
from components.drift_gate import SpanDriftError
from components.errors import InputDataError
from pipeline import report, summary
from pipeline.config import PipelineConfig, to_yaml
from pipeline.pipeline import create_pipeline


def _cause_of_type(error: BaseException | None, types: tuple[type, ...]):
    """The first exception of one of these types in the cause chain, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, types):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


RUN_LOCK_FILE = ".run.lock"


@contextlib.contextmanager
def exclusive_run(config: PipelineConfig) -> Iterator[None]:
    """Holds the pipeline's run lock; a second run waits for the first.

    Two runs on one metadata store and one pipeline root would race on the
    same cache entries and the same "latest" summary. The lock is a flock on a
    file beside the metadata store, so it is released when its process dies,
    even by SIGKILL.
    """
    folder = os.path.dirname(config.metadata_path)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, RUN_LOCK_FILE), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            logging.info(
                "Waiting for the other run of '%s' in %s (%s) to finish",
                config.pipeline_name,
                config.output_dir,
                holder,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run(config: PipelineConfig) -> summary.RunSummary:
    """Runs the pipeline; returns its summary whether it succeeded or not.

    Runs of the same pipeline in the same output folder take turns.
    """
    with exclusive_run(config):
        return _run_locked(config)


def _run_locked(config: PipelineConfig) -> summary.RunSummary:
    last_error = None
    logging.info(
        "Pipeline '%s': preset %s, %d epochs, data %s%s, outputs in %s",
        config.pipeline_name,
        config.training.preset,
        config.training.epochs,
        config.data.data_dir,
        f" (first {config.data.max_examples_per_split} per split)"
        if config.data.max_examples_per_split
        else "",
        config.output_dir,
    )
    started = time.monotonic()
    started_ms = int(time.time() * 1000)
    try:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    except Exception as error:  # noqa: BLE001 - reported in the summary, not hidden.
        last_error = error
        logging.error("The run stopped: %s", error)
    result = summary.summarize(config, config.evaluation.metric, started_ms)
    result.wall_time_s = round(time.monotonic() - started, 1)
    stopped_by_gate = _cause_of_type(last_error, (DataAnomaliesError,))
    if stopped_by_gate is not None:
        # The gate's anomalies name the records and include train/eval skew.
        result.anomalies = [str(anomaly) for anomaly in stopped_by_gate.anomalies]
        result.outcome = summary.decide_outcome(result)
    drifted = _cause_of_type(last_error, (SpanDriftError,))
    if drifted is not None:
        # Data that was read and found to have moved: an anomaly, not bad input.
        result.anomalies = [
            f"drift from span {drifted.previous_span}: {drift}"
            for drift in drifted.drifts
        ]
        result.outcome = summary.decide_outcome(result)
    bad_input = _cause_of_type(last_error, (InputDataError,))
    if bad_input is not None and drifted is None:
        result.outcome = summary.BAD_INPUT
        result.error = str(bad_input)
    elif last_error is not None and not result.anomalies:
        result.outcome = summary.FAILED
        result.error = f"{type(last_error).__name__}: {last_error}"
    _write_report(config, result)
    _write(config, result)
    return result


def _write_report(config: PipelineConfig, result: summary.RunSummary) -> None:
    """Writes the run's HTML report; a failure there leaves the run's outcome."""
    started = time.monotonic()
    try:
        result.report_path = report.write(config, result)
        logging.info("Wrote the run report in %.1f s", time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - logged; the run's outcome stands.
        logging.error("The run report could not be written: %s", error)


def _runs_folder(config: PipelineConfig) -> str:
    return os.path.join(config.output_dir, "runs", config.pipeline_name)


def read_latest(config: PipelineConfig) -> summary.RunSummary | None:
    """The summary the latest run wrote, or None when there is none."""
    path = os.path.join(_runs_folder(config), "latest.json")
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return summary.RunSummary.from_json(stream.read())


def _write(config: PipelineConfig, result: summary.RunSummary) -> None:
    folder = _runs_folder(config)
    os.makedirs(folder, exist_ok=True)
    text = result.to_json()
    with open(os.path.join(folder, "latest_config.yaml"), "w") as stream:
        stream.write(to_yaml(config))
    safe_run_id = (result.run_id or "unknown").replace(":", "-")
    for name in (f"{safe_run_id}.json", "latest.json"):
        with open(os.path.join(folder, name), "w") as stream:
            stream.write(text)
