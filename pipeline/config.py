"""The typed pipeline config: defaults, a YAML file, then env and flag overrides.

Precedence, lowest first: the defaults below, the config file, environment
variables `KPIPE_<SECTION>__<FIELD>` (or `KPIPE_<FIELD>` for top-level fields),
then `--set section.field=value` flags. The result is validated once; errors
name the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import data_spec, lr_finder, models, schedules, tabular_models

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
ENV_PREFIX = "KPIPE_"
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CUSTOM_DATASET = "custom"
DATASETS = (*data_spec.BUILTIN, CUSTOM_DATASET)
# Fields that describe a custom data set; a built-in one has its own.
_CUSTOM_ONLY_FIELDS = ("format", "label_key", "class_names", "num_classes", "features")
# Integer class labels need the sparse form of accuracy; the one-hot form would
# compare a label index with a probability vector and report nonsense.
SUPPORTED_METRICS = ("SparseCategoricalAccuracy",)
# Computed on the positive class's probability; only for two classes.
BINARY_METRICS = ("BinaryAccuracy", "AUC", "Precision", "Recall")
OPTIMIZERS = ("adam", "sgd")
SERVING_PLATFORMS = ("docker", "kubernetes")
KUBEFLOW_BACKENDS = ("kfp", "vertex")
DISTRIBUTION_STRATEGIES = ("none", "mirrored", "multi_worker_mirrored")


class ConfigError(ValueError):
    """The config cannot work; the message names the field."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data, where it is, and what its columns are.

    Attributes:
      dataset: a built-in data set (fashion_mnist, circles, breast_cancer), or
        custom for your own CSV or TFRecord files described by the fields below.
      data_dir: the data folder. Unset, it is the data set's default: the
        Fashion-MNIST package's folder, or <output_dir>/data/<dataset> where
        the built-in tables are written.
      format: custom data only: csv or tfrecord.
      label_key: custom data only: the label column.
      class_names: custom data only: one name per class id, in id order.
      num_classes: custom data only, when class_names is empty: classes are
        named "0", "1", ...
      features: custom data only: the feature columns as name:kind, kind one
        of float, int, string. TFRecord data without columns is images: an
        `image` of 784 int64 pixel values per record.
      schema_path: curated schema; empty means schemas/<dataset>/schema.pbtxt
        (custom data: schemas/<pipeline_name>/schema.pbtxt).
      max_examples_per_split: keep the first N records per split; 0 keeps all.
    """

    dataset: str = "fashion_mnist"
    data_dir: str = DEFAULT_DATA_DIR
    format: str = ""
    label_key: str = ""
    class_names: tuple[str, ...] = ()
    num_classes: int = 0
    features: tuple[str, ...] = ()
    schema_path: str = ""
    max_examples_per_split: int = 0


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Model preset, epochs and the learning-rate schedule."""

    preset: str = "cnn"
    optimizer: str = "adam"
    # none; mirrored (the GPUs or CPUs of one machine); multi_worker_mirrored
    # (workers named by TF_CONFIG, on a cluster).
    distribution_strategy: str = "none"
    epochs: int = 12
    batch_size: int = 32
    seed: int = 42
    learning_rate: float = 1e-3
    lr_schedule: str = "exponential"
    lr_decay_rate: float = 0.3
    lr_decay_start_epoch: int = 2
    lr_step_every_epochs: int = 3
    lr_step_factor: float = 0.5
    lr_warmup_epochs: int = 1
    lr_min: float = 1e-6
    lr_plateau_patience: int = 2


