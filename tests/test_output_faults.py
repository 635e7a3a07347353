"""Faults in the output folders: not writable, and a disk that fills during a push.

Tests run as root, for whom permissions do not block writes, so the folder
that must not be writable is tried by a child process that gives up root
first; the full disk is a child process whose file size limit (RLIMIT_FSIZE)
is smaller than the model, so a write fails with EFBIG as on a full disk.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest

from components import pusher
from pipeline import cli

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNPRIVILEGED_ID = 65534  # nobody
WEIGHTS = os.path.join("variables", "variables.data-00000-of-00001")


@pytest.fixture
def read_only_output():
    """An output folder nobody but root may write, under a folder all may read."""
    base = tempfile.mkdtemp(prefix="kpipe-read-only-")
    os.chmod(base, 0o755)
    output = os.path.join(base, "out")
    os.makedirs(output)
    os.chmod(
        output,
        stat.S_IRUSR
        | stat.S_IXUSR
        | stat.S_IRGRP
        | stat.S_IXGRP
        | stat.S_IROTH
        | stat.S_IXOTH,
    )
    yield output
    shutil.rmtree(base)


# Runs `kpipe run` into argv[1] after giving up root. The interpreter and the
# libraries live in root's folders, so everything the command needs before it
# stops is imported first.
_RUN_WITHOUT_ROOT = textwrap.dedent(
    """
    import os, sys
    from pipeline import cli, local_runner, pipeline, preflight, summary
    if os.geteuid() == 0:
        os.setgid({uid})
        os.setuid({uid})
    sys.exit(cli.main(
        ["run", "--config", "configs/circles.yaml", "--output-dir", sys.argv[1]]
    ))
    """
).format(uid=UNPRIVILEGED_ID)


def test_a_run_into_a_folder_it_cannot_write_exits_2_naming_it(read_only_output):
    completed = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_ROOT, read_only_output],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == cli.EXIT_CONFIG, completed.stderr[-2000:]
    assert (
        f"error: output_dir: {read_only_output} is not writable (Permission denied)"
        in completed.stderr
    )
    assert os.listdir(read_only_output) == []


def test_an_output_dir_below_a_file_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    output = tmp_path / "a-file" / "out"
    exit_code = cli.main(
        ["run", "--config", "configs/circles.yaml", "--output-dir", str(output)]
    )
    assert exit_code == cli.EXIT_CONFIG
    assert f"error: output_dir: {output} is not writable (Not a directory)" in (
        capsys.readouterr().err
    )


def _fake_model(folder, weight_bytes):
    os.makedirs(os.path.join(folder, "variables"), exist_ok=True)
    with open(os.path.join(folder, "saved_model.pb"), "wb") as stream:
        stream.write(b"graph")
    with open(os.path.join(folder, WEIGHTS), "wb") as stream:
        stream.write(os.urandom(weight_bytes))
    return str(folder)


# Publishes a model in a process that may write no file beyond 64 KiB.
_PUBLISH_WITH_A_FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from components import pusher
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    try:
        pusher.publish(sys.argv[1], sys.argv[2])
    except pusher.PushError as error:
        print(error)
        sys.exit(1)
    """
)


def test_a_disk_full_during_the_push_leaves_the_served_version_untouched(tmp_path):
    serving = str(tmp_path / "serving")
    first = pusher.publish(_fake_model(tmp_path / "first", 1000), serving)
    assert first.version == 1
    served_digest = pusher.tree_digest(first.path)
    before = sorted(os.listdir(serving))
    big_model = _fake_model(tmp_path / "second", 1024 * 1024)

    completed = subprocess.run(
        [sys.executable, "-c", _PUBLISH_WITH_A_FULL_DISK, big_model, serving],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert f"could not publish {big_model} to {serving}" in completed.stdout
    assert "File too large" in completed.stdout
    # Nothing half-written: no new version, no staging folder, the record of
    # the highest version unchanged, version 1 byte for byte the same.
    assert sorted(os.listdir(serving)) == before
    assert pusher.existing_versions(serving) == [1]
    assert pusher.tree_digest(first.path) == served_digest
    with open(os.path.join(serving, pusher.HIGHEST_VERSION_FILE)) as stream:
        assert stream.read() == "1"

    # With room again, the same model is pushed as version 2.
    assert pusher.publish(big_model, serving).version == 2


def test_the_file_size_limit_really_stops_a_large_write(tmp_path):
    # Guards the simulation itself: were RLIMIT_FSIZE ignored here, the test
    # above would pass for the wrong reason.
    script = textwrap.dedent(
        f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        with open({str(tmp_path / "big")!r}, "wb") as stream:
            stream.write(b"x" * 1024)
            stream.flush()
            stream.write(b"x" * 4096)
            stream.flush()
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode != 0
    assert "File too large" in completed.stderr
