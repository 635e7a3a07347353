"""ExampleGen + StatisticsGen at growing data sizes, two Beam DirectRunner modes.

Writes Fashion-MNIST repeated to each size as IDX files (6/7 train, 1/7 eval,
so 70k is the real data set), then runs a two-component TFX pipeline (the
product's IdxExampleGen and TFX's StatisticsGen) once with the DirectRunner in
memory and once with multi_processing over 2 workers. Each run is its own
process; its process tree's resident memory is sampled from /proc.

  .venv/bin/python -m bench.scale                         # 10k, 70k, 700k
  .venv/bin/python -m bench.scale --sizes 10000,70000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from bench import report

MODES = {
    "in_memory": ("--direct_running_mode=in_memory", "--direct_num_workers=1"),
    "multi_processing x2": (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ),
}
SOURCE_DIR = "/usr/share/datasets/fashion-mnist"


def write_repeated(source_dir: str, target_dir: str, size: int) -> None:
    """Fashion-MNIST repeated (or cut) to `size` examples in IDX files."""
    import numpy as np

    from components import idx

    if os.path.exists(os.path.join(target_dir, "done")):
        return
    os.makedirs(target_dir, exist_ok=True)
    train_count = round(size * 6 / 7)
    for prefix, count in (("train", train_count), ("t10k", size - train_count)):
        images, labels = idx.read_arrays(
            os.path.join(source_dir, f"{prefix}-images-idx3-ubyte.gz"),
            os.path.join(source_dir, f"{prefix}-labels-idx1-ubyte.gz"),
        )
        repeats = -(-count // len(labels))
        idx.write(
            os.path.join(target_dir, f"{prefix}-images-idx3-ubyte.gz"),
            np.concatenate([images] * repeats)[:count],
        )
        idx.write(
            os.path.join(target_dir, f"{prefix}-labels-idx1-ubyte.gz"),
            np.concatenate([labels] * repeats)[:count],
        )
    open(os.path.join(target_dir, "done"), "w").close()


def run_one(data_dir: str, output_dir: str, mode: str) -> dict:
    """Runs ExampleGen + StatisticsGen; returns seconds per component."""
    from tfx import v1 as tfx

    from pipeline import config as config_module
    from pipeline import pipeline, summary

    config = config_module.load_config(
        overrides=[f"data.data_dir={data_dir}", f"output_dir={output_dir}"]
    )
    config = dataclasses.replace(config, beam_pipeline_args=MODES[mode])
    example_gen = pipeline.make_example_gen(config)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"]
    )
    started_ms = int(time.time() * 1000)
    started = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name=config.pipeline_name,
            pipeline_root=config.pipeline_root,
            components=[example_gen, statistics_gen],
            enable_cache=False,
            metadata_connection_config=(
                tfx.orchestration.metadata.sqlite_metadata_connection_config(
                    config.metadata_path
                )
            ),
            beam_pipeline_args=list(config.beam_pipeline_args),
        )
    )
    wall_s = time.monotonic() - started
    result = summary.summarize(config, config.evaluation.metric, started_ms)
    return {
        "steps": {step.node_id: step.duration_s for step in result.steps},
        "wall_s": wall_s,
    }


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/statm") as stream:
                resident_pages = int(stream.read().split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
        rss[int(name)] = resident_pages * page
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_measured(command: list[str]) -> tuple[dict, float]:
    """Runs a child; returns its JSON result and the peak RSS of its tree (MiB)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss_bytes(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit {process.returncode}")
    return json.loads(output.strip().splitlines()[-1]), peak[0] / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,70000,700000")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--work-dir", default="outputs/bench/scale")
    parser.add_argument("--source-dir", default=SOURCE_DIR)
    parser.add_argument("--one", nargs=3, metavar=("DATA", "OUTPUT", "MODE"))
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return 0
    rows = []
    results: dict[tuple[int, str], dict] = {}
    sizes = [int(size) for size in args.sizes.split(",")]
    modes = args.modes.split(",")
    for size in sizes:
        data_dir = os.path.abspath(os.path.join(args.work_dir, f"data-{size}"))
        report.progress("writing %d examples to %s", size, data_dir)
        write_repeated(args.source_dir, data_dir, size)
        for mode in modes:
            output_dir = os.path.abspath(
                os.path.join(args.work_dir, f"run-{size}-{mode.split()[0]}")
            )
            shutil.rmtree(output_dir, ignore_errors=True)
            report.progress("%d examples, %s", size, mode)
            command = [sys.executable, "-m", "bench.scale", "--one"]
            result, peak_mib = run_measured(command + [data_dir, output_dir, mode])
            shutil.rmtree(output_dir, ignore_errors=True)
            steps = result["steps"]
            example_gen_s = steps.get("ExampleGen", float("nan"))
            statistics_s = steps.get("StatisticsGen", float("nan"))
            results[(size, mode)] = result
            rows.append(
                [
                    size,
                    mode,
                    example_gen_s,
                    statistics_s,
                    round(result["wall_s"], 1),
                    round(size / (example_gen_s + statistics_s)),
                    round(peak_mib),
                ]
            )
            report.progress("%s", rows[-1])
    report.print_table(
        [
            "examples",
            "Beam mode",
            "ExampleGen s",
            "StatisticsGen s",
            "pipeline s",
            "examples/s",
            "peak MiB",
        ],
        rows,
    )
    ratio_rows = []
    for size in sizes:
        if all((size, mode) in results for mode in MODES):
            walls = [results[(size, mode)]["wall_s"] for mode in MODES]
            ratio_rows.append(
                [f"{size}: multi_processing / in_memory", walls[1] / walls[0]]
            )
    for mode in modes:
        for small, large in zip(sizes, sizes[1:], strict=False):
            ratio_rows.append(
                [
                    f"{mode}: time {large} / time {small} (data x{large / small:g})",
                    results[(large, mode)]["wall_s"] / results[(small, mode)]["wall_s"],
                ]
            )
    print()
    report.print_table(["ratio", "value"], ratio_rows)
    report.print_command()
    return 0


if __name__ == "__main__":
    sys.exit(main())
