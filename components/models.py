"""Model presets for image classifiers.

Every preset takes the raw pixel values (0..255, flattened to 784 numbers) as
its `image` input and scales them itself, so the served model needs no
preprocessing outside the graph. Every preset ends in a softmax.
"""

from __future__ import annotations

from collections.abc import Callable

import tf_keras as keras

from components import features

layers = keras.layers


def _image_input() -> keras.Input:
    return keras.Input(shape=(features.IMAGE_PIXELS,), name=features.IMAGE_KEY)


def _scaled(inputs):
    return layers.Rescaling(1.0 / features.PIXEL_MAX, name="scale")(inputs)


def seed_dense(num_classes: int) -> keras.Model:
    """A tiny 4-4-N dense network: the baseline to beat (about 0.7 accuracy)."""
    inputs = _image_input()
    x = _scaled(inputs)
    x = layers.Dense(4, activation="relu")(x)
    x = layers.Dense(4, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed_dense")


def dense(num_classes: int) -> keras.Model:
    """A 256-128-N dense network (about 0.88 after 5 epochs)."""
    inputs = _image_input()
    x = _scaled(inputs)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="dense")


def _conv_block(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    # A faster-moving average than the default 0.99 keeps inference statistics
    # usable after the few hundred steps of a short run.
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    return layers.MaxPooling2D()(x)


def cnn(num_classes: int) -> keras.Model:
    """Two conv + batch-norm + pooling blocks and a dense head (the default)."""
    inputs = _image_input()
    x = _scaled(inputs)
    x = layers.Reshape((features.IMAGE_HEIGHT, features.IMAGE_WIDTH, 1))(x)
    x = _conv_block(x, 32)
    x = _conv_block(x, 64)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


PRESETS: dict[str, Callable[[int], keras.Model]] = {
    "seed_dense": seed_dense,
    "dense": dense,
    "cnn": cnn,
}


def build(preset: str, num_classes: int) -> keras.Model:
    """Builds an uncompiled model from a preset name."""
    try:
        builder = PRESETS[preset]
    except KeyError:
        raise ValueError(
            f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}"
        ) from None
    return builder(num_classes)
