"""Beam arguments: the config's own, or chosen by the data's size; and one real
pipeline run on the DirectRunner's multi-processing mode with two workers."""

import json
import os

import pytest

from components import pusher
from pipeline import beam_args, cli
from pipeline.config import load_config


def config_for(data_dir, *overrides):
    return load_config(
        overrides=[f"data.data_dir={data_dir}", *overrides],
        environ={},
        check_schema=False,
    )


def test_small_data_runs_in_memory(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0" * 1024)
    assert beam_args.for_local_run(config_for(tmp_path)) == beam_args.IN_MEMORY_ARGS


def test_large_data_gets_one_worker_per_core(tmp_path, monkeypatch):
    span = tmp_path / "span-1"
    span.mkdir()
    with open(span / "train-images-idx3-ubyte", "wb") as stream:
        stream.truncate(beam_args.MULTI_PROCESSING_MIN_BYTES)  # sparse: no disk used
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert beam_args.for_local_run(config_for(tmp_path)) == (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=3",
    )


def test_configured_args_win_whatever_the_size(tmp_path):
    config = config_for(tmp_path, "beam_pipeline_args=[--direct_num_workers=4]")
    assert beam_args.for_local_run(config) == ("--direct_num_workers=4",)


@pytest.mark.e2e
def test_a_run_on_two_worker_processes_pushes_a_model(tmp_path, capsys):
    code = cli.main(
        [
            "run",
            "--config",
            "configs/circles.yaml",
            "--output-dir",
            str(tmp_path),
            "--set",
            "beam_pipeline_args=[--direct_running_mode=multi_processing, "
            "--direct_num_workers=2]",
        ]
    )
    output = "".join(capsys.readouterr())
    assert code == cli.EXIT_PUSHED, output
    with open(tmp_path / "runs" / "circles" / "latest_config.yaml") as stream:
        assert "--direct_running_mode=multi_processing" in stream.read()
    with open(tmp_path / "runs" / "circles" / "latest.json") as stream:
        summary = json.load(stream)
    assert summary["accuracy"] >= 0.9
    assert pusher.existing_versions(str(tmp_path / "serving_model" / "circles")) == [1]
