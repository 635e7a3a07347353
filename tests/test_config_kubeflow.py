"""The kubeflow and retraining config sections: checked at load, field named."""

import pytest

from pipeline.config import ConfigError, load_config


def load(*overrides):
    return load_config(overrides=list(overrides), environ={}, check_schema=False)


@pytest.mark.parametrize(
    "override, message",
    [
        ("kubeflow.backend=argo", "kubeflow.backend: 'argo' is not one of"),
        ("kubeflow.pipeline_root=bucket/root", "kubeflow.pipeline_root: 'bucket/root'"),
        ("kubeflow.cpu=two", "kubeflow.cpu: 'two' is not a CPU amount"),
        ("kubeflow.memory=8GB", "kubeflow.memory: '8GB' is not a memory amount"),
        ("kubeflow.host=localhost:8080", "kubeflow.host: 'localhost:8080' must start"),
        ("kubeflow.metadata_grpc_port=0", "kubeflow.metadata_grpc_port"),
        ("kubeflow.image= ", "kubeflow.image: must not be empty"),
        ("retraining.span_window=0", "retraining.span_window: must be at least 1"),
        (
            "training.distribution_strategy=tpu",
            "training.distribution_strategy: 'tpu' is not one of",
        ),
    ],
)
def test_a_wrong_value_names_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load(override)


def test_vertex_needs_a_gcs_root():
    with pytest.raises(ConfigError, match="Vertex AI Pipelines needs a gs:// root"):
        load("kubeflow.backend=vertex", "kubeflow.pipeline_root=s3://bucket/root")


def test_cluster_settings_load_typed():
    config = load(
        "kubeflow.pipeline_root=/mnt/pipelines",
        "kubeflow.cpu=500m",
        "kubeflow.memory=512Mi",
        "kubeflow.beam_pipeline_args=[--runner=FlinkRunner, --parallelism=4]",
        "retraining.span_window=3",
        "retraining.warm_start=yes",
    )
    assert config.kubeflow.beam_pipeline_args == (
        "--runner=FlinkRunner",
        "--parallelism=4",
    )
    assert config.retraining.span_window == 3
    assert config.retraining.warm_start is True
    assert config.kubeflow.memory == "512Mi"
