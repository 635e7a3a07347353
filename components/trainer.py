"""Trainer module code: `run_fn` builds, trains and exports the Keras model.

The Trainer component refers to `components.trainer.run_fn` by dotted path. The
training settings arrive in `custom_config["training"]` (see TrainingSettings);
every epoch is a full pass over the train split, so an epoch-indexed
learning-rate schedule advances as it should. When the LearningRateFinder ran,
its chosen rate arrives as the `learning_rate` hyperparameter and replaces the
configured one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable

import tensorflow as tf
import tf_keras as keras
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import (
    data_spec,
    features,
    models,
    schedules,
    signatures,
    tabular_models,
)

HISTORY_FILE = "history.json"
LEARNING_RATE_HPARAM = "learning_rate"


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """What run_fn needs to know; built from the pipeline's training config."""

    preset: str
    epochs: int
    batch_size: int
    seed: int
    schedule: schedules.ScheduleSpec
    data: data_spec.DataSpec = data_spec.FASHION_MNIST
    optimizer: str = "adam"
    distribution_strategy: str = "none"

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names

    def to_json_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["data"] = self.data.to_json_dict()
        return values

    @classmethod
    def from_json_dict(cls, values: dict) -> TrainingSettings:
        values = dict(values)
        values["schedule"] = schedules.ScheduleSpec(**values["schedule"])
        values["data"] = data_spec.DataSpec.from_json_dict(values["data"])
        return cls(**values)


DatasetFactory = Callable[..., tf.data.Dataset]


def _dense_column(tensor) -> tf.Tensor:
    """A [batch, 1] dense tensor, whether the schema fixed the shape or not."""
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor)
    return tf.reshape(tensor, [-1, 1])


def model_inputs(batch: dict, spec: data_spec.DataSpec) -> dict[str, tf.Tensor]:
    """Parsed features as the model takes them.

    Images: `image` float32 [batch, 784]. Tables: one [batch, 1] tensor per
    column: float32, int64 or string.
    """
    if spec.kind == data_spec.IMAGE:
        return {features.IMAGE_KEY: tf.cast(batch[features.IMAGE_KEY], tf.float32)}
    return {
        column.name: tf.cast(
            _dense_column(batch[column.name]), data_spec.INPUT_DTYPES[column.kind]
        )
        for column in spec.columns
    }


# Records parsed per call when a split is read once into memory: parsing in
# large batches costs far less per record than at the training batch size.
CACHE_PARSE_BATCH = 1024
# Records held in the shuffle buffer of a cached split; the same as TFXIO's
# default, so a cached split is shuffled as thoroughly as a streamed one.
SHUFFLE_BUFFER = 10_000
# Limitation: a split is cached in memory only when its files are this small
# (compressed); the parsed tensors take about six times the space of gzip
# TFRecords of Fashion-MNIST. Larger splits are streamed from disk every epoch.
# A cache on local disk would lift this for splits that do not fit in memory.
CACHE_MAX_FILE_BYTES = 64 * 2**20


