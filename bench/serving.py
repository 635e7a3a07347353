"""Serving latency and throughput of the pushed SavedModel, signature by signature.

Loads the pushed SavedModel twice in one process: through its serving
signatures (as TF Serving calls them) and as a Keras model called directly on
the same records, at batch 1, 32 and 256. Image models: serving_default
(serialized tf.Example), serving_images (float32 pixels), serving_png (PNG
bytes). Table models: serving_default and serving_raw (one tensor per column).
The Keras reference is called two ways: eagerly, as a user would, and inside a
tf.function, which is what a signature is; the ratio is taken against both.

  .venv/bin/python -m bench.serving                     # the model bench.e2e pushed
  .venv/bin/python -m bench.serving --model-dir DIR --examples-dir DIR
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bench import inputs, report
from components import features, signatures

BATCH_SIZES = (1, 32, 256)


def eval_records(examples_uri: str, limit: int) -> list[bytes]:
    """Up to `limit` serialized tf.Examples from the eval split."""
    files = sorted(glob.glob(os.path.join(examples_uri, "Split-eval", "*")))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


def cycle_batch(values, batch_size: int):
    """The first batch_size values, repeating them when there are fewer."""
    repeats = -(-batch_size // len(values))
    if isinstance(values, list):
        return (values * repeats)[:batch_size]
    return np.concatenate([values] * repeats)[:batch_size]


def measure(call: Callable[[], object], min_calls: int, budget_s: float):
    """Per-call seconds: three warm-up calls, then at least min_calls timed."""
    for _ in range(3):
        call()
    seconds = []
    started = time.perf_counter()
    while len(seconds) < min_calls or (
        time.perf_counter() - started < budget_s and len(seconds) < 2000
    ):
        begun = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - begun)
    return np.array(seconds)


def image_cases(loaded, records: list[bytes]):
    """(name, kind, function of a batch size -> call) for an image model."""
    parsed = tf.io.parse_example(
        records,
        {features.IMAGE_KEY: tf.io.FixedLenFeature([features.IMAGE_PIXELS], tf.int64)},
    )[features.IMAGE_KEY].numpy()
    pixels = parsed.astype(np.float32)
    images = pixels.reshape(-1, features.IMAGE_HEIGHT, features.IMAGE_WIDTH)
    pngs = [
        tf.io.encode_png(image.reshape(28, 28, 1).astype(np.uint8)).numpy()
        for image in parsed
    ]
    sigs = loaded.signatures

    def signature(name, key, values):
        function = sigs[name]

        def for_batch(batch_size):
            batch = tf.constant(cycle_batch(values, batch_size))
            return lambda: function(**{key: batch})

        return for_batch

    def keras_inputs(batch_size):
        return {features.IMAGE_KEY: tf.constant(cycle_batch(pixels, batch_size))}

    return [
        (
            signatures.SERVING_DEFAULT,
            "signature",
            signature(signatures.SERVING_DEFAULT, signatures.EXAMPLES_INPUT, records),
        ),
        (
            signatures.SERVING_IMAGES,
            "signature",
            signature(signatures.SERVING_IMAGES, signatures.IMAGES_INPUT, images),
        ),
        (
            signatures.SERVING_PNG,
            "signature",
            signature(signatures.SERVING_PNG, signatures.PNG_INPUT, pngs),
        ),
    ], keras_inputs


def table_cases(loaded, records: list[bytes]):
    """(name, kind, function of a batch size -> call) for a table model."""
    raw = loaded.signatures[signatures.SERVING_RAW]
    specs = raw.structured_input_signature[1]
    parsed = tf.io.parse_example(
        records,
        {name: tf.io.FixedLenFeature([], spec.dtype) for name, spec in specs.items()},
    )
    columns = {name: value.numpy() for name, value in parsed.items()}

    def default_for_batch(batch_size):
        batch = tf.constant(cycle_batch(records, batch_size))
        function = loaded.signatures[signatures.SERVING_DEFAULT]
        return lambda: function(**{signatures.EXAMPLES_INPUT: batch})

    def raw_for_batch(batch_size):
        batch = {
            name: tf.constant(cycle_batch(values, batch_size))
            for name, values in columns.items()
        }
        return lambda: raw(**batch)

    def keras_inputs(batch_size):
        return {
            name: tf.reshape(tf.constant(cycle_batch(values, batch_size)), [-1, 1])
            for name, values in columns.items()
        }

    return [
        (signatures.SERVING_DEFAULT, "signature", default_for_batch),
        (signatures.SERVING_RAW, "signature", raw_for_batch),
    ], keras_inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=inputs.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--model-dir", help="a pushed SavedModel version folder")
    parser.add_argument("--examples-dir", help="an ExampleGen output folder")
    parser.add_argument("--min-calls", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=4.0, help="per cell")
    args = parser.parse_args(argv)
    model_dir = args.model_dir or inputs.latest_pushed_model(args.output_dir)
    examples_uri = args.examples_dir or inputs.latest_examples_uri(args.output_dir)
    report.progress("loading %s", model_dir)
    loaded = tf.saved_model.load(model_dir)
    model = keras.models.load_model(model_dir, compile=False)
    records = eval_records(examples_uri, max(BATCH_SIZES))
    if signatures.SERVING_RAW in loaded.signatures:
        cases, keras_inputs = table_cases(loaded, records)
    else:
        cases, keras_inputs = image_cases(loaded, records)

    compiled = tf.function(lambda batch: model(batch, training=False))

    def keras_eager(batch_size):
        batch = keras_inputs(batch_size)
        return lambda: model(batch, training=False)

    def keras_function(batch_size):
        batch = keras_inputs(batch_size)
        return lambda: compiled(batch)

    cases = [
        ("Keras model, eager call", "reference", keras_eager),
        ("Keras model in tf.function", "reference", keras_function),
        *cases,
    ]
    rows, ratio_rows = [], []
    for batch_size in BATCH_SIZES:
        p50 = {}
        for name, _, make_call in cases:
            report.progress("%s, batch %d", name, batch_size)
            seconds = measure(make_call(batch_size), args.min_calls, args.budget_s)
            p50[name] = float(np.median(seconds))
            rows.append(
                [
                    name,
                    batch_size,
                    len(seconds),
                    p50[name] * 1000,
                    float(np.percentile(seconds, 99)) * 1000,
                    batch_size * len(seconds) / float(seconds.sum()),
                ]
            )
        for name, kind, _ in cases:
            if kind == "signature":
                ratio_rows.append(
                    [
                        name,
                        batch_size,
                        f"{p50[name] / p50[cases[1][0]]:.2f}",
                        f"{p50[name] / p50[cases[0][0]]:.2f}",
                    ]
                )
    report.print_table(
        ["call", "batch", "calls", "p50 ms", "p99 ms", "examples/s"], rows
    )
    print()
    report.print_table(
        ["signature", "batch", "p50 / Keras tf.function", "p50 / Keras eager"],
        ratio_rows,
    )
    print(f"\nModel {model_dir}; goal: a signature within 1.1x of the Keras call.")
    report.print_command()
    return 0


if __name__ == "__main__":
    sys.exit(main())
