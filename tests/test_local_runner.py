"""Runs of one pipeline in one output folder take turns."""

import os
import subprocess
import sys
import textwrap
import time

from pipeline import local_runner
from pipeline.config import load_config

HOLD_S = 3.0


def _hold_lock(lock_path: str, hold_s: float) -> subprocess.Popen:
    """A process that holds the run lock as a run does: flock, then its pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import fcntl, os, time
                os.makedirs(os.path.dirname({lock_path!r}), exist_ok=True)
                with open({lock_path!r}, "a+") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    lock.truncate(0)
                    lock.write(f"pid {{os.getpid()}}\\n")
                    lock.flush()
                    print("holding", flush=True)
                    time.sleep({hold_s})
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _lock_path(config) -> str:
    return os.path.join(
        os.path.dirname(config.metadata_path), local_runner.RUN_LOCK_FILE
    )


def test_a_second_run_waits_for_the_first_and_says_so(tmp_path, caplog):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})
    holder = _hold_lock(_lock_path(config), HOLD_S)
    try:
        started = time.monotonic()
        with caplog.at_level("INFO"), local_runner.exclusive_run(config):
            waited_s = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert waited_s > HOLD_S / 2
    assert "Waiting for the other run of 'fashion_mnist'" in caplog.text
    assert f"pid {holder.pid}" in caplog.text


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    config = load_config(overrides=[f"output_dir={tmp_path}"], environ={})
    holder = _hold_lock(_lock_path(config), 600)
    holder.kill()
    holder.wait(timeout=60)
    started = time.monotonic()
    with local_runner.exclusive_run(config):
        assert time.monotonic() - started < 5
