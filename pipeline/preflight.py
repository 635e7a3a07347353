"""Checks, before a run starts, that its output folders can be written.

A folder that cannot be written would otherwise fail deep inside a step (the
metadata store, an artifact, the push) after minutes of work. Permissions are
not enough to decide (root ignores them; a read-only mount or a full quota
does not show in them), so each folder is tested by writing and removing a
small file in it.
"""

from __future__ import annotations

import os
import tempfile

from pipeline.config import PipelineConfig

PROBE_PREFIX = ".write-check-"


class OutputNotWritableError(OSError):
    """An output folder cannot be written; the message names it."""


def check_writable(folder: str) -> None:
    """Creates the folder if needed and writes, flushes and removes a file in it.

    Raises:
      OutputNotWritableError: the folder cannot be created or written.
    """
    try:
        os.makedirs(folder, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
        try:
            os.write(descriptor, b"ok")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.remove(probe)
    except OSError as error:
        raise OutputNotWritableError(
            f"{folder} is not writable ({error.strerror or error}); choose "
            "another --output-dir or fix the folder's permissions or mount"
        ) from error


def check_output_folders(config: PipelineConfig) -> None:
    """The output folder, and the serving folder when it already exists.

    Raises:
      OutputNotWritableError: naming the first folder that cannot be written.
    """
    check_writable(config.output_dir)
    if os.path.isdir(config.serving_model_dir):
        check_writable(config.serving_model_dir)
