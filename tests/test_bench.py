"""The benchmark scripts run on tiny data and print their tables.

Figures are not checked (benchmarks are never timed asserts); what is checked
is that each script reads the product's artifacts, runs both sides of its
comparison and prints the table, the ratios and the reproducing command.
"""

import pytest
import tensorflow as tf

from bench import quality, serving, trainer_input
from components import idx_example_gen, models, signatures
from tests.conftest import learnable_images


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory):
    """An ExampleGen-like folder: gzip TFRecords of tf.Examples per split."""
    root = tmp_path_factory.mktemp("examples")
    for split, count in (("train", 96), ("eval", 40)):
        images, labels = learnable_images(count, seed=len(split))
        folder = root / f"Split-{split}"
        folder.mkdir()
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        path = str(folder / "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options) as writer:
            for pixels, label in zip(images, labels, strict=True):
                example = idx_example_gen.to_example(pixels.reshape(-1), label)
                writer.write(example.SerializeToString())
    return str(root)


def test_trainer_input_prints_throughput_and_ratio(examples_dir, capsys):
    trainer_input.main(
        [
            "--examples-dir",
            examples_dir,
            "--presets",
            "seed_dense",
            "--variants",
            "numpy,streamed,cached-grouped",
            "--epochs",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    for variant in ("numpy, 1", "streamed, 1", "cached, 32"):
        assert f"| seed_dense fit, {variant} step(s)/execution" in printed
    assert "seed_dense: make_dataset streamed / numpy" in printed
    assert "seed_dense: Trainer now / Trainer before" in printed
    assert "96 train examples" in printed
    assert "Reproduce: " in printed


def test_serving_times_every_signature_and_the_keras_call(
    examples_dir, tmp_path, capsys
):
    model = models.build("seed_dense", 10)
    model_dir = str(tmp_path / "1")
    signatures.export_serving_model(model, model_dir, [str(n) for n in range(10)])
    serving.main(
        [
            "--model-dir",
            model_dir,
            "--examples-dir",
            examples_dir,
            "--min-calls",
            "3",
            "--budget-s",
            "0",
        ]
    )
    printed = capsys.readouterr().out
    for name in (*signatures.SIGNATURE_NAMES, "Keras model, eager call"):
        for batch in serving.BATCH_SIZES:
            assert any(
                line.startswith(f"| {name} ") and f"| {batch} " in line
                for line in printed.splitlines()
            ), (name, batch)
    assert "p50 / Keras tf.function" in printed


def test_quality_reports_accuracy_of_a_preset(examples_dir, capsys):
    quality.main(
        ["--examples-dir", examples_dir, "--presets", "seed_dense", "--epochs", "1"]
    )
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| seed_dense"))
    accuracy = float(row.split("|")[3])
    assert 0.0 <= accuracy <= 1.0
    assert "2 conv + pooling + batch norm" in printed
