"""Publishing versions: complete in one rename, integers that only go up,
nothing ever overwritten, even with pushes at once."""

import os
import threading

import pytest

from components import pusher


def _fake_model(folder, content="weights"):
    os.makedirs(os.path.join(folder, "variables"), exist_ok=True)
    with open(os.path.join(folder, "saved_model.pb"), "w") as stream:
        stream.write("graph")
    with open(
        os.path.join(folder, "variables", "variables.data-00000-of-00001"), "w"
    ) as stream:
        stream.write(content)
    return str(folder)


def _listing(folder):
    return sorted(name for name in os.listdir(folder) if not name.startswith(".push"))


def test_versions_count_up_from_one(tmp_path):
    serving = str(tmp_path / "serving")
    for expected, content in ((1, "a"), (2, "b"), (3, "c")):
        version, path = pusher.publish(
            _fake_model(tmp_path / content, content), serving
        )
        assert (version, path) == (expected, os.path.join(serving, str(expected)))
        with open(
            os.path.join(path, "variables", "variables.data-00000-of-00001")
        ) as stream:
            assert stream.read() == content
    assert _listing(serving) == ["1", "2", "3"]


def test_non_integer_folders_are_ignored_and_untouched(tmp_path):
    serving = tmp_path / "serving"
    (serving / "v2").mkdir(parents=True)
    (serving / "7").mkdir()
    (serving / "7" / "keep").write_text("old")
    version, _ = pusher.publish(_fake_model(tmp_path / "m"), str(serving))
    assert version == 8
    assert (serving / "7" / "keep").read_text() == "old"
    assert _listing(serving) == ["7", "8", "v2"]


def test_failed_copy_leaves_no_folder(tmp_path):
    serving = tmp_path / "serving"
    version, _ = pusher.publish(_fake_model(tmp_path / "good"), str(serving))
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(pusher.PushError, match="no saved_model.pb"):
        pusher.publish(str(broken), str(serving))
    assert _listing(serving) == ["1"]


def test_unreadable_file_in_the_model_fails_cleanly(tmp_path):
    serving = tmp_path / "serving"
    model = _fake_model(tmp_path / "m")
    os.symlink(
        tmp_path / "does-not-exist", os.path.join(model, "variables", "dangling")
    )
    with pytest.raises(pusher.PushError, match="could not publish"):
        pusher.publish(model, str(serving))
    assert _listing(serving) == []


def test_concurrent_pushes_get_distinct_complete_versions(tmp_path):
    serving = str(tmp_path / "serving")
    models = [_fake_model(tmp_path / f"m{index}", f"w{index}") for index in range(8)]
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
    assert sorted(version for version, _ in results) == list(range(1, 9))
    contents = set()
    for _, path in results:
        with open(
            os.path.join(path, "variables", "variables.data-00000-of-00001")
        ) as stream:
            contents.add(stream.read())
    assert contents == {f"w{index}" for index in range(8)}
    assert _listing(serving) == [str(version) for version in range(1, 9)]


def test_same_model_again_is_recognised_as_already_served(tmp_path):
    serving = str(tmp_path / "serving")
    model = _fake_model(tmp_path / "m", "same")
    assert pusher.served_version_of(model, serving) is None
    pusher.publish(model, serving)
    assert pusher.served_version_of(model, serving) == 1
    assert (
        pusher.served_version_of(_fake_model(tmp_path / "other", "new"), serving)
        is None
    )


def test_remote_destinations_are_refused_with_a_reason(tmp_path):
    with pytest.raises(pusher.PushError, match="only local or mounted"):
        pusher.publish(_fake_model(tmp_path / "m"), "gs://bucket/models")
