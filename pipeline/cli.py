"""The `kpipe` command line: run the pipeline, show the config or a run summary,
and ask a served model about images or table rows.

Exit codes of `run`, `lr-sweep`, `show-config` and `summary`:
  0  a model was pushed, or the newest served version already is this model;
  1  the run failed;
  2  the config is invalid;
  3  the data has anomalies or cannot be read (nothing trained, nothing pushed);
  4  the model was not blessed (nothing pushed).
Exit codes of `report`: 0 the page was written; 1 no such run is recorded.
Exit codes of `predict`:
  0  every image or row was answered;
  1  the model could not be reached, was not found, or refused the request;
  2  an input file cannot be read or holds images of the wrong size, a CSV file
     lacks a column the model takes or holds a cell that cannot be converted to
     the column's dtype, or the files are of the other kind than the model takes.
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
EXIT_PREDICTION_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BAD_IMAGES = EXIT_BAD_INPUT

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


def _load_config(args, check_schema: bool = True):
    """The validated config, or None after printing why it cannot work."""
    from pipeline.config import ConfigError, load_config

    try:
        return load_config(args.config, _overrides(args), check_schema=check_schema)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return None


def _write_builtin_table(config) -> None:
    """Writes a built-in table's CSV files into its data folder when missing.

    Existing files are never replaced: the folder may hold data a person
    edited or brought, and that is what they asked to run on.
    """
    from components import tabular_data

    if config.data.dataset not in tabular_data.BUILTIN_NAMES:
        return
    paths = tabular_data.split_paths(config.data.data_dir).values()
    if not any(os.path.exists(path) for path in paths):
        tabular_data.write_builtin(config.data.dataset, config.data.data_dir)


def _run(args) -> int:
    from pipeline import local_runner, preflight, summary
    from pipeline.config import ConfigError, load_config
    from pipeline.pipeline import check_infra_validation_platform

    try:
        config = load_config(args.config, _overrides(args))
        check_infra_validation_platform(config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        preflight.check_output_folders(config)
    except preflight.OutputNotWritableError as error:
        print(f"error: output_dir: {error}", file=sys.stderr)
        return EXIT_CONFIG
    _write_builtin_table(config)
    result = local_runner.run(config)
    print("\n" + summary.render(result), flush=True)
    return _exit_code(result.outcome)


def _retrain(args) -> int:
    """Runs the pipeline when the data holds a span newer than the last trained."""
    from pipeline import retrain

    config = _load_config(args)
    if config is None:
        return EXIT_CONFIG
    try:
        spans = retrain.check(config)
    except retrain.NoSpansError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if not spans.has_new_span:
        print(
            f"Nothing new to train on: span {spans.newest_span} is the newest in "
            f"{config.data.data_dir}, and span {spans.last_trained_span} was "
            "trained already."
        )
        return 0
    print(
        f"Span {spans.newest_span} is new (last trained: "
        f"{spans.last_trained_span or 'none'}); running the pipeline.",
        flush=True,
    )
    return _run(args)


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


def _infer_schema(args) -> int:
    from components.errors import InputDataError
    from pipeline import infer_schema

    config = _load_config(args, check_schema=False)
    if config is None:
        return EXIT_CONFIG
    output_path = os.path.abspath(args.output or config.schema_file)
    try:
        _write_builtin_table(config)
        count = infer_schema.write_draft(config, output_path, args.overwrite)
    except (infer_schema.InferSchemaError, InputDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA
    print(
        f"Wrote a draft schema inferred from {count} rows to {output_path}\n"
        "Curate it (value ranges, string domains), then run the pipeline."
    )
    return 0


def _validate(args) -> int:
    from components.errors import InputDataError
    from pipeline import validate

    config = _load_config(args)
    if config is None:
        return EXIT_CONFIG
    output_dir = os.path.abspath(
        args.report_dir or os.path.join(config.output_dir, "validation")
    )
    try:
        _write_builtin_table(config)
        result = validate.validate_data(config, output_dir)
    except InputDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA
    with open(result.text_path) as stream:
        print(stream.read(), end="")
    print(f"Report: {result.html_path}")
    return EXIT_DATA if result.errors else 0


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

    config = _load_config(args)
    if config is None:
        return EXIT_CONFIG
    from pipeline import local_runner

    # The record the run itself wrote knows how it ended (a file that could not
    # be read, say); the metadata store alone does not.
    result = local_runner.read_latest(config) or summary.summarize(
        config, config.evaluation.metric
    )
    print(summary.render(result))
    return _exit_code(result.outcome)


def _kubeflow_spec(args, config) -> str:
    """The spec to send: --spec as given, or the pipeline compiled now."""
    from kubeflow import runner

    if getattr(args, "spec", None):
        return args.spec
    path = args.output or os.path.join(
        config.output_dir, "kubeflow", f"{config.pipeline_name}.yaml"
    )
    return runner.compile_pipeline(config, path)


def _parameters(args, config) -> dict:
    """Run-time parameters: the data folder, then any --param NAME=VALUE."""
    from kubeflow import runner

    values = {}
    if config.kubeflow.data_dir:
        values[runner.DATA_DIR_PARAMETER] = config.kubeflow.data_dir
    for item in getattr(args, "param", None) or []:
        name, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        values[name] = value
    return values


def _kubeflow(args) -> int:
    """compile, submit and schedule: the Kubeflow Pipelines commands."""
    from kubeflow import kfp_api, runner

    config = _load_config(args)
    if config is None:
        return EXIT_CONFIG
    try:
        if args.command == "schedule" and args.cron:
            kfp_api.validate_cron(args.cron)
        if args.command == "compile":
            path = _kubeflow_spec(args, config)
            print(f"Compiled for kubeflow.backend={config.kubeflow.backend}: {path}")
            return 0
        if args.command == "schedule" and (args.list or args.delete):
            client = kfp_api.make_client(config)
            if args.delete:
                kfp_api.delete_schedule(client, args.delete)
                print(f"Deleted recurring run {args.delete}")
            else:
                for recurring_run in kfp_api.list_schedules(client, config):
                    print(kfp_api.describe(recurring_run))
            return 0
        params = _parameters(args, config)
        spec = _kubeflow_spec(args, config)
        client = kfp_api.make_client(config)
        if args.command == "submit":
            run = kfp_api.submit(client, config, spec, params, args.run_name or "")
            print(f"Created run {run.run_id} of '{config.pipeline_name}' from {spec}")
        else:
            recurring_run = kfp_api.schedule(
                client, config, spec, args.cron, params, args.name or ""
            )
            print(
                f"Created recurring run {recurring_run.recurring_run_id}: "
                f"cron {args.cron}, one run at a time, no catch-up"
            )
    except (runner.CompileError, kfp_api.ScheduleError, ValueError) as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except kfp_api.api_errors() as error:
        print(
            f"error: Kubeflow Pipelines API at {config.kubeflow.host} failed: "
            f"{kfp_api.short_reason(error)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _add_kubeflow(add) -> None:
    for name, help_text in (
        ("compile", "compile the pipeline for Kubeflow Pipelines to a YAML spec"),
        ("submit", "upload the spec to kubeflow.host and create a run"),
        (
            "schedule",
            "create (--cron), list (--list) or delete (--delete ID) recurring runs",
        ),
    ):
        command = add(name, _kubeflow, help_text)
        command.add_argument(
            "--output",
            help="where to write the spec (default: "
            "<output_dir>/kubeflow/<pipeline_name>.yaml)",
        )
        if name == "compile":
            continue
        command.add_argument("--spec", help="send this compiled spec as it is")
        command.add_argument(
            "--param",
            action="append",
            metavar="NAME=VALUE",
            help="a run-time parameter of the spec, e.g. data_dir=gs://b/d",
        )
        if name == "submit":
            command.add_argument("--run-name", help="the run's display name")
            continue
        action = command.add_mutually_exclusive_group(required=True)
        action.add_argument(
            "--cron",
            help="six fields, seconds first: '0 0 2 * * *' is 02:00 every day",
        )
        action.add_argument(
            "--list", action="store_true", help="list the experiment's recurring runs"
        )
        action.add_argument("--delete", metavar="ID", help="delete a recurring run")
        command.add_argument("--name", help="the recurring run's display name")


def _report(args) -> int:
    from pipeline import report

    config = _load_config(args)
    if config is None:
        return EXIT_CONFIG
    try:
        path = report.rebuild(config, args.run)
    except report.ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Report: {path}")
    return 0


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
    from components import data_spec

    config = _load_config(args)
    if config is None:
        return EXIT_CONFIG
    if config.data_spec.kind != data_spec.IMAGE:
        print(
            "config error: lr-sweep trains image presets on IDX files; "
            f"{config.data.dataset} is a table. Set lr_finder.enabled=true and "
            "run the pipeline to choose a table model's learning rate.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from pipeline import lr_sweep

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


def _predict(args) -> int:
    from pipeline import client

    try:
        loaded = client.load_files(args.files, args.limit)
    except client.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        backend = client.open_backend(
            rest=args.rest,
            grpc=args.grpc,
            local=args.local,
            model_name=args.model_name or client.DEFAULT_MODEL_NAME,
            model_version=args.model_version,
            timeout_s=args.timeout_s or client.DEFAULT_TIMEOUT_S,
        )
        with client.Client(
            backend, args.signature, args.batch_size or client.DEFAULT_BATCH_SIZE
        ) as predictor:
            started = time.monotonic()
            if isinstance(loaded, client.LoadedTable):
                result = predictor.predict_table(loaded)
            else:
                result = predictor.predict(loaded.images)
            seconds = time.monotonic() - started
    except client.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except client.PredictionError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_PREDICTION_FAILED
    for source, prediction in zip(loaded.sources, result.predictions, strict=True):
        print(client.format_prediction(result, prediction, source, args.top))
    print(client.summary_line(result, loaded.files, backend, seconds))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _host_port(text: str) -> str:
    host, _, port = text.rpartition(":")
    if "://" in text or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} should be HOST:PORT, e.g. 127.0.0.1:8500"
        )
    return text


def _add_predict(commands) -> None:
    # Defaults live in pipeline.client, which imports TensorFlow; they are
    # filled in by _predict so that building the parser stays fast.
    predict = commands.add_parser(
        "predict",
        help="classify images or table rows with a served model (TF Serving REST "
        "or gRPC) or a SavedModel",
        description="Prints one line per image or table row: source (FILE, "
        "FILE[i] or FILE:LINE), top class, probability (tab-separated), then a "
        "summary line.",
    )
    predict.set_defaults(handler=_predict)
    predict.add_argument(
        "-v", "--verbose", action="store_true", help="show all library logs"
    )
    predict.add_argument(
        "files",
        nargs="+",
        metavar="FILES",
        help="for an image model: IDX (gzip or not), PNG, JPEG or .npy files of "
        "28x28 grayscale images, raw pixels 0..255; for a table model: .csv files "
        "with a header naming (at least) the model's feature columns",
    )
    target = predict.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--rest", metavar="URL", help="TF Serving REST API, e.g. http://127.0.0.1:8501"
    )
    target.add_argument(
        "--grpc",
        metavar="HOST:PORT",
        type=_host_port,
        help="TF Serving gRPC API, e.g. 127.0.0.1:8500",
    )
    target.add_argument(
        "--local",
        metavar="PATH",
        help="a SavedModel folder, or a serving folder of integer versions "
        "(the highest is loaded) run in this process",
    )
    predict.add_argument(
        "--model-name",
        metavar="NAME",
        help="model name on the server (default: fashion_mnist)",
    )
    predict.add_argument(
        "--model-version",
        type=_positive_int,
        metavar="N",
        help="ask this version (default: the latest the server serves)",
    )
    predict.add_argument(
        "--signature",
        metavar="NAME",
        help="default: serving_images for an image model, serving_raw for a "
        "table model; also serving_png (images) and serving_default (either)",
    )
    predict.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="images or rows per request (default: 64)",
    )
    predict.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="read only the first N images of each IDX file, or rows of each CSV file",
    )
    predict.add_argument(
        "--timeout-s",
        type=_positive_float,
        metavar="S",
        help="seconds to wait for each answer (default: 30)",
    )
    predict.add_argument(
        "--top",
        type=_positive_int,
        default=1,
        metavar="K",
        help="print the K likeliest classes of each image or row (default: 1)",
    )


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
    add(
        "retrain",
        _retrain,
        "run the pipeline only when the data holds a span newer than the last "
        "trained one (safe for cron)",
    )
    sweep = add(
        "lr-sweep",
        _lr_sweep,
        "per-epoch learning-rate sweep (1e-3 * 10**(epoch/20)) with plain Keras",
    )
    sweep.add_argument("--sweep-preset", default="seed_dense", help="model preset")
    sweep.add_argument("--sweep-epochs", type=int, default=40, help="sweep epochs")
    infer = add(
        "infer-schema",
        _infer_schema,
        "write a draft schema for a table's data, to curate before training",
    )
    infer.add_argument(
        "--output", help="where to write it (default: the config's schema path)"
    )
    infer.add_argument(
        "--overwrite", action="store_true", help="replace an existing schema file"
    )
    check = add(
        "validate",
        _validate,
        "check a data folder against the schema without training (exit 3 on ERROR)",
    )
    check.add_argument(
        "--report-dir",
        help="where to write anomalies.txt and validation.html "
        "(default: <output_dir>/validation)",
    )
    add("show-config", _show_config, "print the effective config as YAML")
    _add_kubeflow(add)
    add("summary", _show_summary, "print the summary of the latest run")
    report = add("report", _report, "write the HTML report of the latest run again")
    report.add_argument(
        "--run", metavar="RUN_ID", help="a given run's id instead of the latest"
    )
    _add_predict(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_libraries(args.verbose)
    _configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
