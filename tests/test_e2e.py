"""The real pipeline end to end: LocalDagRunner, Beam, TFDV, TFMA, ML Metadata.

One small data set (2,000 train / 500 eval real Fashion-MNIST images in span
folders) goes through six runs that build on each other, so the tests run in
file order: a first push, a cached re-run, a model below the absolute bound, a
model worse than the served baseline, a span with a bad label, and a span with
a truncated file. Each run's HTML report is checked too; two of them are
loaded in headless Chromium.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components import features, idx, pusher
from tests.conftest import FASHION_MNIST_DIR, write_idx_pair
from tests.test_report import assert_loads_cleanly_in_chromium

pytestmark = pytest.mark.e2e

TRAIN_COUNT = 2000
EVAL_COUNT = 500
COMMON_FLAGS = [
    "--preset",
    "dense",
    "--epochs",
    "2",
    "--set",
    "evaluation.lower_bound=0.6",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    train = idx.read_arrays(
        os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"),
        os.path.join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz"),
    )
    test = idx.read_arrays(
        os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"),
        os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"),
    )
    data = root / "data"
    write_idx_pair(
        data / "span-1", "train", train[0][:TRAIN_COUNT], train[1][:TRAIN_COUNT]
    )
    write_idx_pair(data / "span-1", "t10k", test[0][:EVAL_COUNT], test[1][:EVAL_COUNT])
    return {"root": root, "data": data, "train": train, "test": test, "outputs": {}}


def _run(workspace, *extra):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            "--data-dir",
            str(workspace["data"]),
            "--output-dir",
            str(workspace["root"] / "out"),
            *COMMON_FLAGS,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    summary_path = workspace["root"] / "out" / "runs" / "fashion_mnist" / "latest.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return completed, summary


def _serving_dir(workspace):
    return workspace["root"] / "out" / "serving_model" / "fashion_mnist"


def _versions(workspace):
    return sorted(
        name for name in os.listdir(_serving_dir(workspace)) if name.isdigit()
    )


def _states(summary):
    return {step["node_id"]: step["state"] for step in summary["steps"]}


def _report(summary, completed):
    """The run's report page; its path is printed in the closing summary."""
    path = summary["report_path"]
    assert f"Report: {path}" in completed.stdout
    with open(path) as stream:
        return stream.read()


def _confusion_counts(page):
    """The confusion matrix's table of counts, row by row."""
    table = page.split("<summary>The counts as a table</summary>", 1)[1]
    table = table.split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    return [[int(cell) for cell in re.findall(r"<td>(\d+)</td>", row)] for row in rows]


def _describe(completed):
    output = completed.stdout[-3000:] + "\n" + completed.stderr[-3000:]
    return f"exit {completed.returncode}\n{output}"


def test_1_first_run_pushes_version_1_that_answers(workspace):
    completed, summary = _run(workspace)
    assert completed.returncode == 0, _describe(completed)
    assert summary["outcome"] == "pushed"
    assert set(_states(summary).values()) == {"ran"}
    assert summary["had_baseline"] is False
    assert "absolute bound alone" in completed.stdout
    assert summary["accuracy"] >= 0.6
    assert summary["example_count"] == EVAL_COUNT
    assert len(summary["per_class_accuracy"]) == 10
    assert "Wall time:" in completed.stdout
    assert _versions(workspace) == ["1"]

    loaded = tf.saved_model.load(str(_serving_dir(workspace) / "1"))
    images, labels = workspace["test"][0][:50], workspace["test"][1][:50]
    by_images = loaded.signatures["serving_images"](
        images=tf.constant(images, tf.float32)
    )
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=image.ravel().tolist())
                    )
                }
            )
        ).SerializeToString()
        for image in images
    ]
    by_examples = loaded.signatures["serving_default"](examples=tf.constant(examples))
    np.testing.assert_allclose(
        by_images["probabilities"].numpy(),
        by_examples["probabilities"].numpy(),
        rtol=1e-5,
    )
    assert np.mean(by_images["class_ids"].numpy() == labels) >= 0.5
    workspace["outputs"]["digest"] = pusher.tree_digest(
        str(_serving_dir(workspace) / "1")
    )

    page = _report(summary, completed)
    workspace["outputs"]["first_run_id"] = summary["run_id"]
    counts = np.array(_confusion_counts(page))
    assert counts.shape == (10, 10) and counts.sum() == EVAL_COUNT
    assert counts.trace() == round(summary["accuracy"] * EVAL_COUNT)
    for name in features.CLASS_NAMES:
        assert f"<td>{name}</td>" in page
    assert "alt='training curves'" in page
    assert "<h4>train: 2000 examples</h4>" in page
    assert "<td>served version</td><td>1</td>" in page
    assert "<td>data span</td><td>1</td>" in page
    assert f"<td>pushed by run</td><td>{summary['run_id']}</td>" in page
    assert_loads_cleanly_in_chromium(
        summary["report_path"], workspace["root"] / "first_run_report.png"
    )


