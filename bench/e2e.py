"""End-to-end wall time of a pipeline run, per component, and the share of training.

Runs `kpipe run` in a fresh output folder (nothing cached), then reads the run
summary the pipeline wrote (`runs/<pipeline>/latest.json`, durations from the
ML Metadata executions) and prints each component's time, the Trainer's share
and the share that is not training. Extra arguments go to `kpipe run`:

  .venv/bin/python -m bench.e2e                       # the default job, full data
  .venv/bin/python -m bench.e2e -- --max-examples 500 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

from bench import report

TRAINER = "Trainer"


def run_pipeline(output_dir: str, kpipe_args: list[str]) -> tuple[float, float, int]:
    """Runs kpipe in a fresh folder; returns (wall s, peak child MiB, exit code)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    kpipe = os.path.join(os.path.dirname(sys.executable), "kpipe")
    command = [kpipe, "run", "--output-dir", output_dir, *kpipe_args]
    report.progress("running %s", " ".join(command))
    started = time.monotonic()
    completed = subprocess.run(command, check=False)
    wall_s = time.monotonic() - started
    return wall_s, report.peak_rss_mib(resource.RUSAGE_CHILDREN), completed.returncode


def read_summary(output_dir: str) -> dict:
    runs = os.path.join(output_dir, "runs")
    pipelines = sorted(os.listdir(runs))
    if len(pipelines) != 1:
        raise SystemExit(f"expected one pipeline under {runs}, found {pipelines}")
    with open(os.path.join(runs, pipelines[0], "latest.json")) as stream:
        return json.load(stream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="outputs/bench/e2e")
    parser.add_argument(
        "kpipe_args",
        nargs="*",
        help="arguments for kpipe run (after --); default: the default config",
    )
    args = parser.parse_args(argv)
    kpipe_args = args.kpipe_args or ["--config", "configs/fashion_mnist.yaml"]
    wall_s, peak_mib, exit_code = run_pipeline(args.output_dir, kpipe_args)
    summary = read_summary(args.output_dir)
    steps = summary["steps"]
    pipeline_s = summary.get("wall_time_s") or sum(s["duration_s"] for s in steps)
    rows = [
        [
            step["node_id"],
            step["state"],
            step["duration_s"],
            f"{100.0 * step['duration_s'] / pipeline_s:.1f}%",
        ]
        for step in steps
    ]
    trainer_s = sum(s["duration_s"] for s in steps if s["node_id"] == TRAINER)
    rows.append(["pipeline (run summary)", "", pipeline_s, "100.0%"])
    rows.append(["whole command (imports included)", "", round(wall_s, 1), ""])
    report.print_table(["component", "state", "seconds", "share"], rows)
    not_training_s = pipeline_s - trainer_s
    print()
    report.print_table(
        ["ratio", "value"],
        [
            ["Trainer / pipeline", f"{trainer_s / pipeline_s:.3f}"],
            [
                "not training / pipeline",
                f"{not_training_s / pipeline_s:.3f} ({not_training_s:.1f} s)",
            ],
            ["pipeline / whole command", f"{pipeline_s / wall_s:.3f}"],
        ],
    )
    print(
        f"\nOutcome {summary['outcome']} (exit {exit_code}); test accuracy "
        f"{summary.get('accuracy')} on {summary.get('example_count')} examples "
        f"after {summary.get('epochs')} epochs; peak memory of the run "
        f"{peak_mib:.0f} MiB (ru_maxrss of the child)"
    )
    report.print_command()
    return 0 if summary["steps"] else 1


if __name__ == "__main__":
    sys.exit(main())
