"""The cluster steps' own logic: span resolution inside the ExampleGen
executor, and an empty baseline read as none."""

from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from kubeflow import cluster_steps
from pipeline import pipeline


def test_the_newest_span_is_resolved_in_the_executor(tmp_path):
    for span in (1, 2, 10):
        for split in ("train", "eval"):
            folder = tmp_path / f"span-{span}" / split
            folder.mkdir(parents=True)
            (folder / "data.csv").write_text("x,y,label\n0,0,0\n")
    splits = pipeline.input_config(str(tmp_path), "csv")
    resolved = cluster_steps.resolve_newest_span(
        {
            specs.INPUT_BASE_KEY: str(tmp_path),
            specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(splits),
        }
    )
    assert resolved[example_gen_utils.SPAN_PROPERTY_NAME] == 10
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(resolved[specs.INPUT_CONFIG_KEY], config)
    assert [split.pattern for split in config.splits] == [
        "span-10/train/*.csv",
        "span-10/eval/*.csv",
    ]
    assert resolved[example_gen_utils.FINGERPRINT_PROPERTY_NAME]


def test_an_empty_model_folder_is_no_baseline(tmp_path):
    assert not cluster_steps.has_saved_model(str(tmp_path))
    serving = tmp_path / "Format-Serving"
    serving.mkdir()
    (serving / "saved_model.pb").write_bytes(b"")
    assert cluster_steps.has_saved_model(str(tmp_path))
