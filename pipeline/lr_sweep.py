"""`kpipe lr-sweep`: the classic per-epoch learning-rate experiment, outside TFX.

Trains a preset (the tiny `seed_dense` by default) on the IDX arrays with the
rate `1e-3 * 10**(epoch / 20)` for 40 epochs with validation data, then writes
the history, the sweep table, the chosen rate and the loss-versus-rate plot.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tf_keras as keras
from absl import logging

from components import features, idx, lr_finder, models, trainer
from pipeline.config import PipelineConfig


def _split(data_dir: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = idx.find_pair(
        os.path.join(data_dir, f"{prefix}-*-ubyte*")
    )
    images, labels = idx.read_arrays(images_path, labels_path)
    return images.reshape(len(images), -1).astype(np.float32), labels.astype(np.int64)


def run(
    config: PipelineConfig, preset: str, epochs: int, output_dir: str
) -> lr_finder.Choice:
    """Runs the experiment and writes its outputs to output_dir."""
    train = _split(config.data.data_dir, features.TRAIN_FILE_PREFIX)
    validation = _split(config.data.data_dir, features.EVAL_FILE_PREFIX)
    cap = config.data.max_examples_per_split or None
    train, validation = (
        tuple(part[:cap] for part in split) for split in (train, validation)
    )
    keras.utils.set_random_seed(config.training.seed)
    model = models.build(preset, features.NUM_CLASSES)
    trainer.compile_model(model, lr_finder.per_epoch_rate(0))
    logging.info(
        "Per-epoch sweep: %s, %d epochs, %d train / %d validation images",
        preset,
        epochs,
        len(train[0]),
        len(validation[0]),
    )
    points, history = lr_finder.per_epoch_sweep(model, train, validation, epochs)
    choice = lr_finder.choose_learning_rate(
        [point.learning_rate for point in points], [point.loss for point in points]
    )
    lr_finder.write_sweep(points, choice, output_dir)
    with open(os.path.join(output_dir, trainer.HISTORY_FILE), "w") as stream:
        json.dump({"preset": preset, "history": history}, stream, indent=2)
    return choice