def test_2_unchanged_rerun_is_cached_and_pushes_nothing_new(workspace):
    completed, summary = _run(workspace)
    assert completed.returncode == 0, _describe(completed)
    states = _states(summary)
    for node in (
        "ExampleGen",
        "StatisticsGen",
        "ExampleValidator",
        "AnomalyGate",
        "Trainer",
    ):
        assert states[node] == "cached", states
    assert summary["outcome"] == "already_served"
    assert summary["already_served_version"] == 1
    # The baseline is the candidate itself here; it still counts as a baseline.
    assert summary["had_baseline"] is True
    assert "Trainer: cached in" in completed.stdout + completed.stderr
    assert _versions(workspace) == ["1"]


def test_3_model_under_the_bound_is_not_pushed_and_says_why(workspace):
    completed, summary = _run(workspace, "--set", "evaluation.lower_bound=0.99")
    assert completed.returncode == 4, _describe(completed)
    assert summary["outcome"] == "not_blessed"
    assert _states(summary)["Trainer"] == "cached"
    assert any("fails the lower bound 0.9900" in reason for reason in summary["why"])
    assert "Blessed: no" in completed.stdout
    assert _versions(workspace) == ["1"]
    page = _report(summary, completed)
    assert "Blessed: <span class='bad'>no</span>" in page
    # The bound is in the table of judged metrics, beside the value.
    assert re.search(
        r"<td>sparse_categorical_accuracy</td><td>0\.\d{4}</td><td>0\.\d{4}</td>"
        r"<td>-?0\.\d{4}</td><td>0\.9900</td>",
        page,
    ), page.split("<h2>Blessing</h2>")[1][:2000]
    assert "fails the lower bound 0.9900" in page


def test_4_model_worse_than_the_baseline_is_not_pushed(workspace):
    completed, summary = _run(
        workspace, "--preset", "seed_dense", "--set", "evaluation.lower_bound=0.05"
    )
    assert completed.returncode == 4, _describe(completed)
    assert summary["had_baseline"] is True
    assert _states(summary)["Trainer"] == "ran"
    assert any("(vs baseline)" in reason for reason in summary["why"]), summary["why"]
    assert "against the absolute bound and the baseline" in completed.stdout
    assert _versions(workspace) == ["1"]


def test_5_span_with_a_bad_label_stops_before_training(workspace):
    train_images, train_labels = workspace["train"]
    labels = train_labels[:TRAIN_COUNT].copy()
    labels[17] = 10
    span = workspace["data"] / "span-2"
    write_idx_pair(span, "train", train_images[:TRAIN_COUNT], labels)
    test_images, test_labels = workspace["test"]
    write_idx_pair(span, "t10k", test_images[:EVAL_COUNT], test_labels[:EVAL_COUNT])

    completed, summary = _run(workspace)
    assert completed.returncode == 3, _describe(completed)
    assert summary["outcome"] == "data_anomalies"
    [anomaly] = summary["anomalies"]
    named = re.fullmatch(
        r"split 'train', feature 'label': Out-of-range values: Unexpectedly "
        r"large value: 10\. \(in (data_tfrecord-\S+\.gz) record (\d+)\)",
        anomaly,
    )
    assert named, anomaly
    # The record the gate names is the one with label 10 in ExampleGen's output.
    examples_dir = workspace["root"] / "out" / "pipelines" / "fashion_mnist"
    newest = max(
        (examples_dir / "ExampleGen" / "examples").iterdir(),
        key=lambda folder: int(folder.name),
    )
    records = list(
        tf.data.TFRecordDataset(
            str(newest / "Split-train" / named.group(1)), "GZIP"
        ).as_numpy_iterator()
    )
    named_record = tf.train.Example.FromString(records[int(named.group(2)) - 1])
    assert named_record.features.feature["label"].int64_list.value == [10]
    assert "feature 'label'" in completed.stdout
    assert summary["span"] == 2
    assert "Data anomalies (1) in span 2" in completed.stdout
    states = _states(summary)
    assert states["AnomalyGate"] == "FAILED"
    assert "Trainer" not in states and "VersionedPusher" not in states
    assert _versions(workspace) == ["1"]
    assert (
        pusher.tree_digest(str(_serving_dir(workspace) / "1"))
        == workspace["outputs"]["digest"]
    )
    page = _report(summary, completed)
    assert "The anomaly gate stopped the run" in page
    assert "<th>'label'</th>" in page and "Unexpectedly large value: 10." in page
    assert "Nothing was trained in this run." in page
    assert "No model was evaluated in this run." in page
    # Still served: version 1, trained on span 1 by the first run.
    assert "<td>served version</td><td>1</td>" in page
    assert "<td>data span</td><td>1</td>" in page
    assert_loads_cleanly_in_chromium(
        summary["report_path"], workspace["root"] / "anomalies_report.png"
    )


