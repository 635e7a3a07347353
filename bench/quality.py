"""Test accuracy of each Fashion-MNIST preset against published figures.

Trains every image preset with the default job's settings (configs/
fashion_mnist.yaml: epochs, batch size, learning-rate schedule, seed) through
the Trainer's own code (`make_dataset` and `train`) on the ExampleGen output of
a pipeline run, and evaluates it on the eval split (the 10,000 test images).
The published figures are test accuracies of comparable models.

  .venv/bin/python -m bench.quality                          # all presets
  .venv/bin/python -m bench.quality --presets dense --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from bench import inputs, report
from components import models, trainer
from pipeline import config as config_module

# Published Fashion-MNIST test accuracies of comparable architectures.
PUBLISHED = {
    "2 conv + pooling": 0.916,
    "2 conv + pooling + batch norm": 0.934,
}
CLOSEST_PUBLISHED = {"cnn": "2 conv + pooling + batch norm"}


def settings_for(preset: str, epochs: int | None, config_path: str):
    config = config_module.load_config(config_path)
    settings = trainer.TrainingSettings(
        preset=preset,
        epochs=epochs or config.training.epochs,
        batch_size=config.training.batch_size,
        seed=config.training.seed,
        schedule=config.schedule_spec(),
        data=config.data_spec,
        optimizer=config.training.optimizer,
    )
    if epochs:
        settings = dataclasses.replace(
            settings, schedule=dataclasses.replace(settings.schedule, epochs=epochs)
        )
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=inputs.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--examples-dir", help="an ExampleGen output folder")
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--presets", default=",".join(models.PRESETS))
    parser.add_argument("--epochs", type=int, help="default: the config's")
    args = parser.parse_args(argv)
    examples_uri = args.examples_dir or inputs.latest_examples_uri(args.output_dir)
    rows = []
    for preset in args.presets.split(","):
        settings = settings_for(preset, args.epochs, args.config)
        report.progress("%s: %d epochs", preset, settings.epochs)
        train_data = inputs.product_dataset(
            examples_uri, "train", settings.batch_size, True, settings.seed
        )
        eval_data = inputs.product_dataset(
            examples_uri, "eval", settings.batch_size, False, settings.seed
        )
        started = time.monotonic()
        model, _ = trainer.train(settings, train_data, None)
        train_s = time.monotonic() - started
        _, accuracy = model.evaluate(eval_data, verbose=0)
        published = CLOSEST_PUBLISHED.get(preset)
        rows.append(
            [
                preset,
                settings.epochs,
                accuracy,
                published or "-",
                f"{accuracy / PUBLISHED[published]:.3f}" if published else "-",
                round(train_s, 1),
            ]
        )
        report.progress("%s", rows[-1])
    report.print_table(
        [
            "preset",
            "epochs",
            "test accuracy",
            "published comparison",
            "ratio",
            "train s",
        ],
        rows,
    )
    print()
    report.print_table(
        ["published model", "test accuracy"], [[k, v] for k, v in PUBLISHED.items()]
    )
    report.print_command()
    return 0


if __name__ == "__main__":
    sys.exit(main())
