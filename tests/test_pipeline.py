"""The pipeline definition: what reaches the cache keys of its components."""

import importlib.util
import json

import pytest

from components import idx_example_gen, versioning
from pipeline import cli, pipeline
from pipeline.config import ConfigError, load_config


def test_an_edited_schema_gets_a_new_path(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(
        'feature { name: "image" type: INT } feature { name: "label" type: INT }\n'
    )
    config = load_config(
        overrides=[f"data.schema_path={schema}", f"output_dir={tmp_path / 'out'}"],
        environ={},
    )
    first = pipeline.staged_schema_file(config)
    assert pipeline.staged_schema_file(config) == first
    schema.write_text(
        'feature { name: "image" type: FLOAT } feature { name: "label" type: INT }\n'
    )
    second = pipeline.staged_schema_file(config)
    assert second != first
    with open(second) as stream:
        assert "FLOAT" in stream.read()


def test_code_digests_follow_the_source(tmp_path):
    module_file = tmp_path / "probe_module.py"
    module_file.write_text("VALUE = 1\n")

    spec = importlib.util.spec_from_file_location("probe_module", module_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = versioning.source_digest(module)
    module_file.write_text("VALUE = 2\n")
    assert versioning.source_digest(module) != before


def test_trainer_and_example_gen_carry_code_digests(tmp_path):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})
    nodes = {node.id: node for node in pipeline.create_pipeline(config).components}
    trainer_config = json.loads(
        nodes[pipeline.TRAINER].exec_properties["custom_config"]
    )
    assert len(trainer_config["code_version"]) == 16
    example_gen = nodes[pipeline.EXAMPLE_GEN].exec_properties
    assert len(example_gen[idx_example_gen.CODE_VERSION_KEY]) == 16


def test_the_pushers_cache_key_follows_the_served_versions(tmp_path):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})

    def served_versions():
        nodes = {node.id: node for node in pipeline.create_pipeline(config).components}
        custom_config = json.loads(
            nodes[pipeline.PUSHER].exec_properties["custom_config"]
        )
        return custom_config[pipeline.SERVED_VERSIONS_KEY]

    assert served_versions() == []
    (tmp_path / "serving_model" / "fashion_mnist" / "3").mkdir(parents=True)
    assert served_versions() == [3]


def test_infra_validation_is_off_by_default(tmp_path):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})
    nodes = {node.id: node for node in pipeline.create_pipeline(config).components}
    assert pipeline.INFRA_VALIDATOR not in nodes
    assert "infra_blessing" not in nodes[pipeline.PUSHER].inputs


def test_infra_validation_gates_the_push_on_the_configured_image(tmp_path):
    config = load_config(
        overrides=[
            f"output_dir={tmp_path}",
            "serving.infra_validation=true",
            "serving.image_tag=2.16.1-test",
        ],
        environ={},
    )
    nodes = {node.id: node for node in pipeline.create_pipeline(config).components}
    validator = nodes[pipeline.INFRA_VALIDATOR]
    spec = json.loads(validator.exec_properties["serving_spec"])
    assert spec["tensorflow_serving"] == {
        "image_name": "tensorflow/serving",
        "tags": ["2.16.1-test"],
    }
    assert "local_docker" in spec
    assert spec["model_name"] == "fashion_mnist"
    blessing = nodes[pipeline.PUSHER].inputs["infra_blessing"]
    assert blessing.producer_component_id == pipeline.INFRA_VALIDATOR


def test_infra_validation_without_a_docker_engine_refuses_the_run(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    exit_code = cli.main(
        [
            "run",
            f"--output-dir={tmp_path / 'out'}",
            "--set",
            "serving.infra_validation=true",
        ]
    )
    assert exit_code == cli.EXIT_CONFIG
    assert "no Docker engine is reachable" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metadata").exists()


def test_infra_validation_on_kubernetes_needs_to_run_in_the_cluster(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = load_config(
        overrides=[
            f"output_dir={tmp_path}",
            "serving.infra_validation=true",
            "serving.platform=kubernetes",
        ],
        environ={},
    )
    with pytest.raises(ConfigError, match="inside the cluster"):
        pipeline.check_infra_validation_platform(config)
    nodes = {node.id: node for node in pipeline.create_pipeline(config).components}
    spec = json.loads(nodes[pipeline.INFRA_VALIDATOR].exec_properties["serving_spec"])
    assert "kubernetes" in spec
