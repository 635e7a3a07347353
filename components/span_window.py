"""The span window: the newest span's examples plus those of the spans before it.

ExampleGen reads one span per run (the newest). With `retraining.span_window`
K >= 2, this step looks up in the metadata store the examples ExampleGen wrote
for the K-1 spans before the newest and copies every split's files of all K
spans into one Examples artifact that the Trainer reads. A span ExampleGen
never read (data that arrived before the pipeline ran) is not in the window.
It replaces TFX's SpanRangeStrategy resolver, which Kubeflow V2 cannot compile.
"""

import os

from absl import logging
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import (
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

from components import metadata_lookup

SPANS_PROPERTY = "window_spans"


def window_folders(
    metadata_connection: str, pipeline_name: str, newest_span: int, span_count: int
) -> dict[int, str]:
    """Folder of the newest ExampleGen output of each earlier span in the window."""
    store = metadata_lookup.open_store(metadata_connection)
    folders = {}
    for artifact in metadata_lookup.pipeline_artifacts(
        store, pipeline_name, "Examples"
    ):
        span = metadata_lookup.span_of(artifact)
        # This step's own outputs are Examples too; they are not a span's data.
        if SPANS_PROPERTY in artifact.custom_properties or span is None:
            continue
        if newest_span - span_count < span < newest_span:
            folders[span] = artifact.uri  # Ordered by id: the newest wins.
    return folders


@component
def SpanWindow(  # noqa: N802 - TFX component names are CamelCase.
    examples: InputArtifact[standard_artifacts.Examples],
    window: OutputArtifact[standard_artifacts.Examples],
    span_count: Parameter[int],
    metadata_connection: Parameter[str],
    pipeline_name: Parameter[str],
):
    """Writes the examples of the last `span_count` spans as one artifact."""
    newest_span = metadata_lookup.artifact_span(examples)
    folders = window_folders(
        metadata_connection, pipeline_name, newest_span, span_count
    )
    folders[newest_span] = examples.uri
    split_names = artifact_utils.decode_split_names(examples.split_names)
    for split in split_names:
        target = os.path.join(window.uri, f"Split-{split}")
        fileio.makedirs(target)
        for span, folder in sorted(folders.items()):
            source = os.path.join(folder, f"Split-{split}")
            for name in fileio.listdir(source):
                fileio.copy(
                    os.path.join(source, name),
                    os.path.join(target, f"span-{span}-{name}"),
                )
    window.split_names = examples.split_names
    window.span = newest_span
    window.set_int_custom_property(metadata_lookup.SPAN_PROPERTY, newest_span)
    examples_utils.set_payload_format(
        window, examples_utils.get_payload_format(examples)
    )
    examples_utils.set_file_format(window, examples_utils.get_file_format(examples))
    spans = ",".join(str(span) for span in sorted(folders))
    window.set_string_custom_property(SPANS_PROPERTY, spans)
    logging.info("Span window: training on spans %s", spans)
