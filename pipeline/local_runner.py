"""Runs the pipeline on this machine with LocalDagRunner and Beam's DirectRunner.

The run's summary is built from the metadata store afterwards and written to
`<output_dir>/runs/<pipeline_name>/latest.json` beside a copy named by run id.
"""

from __future__ import annotations

import os
import time

from absl import logging
from tfx import v1 as tfx

from pipeline import summary
from pipeline.config import PipelineConfig, to_yaml
from pipeline.pipeline import create_pipeline

# The exception that ended the last run, if any; the CLI maps it to an exit code.
last_error: BaseException | None = None


def run(config: PipelineConfig) -> summary.RunSummary:
    """Runs the pipeline; returns its summary whether it succeeded or not."""
    global last_error
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
    try:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    except Exception as error:  # noqa: BLE001 - reported in the summary, not hidden.
        last_error = error
        logging.error("The run stopped: %s", error)
    result = summary.summarize(config, config.evaluation.metric)
    result.wall_time_s = round(time.monotonic() - started, 1)
    if last_error is not None and not result.anomalies:
        result.error = f"{type(last_error).__name__}: {last_error}"
    _write(config, result)
    return result


def _write(config: PipelineConfig, result: summary.RunSummary) -> None:
    folder = os.path.join(config.output_dir, "runs", config.pipeline_name)
    os.makedirs(folder, exist_ok=True)
    text = result.to_json()
    with open(os.path.join(folder, "latest_config.yaml"), "w") as stream:
        stream.write(to_yaml(config))
    safe_run_id = (result.run_id or "unknown").replace(":", "-")
    for name in (f"{safe_run_id}.json", "latest.json"):
        with open(os.path.join(folder, name), "w") as stream:
            stream.write(text)
