"""ImportExampleGen with the TFRecord pre-check (components/tfrecord_check.py).

TFX's ImportExampleGen copies tf.Example records as they are; this one first
checks each split's files against the data set's spec, so an unreadable file
or a record of the wrong shape stops the run with its file, record and
feature named, before Beam reads anything.
"""

from __future__ import annotations

import json
import os
import sys

import apache_beam as beam
from tfx.components.example_gen import driver
from tfx.components.example_gen.import_example_gen import (
    executor as import_executor,
)
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs as specs

from components import data_spec, example_gen_spec, tfrecord_check, versioning

DATA_SPEC_KEY = example_gen_spec.DATA_SPEC_KEY
CODE_VERSION_KEY = example_gen_spec.CODE_VERSION_KEY


class Executor(import_executor.Executor):
    """Checks a split's TFRecord files, then imports them as TFX does."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        imported = super().GetInputSourceToExamplePTransform()

        @beam.ptransform_fn
        def _CheckedImport(pipeline, exec_properties, split_pattern):  # noqa: N802
            spec = data_spec.DataSpec.from_json_dict(
                json.loads(exec_properties[DATA_SPEC_KEY])
            )
            tfrecord_check.check_split(
                os.path.join(exec_properties[specs.INPUT_BASE_KEY], split_pattern),
                spec,
            )
            return pipeline | "Import" >> imported(exec_properties, split_pattern)

        return _CheckedImport


class CheckedImportExampleGenSpec(specs.FileBasedExampleGenSpec):
    """The file-based ExampleGen spec plus the data spec and a code digest."""

    PARAMETERS = example_gen_spec.parameters(example_gen_spec.DATA_SPEC_PARAMETER)


class CheckedImportExampleGen(base_beam_component.BaseBeamComponent):
    """Imports TFRecord files of tf.Examples, checked first, one folder per span."""

    SPEC_CLASS = CheckedImportExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        spec: data_spec.DataSpec,
        range_config=None,
    ):
        """Creates the component.

        Args:
          input_base: folder that holds the span folders (or the split folders).
          input_config: one split per pattern; patterns may contain {SPAN}.
          spec: the label and the features every record must have.
          range_config: optional span range, as for any file-based ExampleGen.
        """
        component_spec_ = example_gen_spec.build(
            CheckedImportExampleGenSpec,
            input_base,
            input_config,
            range_config,
            code_version=versioning.source_digest(
                sys.modules[__name__], tfrecord_check, data_spec
            ),
            data_spec=json.dumps(spec.to_json_dict(), sort_keys=True),
        )
        super().__init__(spec=component_spec_)
