"""`create_pipeline`: the one definition of the pipeline, for every runner.

ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> AnomalyGate
-> (LearningRateFinder) -> Trainer -> (latest blessed model) Resolver -> Evaluator
-> (InfraValidator) -> Pusher.
Runners differ only in how they run what this returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.io import fileio

from components import (
    anomaly_gate,
    csv_example_gen,
    data_spec,
    drift_gate,
    features,
    idx_example_gen,
    lr_finder,
    lr_finder_component,
    metadata_lookup,
    models,
    pusher,
    schedules,
    signatures,
    span_window,
    tabular_models,
    tfrecord_example_gen,
    trainer,
    versioning,
)
from pipeline import beam_args
from pipeline.config import ConfigError, PipelineConfig
from pipeline.targets import KFP_BACKEND, ClusterTarget

SPAN_FOLDER = "span-{SPAN}"
TRAINER_MODULE = "components.trainer.run_fn"

# Node ids, named here once; the run summary looks steps up by them.
EXAMPLE_GEN = "ExampleGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
LR_FINDER = "LearningRateFinder"
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
INFRA_VALIDATOR = "InfraValidator"
DRIFT_GATE = "DriftGate"
SPAN_WINDOW = "SpanWindow"
PUSHER = "VersionedPusher"
SERVED_VERSIONS_KEY = "served_versions"


def staged_schema_file(config: PipelineConfig) -> str:
    """Copies the curated schema to a path named by its content.

    ImportSchemaGen's cache is keyed on the schema's path, so an edited schema
    at the same path would be ignored; a new content gets a new path.
    """
    with fileio.open(config.schema_file, "rb") as stream:
        content = stream.read()
    folder = os.path.join(config.pipeline_root, "curated_schemas")
    staged = os.path.join(
        folder, f"schema-{hashlib.sha256(content).hexdigest()[:16]}.pbtxt"
    )
    if not fileio.exists(staged):
        fileio.makedirs(folder)
        with fileio.open(staged, "wb") as stream:
            stream.write(content)
    return staged


def input_config(
    data_dir: str, data_format: str = data_spec.IDX, has_spans: bool | None = None
) -> tfx.proto.Input:
    """Train/eval patterns for the format; span folders when data_dir has them.

    IDX: the data set's own train-* and t10k-* files. CSV and TFRecord: the
    files in train/ and eval/ folders. has_spans=None looks at data_dir.
    """
    if has_spans is None:
        has_spans = bool(fileio.glob(os.path.join(data_dir, "span-*")))
    prefix = SPAN_FOLDER + "/" if has_spans else ""
    if data_format == data_spec.IDX:
        patterns = (
            f"{features.TRAIN_FILE_PREFIX}-*-ubyte*",
            f"{features.EVAL_FILE_PREFIX}-*-ubyte*",
        )
    elif data_format == data_spec.CSV:
        patterns = (f"{features.TRAIN_SPLIT}/*.csv", f"{features.EVAL_SPLIT}/*.csv")
    else:
        patterns = (f"{features.TRAIN_SPLIT}/*", f"{features.EVAL_SPLIT}/*")
    return tfx.proto.Input(
        splits=[
            tfx.proto.Input.Split(name=split, pattern=prefix + pattern)
            for split, pattern in zip(
                (features.TRAIN_SPLIT, features.EVAL_SPLIT), patterns, strict=True
            )
        ]
    )


def make_example_gen(config: PipelineConfig, cluster: ClusterTarget | None = None):
    """The ExampleGen for the data's format; on a cluster, data is in span folders."""
    spec = config.data_spec
    data = config.data
    if cluster is not None:
        data = dataclasses.replace(data, data_dir=cluster.data_dir)
    splits = input_config(
        data.data_dir, spec.format, has_spans=True if cluster else None
    )
    if spec.format == data_spec.IDX:
        return idx_example_gen.IdxExampleGen(
            input_base=data.data_dir,
            input_config=splits,
            max_examples_per_split=data.max_examples_per_split,
        ).with_id(EXAMPLE_GEN)
    if spec.format == data_spec.CSV:
        return csv_example_gen.TypedCsvExampleGen(
            input_base=data.data_dir,
            input_config=splits,
            spec=spec,
            max_examples_per_split=data.max_examples_per_split,
        ).with_id(EXAMPLE_GEN)
    return tfrecord_example_gen.CheckedImportExampleGen(
        input_base=data.data_dir, input_config=splits, spec=spec
    ).with_id(EXAMPLE_GEN)


