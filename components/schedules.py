"""Learning-rate schedules, applied per epoch through Keras callbacks.

A schedule maps a zero-based epoch index to a learning rate, and Keras's
LearningRateScheduler sets it at the start of each epoch; the callback casts
whatever the schedule returns to a Python float, so a schedule written with
TensorFlow ops works too. Because the index is the absolute epoch, a run resumed
with `initial_epoch` continues the schedule where it stopped. `plateau` is not a
function of the epoch: it lowers the rate when the validation loss stalls.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import tf_keras as keras

Schedule = Callable[[int], float]


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """The schedule part of the training config.

    Attributes:
      name: one of SCHEDULES, or plateau.
      initial_learning_rate: the base rate (the peak for cosine and one_cycle).
      epochs: the number of epochs the schedule spans (cosine, one_cycle).
      decay_rate: exponential: the rate is multiplied by exp(-decay_rate) per
        epoch from decay_start_epoch on.
      decay_start_epoch: exponential: first zero-based epoch that decays.
      step_every_epochs: step: epochs between drops.
      step_factor: step and plateau: factor applied at every drop.
      warmup_epochs: cosine: epochs of linear warm-up from a tenth of the rate.
      min_learning_rate: cosine, one_cycle and plateau: the floor.
      plateau_patience: plateau: epochs without a better validation loss
        before the rate drops.
    """

    name: str = "constant"
    initial_learning_rate: float = 1e-3
    epochs: int = 10
    decay_rate: float = 0.1
    decay_start_epoch: int = 2
    step_every_epochs: int = 3
    step_factor: float = 0.5
    warmup_epochs: int = 1
    min_learning_rate: float = 1e-6
    plateau_patience: int = 2


def constant(spec: ScheduleSpec) -> Schedule:
    return lambda epoch: spec.initial_learning_rate


def exponential(spec: ScheduleSpec) -> Schedule:
    def schedule(epoch: int) -> float:
        decayed_epochs = max(0, epoch - spec.decay_start_epoch + 1)
        return spec.initial_learning_rate * math.exp(-spec.decay_rate * decayed_epochs)

    return schedule


def step(spec: ScheduleSpec) -> Schedule:
    def schedule(epoch: int) -> float:
        return spec.initial_learning_rate * spec.step_factor ** (
            epoch // spec.step_every_epochs
        )

    return schedule


def cosine(spec: ScheduleSpec) -> Schedule:
    """Linear warm-up from a tenth of the rate, then a half cosine to the floor."""

    def schedule(epoch: int) -> float:
        peak = spec.initial_learning_rate
        if epoch < spec.warmup_epochs:
            start = peak / 10
            return start + (peak - start) * epoch / spec.warmup_epochs
        decay_epochs = max(1, spec.epochs - spec.warmup_epochs - 1)
        progress = min(1.0, (epoch - spec.warmup_epochs) / decay_epochs)
        floor = spec.min_learning_rate
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule


def one_cycle(spec: ScheduleSpec) -> Schedule:
    """Up from a tenth of the rate to the rate over 30% of the epochs, then down
    to the floor along a cosine (Smith's one-cycle policy, per epoch)."""

    def schedule(epoch: int) -> float:
        peak = spec.initial_learning_rate
        rise_epochs = max(1, round(0.3 * spec.epochs))
        if epoch < rise_epochs:
            start = peak / 10
            return start + (peak - start) * epoch / rise_epochs
        fall_epochs = max(1, spec.epochs - rise_epochs - 1)
        progress = min(1.0, (epoch - rise_epochs) / fall_epochs)
        floor = spec.min_learning_rate
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule


SCHEDULES: dict[str, Callable[[ScheduleSpec], Schedule]] = {
    "constant": constant,
    "exponential": exponential,
    "step": step,
    "cosine": cosine,
    "one_cycle": one_cycle,
}
PLATEAU = "plateau"
NAMES = (*sorted(SCHEDULES), PLATEAU)


def make_schedule(spec: ScheduleSpec) -> Schedule:
    """Returns the schedule function a spec names (not for plateau)."""
    try:
        return SCHEDULES[spec.name](spec)
    except KeyError:
        raise ValueError(
            f"no per-epoch formula for schedule {spec.name!r}; formulas exist for "
            f"{sorted(SCHEDULES)}"
        ) from None


def make_callback(spec: ScheduleSpec) -> keras.callbacks.Callback:
    """The Keras callback that applies a schedule spec during fit."""
    if spec.name == PLATEAU:
        return keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=spec.step_factor,
            patience=spec.plateau_patience,
            min_lr=spec.min_learning_rate,
        )
    return learning_rate_callback(make_schedule(spec))


def learning_rate_callback(schedule: Schedule) -> keras.callbacks.Callback:
    """A LearningRateScheduler that sets schedule(epoch) at each epoch start."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _current: float(schedule(epoch))
    )
