"""The Kubeflow runner: the compiled spec as the KFP SDK reads it, the backend
check, the task-graph snapshot, and the submit and schedule commands against a
stand-in KFP API server on loopback.

Refresh the snapshot after a deliberate change of the pipeline's graph:
    UPDATE_TASK_GRAPH_SNAPSHOT=1 .venv/bin/python -m pytest -q \
        tests/test_kubeflow.py -k snapshot
"""

import os
import pathlib
import socket

import pytest
import yaml

from kubeflow import kfp_api, runner
from pipeline import cli
from pipeline.config import load_config
from tests.kfp_server_double import KfpServerDouble

SNAPSHOT = pathlib.Path(__file__).parent / "kubeflow_task_graph.txt"
IMAGE = "registry.example/kpipe:test"
CLUSTER_DATA_DIR = "/mnt/data/circles"
CLUSTER_SETTINGS = [
    "kubeflow.pipeline_root=gs://bucket/root",
    f"kubeflow.image={IMAGE}",
    "kubeflow.cpu=1500m",
    "kubeflow.memory=4G",
    f"kubeflow.data_dir={CLUSTER_DATA_DIR}",
    "kubeflow.beam_pipeline_args=[--runner=DataflowRunner, --region=europe-west1]",
]
STEPS = {
    "ExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomalyGate",
    "DriftGate",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "VersionedPusher",
}


def cluster_config(tmp_path, *extra):
    return load_config(
        "configs/circles.yaml",
        [f"output_dir={tmp_path}", *CLUSTER_SETTINGS, *extra],
        environ={},
    )


def host_args(tmp_path, host, *extra):
    """The circles job's command-line flags for a KFP host, then `extra`."""
    return [
        "--config",
        "configs/circles.yaml",
        "--output-dir",
        str(tmp_path),
        "--set",
        f"kubeflow.host={host}",
        *extra,
    ]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kubeflow")
    config = cluster_config(folder)
    path = runner.compile_pipeline(config, str(folder / "circles.yaml"))
    return path, runner.load_spec(path)


def executors(spec):
    return {
        name: spec.deployment_spec["executors"][
            spec.components[task.component_ref.name].executor_label
        ]
        for name, task in spec.root.dag.tasks.items()
    }


def test_every_step_runs_in_the_configured_image_with_its_resources(compiled):
    _, spec = compiled
    found = executors(spec)
    assert set(found) == STEPS
    for name, executor in found.items():
        container = executor["container"]
        assert container["image"] == IMAGE, name
        assert container["resources"]["cpuLimit"] == 1.5, name
        assert container["resources"]["memoryLimit"] == 4.0, name


def test_the_beam_args_reach_the_beam_steps(compiled):
    _, spec = compiled
    args = executors(spec)["StatisticsGen"]["container"]["args"]
    assert "--runner=DataflowRunner" in args
    assert "--region=europe-west1" in args


def test_the_dag_edges(compiled):
    _, spec = compiled
    tasks = spec.root.dag.tasks
    assert set(tasks["Trainer"].dependent_tasks) >= {"AnomalyGate", "DriftGate"}
    assert "latest_blessed_model_resolver" in tasks["Evaluator"].dependent_tasks
    assert set(tasks["VersionedPusher"].dependent_tasks) == {"Evaluator", "Trainer"}
    assert list(tasks["ExampleGen"].dependent_tasks) == []


def test_the_data_folder_is_a_run_time_parameter(compiled):
    path, spec = compiled
    parameter = spec.root.input_definitions.parameters[runner.DATA_DIR_PARAMETER]
    assert parameter.default_value.string_value == CLUSTER_DATA_DIR
    with open(path) as stream:
        assert yaml.safe_load(stream)["pipelineInfo"]["name"] == "circles"


def test_open_source_kfp_gets_only_container_executors(compiled):
    _, spec = compiled
    assert set(runner.executor_kinds(spec).values()) == {"container"}


def test_the_task_graph_matches_the_snapshot(compiled):
    _, spec = compiled
    graph = runner.task_graph(spec)
    if os.environ.get("UPDATE_TASK_GRAPH_SNAPSHOT"):
        SNAPSHOT.write_text(graph)
    assert graph == SNAPSHOT.read_text(), (
        "the compiled task graph changed; review the diff and refresh the "
        "snapshot with UPDATE_TASK_GRAPH_SNAPSHOT=1 (see this file's docstring)"
    )


def test_a_resolver_is_refused_for_open_source_kfp_naming_the_node(tmp_path):
    config = cluster_config(tmp_path, "kubeflow.backend=vertex")
    path = runner.compile_pipeline(config, str(tmp_path / "vertex.yaml"))
    spec = runner.load_spec(path)
    # TFX splits the latest-blessed-model Resolver into two resolver tasks.
    resolvers = {
        task for task, kind in runner.executor_kinds(spec).items() if kind == "resolver"
    }
    assert resolvers == {
        "latest_blessed_model_resolver-model-blessing-resolver",
        "latest_blessed_model_resolver-model-resolver",
    }
    with pytest.raises(runner.CompileError, match="latest_blessed_model_resolver"):
        runner.check_backend(spec, "kfp")


def test_compile_needs_a_pipeline_root(tmp_path, capsys):
    code = cli.main(
        ["compile", "--config", "configs/circles.yaml", "--output-dir", str(tmp_path)]
    )
    assert code == cli.EXIT_CONFIG
    assert "kubeflow.pipeline_root" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cron, message",
    [
        ("0 2 * * *", "5 fields, expected 6.*write '0 0 2 \\* \\* \\*'"),
        ("0 0 25 * * *", "hours field: 25 is outside 0-23"),
        ("61 0 2 * * *", "seconds field: 61 is outside 0-59"),
        ("0 0 2 * FOO *", "month field: 'FOO' is not a number"),
        ("0 */0 * * * *", "minutes field: a step of 0"),
        ("0 0 2 ? * MON-SUN", "day of week field: range MON-SUN runs backwards"),
    ],
)
def test_a_wrong_cron_names_the_field(cron, message):
    with pytest.raises(kfp_api.ScheduleError, match=message):
        kfp_api.validate_cron(cron)