# Reported for every two-class model, on the positive class's probability.
BINARY_REPORTED_METRICS = (
    "BinaryAccuracy",
    "AUC",
    "Precision",
    "Recall",
    "Calibration",
)
POSITIVE_CLASS_ID = 1
CONFUSION_MATRIX_PLOT = "MultiClassConfusionMatrixPlot"


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """The configured metric with an absolute bound and a no-regression bound.

    Two-class models also get binary accuracy, AUC, precision, recall and
    calibration, computed on the served probability of class 1.
    """
    evaluation = config.evaluation
    spec = config.data_spec
    slicing_specs = [tfma.SlicingSpec()]
    if evaluation.per_class_slices:
        slicing_specs.append(tfma.SlicingSpec(feature_keys=[spec.label_key]))
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": evaluation.lower_bound}
        ),
        # A tiny negative slack so that a model exactly as good as the baseline passes.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -evaluation.max_regression - 1e-10},
        ),
    )

    def metric(class_name: str) -> tfma.MetricConfig:
        if class_name != evaluation.metric:
            return tfma.MetricConfig(class_name=class_name)
        # Thresholds judge the overall slice; per-class slices are reported.
        return tfma.MetricConfig(
            class_name=class_name,
            per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()], threshold=threshold
                )
            ],
        )

    binary_names = BINARY_REPORTED_METRICS if spec.binary else ()
    metrics_specs = [
        tfma.MetricsSpec(
            metrics=[
                metric(name)
                for name in (evaluation.metric, "ExampleCount")
                if name not in binary_names
            ]
            # Counts of (true class, top predicted class) for the run report.
            + [tfma.MetricConfig(class_name=CONFUSION_MATRIX_PLOT)]
        )
    ]
    if binary_names:
        metrics_specs.append(
            tfma.MetricsSpec(
                metrics=[metric(name) for name in binary_names],
                binarize=tfma.BinarizationOptions(
                    class_ids={"values": [POSITIVE_CLASS_ID]}
                ),
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=signatures.SERVING_DEFAULT,
                label_key=spec.label_key,
                prediction_key=signatures.PROBABILITIES_OUTPUT,
            )
        ],
        slicing_specs=slicing_specs,
        metrics_specs=metrics_specs,
    )


def serving_spec(config: PipelineConfig) -> tfx.proto.ServingSpec:
    """The TF Serving image and platform InfraValidator starts the model in."""
    serving = config.serving
    spec = tfx.proto.ServingSpec(
        tensorflow_serving=tfx.proto.TensorFlowServing(
            image_name=serving.image, tags=[serving.image_tag]
        ),
        model_name=config.pipeline_name,
    )
    if serving.platform == "kubernetes":
        spec.kubernetes.CopyFrom(tfx.proto.KubernetesConfig())
    else:
        spec.local_docker.CopyFrom(tfx.proto.LocalDockerConfig())
    return spec


def check_infra_validation_platform(config: PipelineConfig) -> None:
    """Refuses a run whose InfraValidator could not start a server.

    Out of the box, InfraValidator that cannot reach its platform marks the
    model not blessed, and the Pusher then skips the push without an error;
    this check fails the run before anything runs, and says why.

    Raises:
      ConfigError: InfraValidator is on and its platform is not reachable.
    """
    serving = config.serving
    if not serving.infra_validation:
        return
    if serving.platform == "kubernetes":
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ConfigError(
                "serving.infra_validation: the kubernetes platform starts TF "
                "Serving as a pod and works only from inside the cluster "
                "(KUBERNETES_SERVICE_HOST is not set). Run the pipeline on "
                "Kubeflow, use serving.platform=docker, or set "
                "serving.infra_validation=false."
            )
        return
    import docker  # Imported here: only this option needs the Docker client.

    try:
        docker.from_env(timeout=5).ping()
    except docker.errors.DockerException as error:
        raise ConfigError(
            "serving.infra_validation: no Docker engine is reachable "
            f"({error}). Start Docker (or set DOCKER_HOST), or set "
            "serving.infra_validation=false to push without it."
        ) from None


def metadata_connection(
    config: PipelineConfig, cluster: ClusterTarget | None = None
) -> str:
    """The metadata store the look-up steps query, as connection text."""
    if cluster is not None:
        return cluster.metadata_connection
    return metadata_lookup.connection_text(sqlite_path=config.metadata_path)


def baseline_node(config: PipelineConfig, cluster: ClusterTarget | None = None):
    """The step whose `model` output is the latest blessed model, if any.

    TFX's Resolver, except on open-source Kubeflow Pipelines, which cannot run
    a resolver executor: there a container step queries the metadata store.
    """
    if cluster is not None and cluster.backend == KFP_BACKEND:
        from kubeflow import cluster_steps  # Only cluster pipelines need it.

        return cluster_steps.LatestBlessedModel(
            metadata_connection=cluster.metadata_connection,
            pipeline_name=config.pipeline_name,
        ).with_id(BASELINE_RESOLVER)
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BASELINE_RESOLVER)


