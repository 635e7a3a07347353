"""Locating and reading the ExampleGen output and the pushed model for benchmarks.

The benchmarks read what a pipeline run left in an output folder (by default
the one `bench.e2e` fills), so they measure the product's own artifacts.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils, standard_artifacts

from components import features, trainer

DEFAULT_OUTPUT_DIR = "outputs/bench/e2e"
DEFAULT_SCHEMA = "schemas/fashion_mnist/schema.pbtxt"


def latest_examples_uri(output_dir: str) -> str:
    """The newest ExampleGen output folder (holding Split-train, Split-eval)."""
    found = sorted(
        glob.glob(
            os.path.join(output_dir, "pipelines", "*", "*ExampleGen", "examples", "*")
        ),
        key=lambda path: int(os.path.basename(path)),
    )
    if not found:
        raise SystemExit(
            f"no ExampleGen output under {output_dir}/pipelines; run "
            "`.venv/bin/python -m bench.e2e` first or pass --examples-dir"
        )
    return found[-1]


def latest_pushed_model(output_dir: str) -> str:
    """The newest pushed SavedModel version folder."""
    versions = [
        path
        for path in glob.glob(os.path.join(output_dir, "serving_model", "*", "*"))
        if os.path.basename(path).isdigit()
    ]
    if not versions:
        raise SystemExit(
            f"no pushed model under {output_dir}/serving_model; run "
            "`.venv/bin/python -m bench.e2e` first or pass --model-dir"
        )
    return max(versions, key=lambda path: int(os.path.basename(path)))


def examples_artifact(examples_uri: str) -> standard_artifacts.Examples:
    """An Examples artifact for a folder of Split-* subfolders."""
    artifact = standard_artifacts.Examples()
    artifact.uri = examples_uri
    splits = sorted(
        name[len("Split-") :]
        for name in os.listdir(examples_uri)
        if name.startswith("Split-")
    )
    artifact.split_names = artifact_utils.encode_split_names(splits)
    return artifact


def load_schema(path: str = DEFAULT_SCHEMA) -> schema_pb2.Schema:
    return tfx.utils.parse_pbtxt_file(path, schema_pb2.Schema())


def split_files(examples_uri: str, split: str) -> list[str]:
    return [os.path.join(examples_uri, f"Split-{split}", "*")]


def product_dataset(
    examples_uri: str,
    split: str,
    batch_size: int,
    shuffle: bool,
    seed: int = 42,
    cache: bool = False,
) -> tf.data.Dataset:
    """The Trainer's own input pipeline over one split."""
    factory = tfxio_utils.get_tf_dataset_factory_from_artifact(
        [examples_artifact(examples_uri)], []
    )
    return trainer.make_dataset(
        split_files(examples_uri, split),
        factory,
        load_schema(),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
    )


def split_arrays(examples_uri: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split as numpy arrays: pixels [n, 784] float32, labels [n, 1] int64."""
    pixels, labels = [], []
    for batch, label in product_dataset(examples_uri, split, 1024, shuffle=False):
        pixels.append(batch[features.IMAGE_KEY].numpy())
        labels.append(label.numpy())
    return np.concatenate(pixels), np.concatenate(labels)
