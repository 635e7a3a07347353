"""An ExampleGen that reads gzip IDX files (Fashion-MNIST, MNIST) with Beam.

Each input split's pattern matches one images file and one labels file, for
example `span-{SPAN}/train-*-ubyte.gz`. Both files are checked before the Beam
pipeline starts, so a truncated or foreign file fails with its name instead of
deep inside a worker. Records become tf.Examples with `image` (784 int64
pixel values) and `label` (int64).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import driver
from tfx.components.example_gen.base_example_gen_executor import (
    BaseExampleGenExecutor,
)
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs as specs

from components import example_gen_spec, features, idx, versioning

MAX_EXAMPLES_KEY = example_gen_spec.MAX_EXAMPLES_KEY
CODE_VERSION_KEY = example_gen_spec.CODE_VERSION_KEY


def to_example(pixels, label: int) -> tf.train.Example:
    """Builds the tf.Example for one image and its label."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=pixels.tolist())
                ),
                features.LABEL_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(label)])
                ),
            }
        )
    )


def _read_examples(file_pair: tuple[str, str], limit: int | None):
    images_path, labels_path = file_pair
    for pixels, label in idx.iter_records(images_path, labels_path, limit):
        yield to_example(pixels, label)


def check_split(pattern: str) -> tuple[str, str]:
    """Finds and checks a split's images and labels files before Beam reads them.

    Returns:
      The images file and the labels file.

    Raises:
      IdxFormatError: no pair, a damaged file, counts that differ, images
        that are not 28x28, or no records; the message names the file.
    """
    images_path, labels_path = idx.find_pair(pattern)
    count = idx.check_pair(images_path, labels_path)
    image_dims = idx.read_header(images_path).dims[1:]
    if image_dims != (features.IMAGE_HEIGHT, features.IMAGE_WIDTH):
        raise idx.IdxFormatError(
            f"{images_path}: images are {'x'.join(map(str, image_dims))} pixels, "
            f"expected {features.IMAGE_HEIGHT}x{features.IMAGE_WIDTH}"
        )
    if count == 0:
        raise idx.IdxFormatError(f"{images_path} holds no records")
    return images_path, labels_path


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _IdxToExample(  # noqa: N802 - Beam transform names are CamelCase.
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads one split's images/labels pair into tf.Examples."""
    pattern = os.path.join(exec_properties[specs.INPUT_BASE_KEY], split_pattern)
    images_path, labels_path = check_split(pattern)
    limit = exec_properties.get(MAX_EXAMPLES_KEY) or None
    return (
        pipeline
        | "FilePair" >> beam.Create([(images_path, labels_path)])
        | "ReadRecords" >> beam.FlatMap(_read_examples, limit)
        # Spread the records over workers; the read itself is one sequential pass.
        | "Redistribute" >> beam.Reshuffle()
    )


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for IDX image/label file pairs."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        return _IdxToExample


class IdxExampleGenSpec(specs.FileBasedExampleGenSpec):
    """The file-based ExampleGen spec plus a cap per split and a code digest."""

    PARAMETERS = example_gen_spec.parameters(example_gen_spec.MAX_EXAMPLES_PARAMETER)


class IdxExampleGen(base_beam_component.BaseBeamComponent):
    """Reads IDX files, one folder per span, into train and eval splits."""

    SPEC_CLASS = IdxExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        max_examples_per_split: int = 0,
        range_config=None,
    ):
        """Creates the component.

        Args:
          input_base: folder that holds the span folders (or the files).
          input_config: one split per IDX pair; patterns may contain {SPAN}.
          max_examples_per_split: keep only the first N records of each split
            (0 keeps all); for quick runs.
          range_config: optional span range, as for any file-based ExampleGen.
        """
        spec = example_gen_spec.build(
            IdxExampleGenSpec,
            input_base,
            input_config,
            range_config,
            code_version=versioning.source_digest(sys.modules[__name__], idx, features),
            max_examples_per_split=max_examples_per_split or None,
        )
        super().__init__(spec=spec)
