"""Shared fixtures: small IDX and TFRecord data written by the tests themselves, and
a small model served by a TF Serving double on loopback."""

import dataclasses
import os

import numpy as np
import pytest

import components  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads.
from components import features, idx
from pipeline.config import DEFAULT_DATA_DIR
from tests.tf_serving_double import TFServingDouble

FASHION_MNIST_DIR = DEFAULT_DATA_DIR


def write_idx_pair(folder, prefix, images, labels, compress=True):
    """Writes <prefix>-images-idx3-ubyte[.gz] and <prefix>-labels-idx1-ubyte[.gz]."""
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if compress else ""
    images_path = os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}")
    labels_path = os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}")
    idx.write(images_path, np.asarray(images, dtype=np.uint8))
    idx.write(labels_path, np.asarray(labels, dtype=np.uint8))
    return images_path, labels_path


def learnable_images(count, seed=0):
    """Images whose class is written in their brightness: easy to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, features.NUM_CLASSES, size=count)
    base = (labels * 25).astype(np.float32)[:, None, None]
    noise = rng.normal(0, 8, size=(count, 28, 28))
    images = np.clip(base + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real data set's test images and labels (setup installs it)."""
    images_path = os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz")
    labels_path = os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(images_path):
        pytest.fail(
            f"{images_path} is missing: run `make setup`, "
            "which installs the dataset-fashion-mnist package"
        )
    return idx.read_arrays(images_path, labels_path)


SERVED_MODEL_NAME = "fashion_mnist"
SERVED_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ServingExport:
    """A Keras model and its export as a version of a TF Serving model folder."""

    model: object
    base_path: str
    model_dir: str
    name: str = SERVED_MODEL_NAME
    version: int = SERVED_VERSION


@pytest.fixture(scope="module")
def served_model(tmp_path_factory, fashion_mnist):
    """The tiny seed_dense preset after three short epochs, so that its answers
    differ from image to image, exported as version 1 of `fashion_mnist`."""
    import tensorflow as tf

    from components import models, signatures

    tf.keras.utils.set_random_seed(0)
    model = models.build("seed_dense", features.NUM_CLASSES)
    # Eagerly: tracing Keras's train step takes longer than these few steps.
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        run_eagerly=True,
    )
    images, labels = fashion_mnist
    # Images from 100 on: the tests predict the first 100, unseen in training.
    model.fit(
        images[100:2100].reshape(-1, features.IMAGE_PIXELS).astype(np.float32),
        labels[100:2100],
        epochs=3,
        batch_size=64,
        verbose=0,
    )
    base_path = str(tmp_path_factory.mktemp("serving_model") / SERVED_MODEL_NAME)
    model_dir = os.path.join(base_path, str(SERVED_VERSION))
    signatures.export_serving_model(model, model_dir, features.CLASS_NAMES)
    return ServingExport(model=model, base_path=base_path, model_dir=model_dir)


@pytest.fixture(scope="module")
def tf_serving_double(served_model):
    """TF Serving's REST and gRPC APIs for `served_model`, on ephemeral loopback
    ports, stopped at the end of the module."""
    with TFServingDouble(served_model.name, served_model.base_path) as double:
        yield double
