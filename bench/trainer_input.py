"""Trainer input throughput: the product's input pipeline against in-memory numpy.

For each preset, trains the same model (same seed, batch size and epochs)
in one process on `components.trainer.make_dataset` over the ExampleGen's gzip
TFRecords (read every epoch, or cached) and with plain Keras `fit` on numpy
arrays held in memory, with one or STEPS_PER_EXECUTION steps per call of the
compiled step (see VARIANTS). Also times passes of the input pipeline alone.
The first epoch includes tracing; the steady rate is taken over the later
epochs.

  .venv/bin/python -m bench.trainer_input            # dense and cnn, 2 epochs
  .venv/bin/python -m bench.trainer_input --presets seed_dense --epochs 3
"""

from __future__ import annotations

import argparse
import sys
import time

import tensorflow as tf
import tf_keras as keras

from bench import inputs, report
from components import features, models, trainer


class EpochTimer(keras.callbacks.Callback):
    """Wall time and process CPU time (all threads) of each epoch.

    CPU time moves less than wall time when other jobs share the cores.
    """

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._started = (0.0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started[0])
        self.cpu_seconds.append(time.process_time() - self._started[1])


def time_fit(
    preset: str,
    data,
    epochs: int,
    batch_size: int,
    seed: int,
    steps_per_execution: int,
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per epoch of fitting a fresh model (dataset or arrays)."""
    keras.utils.set_random_seed(seed)
    model = models.build(preset, features.NUM_CLASSES)
    trainer.compile_model(model, 1e-3, steps_per_execution=steps_per_execution)
    timer = EpochTimer()
    if isinstance(data, tf.data.Dataset):
        model.fit(data, epochs=epochs, callbacks=[timer], verbose=0)
    else:
        pixels, labels = data
        model.fit(
            {features.IMAGE_KEY: pixels},
            labels,
            batch_size=batch_size,
            epochs=epochs,
            shuffle=True,
            callbacks=[timer],
            verbose=0,
        )
    return timer.seconds, timer.cpu_seconds


def time_pass(dataset: tf.data.Dataset) -> tuple[float, float]:
    """Wall and CPU seconds of one pass over a dataset with no model."""
    started = (time.perf_counter(), time.process_time())
    for _ in dataset:
        pass
    return time.perf_counter() - started[0], time.process_time() - started[1]


def steady(seconds: list[float]) -> float:
    """Mean epoch time after the first (which traces), or the only one."""
    later = seconds[1:] or seconds
    return sum(later) / len(later)


# (name, input, steps per execution): "streamed" is make_dataset reading the
# files every epoch, "cached" is make_dataset(cache=True), "numpy" is Keras
# fit on arrays in memory. The Trainer used "streamed, 1" before it cached
# splits and grouped steps, and uses "cached, STEPS_PER_EXECUTION" now.
VARIANTS = {
    "numpy": ("numpy", 1),
    "streamed": ("streamed", 1),
    "cached": ("cached", 1),
    "numpy-grouped": ("numpy", trainer.STEPS_PER_EXECUTION),
    "cached-grouped": ("cached", trainer.STEPS_PER_EXECUTION),
}
RATIOS = (
    ("streamed", "numpy", "make_dataset streamed / numpy (Trainer before)"),
    ("cached", "numpy", "make_dataset cached / numpy"),
    ("cached-grouped", "numpy-grouped", "make_dataset cached / numpy, steps grouped"),
    ("cached-grouped", "streamed", "Trainer now / Trainer before (speed-up)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=inputs.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--examples-dir", help="an ExampleGen output folder")
    parser.add_argument("--presets", default="dense,cnn")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    examples_uri = args.examples_dir or inputs.latest_examples_uri(args.output_dir)
    report.progress("reading %s into memory", examples_uri)
    arrays = inputs.split_arrays(examples_uri, "train")
    count = len(arrays[1])
    report.progress("%d train examples", count)

    def data(kind: str):
        if kind == "numpy":
            return arrays
        return inputs.product_dataset(
            examples_uri,
            "train",
            args.batch_size,
            shuffle=True,
            seed=args.seed,
            cache=kind == "cached",
        )

    rows = []
    for kind in ("streamed", "cached"):
        dataset = data(kind)
        for number in (1, 2):
            seconds, cpu_seconds = time_pass(dataset)
            rows.append(
                [
                    f"input pipeline alone, {kind}, pass {number}",
                    "-",
                    seconds,
                    cpu_seconds,
                    count / seconds,
                ]
            )
    ratio_rows = []
    variants = args.variants.split(",")
    for preset in args.presets.split(","):
        steady_s, steady_cpu_s = {}, {}
        for variant in variants:
            kind, steps = VARIANTS[variant]
            report.progress(
                "%s: fit, %s input, %d steps per execution", preset, kind, steps
            )
            seconds, cpu_seconds = time_fit(
                preset, data(kind), args.epochs, args.batch_size, args.seed, steps
            )
            steady_s[variant] = steady(seconds)
            steady_cpu_s[variant] = steady(cpu_seconds)
            rows.append(
                [
                    f"{preset} fit, {kind}, {steps} step(s)/execution",
                    " ".join(f"{s:.1f}" for s in seconds),
                    steady_s[variant],
                    steady_cpu_s[variant],
                    count / steady_s[variant],
                ]
            )
            report.progress("%s", rows[-1])
        for product, reference, label in RATIOS:
            if product in steady_s and reference in steady_s:
                ratio_rows.append(
                    [
                        f"{preset}: {label}",
                        f"{steady_s[reference] / steady_s[product]:.3f}",
                        f"{steady_cpu_s[reference] / steady_cpu_s[product]:.3f}",
                    ]
                )
    report.print_table(
        ["what", "epoch seconds", "steady s/epoch", "CPU s/epoch", "examples/s"],
        rows,
    )
    print()
    report.print_table(
        ["throughput ratio (goal >= 0.95 against numpy)", "wall", "CPU"], ratio_rows
    )
    print(
        f"\n{count} train examples, batch {args.batch_size}, {args.epochs} epochs; "
        "steady = mean of the epochs after the first; CPU = process CPU time, "
        "all threads."
    )
    report.print_command()
    return 0


if __name__ == "__main__":
    sys.exit(main())
