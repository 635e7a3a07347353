"""The `kpipe` command line: run the pipeline, show the config or a run summary.

Exit codes:
  0  a model was pushed, or the newest served version already is this model;
  1  the run failed;
  2  the config is invalid;
  3  the data has anomalies or cannot be read (nothing trained, nothing pushed);
  4  the model was not blessed (nothing pushed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

EXIT_PUSHED = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_NOT_BLESSED = 4

# Our own packages, whose INFO lines are progress a person wants to see.
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_OWN_PACKAGE_DIRS = tuple(
    f"{_PROJECT_ROOT / package}{os.sep}" for package in ("pipeline", "components")
)


class _ProgressFilter(logging.Filter):
    """Lets through progress lines: ours, and one line per step started/ended."""

    def __init__(self):
        super().__init__()
        self._node_id = ""
        self._started = 0.0
        self._cached = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        message = record.msg if isinstance(record.msg, str) else ""
        if record.pathname.endswith("launcher.py") and message.startswith(
            "A cached execution"
        ):
            self._cached = True
            return False
        if record.pathname.endswith("local_dag_runner.py") and message.startswith(
            "Component %s is"
        ):
            if message.endswith("running."):
                self._node_id, self._started, self._cached = (
                    record.args[0],
                    time.monotonic(),
                    False,
                )
                record.msg, record.args = "%s: started", (self._node_id,)
            else:
                record.msg = (
                    "%s: " + ("cached" if self._cached else "finished") + " in %.1f s"
                )
                record.args = (self._node_id, time.monotonic() - self._started)
            return True
        return os.path.abspath(record.pathname).startswith(_OWN_PACKAGE_DIRS)


def _quiet_libraries(verbose: bool) -> None:
    """Turns down TensorFlow's C++ banners and the libraries' warnings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if not verbose:
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)


def _configure_logging(verbose: bool) -> None:
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    if not verbose:
        # On the handler, so it sees records of every logger that propagates to
        # the root, whatever levels the libraries set on their own loggers.
        for handler in logging.getLogger().handlers:
            handler.addFilter(_ProgressFilter())


def _run(args) -> int:
    from pipeline import local_runner, summary
    from pipeline.config import ConfigError, load_config
    from pipeline.pipeline import check_infra_validation_platform

    try:
        config = load_config(args.config, _overrides(args))
        check_infra_validation_platform(config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        os.makedirs(config.output_dir, exist_ok=True)
    except OSError as error:
        print(
            f"error: cannot create output_dir {config.output_dir}: {error}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    result = local_runner.run(config)
    print("\n" + summary.render(result), flush=True)
    return _exit_code(result.outcome)


def _overrides(args) -> list[str]:
    overrides = list(args.set or [])
    for flag, field in (
        ("output_dir", "output_dir"),
        ("data_dir", "data.data_dir"),
        ("max_examples", "data.max_examples_per_split"),
        ("epochs", "training.epochs"),
        ("preset", "training.preset"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{field}={value}")
    return overrides


def _show_config(args) -> int:
    from pipeline.config import ConfigError, load_config, to_yaml

    try:
        print(to_yaml(load_config(args.config, _overrides(args))), end="")
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _show_summary(args) -> int:
    from pipeline import summary
    from pipeline.config import ConfigError, load_config

    try:
        config = load_config(args.config, _overrides(args))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    from pipeline import local_runner

    # The record the run itself wrote knows how it ended (a file that could not
    # be read, say); the metadata store alone does not.
    result = local_runner.read_latest(config) or summary.summarize(
        config, config.evaluation.metric
    )
    print(summary.render(result))
    return _exit_code(result.outcome)


def _exit_code(outcome: str) -> int:
    from pipeline import summary

    return {
        summary.PUSHED: EXIT_PUSHED,
        summary.ALREADY_SERVED: EXIT_PUSHED,
        summary.DATA_ANOMALIES: EXIT_DATA,
        summary.BAD_INPUT: EXIT_DATA,
        summary.NOT_BLESSED: EXIT_NOT_BLESSED,
    }.get(outcome, EXIT_FAILED)


def _lr_sweep(args) -> int:
    from pipeline import lr_sweep
    from pipeline.config import ConfigError, load_config

    try:
        config = load_config(args.config, _overrides(args))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    output_dir = os.path.join(config.output_dir, "lr_sweep", args.sweep_preset)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        print(f"error: cannot create {output_dir}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    choice = lr_sweep.run(config, args.sweep_preset, args.sweep_epochs, output_dir)
    print(
        f"Chosen learning rate {choice.learning_rate:.3g} ({choice.rule}); "
        f"minimum loss at {choice.min_loss_learning_rate:.3g}\n"
        f"Plot, table and history in {output_dir}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpipe", description="A TFX training pipeline for Keras classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.set_defaults(handler=handler)
        command.add_argument(
            "-v", "--verbose", action="store_true", help="show all library logs"
        )
        command.add_argument("--config", help="YAML config file (see configs/)")
        command.add_argument(
            "--set",
            action="append",
            metavar="FIELD=VALUE",
            help="override a config field, e.g. training.epochs=3 (repeatable)",
        )
        command.add_argument(
            "--output-dir", help="where pipeline outputs and models go"
        )
        command.add_argument(
            "--data-dir", help="folder with the IDX files or span-N/ folders"
        )
        command.add_argument(
            "--max-examples", type=int, help="cap examples per split (quick runs)"
        )
        command.add_argument("--epochs", type=int, help="training epochs")
        command.add_argument("--preset", help="model preset: seed_dense, dense or cnn")
        return command

    add("run", _run, "run the pipeline locally with Beam's DirectRunner")
    sweep = add(
        "lr-sweep",
        _lr_sweep,
        "per-epoch learning-rate sweep (1e-3 * 10**(epoch/20)) with plain Keras",
    )
    sweep.add_argument("--sweep-preset", default="seed_dense", help="model preset")
    sweep.add_argument("--sweep-epochs", type=int, default=40, help="sweep epochs")
    add("show-config", _show_config, "print the effective config as YAML")
    add("summary", _show_summary, "print the summary of the latest run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_libraries(args.verbose)
    _configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
