"""Tables end to end through the real pipeline: a user's CSV and the circles.

The user's table has a header, quoted fields holding commas, a string column,
an int column and string class names as labels; its schema is drafted with
`kpipe infer-schema` first, as a user would. The circles run the notes' two
presets: the non-linear one learns them, the linear one cannot.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components import pusher

pytestmark = pytest.mark.e2e

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRUIT_CLASSES = ("apple", "orange", "pear")
FRUIT_COLOURS = {"apple": "red", "orange": "orange", "pear": "green"}


def _kpipe(*arguments, timeout_s=900):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=PROJECT_ROOT,
    )


def _summary(output_dir, pipeline_name):
    path = os.path.join(output_dir, "runs", pipeline_name, "latest.json")
    with open(path) as stream:
        return json.load(stream)


def _fruit_rows(count, seed):
    """Rows whose class follows the colour, with weights that overlap a little."""
    generator = np.random.default_rng(seed)
    weights = {"apple": 150.0, "orange": 200.0, "pear": 170.0}
    rows = []
    for index in range(count):
        kind = FRUIT_CLASSES[index % 3]
        # One row in ten has a colour that belongs to another class.
        colour = (
            FRUIT_COLOURS[FRUIT_CLASSES[(index + 1) % 3]]
            if generator.random() < 0.1
            else FRUIT_COLOURS[kind]
        )
        rows.append(
            {
                "name": f'{kind} no. {index}, picked "fresh"',
                "colour": colour,
                "weight_g": f"{generator.normal(weights[kind], 15):.1f}",
                "diameter_mm": str(int(generator.normal(70, 8))),
                "kind": kind,
            }
        )
    return rows


def _write_table(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def fruit(tmp_path_factory):
    root = tmp_path_factory.mktemp("fruit")
    data = root / "data"
    _write_table(data / "train" / "fruit.csv", _fruit_rows(300, seed=1))
    eval_rows = _fruit_rows(90, seed=2)
    _write_table(data / "eval" / "fruit.csv", eval_rows)
    config = root / "fruit.yaml"
    config.write_text(
        "pipeline_name: fruit\n"
        "data:\n"
        "  dataset: custom\n"
        f"  data_dir: {data}\n"
        "  format: csv\n"
        "  label_key: kind\n"
        f"  class_names: [{', '.join(FRUIT_CLASSES)}]\n"
        "  features: [colour:string, weight_g:float, diameter_mm:int]\n"
        f"  schema_path: {root / 'schema' / 'schema.pbtxt'}\n"
        "training:\n"
        "  epochs: 40\n"
        "  learning_rate: 0.01\n"
        "  lr_schedule: constant\n"
        "evaluation:\n"
        "  lower_bound: 0.8\n"
    )
    return {"root": root, "config": str(config), "eval_rows": eval_rows}


def test_a_draft_schema_is_inferred_from_the_users_csv(fruit):
    completed = _kpipe("infer-schema", "--config", fruit["config"])
    assert completed.returncode == 0, completed.stderr[-2000:]
    schema = (fruit["root"] / "schema" / "schema.pbtxt").read_text()
    assert 'name: "colour"' in schema and "type: BYTES" in schema
    assert 'name: "diameter_mm"' in schema and 'not_in_environment: "SERVING"' in schema


def test_the_users_csv_trains_and_pushes_a_model_whose_raw_signature_answers(fruit):
    output_dir = str(fruit["root"] / "out")
    completed = _kpipe("run", "--config", fruit["config"], "--output-dir", output_dir)
    summary = _summary(output_dir, "fruit")
    assert completed.returncode == 0, (summary, completed.stderr[-3000:])
    assert summary["outcome"] == "pushed"
    assert summary["accuracy"] >= 0.8

    serving_dir = os.path.join(output_dir, "serving_model", "fruit")
    version = pusher.existing_versions(serving_dir)[-1]
    loaded = tf.saved_model.load(os.path.join(serving_dir, str(version)))
    rows = fruit["eval_rows"]
    by_raw = loaded.signatures["serving_raw"](
        colour=tf.constant([row["colour"] for row in rows]),
        weight_g=tf.constant([float(row["weight_g"]) for row in rows]),
        diameter_mm=tf.constant([int(row["diameter_mm"]) for row in rows], tf.int64),
    )
    names = [name.decode() for name in by_raw["class_names"].numpy()]
    right = sum(name == row["kind"] for name, row in zip(names, rows, strict=True))
    assert right / len(rows) >= 0.8
    np.testing.assert_allclose(by_raw["probabilities"].numpy().sum(axis=1), 1, 1e-5)


def test_a_bad_cell_stops_the_run_naming_file_line_and_column(fruit):
    rows = _fruit_rows(30, seed=3)
    rows[4]["weight_g"] = "?"
    data = fruit["root"] / "bad_data"
    _write_table(data / "train" / "fruit.csv", rows)
    _write_table(data / "eval" / "fruit.csv", _fruit_rows(9, seed=4))
    output_dir = str(fruit["root"] / "bad_out")
    completed = _kpipe(
        "run",
        "--config",
        fruit["config"],
        "--data-dir",
        str(data),
        "--output-dir",
        output_dir,
    )
    assert completed.returncode == 3
    error = _summary(output_dir, "fruit")["error"]
    assert "fruit.csv" in error and "line 6, column 'weight_g'" in error
    assert not os.path.exists(os.path.join(output_dir, "serving_model"))


def test_the_non_linear_seed_preset_learns_the_circles(tmp_path):
    completed = _kpipe(
        "run", "--config", "configs/circles.yaml", "--output-dir", str(tmp_path)
    )
    summary = _summary(str(tmp_path), "circles")
    assert completed.returncode == 0, (summary, completed.stderr[-3000:])
    assert summary["accuracy"] >= 0.95
    assert summary["binary_metrics"]["auc"] >= 0.95
    assert set(summary["binary_metrics"]) == {
        "binary_accuracy",
        "auc",
        "precision",
        "recall",
        "calibration",
    }
    with open(summary["report_path"]) as stream:
        page = stream.read()
    assert "<tr><th>true \\ predicted</th><th>outer</th><th>inner</th></tr>" in page
    assert "<td>auc</td>" in page and "alt='confusion matrix'" in page


def test_the_linear_seed_preset_stays_near_chance_and_is_not_pushed(tmp_path):
    completed = _kpipe(
        "run",
        "--config",
        "configs/circles.yaml",
        "--output-dir",
        str(tmp_path),
        "--set",
        "training.preset=seed_linear",
        "--epochs",
        "5",
    )
    summary = _summary(str(tmp_path), "circles")
    assert completed.returncode == 4, (summary, completed.stderr[-3000:])
    assert 0.3 <= summary["accuracy"] <= 0.7
    assert any("lower bound 0.9" in reason for reason in summary["why"])
    assert (
        pusher.existing_versions(
            os.path.join(str(tmp_path), "serving_model", "circles")
        )
        == []
    )
