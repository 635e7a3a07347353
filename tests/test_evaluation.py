"""The Evaluator's config computes its metrics on the served probabilities.

A stand-in SavedModel answers with known scores (read from each example), so
the metrics TFMA reports can be checked against numbers worked out by hand.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from sklearn.metrics import roc_auc_score

from components import signatures
from pipeline import pipeline, report
from pipeline.config import load_config

SCORES_KEY = "scores"


class _KnownScores(tf.Module):
    """Returns the probabilities stored in each example's `scores` feature."""

    def __init__(self, num_classes: int):
        super().__init__()
        self._num_classes = num_classes

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(
            examples,
            {SCORES_KEY: tf.io.FixedLenFeature([self._num_classes], tf.float32)},
        )
        probabilities = parsed[SCORES_KEY]
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            signatures.CLASS_IDS_OUTPUT: class_ids,
            signatures.PROBABILITIES_OUTPUT: probabilities,
            signatures.CLASS_NAMES_OUTPUT: tf.strings.as_string(class_ids),
        }


def _evaluate(tmp_path, config, labels, probabilities):
    model_dir = str(tmp_path / "model")
    module = _KnownScores(probabilities.shape[1])
    tf.saved_model.save(
        module, model_dir, signatures={signatures.SERVING_DEFAULT: module.serve}
    )
    data_path = str(tmp_path / "eval.tfrecord")
    label_key = config.data_spec.label_key
    with tf.io.TFRecordWriter(data_path) as writer:
        for label, row in zip(labels, probabilities, strict=True):
            example = tf.train.Example()
            example.features.feature[label_key].int64_list.value.append(int(label))
            example.features.feature[SCORES_KEY].float_list.value.extend(row)
            writer.write(example.SerializeToString())
    eval_config = pipeline.eval_config(config)
    # No baseline here: keep the absolute bounds, drop the comparison.
    for metrics_spec in eval_config.metrics_specs:
        for metric in metrics_spec.metrics:
            for per_slice in metric.per_slice_thresholds:
                per_slice.threshold.ClearField("change_threshold")
    result = tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(
            model_dir, eval_config=eval_config
        ),
        eval_config=eval_config,
        data_location=data_path,
        output_path=str(tmp_path / "evaluation"),
    )
    overall = dict(result.slicing_metrics)[()]
    flat = {}
    for sub_keys in overall.values():
        for sub_key, metrics in sub_keys.items():
            for name, value in metrics.items():
                flat[(sub_key, name)] = value.get("doubleValue")
    return flat


@pytest.fixture
def binary_config(tmp_path):
    (tmp_path / "data").mkdir()
    return load_config(
        overrides=[
            f"output_dir={tmp_path / 'out'}",
            "data.dataset=circles",
            "evaluation.metric=BinaryAccuracy",
        ],
        environ={},
    )


def test_binary_accuracy_and_auc_are_computed_on_the_class_1_probability(
    tmp_path, binary_config
):
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    positive = np.array([0.9, 0.8, 0.4, 0.7, 0.2, 0.6, 0.1, 0.3, 0.55, 0.45])
    probabilities = np.stack([1 - positive, positive], axis=1).astype(np.float32)
    metrics = _evaluate(tmp_path, binary_config, labels, probabilities)
    class_1 = "classId:1"
    predicted = positive > 0.5
    # 8 of 10 right at the 0.5 threshold: 0.4 (a 1) and 0.6 (a 0) are wrong.
    assert metrics[(class_1, "binary_accuracy")] == pytest.approx(0.8)
    assert metrics[(class_1, "auc")] == pytest.approx(
        roc_auc_score(labels, positive), abs=0.01
    )
    assert metrics[(class_1, "precision")] == pytest.approx(
        (predicted & (labels == 1)).sum() / predicted.sum()
    )
    assert metrics[(class_1, "recall")] == pytest.approx(
        (predicted & (labels == 1)).sum() / (labels == 1).sum()
    )
    assert metrics[(class_1, "calibration")] == pytest.approx(
        positive.sum() / labels.sum(), rel=1e-5
    )


def test_sparse_accuracy_on_integer_labels_is_exactly_the_share_right(tmp_path):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})
    labels = np.arange(10)
    predicted = labels.copy()
    predicted[[0, 3, 7]] = (labels[[0, 3, 7]] + 1) % 10  # 7 of 10 right.
    probabilities = np.full((10, 10), 0.02, np.float32)
    probabilities[np.arange(10), predicted] = 0.82
    metrics = _evaluate(tmp_path, config, labels, probabilities)
    assert metrics[("", "sparse_categorical_accuracy")] == pytest.approx(0.7)
    assert metrics[("", "example_count")] == 10


def test_the_confusion_matrix_counts_true_classes_against_the_top_prediction(
    tmp_path,
):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})
    labels = np.tile(np.arange(10), 3)
    predicted = labels.copy()
    predicted[[0, 10, 13, 25]] = [6, 6, 2, 9]  # 4 of 30 wrong, two 0s as 6
    probabilities = np.full((30, 10), 0.02, np.float32)
    probabilities[np.arange(30), predicted] = 0.82
    _evaluate(tmp_path, config, labels, probabilities)
    expected = np.zeros((10, 10), np.int64)
    np.add.at(expected, (labels, predicted), 1)
    matrix = report.confusion_matrix(str(tmp_path / "evaluation"), 10)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix[0, 6] == 2 and matrix.trace() == 26


def test_a_binary_models_confusion_matrix_is_two_by_two(tmp_path, binary_config):
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    positive = np.array([0.9, 0.8, 0.4, 0.7, 0.2, 0.6, 0.1, 0.3, 0.55, 0.45])
    probabilities = np.stack([1 - positive, positive], axis=1).astype(np.float32)
    _evaluate(tmp_path, binary_config, labels, probabilities)
    matrix = report.confusion_matrix(str(tmp_path / "evaluation"), 2)
    # The 0.6 of a 0 and the 0.4 of a 1 are the two mistakes.
    np.testing.assert_array_equal(matrix, [[4, 1], [1, 4]])