def test_six_field_crons_pass():
    for cron in (
        "0 0 2 * * *",
        "0 */15 * * * MON-FRI",
        "30 0 9 ? * 2-6",
        "0 0 0 1 JAN *",
    ):
        assert kfp_api.validate_cron(cron) == cron


def test_schedule_submit_list_and_delete_through_kfp_client(compiled, tmp_path, capsys):
    spec_path, _ = compiled
    with KfpServerDouble() as server:
        common = host_args(
            tmp_path,
            server.url,
            *[item for setting in CLUSTER_SETTINGS for item in ("--set", setting)],
            "--spec",
            spec_path,
        )
        assert cli.main(["schedule", *common, "--cron", "0 0 2 * * *"]) == 0
        assert cli.main(["submit", *common, "--param", "data_dir=/mnt/other"]) == 0
        capsys.readouterr()
        assert cli.main(["schedule", *common, "--list"]) == 0
        listed = capsys.readouterr().out
        (created,) = server.calls("POST", "/recurringruns")
        recurring_id = server.recurring_runs and next(iter(server.recurring_runs))
        assert cli.main(["schedule", *common, "--delete", recurring_id]) == 0

    # The spec went up as YAML, first as a pipeline, then as a new version.
    assert len(server.calls("POST", "/pipelines/upload")) == 1
    assert len(server.calls("POST", "/pipelines/upload_version")) == 1
    with open(spec_path, "rb") as stream:
        assert server.uploaded_files == [stream.read()] * 2
    assert yaml.safe_load(server.uploaded_files[0])["pipelineInfo"]["name"] == "circles"

    body = created.body
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert int(body["max_concurrency"]) == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["runtime_config"]["parameters"] == {"data_dir": CLUSTER_DATA_DIR}
    assert body["pipeline_version_reference"]["pipeline_id"] == "pipeline-1"

    (run,) = server.calls("POST", "/runs")
    assert run.body["runtime_config"]["parameters"] == {"data_dir": "/mnt/other"}
    assert (
        run.body["pipeline_version_reference"]["pipeline_version_id"]
        != (body["pipeline_version_reference"]["pipeline_version_id"])
    )
    assert recurring_id in listed and "cron 0 0 2 * * *" in listed
    assert server.calls("DELETE", f"/recurringruns/{recurring_id}")
    assert server.recurring_runs == {}


def test_a_bad_cron_sends_nothing(compiled, tmp_path, capsys):
    spec_path, _ = compiled
    with KfpServerDouble() as server:
        code = cli.main(
            [
                "schedule",
                *host_args(tmp_path, server.url, "--spec", spec_path),
                "--cron",
                "0 2 * * *",
            ]
        )
    assert code == cli.EXIT_CONFIG
    assert "seconds first" in capsys.readouterr().err
    assert server.requests == []


def test_tfrecord_data_compiles_for_kfp_and_a_driver_hook_is_refused(tmp_path):
    """The checked TFRecord ExampleGen finds its span in the executor, so it
    compiles to a plain container; a driver hook, which only Vertex runs, is
    refused on open-source KFP with the node named."""
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(
        'feature { name: "label" type: INT } feature { name: "x" type: FLOAT }\n'
    )
    (tmp_path / "data").mkdir()
    settings = [
        f"output_dir={tmp_path}",
        "pipeline_name=records",
        "data.dataset=custom",
        "data.format=tfrecord",
        f"data.data_dir={tmp_path / 'data'}",
        "data.num_classes=2",
        "data.features=[x:float]",
        f"data.schema_path={schema}",
        "training.preset=seed_nonlinear",
        "kubeflow.pipeline_root=gs://bucket/root",
    ]
    config = load_config(overrides=settings, environ={})
    with pytest.raises(runner.CompileError, match="kubeflow.schema_uri"):
        runner.compile_pipeline(config, str(tmp_path / "records.yaml"))
    settings.append("kubeflow.schema_uri=gs://bucket/schemas/records.pbtxt")
    config = load_config(overrides=settings, environ={})
    output = tmp_path / "records.yaml"
    kfp_spec = runner.load_spec(runner.compile_pipeline(config, str(output)))
    assert runner.executor_kinds(kfp_spec)["ExampleGen"] == "container"
    deployment = kfp_spec.deployment_spec
    executor = deployment["executors"][
        kfp_spec.components[
            kfp_spec.root.dag.tasks["ExampleGen"].component_ref.name
        ].executor_label
    ]
    executor["container"]["lifecycle"] = {"preCacheCheck": {"command": ["driver"]}}
    assert runner.executor_kinds(kfp_spec)["ExampleGen"] == "container+pre_cache_check"
    with pytest.raises(runner.CompileError, match=r"ExampleGen \(container\+pre_cache"):
        runner.check_backend(kfp_spec, "kfp")
    runner.check_backend(kfp_spec, "vertex")


def test_an_unreachable_host_is_one_line_and_exit_1(tmp_path, capsys):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    host = f"http://127.0.0.1:{closed_port}"
    code = cli.main(["schedule", *host_args(tmp_path, host, "--list")])
    error = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert f"error: Kubeflow Pipelines API at {host} failed:" in error
    assert "Connection refused" in error
    assert "Traceback" not in error and "object at 0x" not in error
