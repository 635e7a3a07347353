"""The TF Serving deployment files agree with each other and with the pipeline.

No container engine runs here, so these check what can drift: the model name
and path, the ports, and the image tag against the pinned TensorFlow Serving.
"""

import pathlib
import re

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline.config import PROJECT_ROOT, PipelineConfig

SERVING_DIR = PROJECT_ROOT / "kubeflow" / "serving"
MODEL_MOUNT = "/models"
GRPC_PORT, REST_PORT = 8500, 8501


def _yaml(name: str) -> dict:
    return yaml.safe_load((SERVING_DIR / name).read_text())


def _pinned_serving_api_version() -> str:
    lock = (PROJECT_ROOT / "requirements.lock").read_text()
    return re.search(r"^tensorflow-serving-api==(\S+)", lock, re.M).group(1)


@pytest.fixture(scope="module")
def model_config():
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((SERVING_DIR / "models.config").read_text(), config)
    return config.model_config_list.config


def test_the_model_config_serves_the_pipelines_push_folder(model_config):
    (model,) = model_config
    defaults = PipelineConfig()
    # The Pusher writes <output_dir>/serving_model/<pipeline_name>/<version>.
    assert model.name == defaults.pipeline_name
    assert model.base_path == f"{MODEL_MOUNT}/{defaults.pipeline_name}"
    assert pathlib.PurePath(defaults.serving_model_dir).name == model.name
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"


def test_every_image_is_the_pinned_serving_version():
    tag = _pinned_serving_api_version()
    compose = _yaml("docker-compose.yaml")
    deployment = _yaml("deployment.yaml")
    images = [compose["services"]["tf-serving"]["image"]] + [
        container["image"]
        for container in deployment["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [f"tensorflow/serving:{tag}"] * 2
    assert PipelineConfig().serving.image_tag == tag


def _flags(arguments: list[str]) -> dict[str, str]:
    return dict(argument.lstrip("-").split("=", 1) for argument in arguments)


def test_compose_mounts_the_models_and_config_and_publishes_both_ports():
    service = _yaml("docker-compose.yaml")["services"]["tf-serving"]
    flags = _flags(service["command"])
    assert (int(flags["port"]), int(flags["rest_api_port"])) == (GRPC_PORT, REST_PORT)
    assert service["ports"] == [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"]
    # "source:target:ro", where the source may hold ${VARIABLE:-default}.
    mounts = {
        target: source
        for source, target, _ in (
            volume.rsplit(":", 2) for volume in service["volumes"]
        )
    }
    assert MODEL_MOUNT in mounts
    config_mount = flags["model_config_file"]
    assert (SERVING_DIR / mounts[config_mount]).resolve() == (
        SERVING_DIR / "models.config"
    )


def test_kubernetes_manifests_fit_together():
    kustomization = _yaml("kustomization.yaml")
    for name in kustomization["resources"]:
        assert (SERVING_DIR / name).is_file(), name
    deployment = _yaml("deployment.yaml")
    service = _yaml("service.yaml")
    claim = _yaml("pvc.yaml")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert service["spec"]["selector"] == pod["metadata"]["labels"]

    (container,) = pod["spec"]["containers"]
    flags = _flags(container["args"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": int(flags["port"]), "rest": int(flags["rest_api_port"])}
    assert {port["targetPort"]: port["port"] for port in service["spec"]["ports"]} == {
        "grpc": GRPC_PORT,
        "rest": REST_PORT,
    }

    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert mounts["models"] == MODEL_MOUNT
    assert (
        volumes["models"]["persistentVolumeClaim"]["claimName"]
        == claim["metadata"]["name"]
    )
    (generated,) = kustomization["configMapGenerator"]
    assert volumes["config"]["configMap"]["name"] == generated["name"]
    assert generated["files"] == ["models.config"]
    assert flags["model_config_file"] == f"{mounts['config']}/models.config"
    readiness = container["readinessProbe"]["httpGet"]["path"]
    assert readiness == f"/v1/models/{PipelineConfig().pipeline_name}"
