"""Publishing versions: complete in one rename, integers that only go up,
nothing ever overwritten, even with pushes at once."""

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from components import pusher

WEIGHTS = os.path.join("variables", "variables.data-00000-of-00001")


def _fake_model(folder, content="weights"):
    os.makedirs(os.path.join(folder, "variables"), exist_ok=True)
    with open(os.path.join(folder, "saved_model.pb"), "w") as stream:
        stream.write("graph")
    with open(os.path.join(folder, WEIGHTS), "w") as stream:
        stream.write(content)
    return str(folder)


def _listing(folder):
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def _weights(path):
    with open(os.path.join(path, WEIGHTS)) as stream:
        return stream.read()


def test_versions_count_up_from_one(tmp_path):
    serving = str(tmp_path / "serving")
    for expected, content in ((1, "a"), (2, "b"), (3, "c")):
        published = pusher.publish(_fake_model(tmp_path / content, content), serving)
        assert published == pusher.Published(
            expected, os.path.join(serving, str(expected))
        )
        assert _weights(published.path) == content
    assert _listing(serving) == ["1", "2", "3"]


def test_non_integer_folders_are_ignored_and_untouched(tmp_path):
    serving = tmp_path / "serving"
    for name in ("v2", "²", "7"):
        (serving / name).mkdir(parents=True)
    (serving / "7" / "keep").write_text("old")
    published = pusher.publish(_fake_model(tmp_path / "m"), str(serving))
    assert published.version == 8
    assert (serving / "7" / "keep").read_text() == "old"
    assert _listing(serving) == ["7", "8", "v2", "²"]


def test_a_number_is_never_reused_after_a_rollback(tmp_path):
    serving = str(tmp_path / "serving")
    pusher.publish(_fake_model(tmp_path / "a", "a"), serving)
    second = pusher.publish(_fake_model(tmp_path / "b", "b"), serving)
    shutil.rmtree(second.path)  # an operator rolls back to version 1
    third = pusher.publish(_fake_model(tmp_path / "c", "c"), serving)
    assert third.version == 3
    assert _listing(serving) == ["1", "3"]


def test_model_without_saved_model_pb_is_refused_and_nothing_changes(tmp_path):
    serving = tmp_path / "serving"
    pusher.publish(_fake_model(tmp_path / "good"), str(serving))
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(pusher.PushError, match="no saved_model.pb"):
        pusher.publish(str(broken), str(serving))
    assert _listing(serving) == ["1"]


def test_failed_copy_leaves_no_folder(tmp_path):
    serving = tmp_path / "serving"
    model = _fake_model(tmp_path / "m")
    os.symlink(
        tmp_path / "does-not-exist", os.path.join(model, "variables", "dangling")
    )
    with pytest.raises(pusher.PushError, match="could not publish"):
        pusher.publish(model, str(serving))
    assert _listing(serving) == []
    assert not [name for name in os.listdir(serving) if name.startswith(".incoming")]


def test_concurrent_pushes_get_distinct_complete_versions(tmp_path, monkeypatch):
    # Widen the window between reading the versions and renaming, so that a
    # missing lock would hand two pushes the same number.
    listed = pusher.existing_versions

    def slow_listing(folder):
        versions = listed(folder)
        time.sleep(0.05)
        return versions

    monkeypatch.setattr(pusher, "existing_versions", slow_listing)
    serving = str(tmp_path / "serving")
    models = [_fake_model(tmp_path / f"m{index}", f"w{index}") for index in range(6)]
    results, errors = [], []

    def push(model):
        try:
            results.append(pusher.publish(model, serving))
        except pusher.PushError as error:
            errors.append(error)

    threads = [threading.Thread(target=push, args=(model,)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(result.version for result in results) == list(range(1, 7))
    assert {_weights(result.path) for result in results} == {f"w{i}" for i in range(6)}
    assert _listing(serving) == [str(version) for version in range(1, 7)]


def test_same_model_again_is_already_served_not_a_new_version(tmp_path):
    serving = str(tmp_path / "serving")
    model = _fake_model(tmp_path / "m", "same")
    assert pusher.served_version_of(model, serving) is None
    assert pusher.publish(model, serving).version == 1
    again = pusher.publish(_fake_model(tmp_path / "copy", "same"), serving)
    assert again == pusher.Published(1, os.path.join(serving, "1"), already_served=True)
    assert pusher.publish(_fake_model(tmp_path / "new", "new"), serving).version == 2
    assert _listing(serving) == ["1", "2"]


def test_remote_destinations_are_refused_with_a_reason(tmp_path):
    with pytest.raises(pusher.PushError, match="only local or mounted"):
        pusher.publish(_fake_model(tmp_path / "m"), "gs://bucket/models")


def test_a_killed_pushs_staging_folder_is_removed_by_the_next_push(tmp_path):
    serving = tmp_path / "serving"
    serving.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = serving / f"{pusher.STAGING_PREFIX}{dead.pid}-0123"
    (abandoned / "variables").mkdir(parents=True)
    alive = serving / f"{pusher.STAGING_PREFIX}{os.getpid()}-4567"
    alive.mkdir()
    published = pusher.publish(_fake_model(tmp_path / "model"), str(serving))
    assert published.version == 1
    assert not abandoned.exists()
    # A push still running in a live process keeps its folder.
    assert alive.exists()