def make_dataset(
    file_pattern,
    dataset_factory: DatasetFactory,
    schema: schema_pb2.Schema,
    batch_size: int,
    shuffle: bool,
    seed: int,
    spec: data_spec.DataSpec = data_spec.FASHION_MNIST,
    cache: bool = False,
) -> tf.data.Dataset:
    """One pass over a split as (features dict, label) batches.

    Args:
      file_pattern: the split's files.
      dataset_factory: a TFXIO dataset factory, such as
        `fn_args.data_accessor.tf_dataset_factory`.
      schema: the curated schema; it makes `image` a dense [batch, 784] tensor.
      batch_size: examples per batch.
      shuffle: shuffle the examples (train split).
      seed: the shuffle seed.
      spec: the data set's columns and label.
      cache: read and parse the split once, keep the model inputs in memory,
        and shuffle and batch them from there in every later pass. Without
        it, each pass decompresses and parses the files again.
    """

    def to_model_inputs(batch, labels):
        labels = _dense_column(labels)
        if spec.kind == data_spec.TABULAR and spec.binary:
            # One sigmoid unit: binary cross-entropy wants float labels.
            labels = tf.cast(labels, tf.float32)
        return model_inputs(batch, spec), labels

    def read(read_batch_size: int, read_shuffled: bool) -> tf.data.Dataset:
        dataset = dataset_factory(
            file_pattern,
            tfxio.TensorFlowDatasetOptions(
                batch_size=read_batch_size,
                shuffle=read_shuffled,
                shuffle_seed=seed,
                num_epochs=1,
                label_key=spec.label_key,
            ),
            schema,
        )
        return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)

    if not cache:
        return read(batch_size, shuffle).prefetch(tf.data.AUTOTUNE)
    dataset = read(CACHE_PARSE_BATCH, False).unbatch().cache()
    # Counting fills the cache; a known length lets Keras group steps.
    count = int(dataset.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fits_in_memory(file_pattern) -> bool:
    """True when a split's files are small enough to cache (see make_dataset)."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else file_pattern
    size_bytes = sum(
        tf.io.gfile.stat(path).length
        for pattern in patterns
        for path in tf.io.gfile.glob(pattern)
    )
    return size_bytes <= CACHE_MAX_FILE_BYTES


class EpochLogger(keras.callbacks.Callback):
    """Logs one line per epoch: metrics, learning rate and duration."""

    def __init__(self, epochs: int):
        super().__init__()
        self._epochs = epochs
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        metrics = " ".join(
            f"{name} {value:.4g}" for name, value in sorted(logs.items())
        )
        logging.info(
            "epoch %d/%d: %s (%.1f s)",
            epoch + 1,
            self._epochs,
            metrics,
            time.monotonic() - self._started,
        )


# Batches run per call of the compiled training step. Keras then loops over
# them inside the graph, so the Python and dispatch cost of a step, a large
# part of it for small batches on a CPU, is paid once per group. The batches,
# their order and the arithmetic stay the same; batch-level callbacks would
# see one call per group, and the pipeline's callbacks act per epoch.
STEPS_PER_EXECUTION = 32

# Rows read to fit a table model's normalisation and vocabularies.
ADAPT_ROWS = 100_000


def build_model(settings: TrainingSettings, train_dataset: tf.data.Dataset):
    """The configured preset; a table model adapts its preprocessing first."""
    spec = settings.data
    if spec.kind == data_spec.IMAGE:
        return models.build(settings.preset, spec.num_classes)
    batches = max(1, ADAPT_ROWS // settings.batch_size)
    features_only = train_dataset.take(batches).map(lambda inputs, _: inputs)
    return tabular_models.build(
        settings.preset, spec.columns, spec.num_classes, features_only
    )


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def compile_model(
    model: keras.Model,
    learning_rate: float,
    optimizer: keras.optimizers.Optimizer | str = "adam",
    steps_per_execution: int = 1,
) -> None:
    """Cross-entropy and accuracy that fit the model's output.

    Args:
      model: the model; one sigmoid unit gets binary cross-entropy, a softmax
        gets sparse categorical cross-entropy (labels are class ids).
      learning_rate: the optimizer's starting rate (a float; the schedule
        callback moves it).
      optimizer: adam, sgd, or an optimizer object with a float rate.
      steps_per_execution: batches run per call of the compiled step (see
        STEPS_PER_EXECUTION); 1 when a callback must act after every batch.
    """
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, learning_rate)
    check_optimizer_takes_callback(optimizer)
    if is_binary_output(model):
        loss = keras.losses.BinaryCrossentropy()
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=steps_per_execution,
    )


def is_binary_output(model: keras.Model) -> bool:
    """True when the model ends in a single sigmoid probability."""
    return model.outputs[0].shape[-1] == 1


def check_optimizer_takes_callback(optimizer: keras.optimizers.Optimizer) -> None:
    """Refuses an optimizer whose rate is a schedule object.

    A learning-rate callback would overwrite that schedule or fail on it, and
    the rate actually used would be neither of the two.
    """
    if isinstance(
        optimizer.learning_rate, keras.optimizers.schedules.LearningRateSchedule
    ) or isinstance(
        getattr(optimizer, "_learning_rate", None),
        keras.optimizers.schedules.LearningRateSchedule,
    ):
        raise ValueError(
            "the optimizer's learning rate is a schedule object, and the "
            "pipeline applies its schedule with a callback; give the optimizer "
            "a float rate and choose the schedule with training.lr_schedule"
        )


def warm_start_model_dir(base_model: str | None) -> str | None:
    """The SavedModel folder inside the base Model artifact, or None.

    The Trainer receives the latest blessed Model artifact's folder, which is
    empty on the first run; the exported model is in Format-Serving/.
    """
    if not base_model:
        return None
    serving_dir = os.path.join(base_model, "Format-Serving")
    for folder in (serving_dir, base_model):
        if tf.io.gfile.exists(os.path.join(folder, "saved_model.pb")):
            return folder
    return None


def load_weights_from(model: keras.Model, saved_model_dir: str) -> None:
    """Copies an earlier model's weights into `model` when the shapes agree.

    A model of another preset or another feature set cannot lend its weights;
    then training starts from scratch and the log says why.
    """
    earlier = keras.models.load_model(saved_model_dir, compile=False)
    weights = earlier.get_weights()
    shapes = [weight.shape for weight in model.get_weights()]
    if shapes != [weight.shape for weight in weights]:
        logging.warning(
            "Warm start skipped: the model at %s has other weight shapes",
            saved_model_dir,
        )
        return
    model.set_weights(weights)
    logging.info("Warm start from the weights of %s", saved_model_dir)


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy the model is built and trained under.

    none: the default strategy (one device). mirrored: every GPU of this
    machine, or its CPU. multi_worker_mirrored: the workers named by the
    TF_CONFIG environment variable, which a cluster's training job sets.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "none":
        return tf.distribute.get_strategy()
    raise ValueError(
        f"training.distribution_strategy: {name!r} is not one of "
        "none, mirrored, multi_worker_mirrored"
    )


def _known_length(dataset: tf.data.Dataset) -> bool:
    return int(tf.data.experimental.cardinality(dataset)) >= 0


def train(
    settings: TrainingSettings,
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset | None,
    log_dir: str | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    initial_epoch: int = 0,
    warm_start_from: str | None = None,
    steps_per_execution: int = STEPS_PER_EXECUTION,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Builds, compiles and fits a preset; returns the model and its history.

    Args:
      settings: preset, epochs, schedule and seed.
      train_dataset: batches of (features, label), one pass per epoch.
      eval_dataset: validation batches, or None.
      log_dir: TensorBoard log folder, or None.
      optimizer: replaces the default Adam; its rate must be a float.
      initial_epoch: epochs already done by a run being resumed; the schedule
        continues from there.
      warm_start_from: a SavedModel folder of an earlier model of the same
        preset; its weights replace the fresh ones before training.
      steps_per_execution: batches per call of the compiled step.
    """
    keras.utils.set_random_seed(settings.seed)
    if steps_per_execution > 1 and not all(
        _known_length(data)
        for data in (train_dataset, eval_dataset)
        if data is not None
    ):
        # Keras can only group steps over data of known length.
        steps_per_execution = 1
    with distribution_strategy(settings.distribution_strategy).scope():
        model = build_model(settings, train_dataset)
        compile_model(
            model,
            settings.schedule.initial_learning_rate,
            optimizer or settings.optimizer,
            steps_per_execution,
        )
    if warm_start_from:
        load_weights_from(model, warm_start_from)
    model.summary(print_fn=logging.info)
    # The schedule callback comes first so that the rate it logs reaches
    # TensorBoard in the same epoch.
    callbacks = [
        schedules.make_callback(settings.schedule),
        EpochLogger(settings.epochs),
    ]
    if log_dir:
        callbacks.append(
            keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch")
        )
    history = model.fit(
        train_dataset,
        validation_data=eval_dataset,
        epochs=settings.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=0,
    )
    return model, {
        name: [float(value) for value in values]
        for name, values in history.history.items()
    }


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the configured preset and exports it with the serving signatures."""
    settings = TrainingSettings.from_json_dict(fn_args.custom_config["training"])
    learning_rate_source = "config"
    if fn_args.hyperparameters:
        found_rate = float(fn_args.hyperparameters["values"][LEARNING_RATE_HPARAM])
        settings = dataclasses.replace(
            settings,
            schedule=dataclasses.replace(
                settings.schedule, initial_learning_rate=found_rate
            ),
        )
        learning_rate_source = "learning-rate finder"
    logging.info(
        "Learning rate %.3g from the %s, schedule %s",
        settings.schedule.initial_learning_rate,
        learning_rate_source,
        settings.schedule.name,
    )
    schema = tfx.utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    train_dataset = make_dataset(
        fn_args.train_files,
        fn_args.data_accessor.tf_dataset_factory,
        schema,
        settings.batch_size,
        shuffle=True,
        seed=settings.seed,
        spec=settings.data,
        cache=fits_in_memory(fn_args.train_files),
    )
    eval_dataset = make_dataset(
        fn_args.eval_files,
        fn_args.data_accessor.tf_dataset_factory,
        schema,
        settings.batch_size,
        shuffle=False,
        seed=settings.seed,
        spec=settings.data,
        cache=fits_in_memory(fn_args.eval_files),
    )
    model, history = train(
        settings,
        train_dataset,
        eval_dataset,
        fn_args.model_run_dir,
        warm_start_from=warm_start_model_dir(fn_args.base_model),
    )
    with tf.io.gfile.GFile(
        os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w"
    ) as out:
        json.dump(
            {
                "settings": settings.to_json_dict(),
                "learning_rate_source": learning_rate_source,
                "history": history,
            },
            out,
            indent=2,
        )
    signatures.export_serving_model(model, fn_args.serving_model_dir, settings.data)
    logging.info("Exported the serving model to %s", fn_args.serving_model_dir)
