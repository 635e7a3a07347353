"""Compiles the pipeline for Kubeflow Pipelines v2 with TFX's KubeflowV2DagRunner.

The spec is built from the same `create_pipeline` as a local run, given a
ClusterTarget: the paths the pods see, the cluster's metadata store, the image
and its resources, and the cluster's Beam args. It is written as YAML, the
form the Kubeflow Pipelines API takes, and checked against the chosen backend:
open-source KFP runs container and importer executors only, so a resolver
executor or a container with a pre-cache-check hook (both Vertex-only) is
refused at compile time, naming the node.
"""

from __future__ import annotations

import os
import re
import tempfile

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.types import standard_component_specs as specs

from components import metadata_lookup
from kubeflow import cluster_steps
from pipeline import pipeline as pipeline_module
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.targets import KFP_BACKEND, VERTEX_BACKEND, ClusterTarget

# Where kubeflow/Dockerfile puts the project inside the image.
IMAGE_PROJECT_DIR = "/pipeline"
IMAGE_SCHEMAS_FOLDER = "schemas"
DATA_DIR_PARAMETER = "data_dir"
# Executor kinds each backend runs.
BACKEND_EXECUTORS = {
    KFP_BACKEND: ("container", "importer"),
    VERTEX_BACKEND: ("container", "container+pre_cache_check", "importer", "resolver"),
}
_MEMORY_UNITS_GB = {
    "": 1e-9,
    "K": 1e-6,
    "M": 1e-3,
    "G": 1.0,
    "T": 1e3,
    "Ki": 1024 / 1e9,
    "Mi": 1024**2 / 1e9,
    "Gi": 1024**3 / 1e9,
    "Ti": 1024**4 / 1e9,
}


class CompileError(ValueError):
    """The pipeline cannot be compiled for, or run on, the chosen backend."""


def cpu_count(text: str) -> float:
    """Kubernetes CPU text ("2", "0.5", "500m") as a number of CPUs."""
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_gb(text: str) -> float:
    """Kubernetes memory text ("8G", "512Mi") in GB, as the spec takes it."""
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", text).groups()
    return round(float(number) * _MEMORY_UNITS_GB[unit], 3)


def image_schema_path(schema_file: str) -> str:
    """The schema's path inside the image, or the URI it already is.

    A schema under the project folder is copied into the image by the
    Dockerfile; any other schema must be a URI the pods can read.
    """
    if "://" in schema_file:
        return schema_file
    relative = os.path.relpath(schema_file, PROJECT_ROOT)
    if not relative.startswith(IMAGE_SCHEMAS_FOLDER + os.sep):
        raise CompileError(
            f"data.schema_path: {schema_file} is not under the project's "
            f"{IMAGE_SCHEMAS_FOLDER}/ folder, so the image does not hold it; put "
            "it there and rebuild the image, or set kubeflow.schema_uri to where "
            "the pods can read it"
        )
    return f"{IMAGE_PROJECT_DIR}/{relative}"


def cluster_target(config: PipelineConfig) -> ClusterTarget:
    """The paths and services the pods see, from the config's kubeflow section."""
    kubeflow = config.kubeflow
    if not kubeflow.pipeline_root:
        raise CompileError(
            "kubeflow.pipeline_root: required to compile; gs://..., s3://... or "
            "the path of a volume mounted in every pod"
        )
    root = kubeflow.pipeline_root.rstrip("/")
    return ClusterTarget(
        backend=kubeflow.backend,
        pipeline_root=f"{root}/pipelines/{config.pipeline_name}",
        data_dir=kubeflow.data_dir or config.data.data_dir,
        serving_model_dir=kubeflow.serving_model_dir
        or f"{root}/serving_model/{config.pipeline_name}",
        schema_file=kubeflow.schema_uri or image_schema_path(config.schema_file),
        beam_pipeline_args=tuple(kubeflow.beam_pipeline_args),
        metadata_connection=metadata_lookup.connection_text(
            grpc_host=kubeflow.metadata_grpc_host,
            grpc_port=kubeflow.metadata_grpc_port,
        ),
    )


def cluster_pipeline(config: PipelineConfig):
    """The TFX pipeline for the cluster: the same steps, cluster paths and image."""

    target = cluster_target(config)
    tfx_pipeline = pipeline_module.create_pipeline(config, target)
    resources = (
        pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
            cpu_limit=cpu_count(config.kubeflow.cpu),
            memory_limit=memory_gb(config.kubeflow.memory),
        )
    )
    for node in tfx_pipeline.components:
        if not isinstance(node, base_component.BaseComponent):
            continue
        node.platform_config = resources
        executor_class = getattr(node.executor_spec, "executor_class", None)
        if node.id == pipeline_module.EXAMPLE_GEN:
            # A run-time parameter, so a run can read another data folder.
            node.exec_properties[specs.INPUT_BASE_KEY] = data_types.RuntimeParameter(
                name=DATA_DIR_PARAMETER, ptype=str, default=target.data_dir
            )
            resolving = cluster_steps.SPAN_RESOLVING_EXECUTORS.get(executor_class)
            if resolving is not None:
                node.executor_spec = executor_spec.BeamExecutorSpec(resolving)
        if node.id == pipeline_module.EVALUATOR and target.backend == KFP_BACKEND:
            node.executor_spec = executor_spec.BeamExecutorSpec(
                cluster_steps.OptionalBaselineEvaluatorExecutor
            )
    return tfx_pipeline


