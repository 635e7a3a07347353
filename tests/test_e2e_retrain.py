"""Span-based retraining on the real pipeline, with the circles table in spans.

Span 1 trains and pushes version 1; span 2 retrains on spans 1 and 2 (a window
of two, warm-started from version 1), is judged against version 1 and pushed
only if not worse; `retrain` with no new span runs nothing and says so; a span
whose label distribution moved past the schema's drift_comparator bound stops
the run before training.

The schema is this test's own (tests/fixtures/circles_drift_schema.pbtxt): the
circles schema with an infinity-norm drift comparator of 0.2 on the label.
"""

import csv
import json
import os
import pathlib

import pytest

from components import pusher, tabular_data
from pipeline import cli

pytestmark = pytest.mark.e2e

SCHEMA = pathlib.Path(__file__).parent / "fixtures" / "circles_drift_schema.pbtxt"
POINTS = 400  # 320 train, 80 eval: the pipeline's own cost dominates


def write_span(data_dir, span, seed, keep_inner_share=1.0):
    """Writes span-N/train and span-N/eval CSV files of circles points.

    keep_inner_share < 1 drops that share of the inner circle's rows, which
    moves the label distribution while every row stays valid.
    """
    folder = os.path.join(data_dir, f"span-{span}")
    paths = tabular_data.write_circles(folder, n_points=POINTS, seed=seed)
    if keep_inner_share < 1.0:
        for path in paths.values():
            with open(path, newline="") as stream:
                rows = list(csv.reader(stream))
            header, body = rows[0], rows[1:]
            label = header.index("label")
            inner = [row for row in body if row[label] == "1"]
            kept_inner = inner[: int(len(inner) * keep_inner_share)]
            kept = [row for row in body if row[label] != "1"] + kept_inner
            with open(path, "w", newline="") as stream:
                csv.writer(stream).writerows([header, *kept])


def kpipe(command, config_path, capsys):
    code = cli.main([command, "--config", str(config_path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def latest_summary(output_dir):
    with open(os.path.join(output_dir, "runs", "circles_spans", "latest.json")) as f:
        return json.load(f)


@pytest.fixture
def job(tmp_path):
    data_dir = tmp_path / "data"
    output_dir = tmp_path / "out"
    config_path = tmp_path / "circles_spans.yaml"
    config_path.write_text(
        f"""
pipeline_name: circles_spans
output_dir: {output_dir}
data:
  dataset: custom
  data_dir: {data_dir}
  format: csv
  label_key: label
  class_names: [outer, inner]
  features: ["x:float", "y:float"]
  schema_path: {SCHEMA}
training:
  preset: seed_nonlinear
  epochs: 30
  batch_size: 32
  learning_rate: 0.03
  lr_schedule: constant
evaluation:
  metric: BinaryAccuracy
  lower_bound: 0.9
retraining:
  warm_start: true
  span_window: 2
"""
    )
    data_dir.mkdir()
    return config_path, str(data_dir), str(output_dir)


def test_spans_retrain_compare_skip_and_stop_on_drift(job, capsys):
    config_path, data_dir, output_dir = job
    serving_dir = os.path.join(output_dir, "serving_model", "circles_spans")

    write_span(data_dir, 1, seed=1)
    code, output = kpipe("retrain", config_path, capsys)
    assert code == cli.EXIT_PUSHED, output
    assert "Span 1 is new" in output
    first = latest_summary(output_dir)
    assert first["span"] == 1 and first["had_baseline"] is False
    assert pusher.existing_versions(serving_dir) == [1]

    write_span(data_dir, 2, seed=2)
    code, output = kpipe("retrain", config_path, capsys)
    second = latest_summary(output_dir)
    assert second["span"] == 2
    assert second["had_baseline"] is True, output
    assert "Warm start from the weights of" in output
    assert "Span window: training on spans 1,2" in output
    # Pushed exactly when judged not worse than version 1.
    if second["blessed"]:
        assert code == cli.EXIT_PUSHED, output
        assert pusher.existing_versions(serving_dir) == [1, 2]
    else:
        assert code == cli.EXIT_NOT_BLESSED, output
        assert pusher.existing_versions(serving_dir) == [1]
    versions_after_span_2 = pusher.existing_versions(serving_dir)

    code, output = kpipe("retrain", config_path, capsys)
    assert code == 0
    assert "Nothing new to train on: span 2 is the newest" in output
    assert latest_summary(output_dir)["run_id"] == second["run_id"]

    # Span 3 keeps a fifth of the inner circle: label 1 falls from about half
    # of the rows to about a sixth, an L-infinity distance near 0.33 > 0.2.
    write_span(data_dir, 3, seed=3, keep_inner_share=0.2)
    code, output = kpipe("retrain", config_path, capsys)
    assert code == cli.EXIT_DATA, output
    third = latest_summary(output_dir)
    # Read and found to have moved: an anomaly of the data, not unreadable data.
    assert third["outcome"] == "data_anomalies"
    assert third["span"] == 3
    assert len(third["anomalies"]) == 1
    drift = third["anomalies"][0]
    assert drift.startswith("drift from span 2: feature 'label'"), drift
    assert "distance" in drift.lower() and "threshold 0.2" in drift
    assert "Data anomalies (1) in span 3" in output
    trainer = [step for step in third["steps"] if step["node_id"] == "Trainer"]
    assert not trainer or trainer[0]["state"] != "ran"
    assert pusher.existing_versions(serving_dir) == versions_after_span_2