def create_pipeline(
    config: PipelineConfig, cluster: ClusterTarget | None = None
) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline described by a validated config.

    Args:
      config: the validated config.
      cluster: where a Kubeflow run's pods find data, schema and metadata;
        None builds the local pipeline.
    """
    example_gen = make_example_gen(config, cluster)
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=cluster.schema_file if cluster else staged_schema_file(config)
    )
    # With the schema, a label the schema calls categorical gets value counts:
    # the train/eval skew check and the span-to-span drift check compare them.
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
    ).with_id(EXAMPLE_VALIDATOR)
    gate = anomaly_gate.AnomalyGate(
        anomalies=example_validator.outputs["anomalies"],
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
    )

    training_examples = example_gen.outputs["examples"]
    window = None
    if config.retraining.span_window > 1:
        window = span_window.SpanWindow(
            examples=example_gen.outputs["examples"],
            span_count=config.retraining.span_window,
            metadata_connection=metadata_connection(config, cluster),
            pipeline_name=config.pipeline_name,
        ).with_id(SPAN_WINDOW)
        training_examples = window.outputs["window"]

    settings = trainer.TrainingSettings(
        preset=config.training.preset,
        epochs=config.training.epochs,
        batch_size=config.training.batch_size,
        seed=config.training.seed,
        schedule=config.schedule_spec(),
        data=config.data_spec,
        optimizer=config.training.optimizer,
        distribution_strategy=config.training.distribution_strategy,
    )
    trainer_code_version = versioning.source_digest(
        trainer, models, tabular_models, schedules, signatures, features, data_spec
    )
    finder = None
    if config.lr_finder.enabled:
        finder = lr_finder_component.LearningRateFinder(
            examples=training_examples,
            schema=schema_gen.outputs["schema"],
            training=json.dumps(settings.to_json_dict(), sort_keys=True),
            steps=config.lr_finder.steps,
            min_learning_rate=config.lr_finder.min_learning_rate,
            max_learning_rate=config.lr_finder.max_learning_rate,
            rule=config.lr_finder.rule,
            code_version=versioning.source_digest(
                lr_finder,
                lr_finder_component,
                trainer,
                models,
                tabular_models,
                features,
                data_spec,
            ),
        ).with_id(LR_FINDER)
        finder.add_upstream_node(gate)

    baseline_resolver = baseline_node(config, cluster)
    model_trainer = tfx.components.Trainer(
        module_file=None,
        run_fn=TRAINER_MODULE,
        examples=training_examples,
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
        hyperparameters=finder.outputs["hyperparameters"] if finder else None,
        base_model=baseline_resolver.outputs["model"]
        if config.retraining.warm_start
        else None,
        custom_config={
            "training": settings.to_json_dict(),
            "code_version": trainer_code_version,
        },
    ).with_id(TRAINER)
    # The gate has no outputs; this edge makes the Trainer wait for it.
    model_trainer.add_upstream_node(gate)
    drift = None
    if config.retraining.drift_check:
        drift = drift_gate.DriftGate(
            statistics=statistics_gen.outputs["statistics"],
            schema=schema_gen.outputs["schema"],
            examples=example_gen.outputs["examples"],
            metadata_connection=metadata_connection(config, cluster),
            pipeline_name=config.pipeline_name,
        ).with_id(DRIFT_GATE)
        model_trainer.add_upstream_node(drift)

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=model_trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config(config),
        example_splits=[features.EVAL_SPLIT],
    ).with_id(EVALUATOR)
    infra_validator = None
    if config.serving.infra_validation:
        infra_validator = tfx.components.InfraValidator(
            model=model_trainer.outputs["model"],
            examples=example_gen.outputs["examples"],
            serving_spec=serving_spec(config),
            request_spec=tfx.proto.RequestSpec(
                tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                    signature_names=[signatures.SERVING_DEFAULT]
                ),
                split_name=features.EVAL_SPLIT,
                num_examples=4,
            ),
            validation_spec=tfx.proto.ValidationSpec(
                max_loading_time_seconds=120, num_tries=3
            ),
        ).with_id(INFRA_VALIDATOR)
    model_pusher = pusher.VersionedPusher(
        model=model_trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"] if infra_validator else None,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=cluster.serving_model_dir
                if cluster
                else os.path.abspath(config.serving_model_dir)
            )
        ),
        # Part of the Pusher's cache key: when a served version disappears
        # (deleted by hand, a lost volume), the Pusher runs again instead of
        # reporting a push that is no longer there. A cluster's volume is not
        # visible when the pipeline is compiled.
        custom_config={
            SERVED_VERSIONS_KEY: []
            if cluster
            else pusher.existing_versions(config.serving_model_dir)
        },
    ).with_id(PUSHER)
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        gate,
        *([drift] if drift else []),
        *([window] if window else []),
        *([finder] if finder else []),
        model_trainer,
        baseline_resolver,
        evaluator,
        *([infra_validator] if infra_validator else []),
        model_pusher,
    ]
    if cluster is not None:
        return tfx.dsl.Pipeline(
            pipeline_name=config.pipeline_name,
            pipeline_root=cluster.pipeline_root,
            components=components,
            enable_cache=config.enable_cache,
            beam_pipeline_args=list(cluster.beam_pipeline_args),
        )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=list(beam_args.for_local_run(config)),
    )
