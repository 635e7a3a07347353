"""The pipeline definition: what reaches the cache keys of its components."""

import importlib.util
import json

from components import idx_example_gen, versioning
from pipeline import pipeline
from pipeline.config import load_config


def test_an_edited_schema_gets_a_new_path(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "a" type: INT }\n')
    config = load_config(
        overrides=[f"data.schema_path={schema}", f"output_dir={tmp_path / 'out'}"],
        environ={},
    )
    first = pipeline.staged_schema_file(config)
    assert pipeline.staged_schema_file(config) == first
    schema.write_text('feature { name: "a" type: FLOAT }\n')
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