def executor_kinds(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, str]:
    """Executor kind of every task: container, importer, resolver, or
    container+pre_cache_check (a driver hook only Vertex runs)."""
    deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec), deployment)
    kinds = {}
    for task_name, task in spec.root.dag.tasks.items():
        component = spec.components[task.component_ref.name]
        executor = deployment.executors[component.executor_label]
        kind = executor.WhichOneof("spec")
        if kind == "container" and executor.container.lifecycle.HasField(
            "pre_cache_check"
        ):
            kind = "container+pre_cache_check"
        kinds[task_name] = kind
    return kinds


def check_backend(spec: pipeline_spec_pb2.PipelineSpec, backend: str) -> None:
    """Refuses a spec holding an executor kind the backend cannot run."""
    allowed = BACKEND_EXECUTORS[backend]
    refused = {
        task: kind for task, kind in executor_kinds(spec).items() if kind not in allowed
    }
    if refused:
        names = ", ".join(f"{task} ({kind})" for task, kind in sorted(refused.items()))
        raise CompileError(
            f"kubeflow.backend={backend} runs only {', '.join(allowed)} executors; "
            f"these nodes compile to others: {names}. "
            + (
                "Use kubeflow.backend=vertex, or a step that does the same in a "
                "container."
                if backend == KFP_BACKEND
                else ""
            )
        )


def load_spec(path: str) -> pipeline_spec_pb2.PipelineSpec:
    """A compiled YAML file parsed into the KFP SDK's PipelineSpec proto."""
    with open(path) as stream:
        document = yaml.safe_load(stream)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(document, spec)
    return spec


def compile_pipeline(config: PipelineConfig, output_path: str) -> str:
    """Compiles the pipeline to a YAML spec at output_path, checked for the backend.

    Nothing is written when the check fails. Returns the path written.
    """
    if not output_path.endswith((".yaml", ".yml")):
        raise CompileError(f"{output_path}: the spec is YAML; end the name in .yaml")
    runner_config = kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
        default_image=config.kubeflow.image,
        # Schema 2.1 types parameters as the KFP SDK 2.x and backend expect.
        use_pipeline_spec_2_1=True,
    )
    job = kubeflow_v2_dag_runner.KubeflowV2DagRunner(runner_config).run(
        cluster_pipeline(config),
        parameter_values={DATA_DIR_PARAMETER: cluster_target(config).data_dir},
        write_out=False,
    )
    document = job["pipelineSpec"]
    # TFX keeps run-time parameter defaults in the job, not in the spec; the
    # spec uploaded to KFP carries them so that a run without them works.
    parameters = document["root"].get("inputDefinitions", {}).get("parameters", {})
    for name, value in job.get("runtimeConfig", {}).get("parameterValues", {}).items():
        parameters[name]["defaultValue"] = value
        parameters[name]["isOptional"] = True
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(document, spec)
    check_backend(spec, config.kubeflow.backend)
    output_dir = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=output_dir, suffix=".yaml", delete=False
    ) as stream:
        stream.write(
            f"# Pipeline '{config.pipeline_name}' for "
            f"kubeflow.backend={config.kubeflow.backend}, compiled by kpipe compile\n"
        )
        yaml.safe_dump(document, stream, sort_keys=True)
    os.replace(stream.name, output_path)
    return output_path


def task_graph(spec: pipeline_spec_pb2.PipelineSpec) -> str:
    """The task graph as short sorted lines, for a readable diff in review.

    One line per task: its name, executor kind, the tasks it waits for, and
    its container's entry class; then the run-time parameters.
    """
    deployment = json_format.MessageToDict(spec.deployment_spec)
    kinds = executor_kinds(spec)
    lines = []
    for name, task in sorted(spec.root.dag.tasks.items()):
        component = spec.components[task.component_ref.name]
        executor = deployment["executors"][component.executor_label]
        args = executor.get("container", {}).get("args", [])
        entry = (
            args[args.index("--executor_class_path") + 1]
            if ("--executor_class_path" in args)
            else "-"
        )
        after = ",".join(sorted(task.dependent_tasks)) or "-"
        lines.append(f"{name}  kind={kinds[name]}  after={after}  entry={entry}")
    for name, parameter in sorted(spec.root.input_definitions.parameters.items()):
        kind = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(
            parameter.parameter_type
        )
        lines.append(f"parameter {name}: {kind}")
    return "\n".join(lines) + "\n"