def test_6_truncated_file_in_a_new_span_is_named(workspace):
    train_images, train_labels = workspace["train"]
    span = workspace["data"] / "span-3"
    images_path, _ = write_idx_pair(
        span,
        "train",
        train_images[:TRAIN_COUNT],
        train_labels[:TRAIN_COUNT],
        compress=False,
    )
    test_images, test_labels = workspace["test"]
    write_idx_pair(span, "t10k", test_images[:EVAL_COUNT], test_labels[:EVAL_COUNT])
    with open(images_path, "r+b") as stream:
        stream.truncate(os.path.getsize(images_path) - 784 * 3)

    completed, summary = _run(workspace)
    assert completed.returncode == 3, _describe(completed)
    assert images_path in completed.stdout + completed.stderr
    assert "truncated" in completed.stdout + completed.stderr
    assert summary["outcome"] == "bad_input"
    assert "Data: could not be read" in completed.stdout
    assert "Trainer" not in _states(summary)
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "summary",
            "--data-dir",
            str(workspace["data"]),
            "--output-dir",
            str(workspace["root"] / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 3, shown.stdout + shown.stderr
    assert "Outcome: bad_input" in shown.stdout and images_path in shown.stdout
    assert _versions(workspace) == ["1"]

    first_run_id = workspace["outputs"]["first_run_id"]
    rebuilt = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "report",
            "--run",
            first_run_id,
            "--output-dir",
            str(workspace["root"] / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    path = rebuilt.stdout.strip().removeprefix("Report: ")
    assert os.path.basename(path) == first_run_id.replace(":", "-") + ".html"
    with open(path) as stream:
        page = stream.read()
    assert f"<h1>Run {first_run_id} of pipeline" in page
    assert f"This run pushed version 1 to <code>{_serving_dir(workspace) / '1'}" in page


def test_7_trainer_uses_the_learning_rate_finders_rate(workspace, tmp_path):
    train_images, train_labels = workspace["train"]
    test_images, test_labels = workspace["test"]
    data = tmp_path / "data"
    write_idx_pair(
        data, "train", train_images[:TRAIN_COUNT], train_labels[:TRAIN_COUNT]
    )
    write_idx_pair(data, "t10k", test_images[:EVAL_COUNT], test_labels[:EVAL_COUNT])
    output = tmp_path / "out"
    completed, _ = _run(
        {**workspace, "data": data, "root": tmp_path},
        "--set",
        "lr_finder.enabled=true",
        "--set",
        "lr_finder.steps=60",
        "--set",
        "evaluation.lower_bound=0.1",
    )
    assert completed.returncode == 0, _describe(completed)
    summary = json.loads(
        (output / "runs" / "fashion_mnist" / "latest.json").read_text()
    )
    assert _states(summary)["LearningRateFinder"] == "ran"
    pipeline_root = output / "pipelines" / "fashion_mnist"
    (chosen_file,) = pipeline_root.glob("LearningRateFinder/hyperparameters/*/*.txt")
    chosen = json.loads(chosen_file.read_text())["values"]["learning_rate"]
    (history_file,) = pipeline_root.glob("Trainer/model_run/*/history.json")
    history = json.loads(history_file.read_text())
    assert history["learning_rate_source"] == "learning-rate finder"
    assert history["history"]["lr"][0] == pytest.approx(chosen, rel=1e-6)
    assert summary["learning_rate"] == pytest.approx(chosen, rel=1e-6)
    (plot,) = pipeline_root.glob("LearningRateFinder/sweep/*/sweep.png")
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert f"{chosen:.3g} from the learning-rate finder" in completed.stdout
    page = _report(summary, completed)
    assert "<h3>Learning-rate sweep</h3><img alt='learning-rate sweep'" in page
    assert "from the learning-rate finder" in page

    # A served version deleted by hand: the Pusher is not served from the
    # cache but publishes again, under a new number.
    shutil.rmtree(output / "serving_model" / "fashion_mnist" / "1")
    completed, _ = _run(
        {**workspace, "data": data, "root": tmp_path},
        "--set",
        "lr_finder.enabled=true",
        "--set",
        "lr_finder.steps=60",
        "--set",
        "evaluation.lower_bound=0.1",
    )
    assert completed.returncode == 0, _describe(completed)
    summary = json.loads(
        (output / "runs" / "fashion_mnist" / "latest.json").read_text()
    )
    assert _states(summary)["Trainer"] == "cached"
    assert summary["outcome"] == "pushed" and summary["pushed_version"] == "2"
