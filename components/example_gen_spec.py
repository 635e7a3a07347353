"""What the project's file-based ExampleGens (IDX, CSV, TFRecord) share: the
parameters their component specs add to TFX's, and the spec built from a data
folder and its split patterns, written as gzip TFRecords of tf.Examples."""

from __future__ import annotations

from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import channel, component_spec, standard_artifacts
from tfx.types import standard_component_specs as specs

DATA_SPEC_KEY = "data_spec"
MAX_EXAMPLES_KEY = "max_examples_per_split"
# A digest of the code an ExampleGen runs: an edit to it misses the cache.
CODE_VERSION_KEY = "code_version"

DATA_SPEC_PARAMETER = {DATA_SPEC_KEY: component_spec.ExecutionParameter(type=str)}
MAX_EXAMPLES_PARAMETER = {
    MAX_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int, optional=True)
}


def parameters(*extra: dict) -> dict:
    """TFX's file-based ExampleGen parameters, the extra ones, a code digest."""
    merged = dict(specs.FileBasedExampleGenSpec.PARAMETERS)
    for more in extra:
        merged.update(more)
    merged[CODE_VERSION_KEY] = component_spec.ExecutionParameter(
        type=str, optional=True
    )
    return merged


def build(
    spec_class,
    input_base: str,
    input_config: example_gen_pb2.Input,
    range_config,
    code_version: str,
    **extra,
):
    """A component spec reading `input_base` by `input_config`'s patterns."""
    return spec_class(
        input_base=input_base,
        input_config=input_config,
        output_config=example_gen_utils.make_default_output_config(input_config),
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        range_config=range_config,
        code_version=code_version,
        examples=channel.Channel(type=standard_artifacts.Examples),
        **extra,
    )
