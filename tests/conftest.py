"""Shared fixtures: small IDX and TFRecord data written by the tests themselves."""

import os

import numpy as np
import pytest

import components  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads.
from components import features, idx
from pipeline.config import DEFAULT_DATA_DIR

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
