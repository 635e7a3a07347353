"""Whether a retraining run has anything new to train on.

New data arrives as a new span folder, `span-N/`, under the data folder. A span
counts as trained once a Trainer of this pipeline completed (or was cached) on
its examples, as the metadata store records it; `kpipe retrain` runs the
pipeline only when the data holds a newer span than that, so it is safe to
start from cron, a systemd timer or any scheduler as often as you like.
"""

from __future__ import annotations

import dataclasses
import os
import re

from tfx.dsl.io import fileio

from components import metadata_lookup
from pipeline.config import PipelineConfig

SPAN_FOLDER = re.compile(r"^span-(\d+)$")


class NoSpansError(ValueError):
    """The data folder holds no span-N folders to retrain on."""


@dataclasses.dataclass(frozen=True)
class SpanCheck:
    """The newest span in the data and the newest one trained on."""

    newest_span: int
    last_trained_span: int | None

    @property
    def has_new_span(self) -> bool:
        return self.last_trained_span is None or (
            self.newest_span > self.last_trained_span
        )


def newest_data_span(data_dir: str) -> int:
    """The highest N of the span-N folders under data_dir."""
    spans = [
        int(match[1])
        for name in (fileio.listdir(data_dir) if fileio.isdir(data_dir) else [])
        if (match := SPAN_FOLDER.match(name.rstrip("/")))
    ]
    if not spans:
        raise NoSpansError(
            f"data.data_dir: {data_dir} holds no span-N folders; retraining "
            "reads new data from span-1/, span-2/, ... (put the first data in "
            "span-1/)"
        )
    return max(spans)


def last_trained_span(config: PipelineConfig) -> int | None:
    """The newest span a Trainer of this pipeline completed on, or None."""
    if not os.path.exists(config.metadata_path):
        return None
    store = metadata_lookup.open_store(
        metadata_lookup.connection_text(sqlite_path=config.metadata_path)
    )
    spans = metadata_lookup.trained_spans(store, config.pipeline_name)
    return max(spans) if spans else None


def check(config: PipelineConfig) -> SpanCheck:
    return SpanCheck(newest_data_span(config.data.data_dir), last_trained_span(config))