@dataclasses.dataclass(frozen=True)
class LearningRateFinderConfig:
    """The short sweep before training that picks the initial learning rate.

    Attributes:
      enabled: run the finder; when off, training.learning_rate is used.
      steps: batches in the sweep (about one epoch's worth is plenty).
      min_learning_rate: the sweep's first rate.
      max_learning_rate: the sweep's last rate (it stops early on divergence).
      rule: how the rate is chosen from the sweep: min_tenth or steepest
        (see components/lr_finder.py).
    """

    enabled: bool = False
    steps: int = 300
    min_learning_rate: float = 1e-6
    max_learning_rate: float = 1.0
    rule: str = "min_tenth"


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """When a model is good enough to push.

    Attributes:
      metric: the TFMA metric the thresholds apply to.
      lower_bound: absolute threshold; a model below it is never pushed.
      max_regression: how far below the baseline (the latest blessed model)
        the metric may fall; 0 means no regression at all.
      per_class_slices: also compute the metric per label value.
    """

    metric: str = "SparseCategoricalAccuracy"
    lower_bound: float = 0.85
    max_regression: float = 0.0
    per_class_slices: bool = True


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How the pushed model is checked against a real TensorFlow Serving.

    Attributes:
      infra_validation: run TFX's InfraValidator, which starts the serving
        image, loads the model and sends it requests before the push. It needs
        a Docker engine (or a Kubernetes cluster); off by default.
      platform: where InfraValidator starts the server: docker or kubernetes
        (kubernetes only from a pod inside the cluster).
      image: the TF Serving image; keep its tag at the pinned TensorFlow's.
      image_tag: the image's tag.
    """

    infra_validation: bool = False
    platform: str = "docker"
    image: str = "tensorflow/serving"
    image_tag: str = "2.16.1"


@dataclasses.dataclass(frozen=True)
class RetrainingConfig:
    """Which spans a run trains on, and what it starts from.

    Attributes:
      span_window: train on the newest span (1) or on the last K spans the
        pipeline has read, K >= 2 (each span is read once, when it is new).
      warm_start: start training from the weights of the latest blessed model
        when there is one with the same preset.
      drift_check: compare the new span's statistics with the previous span's
        under the schema's drift_comparator entries; a distance past the
        threshold stops the run before training.
    """

    span_window: int = 1
    warm_start: bool = False
    drift_check: bool = True


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """How `kpipe compile`, `submit` and `schedule` build and send the pipeline.

    Attributes:
      backend: kfp (open-source Kubeflow Pipelines v2) or vertex (Vertex AI
        Pipelines); it decides which executor kinds the spec may hold.
      pipeline_root: where the pods write artifacts: gs://, s3:// or a path of
        a volume mounted in every pod.
      data_dir: the data folder as the pods see it (span-N/ folders);
        empty means data.data_dir.
      serving_model_dir: where the Pusher writes versions, as the pods see it;
        empty means <pipeline_root>/serving_model/<pipeline_name>.
      schema_uri: the curated schema as the pods read it (gs://, s3:// or a
        mounted path); empty means the image's copy of data.schema_path, which
        must then be under schemas/.
      image: the container image every component runs in (kubeflow/Dockerfile).
      cpu: CPU request and limit per component, e.g. "2" or "500m".
      memory: memory request and limit per component, e.g. "8G".
      beam_pipeline_args: Beam args for the cluster run; they replace the
        local beam_pipeline_args.
      host: the KFP API endpoint for submit and schedule, e.g.
        http://ml-pipeline-ui.kubeflow:80.
      namespace: the Kubeflow profile namespace of a multi-user install;
        empty for a single-user install.
      experiment: the KFP experiment runs and schedules are created in.
      metadata_grpc_host: the cluster's ML Metadata gRPC service, which the
        baseline and span-window steps query on the kfp backend.
      metadata_grpc_port: its port.
    """

    backend: str = "kfp"
    pipeline_root: str = ""
    data_dir: str = ""
    serving_model_dir: str = ""
    schema_uri: str = ""
    image: str = "kpipe:1.16.0"
    cpu: str = "2"
    memory: str = "8G"
    beam_pipeline_args: tuple[str, ...] = (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=0",
    )
    host: str = ""
    namespace: str = ""
    experiment: str = "kpipe"
    metadata_grpc_host: str = "metadata-grpc-service.kubeflow"
    metadata_grpc_port: int = 8080


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole config; paths below output_dir are derived from it."""

    pipeline_name: str = "fashion_mnist"
    output_dir: str = "outputs"
    enable_cache: bool = True
    # Empty: chosen by the data's size (pipeline/beam_args.py).
    beam_pipeline_args: tuple[str, ...] = ()
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    lr_finder: LearningRateFinderConfig = dataclasses.field(
        default_factory=LearningRateFinderConfig
    )
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    serving: ServingConfig = dataclasses.field(default_factory=ServingConfig)
    retraining: RetrainingConfig = dataclasses.field(default_factory=RetrainingConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "pipelines", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(
            self.output_dir, "metadata", self.pipeline_name, "metadata.sqlite"
        )

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.output_dir, "serving_model", self.pipeline_name)

    @property
    def schema_file(self) -> str:
        return self.data.schema_path or default_schema_path(
            self.data.dataset, self.pipeline_name
        )

    @property
    def data_spec(self) -> data_spec.DataSpec:
        data = self.data
        if data.dataset != CUSTOM_DATASET:
            return data_spec.BUILTIN[data.dataset]
        class_names = data.class_names or tuple(
            str(number) for number in range(data.num_classes)
        )
        return data_spec.DataSpec(
            name=self.pipeline_name,
            format=data.format,
            label_key=data.label_key,
            class_names=class_names,
            columns=tuple(
                data_spec.FeatureColumn.parse(text) for text in data.features
            ),
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data_spec.class_names

    def schedule_spec(self) -> schedules.ScheduleSpec:
        training = self.training
        return schedules.ScheduleSpec(
            name=training.lr_schedule,
            initial_learning_rate=training.learning_rate,
            epochs=training.epochs,
            decay_rate=training.lr_decay_rate,
            decay_start_epoch=training.lr_decay_start_epoch,
            step_every_epochs=training.lr_step_every_epochs,
            step_factor=training.lr_step_factor,
            warmup_epochs=training.lr_warmup_epochs,
            min_learning_rate=training.lr_min,
            plateau_patience=training.lr_plateau_patience,
        )

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["beam_pipeline_args"] = list(self.beam_pipeline_args)
        values["kubeflow"]["beam_pipeline_args"] = list(
            self.kubeflow.beam_pipeline_args
        )
        return values


_SECTIONS = {
    "data": DataConfig,
    "training": TrainingConfig,
    "lr_finder": LearningRateFinderConfig,
    "evaluation": EvaluationConfig,
    "serving": ServingConfig,
    "retraining": RetrainingConfig,
    "kubeflow": KubeflowConfig,
}


def _field_types(cls) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _coerce(name: str, value, kind):
    """Converts a value from YAML or a string to the field's type."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or value is None:
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name}: expected {kind.__name__}, got {value!r}"
            ) from None
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return number
    if kind is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"{name}: expected text, got {value!r}")
        return str(value)
    if typing.get_origin(kind) is tuple:
        if isinstance(value, str):
            value = _text_list(name, value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        for item in value:
            if item is None or isinstance(item, (bool, dict, list)):
                raise ConfigError(
                    f"{name}: item {item!r} is not text; YAML reads yes, no, on, "
                    "off, true and false as booleans, null as nothing and a: b as "
                    "a mapping, so put such an item in quotes"
                )
        return tuple(str(item) for item in value)
    raise ConfigError(f"{name}: unsupported field type {kind}")


def _text_list(name: str, text: str) -> list:
    """A list given as text: "[a, b]" in YAML's flow style, or "a b".

    Every item stays the text it was: a class named yes stays "yes", not True.
    """
    if not text.strip().startswith("["):
        return text.split()
    try:
        return yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{name}: {text!r} is not a list like [a, b]: {str(error).splitlines()[0]}"
        ) from None


def _set(values: dict, dotted: str, raw, source: str) -> None:
    parts = dotted.split(".")
    top_types = _field_types(PipelineConfig)
    if len(parts) == 1 and parts[0] in top_types and parts[0] not in _SECTIONS:
        values[parts[0]] = _coerce(parts[0], raw, top_types[parts[0]])
        return
    if len(parts) == 1 and parts[0] in _SECTIONS:
        raise ConfigError(
            f"{parts[0]} in {source}: a section; give its fields, such as "
            f"{parts[0]}.{dataclasses.fields(_SECTIONS[parts[0]])[0].name}"
        )
    if len(parts) == 2 and parts[0] in _SECTIONS:
        section_types = _field_types(_SECTIONS[parts[0]])
        if parts[1] in section_types:
            values[parts[0]][parts[1]] = _coerce(dotted, raw, section_types[parts[1]])
            return
        raise ConfigError(
            f"unknown field {dotted!r} in {source}; fields of {parts[0]}: "
            f"{', '.join(section_types)}"
        )
    known = [name for name in top_types if name not in _SECTIONS] + list(_SECTIONS)
    raise ConfigError(
        f"unknown field {dotted!r} in {source}; known: {', '.join(known)}"
    )


def _flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and key in _SECTIONS and not prefix:
            items.extend(_flatten(value, f"{name}."))
        else:
            items.append((name, value))
    return items


def _from_environment(environ: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(dotted field, value, variable name) for every KPIPE_ variable."""
    items = []
    for key, value in sorted(environ.items()):
        if key.startswith(ENV_PREFIX):
            field = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            items.append((field, value, key))
    return items


def validate(config: PipelineConfig, check_schema: bool = True) -> PipelineConfig:
    """Checks that the config can work; raises ConfigError naming the field."""

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ConfigError(message)

    require(
        re.fullmatch(r"[A-Za-z0-9_-]+", config.pipeline_name) is not None,
        f"pipeline_name: {config.pipeline_name!r} must be letters, digits, _ or -",
    )
    require(bool(config.output_dir), "output_dir: must not be empty")
    _validate_data(config, require, check_schema)
    training = config.training
    presets = (
        models.PRESETS
        if config.data_spec.kind == data_spec.IMAGE
        else tabular_models.PRESETS
    )
    require(
        training.preset in presets,
        f"training.preset: {training.preset!r} is not one of {sorted(presets)} "
        f"(the presets for {config.data_spec.kind} data)",
    )
    require(
        training.optimizer in OPTIMIZERS,
        f"training.optimizer: {training.optimizer!r} is not one of {list(OPTIMIZERS)}",
    )
    require(
        training.lr_schedule in schedules.NAMES,
        f"training.lr_schedule: {training.lr_schedule!r} is not one of "
        f"{list(schedules.NAMES)}",
    )
    require(
        training.lr_warmup_epochs >= 0
        and (
            training.lr_schedule != "cosine"
            or training.lr_warmup_epochs < training.epochs
        ),
        "training.lr_warmup_epochs: must be at least 0 and below training.epochs",
    )
    require(
        training.learning_rate <= 0 or 0 < training.lr_min < training.learning_rate,
        "training.lr_min: must be positive and below training.learning_rate",
    )
    require(
        training.lr_plateau_patience >= 1,
        "training.lr_plateau_patience: must be at least 1",
    )
    finder = config.lr_finder
    require(finder.steps >= 20, "lr_finder.steps: must be at least 20")
    require(
        finder.rule in lr_finder.RULES,
        f"lr_finder.rule: {finder.rule!r} is not one of {list(lr_finder.RULES)}",
    )
    require(
        0 < finder.min_learning_rate < finder.max_learning_rate,
        "lr_finder.min_learning_rate: must be positive and below "
        "lr_finder.max_learning_rate",
    )
    require(training.epochs >= 1, "training.epochs: must be at least 1")
    require(training.batch_size >= 1, "training.batch_size: must be at least 1")
    require(training.learning_rate > 0, "training.learning_rate: must be positive")
    require(training.lr_decay_rate >= 0, "training.lr_decay_rate: must not be negative")
    require(
        training.lr_decay_start_epoch >= 0,
        "training.lr_decay_start_epoch: must not be negative",
    )
    require(
        training.lr_step_every_epochs >= 1,
        "training.lr_step_every_epochs: must be at least 1",
    )
    require(
        0 < training.lr_step_factor <= 1, "training.lr_step_factor: must be in (0, 1]"
    )
    evaluation = config.evaluation
    allowed_metrics = SUPPORTED_METRICS + (
        BINARY_METRICS if config.data_spec.binary else ()
    )
    require(
        evaluation.metric in allowed_metrics,
        f"evaluation.metric: {evaluation.metric!r} is not supported for "
        f"{config.data_spec.num_classes} classes; labels are integer class ids, "
        f"so use one of {list(allowed_metrics)}",
    )
    require(
        0 <= evaluation.lower_bound <= 1, "evaluation.lower_bound: must be in [0, 1]"
    )
    require(
        0 <= evaluation.max_regression <= 1,
        "evaluation.max_regression: must be in [0, 1]",
    )
    serving = config.serving
    require(
        serving.platform in SERVING_PLATFORMS,
        f"serving.platform: {serving.platform!r} is not one of "
        f"{list(SERVING_PLATFORMS)}",
    )
    require(
        bool(serving.image.strip()) and bool(serving.image_tag.strip()),
        "serving.image and serving.image_tag: must not be empty",
    )
    require(
        training.distribution_strategy in DISTRIBUTION_STRATEGIES,
        f"training.distribution_strategy: {training.distribution_strategy!r} is "
        f"not one of {list(DISTRIBUTION_STRATEGIES)}",
    )
    _validate_retraining_and_kubeflow(config, require)
    return config


def _validate_retraining_and_kubeflow(config: PipelineConfig, require) -> None:
    retraining = config.retraining
    require(
        retraining.span_window >= 1,
        "retraining.span_window: must be at least 1 (1 trains on the newest span)",
    )
    kubeflow = config.kubeflow
    require(
        kubeflow.backend in KUBEFLOW_BACKENDS,
        f"kubeflow.backend: {kubeflow.backend!r} is not one of "
        f"{list(KUBEFLOW_BACKENDS)}",
    )
    root = kubeflow.pipeline_root
    require(
        not root or root.startswith(("gs://", "s3://", "/")),
        f"kubeflow.pipeline_root: {root!r} must be gs://..., s3://... or the "
        "absolute path of a volume mounted in every pod",
    )
    require(
        not (kubeflow.backend == "vertex" and root and not root.startswith("gs://")),
        f"kubeflow.pipeline_root: {root!r}: Vertex AI Pipelines needs a gs:// root",
    )
    require(bool(kubeflow.image.strip()), "kubeflow.image: must not be empty")
    require(
        re.fullmatch(r"\d+(\.\d+)?m?", kubeflow.cpu) is not None,
        f"kubeflow.cpu: {kubeflow.cpu!r} is not a CPU amount such as 2, 0.5 or 500m",
    )
    require(
        re.fullmatch(r"\d+(\.\d+)?(K|M|G|T|Ki|Mi|Gi|Ti)?", kubeflow.memory) is not None,
        f"kubeflow.memory: {kubeflow.memory!r} is not a memory amount such as "
        "8G or 512Mi",
    )
    require(
        not kubeflow.host or kubeflow.host.startswith(("http://", "https://")),
        f"kubeflow.host: {kubeflow.host!r} must start with http:// or https://",
    )
    require(
        1 <= kubeflow.metadata_grpc_port <= 65535,
        "kubeflow.metadata_grpc_port: must be a port number, 1..65535",
    )


def default_schema_path(dataset: str, pipeline_name: str) -> str:
    folder = pipeline_name if dataset == CUSTOM_DATASET else dataset
    return str(SCHEMAS_DIR / folder / "schema.pbtxt")


def _validate_data(config: PipelineConfig, require, check_schema: bool) -> None:
    data = config.data
    require(bool(data.data_dir), "data.data_dir: must not be empty")
    # Built-in tables are written into their folder at the start of a run.
    generated = data.dataset in data_spec.BUILTIN and (
        data_spec.BUILTIN[data.dataset].format != data_spec.IDX
    )
    require(
        generated or "://" in data.data_dir or os.path.isdir(data.data_dir),
        f"data.data_dir: folder {data.data_dir} does not exist",
    )
    require(
        data.max_examples_per_split >= 0,
        "data.max_examples_per_split: must be 0 (all) or a positive number",
    )
    if data.dataset == CUSTOM_DATASET:
        require(
            data.format in data_spec.FORMATS,
            f"data.format: {data.format!r} is not one of {list(data_spec.FORMATS)}",
        )
        require(
            not (data.class_names and data.num_classes)
            or len(data.class_names) == data.num_classes,
            f"data.class_names: {len(data.class_names)} names but data.num_classes "
            f"is {data.num_classes}",
        )
        require(
            len(set(data.class_names)) == len(data.class_names),
            f"data.class_names: names repeat in {list(data.class_names)}",
        )
        require(
            max(len(data.class_names), data.num_classes) >= 2,
            "data.class_names or data.num_classes: a classifier needs at least "
            "2 classes",
        )
        # ImportExampleGen copies every record; it has no cap to pass this to.
        require(
            data.format != data_spec.TFRECORD or not data.max_examples_per_split,
            "data.max_examples_per_split: not supported for tfrecord data, which "
            "is imported whole; set it to 0, or write a smaller file",
        )
        if data.format == data_spec.IDX:
            require(not data.features, "data.features: IDX images have no columns")
        elif data.format == data_spec.CSV:
            require(
                bool(data.features),
                "data.features: name the feature columns as name:kind, kind one "
                f"of {list(data_spec.COLUMN_KINDS)}",
            )
        names = [data.label_key]
        for text in data.features:
            try:
                column = data_spec.FeatureColumn.parse(text)
            except ValueError as error:
                raise ConfigError(f"data.features: {error}") from None
            names.append(column.name)
        repeated = sorted({name for name in names if names.count(name) > 1})
        require(
            not repeated,
            f"data.features: {repeated} named twice (the label is {data.label_key!r})",
        )
    if not check_schema:
        return
    require(
        os.path.isfile(config.schema_file),
        f"data.schema_path: schema file {config.schema_file} does not exist"
        + (
            "; write a draft with `kpipe infer-schema` and curate it"
            if data.dataset == CUSTOM_DATASET
            else ""
        ),
    )
    _check_schema_names(config)


def _check_schema_names(config: PipelineConfig) -> None:
    """The label and every feature must be in the curated schema."""
    schema = schema_pb2.Schema()
    try:
        with open(config.schema_file) as stream:
            text_format.Parse(stream.read(), schema)
    except (OSError, text_format.ParseError) as error:
        raise ConfigError(
            f"data.schema_path: {config.schema_file} is not a schema: {error}"
        ) from None
    in_schema = [feature.name for feature in schema.feature]
    spec = config.data_spec
    field = "data.label_key" if config.data.dataset == CUSTOM_DATASET else "data"
    if spec.label_key not in in_schema:
        raise ConfigError(
            f"{field}: the label {spec.label_key!r} is not a feature of "
            f"{config.schema_file}; it has {in_schema}"
        )
    missing = [name for name in spec.feature_names if name not in in_schema]
    if missing:
        raise ConfigError(
            f"data.features: {missing} not in {config.schema_file}; it has {in_schema}"
        )
    if spec.kind == data_spec.TABULAR:
        by_name = {feature.name: feature for feature in schema.feature}
        for name in spec.feature_names:
            feature = by_name[name]
            dims = [dim.size for dim in feature.shape.dim]
            most = max(feature.value_count.max, math.prod(dims) if dims else 0)
            if most > 1:
                raise ConfigError(
                    f"data.features: {name!r} holds up to {most} values per "
                    f"record in {config.schema_file}; a table column holds one"
                )


def _resolve_defaults(values: dict, explicit: set[str]) -> None:
    """Fills the fields whose default depends on the data set.

    Args:
      values: the config's values, by section.
      explicit: the dotted names of the fields a file, variable or flag set;
        those are never changed.
    """
    data = values["data"]
    dataset = data["dataset"]
    if dataset not in DATASETS:
        raise ConfigError(f"data.dataset: {dataset!r} is not one of {list(DATASETS)}")
    if dataset != CUSTOM_DATASET:
        unset = dataclasses.asdict(DataConfig())
        for name in _CUSTOM_ONLY_FIELDS:
            # An empty value, as show-config and latest_config.yaml write it
            # for every data set, says nothing and is accepted.
            if f"data.{name}" in explicit and data[name] != unset[name]:
                raise ConfigError(
                    f"data.{name}: only for data.dataset=custom; {dataset} "
                    "defines its own columns and classes"
                )
    elif "data.label_key" not in explicit:
        data["label_key"] = "label"
    if "pipeline_name" not in explicit:
        values["pipeline_name"] = dataset
    if "data.data_dir" not in explicit:
        if dataset == CUSTOM_DATASET:
            raise ConfigError("data.data_dir: required for data.dataset=custom")
        if data_spec.BUILTIN[dataset].format != data_spec.IDX:
            data["data_dir"] = os.path.join(values["output_dir"], "data", dataset)
    is_image = (
        data["format"] == data_spec.IDX
        or (data["format"] == data_spec.TFRECORD and not data["features"])
        if dataset == CUSTOM_DATASET
        else data_spec.BUILTIN[dataset].format == data_spec.IDX
    )
    if "training.preset" not in explicit and not is_image:
        values["training"]["preset"] = "tabular"


def load_config(
    path: str | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    check_schema: bool = True,
) -> PipelineConfig:
    """Builds and validates the config from defaults, file, env and overrides.

    check_schema=False skips the checks against the schema file, for commands
    that write the schema.
    """
    values = PipelineConfig().to_dict()
    explicit: set[str] = set()
    if path:
        try:
            with open(path) as stream:
                from_file = yaml.safe_load(stream) or {}
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error}") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from error
        if not isinstance(from_file, Mapping):
            raise ConfigError(f"{path}: expected a mapping of fields at the top level")
        for name, value in _flatten(from_file):
            _set(values, name, value, path)
            explicit.add(name)
    for name, value, variable in _from_environment(
        os.environ if environ is None else environ
    ):
        _set(values, name, value, f"environment variable {variable}")
        explicit.add(name)
    for override in overrides:
        name, separator, value = override.partition("=")
        if not separator:
            raise ConfigError(f"--set {override!r}: expected section.field=value")
        _set(values, name.strip(), value.strip(), f"--set {override}")
        explicit.add(name.strip())
    # Absolute paths, so that the metadata store and the summary mean the same
    # files from whichever folder the command is run.
    values["output_dir"] = _absolute(values["output_dir"])
    _resolve_defaults(values, explicit)
    for name in ("data_dir", "schema_path"):
        values["data"][name] = _absolute(values["data"][name])
    sections = {
        name: cls(
            **{
                field: tuple(value) if isinstance(value, list) else value
                for field, value in values.pop(name).items()
            }
        )
        for name, cls in _SECTIONS.items()
    }
    values["beam_pipeline_args"] = tuple(values["beam_pipeline_args"])
    return validate(PipelineConfig(**values, **sections), check_schema)


def _absolute(path: str) -> str:
    return path if not path or "://" in path else os.path.abspath(path)


def to_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
