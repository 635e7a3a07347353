"""Model presets learn, and the learning-rate callback follows its formula."""

import math

import numpy as np
import pytest
import tensorflow as tf

from components import features, models, schedules, trainer
from tests.conftest import learnable_images


def _dataset(count, batch_size=32, seed=0):
    images, labels = learnable_images(count, seed)
    pixels = images.reshape(count, features.IMAGE_PIXELS).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(
        ({features.IMAGE_KEY: pixels}, labels.astype(np.int64))
    ).batch(batch_size)


def _settings(preset="dense", epochs=1, **schedule):
    return trainer.TrainingSettings(
        preset=preset,
        epochs=epochs,
        batch_size=32,
        seed=3,
        schedule=schedules.ScheduleSpec(**schedule),
    )


@pytest.mark.parametrize("preset", sorted(models.PRESETS))
def test_a_few_steps_of_fit_lower_the_loss(preset):
    data = _dataset(320)
    keras_model, history = trainer.train(_settings(preset, epochs=3), data, None)
    assert history["loss"][-1] < history["loss"][0]
    probabilities = keras_model.predict(data.take(1), verbose=0)
    assert probabilities.shape == (32, features.NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_learns_an_easy_task_well():
    _, history = trainer.train(
        _settings("cnn", epochs=3), _dataset(640), _dataset(320, seed=1)
    )
    assert history["val_accuracy"][-1] > 0.8


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="cnn.*dense.*seed_dense"):
        models.build("resnet", 10)


def test_exponential_schedule_per_epoch_rates_in_the_history():
    _, history = trainer.train(
        _settings(
            "seed_dense",
            epochs=4,
            name="exponential",
            initial_learning_rate=1e-3,
            decay_rate=0.1,
            decay_start_epoch=2,
        ),
        _dataset(64),
        None,
    )
    expected = [1e-3, 1e-3, 1e-3 * math.exp(-0.1), 1e-3 * math.exp(-0.2)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-6)
    assert history["lr"][2] == pytest.approx(9.048e-4, rel=1e-3)


def test_step_and_constant_schedules():
    step = schedules.make_schedule(
        schedules.ScheduleSpec(
            name="step", initial_learning_rate=0.1, step_every_epochs=2, step_factor=0.5
        )
    )
    assert [step(epoch) for epoch in range(5)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    constant = schedules.make_schedule(
        schedules.ScheduleSpec(initial_learning_rate=0.01)
    )
    assert {constant(epoch) for epoch in range(5)} == {0.01}


def test_schedule_returning_a_tensor_is_cast_to_float():
    callback = schedules.learning_rate_callback(lambda epoch: tf.constant(0.5) ** epoch)
    model = models.build("seed_dense", 10)
    trainer.compile_model(model, 1.0)
    callback.set_model(model)
    callback.on_epoch_begin(2)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.25)


def test_unknown_schedule_lists_the_choices():
    with pytest.raises(
        ValueError, match="constant.*cosine.*exponential.*one_cycle.*step"
    ):
        schedules.make_schedule(schedules.ScheduleSpec(name="cosine-ish"))


def test_optimizer_with_a_schedule_object_is_refused_with_the_callback():
    decay = tf.keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    with pytest.raises(ValueError, match="schedule object"):
        trainer.train(
            _settings("seed_dense", epochs=1),
            _dataset(32),
            None,
            optimizer=tf.keras.optimizers.Adam(learning_rate=decay),
        )


def test_a_resumed_run_continues_the_schedule_from_its_epoch():
    settings = _settings(
        "seed_dense",
        epochs=5,
        name="exponential",
        initial_learning_rate=1e-3,
        decay_rate=0.1,
        decay_start_epoch=2,
    )
    _, history = trainer.train(settings, _dataset(64), None, initial_epoch=3)
    np.testing.assert_allclose(
        history["lr"], [1e-3 * math.exp(-0.2), 1e-3 * math.exp(-0.3)], rtol=1e-6
    )


def test_plateau_lowers_the_rate_when_validation_loss_stalls():
    settings = _settings(
        "seed_dense",
        epochs=6,
        name="plateau",
        initial_learning_rate=1e-9,
        step_factor=0.5,
        plateau_patience=1,
        min_learning_rate=1e-12,
    )
    # At 1e-9 nothing is learned, so the validation loss cannot improve.
    _, history = trainer.train(settings, _dataset(64), _dataset(64, seed=1))
    assert history["lr"][0] == pytest.approx(1e-9)
    assert history["lr"][-1] < history["lr"][0] / 2
