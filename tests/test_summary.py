"""How a run's facts add up to its outcome and the lines a person reads."""

from pipeline import pipeline, summary


def _summary(**facts) -> summary.RunSummary:
    result = summary.RunSummary(
        pipeline_name="fashion_mnist",
        steps=[summary.Step(pipeline.PUSHER, "ran", 1.0)],
        **facts,
    )
    result.outcome = summary.decide_outcome(result)
    return result


def test_a_model_tf_serving_could_not_load_is_not_blessed_and_says_so():
    result = _summary(
        blessed=True,
        infra_blessed=False,
        why=["InfraValidator: the model did not load"],
    )
    assert result.outcome == summary.NOT_BLESSED
    text = summary.render(result)
    assert "Loaded in TF Serving (InfraValidator): no" in text
    assert "  - InfraValidator: the model did not load" in text
    assert "Pushed: nothing" in text


def test_a_model_under_the_bound_is_not_blessed_with_the_numbers():
    result = _summary(
        blessed=False,
        accuracy=0.5,
        example_count=100,
        why=["sparse_categorical_accuracy = 0.5000 fails the lower bound 0.8500"],
    )
    assert result.outcome == summary.NOT_BLESSED
    assert "0.5000 fails the lower bound 0.8500" in summary.render(result)


def test_a_pusher_that_never_ran_is_a_failure_not_a_verdict():
    result = summary.RunSummary(pipeline_name="fashion_mnist", blessed=False)
    assert summary.decide_outcome(result) == summary.FAILED


def test_anomalies_come_before_everything_else():
    result = _summary(anomalies=["image: out of range"], pushed_version="3")
    assert result.outcome == summary.DATA_ANOMALIES


def test_a_push_is_reported_with_its_version():
    result = _summary(blessed=True, infra_blessed=True, pushed_version="7")
    assert result.outcome == summary.PUSHED
    text = summary.render(result)
    assert "Pushed: version 7" in text
    assert "Loaded in TF Serving (InfraValidator): yes" in text


def test_an_undefined_binary_metric_is_shown_as_nan_not_a_crash():
    result = _summary(
        blessed=True,
        accuracy=0.7,
        example_count=10,
        binary_metrics={"auc": 0.5, "precision": float("nan")},
        pushed_version="1",
    )
    text = summary.render(result)
    assert "precision nan" in text
    assert summary.RunSummary.from_json(result.to_json()).binary_metrics["auc"] == 0.5
