"""`create_pipeline`: the one definition of the pipeline, for every runner.

ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> AnomalyGate
-> (LearningRateFinder) -> Trainer -> (latest blessed model) Resolver -> Evaluator
-> (InfraValidator) -> Pusher.
Runners differ only in how they run what this returns.
"""

from __future__ import annotations

import hashlib
import json
import os

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.io import fileio

from components import (
    anomaly_gate,
    features,
    idx_example_gen,
    lr_finder,
    lr_finder_component,
    models,
    pusher,
    schedules,
    signatures,
    trainer,
    versioning,
)
from pipeline.config import ConfigError, PipelineConfig

SPAN_FOLDER = "span-{SPAN}"
TRAINER_MODULE = "components.trainer.run_fn"

# Node ids, named here once; the run summary looks steps up by them.
EXAMPLE_GEN = "IdxExampleGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
LR_FINDER = "LearningRateFinder"
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
INFRA_VALIDATOR = "InfraValidator"
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


def input_config(data_dir: str) -> tfx.proto.Input:
    """Train/eval patterns for the IDX files; span folders when data_dir has them."""
    has_spans = bool(fileio.glob(os.path.join(data_dir, "span-*")))
    prefix = SPAN_FOLDER + "/" if has_spans else ""
    return tfx.proto.Input(
        splits=[
            tfx.proto.Input.Split(
                name=features.TRAIN_SPLIT,
                pattern=f"{prefix}{features.TRAIN_FILE_PREFIX}-*-ubyte*",
            ),
            tfx.proto.Input.Split(
                name=features.EVAL_SPLIT,
                pattern=f"{prefix}{features.EVAL_FILE_PREFIX}-*-ubyte*",
            ),
        ]
    )


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Accuracy with an absolute bound and a no-regression bound vs the baseline."""
    evaluation = config.evaluation
    slicing_specs = [tfma.SlicingSpec()]
    if evaluation.per_class_slices:
        slicing_specs.append(tfma.SlicingSpec(feature_keys=[features.LABEL_KEY]))
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
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=signatures.SERVING_DEFAULT,
                label_key=features.LABEL_KEY,
                prediction_key=signatures.PROBABILITIES_OUTPUT,
            )
        ],
        slicing_specs=slicing_specs,
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    # Thresholds judge the overall slice; per-class slices are reported.
                    tfma.MetricConfig(
                        class_name=evaluation.metric,
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(
                                slicing_specs=[tfma.SlicingSpec()], threshold=threshold
                            )
                        ],
                    ),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
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


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline described by a validated config."""
    example_gen = idx_example_gen.IdxExampleGen(
        input_base=config.data.data_dir,
        input_config=input_config(config.data.data_dir),
        max_examples_per_split=config.data.max_examples_per_split,
    ).with_id(EXAMPLE_GEN)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"]
    )
    schema_gen = tfx.components.ImportSchemaGen(schema_file=staged_schema_file(config))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
    ).with_id(EXAMPLE_VALIDATOR)
    gate = anomaly_gate.AnomalyGate(
        anomalies=example_validator.outputs["anomalies"],
        examples=example_gen.outputs["examples"],
    )

    settings = trainer.TrainingSettings(
        preset=config.training.preset,
        epochs=config.training.epochs,
        batch_size=config.training.batch_size,
        seed=config.training.seed,
        schedule=config.schedule_spec(),
        class_names=config.class_names,
    )
    trainer_code_version = versioning.source_digest(
        trainer, models, schedules, signatures, features
    )
    finder = None
    if config.lr_finder.enabled:
        finder = lr_finder_component.LearningRateFinder(
            examples=example_gen.outputs["examples"],
            schema=schema_gen.outputs["schema"],
            training=json.dumps(settings.to_json_dict(), sort_keys=True),
            steps=config.lr_finder.steps,
            min_learning_rate=config.lr_finder.min_learning_rate,
            max_learning_rate=config.lr_finder.max_learning_rate,
            rule=config.lr_finder.rule,
            code_version=versioning.source_digest(
                lr_finder, lr_finder_component, trainer, models, features
            ),
        ).with_id(LR_FINDER)
        finder.add_upstream_node(gate)

    model_trainer = tfx.components.Trainer(
        module_file=None,
        run_fn=TRAINER_MODULE,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
        hyperparameters=finder.outputs["hyperparameters"] if finder else None,
        custom_config={
            "training": settings.to_json_dict(),
            "code_version": trainer_code_version,
        },
    ).with_id(TRAINER)
    # The gate has no outputs; this edge makes the Trainer wait for it.
    model_trainer.add_upstream_node(gate)

    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BASELINE_RESOLVER)

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
                base_directory=os.path.abspath(config.serving_model_dir)
            )
        ),
        # Part of the Pusher's cache key: when a served version disappears
        # (deleted by hand, a lost volume), the Pusher runs again instead of
        # reporting a push that is no longer there.
        custom_config={
            SERVED_VERSIONS_KEY: pusher.existing_versions(config.serving_model_dir)
        },
    ).with_id(PUSHER)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            gate,
            *([finder] if finder else []),
            model_trainer,
            baseline_resolver,
            evaluator,
            *([infra_validator] if infra_validator else []),
            model_pusher,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
