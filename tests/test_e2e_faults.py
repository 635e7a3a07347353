"""A run killed with SIGKILL at several points, then run again, completes.

One sequence on the circles table (the quickest real pipeline): killed after
ExampleGen, killed during training, killed during the push, then a run to the
end. Each restart must take the finished steps from the cache, the metadata
store must stay readable, and the serving folder must only ever hold complete
integer versions.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from components import pusher

pytestmark = pytest.mark.e2e

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TIMEOUT_S = 900


def _command(output_dir):
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "run",
        "--config",
        "configs/circles.yaml",
        "--output-dir",
        output_dir,
        "--epochs",
        "10",
    ]


def _run_until(output_dir, marker, delay_s=0.0):
    """Starts a run and SIGKILLs its whole process group once marker is logged."""
    process = subprocess.Popen(
        _command(output_dir),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        for line in process.stderr:
            seen.append(line)
            if marker in line:
                time.sleep(delay_s)
                break
            assert time.monotonic() < deadline, "run did not reach " + marker
        else:
            pytest.fail(f"the run ended before {marker!r}:\n{''.join(seen[-20:])}")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return "".join(seen)


def _serving_dir(output_dir):
    return os.path.join(output_dir, "serving_model", "circles")


def _assert_only_complete_versions(output_dir):
    serving_dir = _serving_dir(output_dir)
    for version in pusher.existing_versions(serving_dir):
        folder = os.path.join(serving_dir, str(version))
        assert os.path.isfile(os.path.join(folder, "saved_model.pb")), folder
        assert os.listdir(os.path.join(folder, "variables")), folder


def test_a_run_killed_at_three_points_resumes_from_the_cache(tmp_path):
    output_dir = str(tmp_path)
    kill_points = [
        ("StatisticsGen: started", 0.0),
        ("Trainer: started", 8.0),
        ("VersionedPusher: started", 1.0),
    ]
    for marker, delay_s in kill_points:
        _run_until(output_dir, marker, delay_s)
        _assert_only_complete_versions(output_dir)
        assert pusher.existing_versions(_serving_dir(output_dir)) == []

    completed = subprocess.run(
        _command(output_dir),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    summary_path = os.path.join(output_dir, "runs", "circles", "latest.json")
    with open(summary_path) as stream:
        summary = json.load(stream)
    assert completed.returncode == 0, (summary, completed.stderr[-3000:])
    states = {step["node_id"]: step["state"] for step in summary["steps"]}
    # Everything up to the Trainer finished in an earlier, killed run. The
    # Evaluator runs again: the killed run blessed the model, so it now has a
    # baseline (itself), which is a new input.
    for node_id in ("ExampleGen", "StatisticsGen", "ExampleValidator", "Trainer"):
        assert states[node_id] == "cached", states
    assert states["VersionedPusher"] == "ran"
    assert pusher.existing_versions(_serving_dir(output_dir)) == [1]
    _assert_only_complete_versions(output_dir)
    leftovers = [
        name
        for name in os.listdir(_serving_dir(output_dir))
        if name.startswith(pusher.STAGING_PREFIX)
    ]
    assert leftovers == []
