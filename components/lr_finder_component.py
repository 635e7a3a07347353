"""The LearningRateFinder TFX component: sweeps, chooses, hands the rate on.

It trains the configured preset on the train split for a short per-batch sweep
(see components/lr_finder.py), writes the sweep table, the choice and a plot to
its `sweep` output, and the chosen rate to a HyperParameters artifact that the
Trainer takes through its `hyperparameters` input.
"""

import json
import os

import tensorflow as tf
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.util import tfxio_utils
from tfx.dsl.component.experimental.annotations import (
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact, artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components import features, lr_finder, trainer

HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
VALIDATION_BATCH = 256


class LearningRateSweep(artifact.Artifact):
    """The sweep's table (CSV), choice (JSON) and plot (PNG)."""

    TYPE_NAME = "LearningRateSweep"


def _batches(examples, schema, split, batch_size, seed, shuffle, spec):
    files = [os.path.join(artifact_utils.get_split_uri([examples], split), "*")]
    factory = tfxio_utils.get_tf_dataset_factory_from_artifact([examples], [])
    return trainer.make_dataset(
        files, factory, schema, batch_size, shuffle, seed, spec=spec
    )


@component
def LearningRateFinder(  # noqa: N802 - TFX component names are CamelCase.
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    hyperparameters: OutputArtifact[standard_artifacts.HyperParameters],
    sweep: OutputArtifact[LearningRateSweep],
    training: Parameter[str],
    steps: Parameter[int],
    min_learning_rate: Parameter[float],
    max_learning_rate: Parameter[float],
    rule: Parameter[str],
    code_version: Parameter[str],
):
    """Runs a per-batch learning-rate sweep and records the chosen rate."""
    del code_version  # Part of the cache key only.
    settings = trainer.TrainingSettings.from_json_dict(json.loads(training))
    schema_proto = io_utils.parse_pbtxt_file(
        io_utils.get_only_uri_in_dir(schema.uri), schema_pb2.Schema()
    )
    tf.keras.utils.set_random_seed(settings.seed)
    train_batches = _batches(
        examples,
        schema_proto,
        features.TRAIN_SPLIT,
        settings.batch_size,
        settings.seed,
        True,
        settings.data,
    ).repeat()
    val_batch = next(
        iter(
            _batches(
                examples,
                schema_proto,
                features.EVAL_SPLIT,
                VALIDATION_BATCH,
                settings.seed,
                False,
                settings.data,
            )
        )
    )
    model = trainer.build_model(settings, train_batches)
    trainer.compile_model(model, min_learning_rate, settings.optimizer)
    rates = lr_finder.exponential_rates(min_learning_rate, max_learning_rate, steps)
    points = lr_finder.per_batch_sweep(model, train_batches, val_batch, rates)
    choice = lr_finder.choose_learning_rate(
        [point.learning_rate for point in points],
        [point.loss for point in points],
        rule,
    )
    lr_finder.write_sweep(points, choice, sweep.uri)
    with tf.io.gfile.GFile(
        os.path.join(hyperparameters.uri, HYPERPARAMETERS_FILE), "w"
    ) as out:
        json.dump(
            {
                "space": [],
                "values": {trainer.LEARNING_RATE_HPARAM: choice.learning_rate},
            },
            out,
        )
    logging.info(
        "Learning-rate sweep: %d steps from %.1e to %.1e; chose %.3g (%s); "
        "minimum loss at %.3g%s",
        len(points),
        min_learning_rate,
        points[-1].learning_rate,
        choice.learning_rate,
        choice.rule,
        choice.min_loss_learning_rate,
        f", diverged at {choice.diverged_at:.3g}" if choice.diverged_at else "",
    )
