"""A Pusher that publishes each blessed model as the next integer version.

TF Serving watches `<serving_model_dir>/<integer>/` folders and loads the
highest. The stock Pusher names versions by Unix time and copies files straight
into the version folder, so a server polling at the wrong moment can see a
half-written model. Here the model is copied into a hidden temporary folder on
the same filesystem, flushed to disk, and renamed to the next free integer in
one step, under a lock so that two pushes at once get two versions. Before
that, the model must pass the serving checks (stock ops, warm-up replay).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator

from absl import logging
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components import serving_checks

LOCK_FILE = ".push.lock"
# The highest version ever issued: numbers are never reused, even after the
# newest version folder is deleted to roll back.
HIGHEST_VERSION_FILE = ".highest_version"
STAGING_PREFIX = ".incoming-"
ALREADY_SERVED_KEY = "already_served_version"


class PushError(RuntimeError):
    """The model could not be published; the served versions are untouched."""


@dataclasses.dataclass(frozen=True)
class Published:
    """Where a model is served, and whether this push created that version."""

    version: int
    path: str
    already_served: bool = False


def existing_versions(serving_model_dir: str) -> list[int]:
    """The integer version folders, ascending. Other names are ignored."""
    if not os.path.isdir(serving_model_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(serving_model_dir)
        if name.isascii()
        and name.isdigit()
        and os.path.isdir(os.path.join(serving_model_dir, name))
    )


def _highest_issued(serving_model_dir: str) -> int:
    path = os.path.join(serving_model_dir, HIGHEST_VERSION_FILE)
    if not os.path.exists(path):
        return 0
    with open(path) as stream:
        text = stream.read().strip()
    if not (text.isascii() and text.isdigit()):
        raise PushError(f"{path} should hold a version number, holds {text!r}")
    return int(text)


def _write_durably(path: str, text: str) -> None:
    temporary = f"{path}.{uuid.uuid4().hex}"
    with open(temporary, "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def _exclusive_lock(serving_model_dir: str) -> Iterator[None]:
    with open(os.path.join(serving_model_dir, LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fsync_folder(folder: str) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _flush_tree(root: str) -> None:
    """fsyncs every file and folder below root so a rename publishes data on disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as stream:
                os.fsync(stream.fileno())
        _fsync_folder(folder)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned_staging(serving_model_dir: str) -> None:
    """Removes the staging folders of pushes whose process was killed.

    A killed push never reaches its cleanup; its half-copied folder is hidden
    from TF Serving by its name, and removed here by the next push.
    """
    for name in os.listdir(serving_model_dir):
        if not name.startswith(STAGING_PREFIX):
            continue
        pid_text = name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(os.path.join(serving_model_dir, name), ignore_errors=True)


def tree_digest(root: str) -> str:
    """A SHA-256 over every file's relative path and bytes below root."""
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def served_version_of(model_dir: str, serving_model_dir: str) -> int | None:
    """The newest version, if it holds exactly this model; otherwise None.

    A re-run on unchanged data blesses the same model against itself; this
    keeps it from being published again under a new number.
    """
    versions = existing_versions(serving_model_dir)
    if versions:
        newest = os.path.join(serving_model_dir, str(versions[-1]))
        if tree_digest(newest) == tree_digest(model_dir):
            return versions[-1]
    return None


def publish(model_dir: str, serving_model_dir: str) -> Published:
    """Publishes a SavedModel folder as the next version, unless it is served.

    Args:
      model_dir: the SavedModel to publish (left unchanged).
      serving_model_dir: the folder TF Serving watches.

    Returns:
      The new version, or the newest version when it already holds this model.

    Raises:
      PushError: the destination is not writable, or the copy failed (for
        example a full disk); no version folder is created or changed.
    """
    # Limitation: rename is atomic only on a local or POSIX filesystem; for
    # gs:// or s3:// destinations push to a mounted volume instead.
    if "://" in serving_model_dir:
        raise PushError(
            f"{serving_model_dir}: only local or mounted folders are supported "
            "as the serving model folder"
        )
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise PushError(f"{model_dir} holds no saved_model.pb; nothing to push")
    staging = os.path.join(
        serving_model_dir, f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    )
    try:
        os.makedirs(serving_model_dir, exist_ok=True)
        shutil.copytree(model_dir, staging)
        _flush_tree(staging)
        with _exclusive_lock(serving_model_dir):
            _remove_abandoned_staging(serving_model_dir)
            served = served_version_of(staging, serving_model_dir)
            if served is not None:
                path = os.path.join(serving_model_dir, str(served))
                return Published(served, path, already_served=True)
            versions = existing_versions(serving_model_dir)
            version = max(versions[-1:] + [_highest_issued(serving_model_dir)]) + 1
            destination = os.path.join(serving_model_dir, str(version))
            # os.rename would replace an empty folder of that name; refuse instead.
            if os.path.lexists(destination):
                raise PushError(
                    f"{destination} already exists; refusing to overwrite it"
                )
            _write_durably(
                os.path.join(serving_model_dir, HIGHEST_VERSION_FILE), str(version)
            )
            os.rename(staging, destination)
            _fsync_folder(serving_model_dir)
    except OSError as error:
        raise PushError(
            f"could not publish {model_dir} to {serving_model_dir}: {error}"
        ) from error
    finally:
        if os.path.lexists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return Published(version, destination)


class Executor(pusher_executor.Executor):
    """Pushes a blessed model as the next integer version, atomically."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(
            output_dict[specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            logging.info("Model not blessed; nothing pushed.")
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            raise PushError("only a filesystem push destination is supported")
        model_path = self.GetModelPath(input_dict)
        replayed = serving_checks.check_servable(model_path)
        logging.info(
            "Serving checks passed: stock TF Serving ops only; %d warm-up "
            "requests answered",
            replayed,
        )
        published = publish(model_path, destination.filesystem.base_directory)
        if published.already_served:
            self._MarkNotPushed(pushed_model)
            pushed_model.set_int_custom_property(ALREADY_SERVED_KEY, published.version)
            logging.info(
                "Version %d already serves this exact model; nothing pushed.",
                published.version,
            )
            return
        self._MarkPushed(
            pushed_model,
            pushed_destination=published.path,
            pushed_version=str(published.version),
        )
        logging.info("Pushed model version %d to %s", published.version, published.path)


class VersionedPusher(pusher_component.Pusher):
    """The stock Pusher's interface with atomic, integer-versioned pushes."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
