"""Learning-rate schedules, applied per epoch through a Keras callback.

A schedule maps a zero-based epoch index to a learning rate. The callback casts
whatever the schedule returns to a Python float, so a schedule written with
TensorFlow ops works too.
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
      name: constant, exponential or step.
      initial_learning_rate: the rate of the first epoch.
      decay_rate: exponential: the rate is multiplied by exp(-decay_rate) per
        epoch from decay_start_epoch on.
      decay_start_epoch: exponential: first zero-based epoch that decays.
      step_every_epochs: step: epochs between drops.
      step_factor: step: factor applied at every drop.
    """

    name: str = "constant"
    initial_learning_rate: float = 1e-3
    decay_rate: float = 0.1
    decay_start_epoch: int = 2
    step_every_epochs: int = 3
    step_factor: float = 0.5


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


SCHEDULES: dict[str, Callable[[ScheduleSpec], Schedule]] = {
    "constant": constant,
    "exponential": exponential,
    "step": step,
}


def make_schedule(spec: ScheduleSpec) -> Schedule:
    """Returns the schedule function a spec names."""
    try:
        return SCHEDULES[spec.name](spec)
    except KeyError:
        raise ValueError(
            f"unknown learning-rate schedule {spec.name!r}; choose one of "
            f"{sorted(SCHEDULES)}"
        ) from None


def learning_rate_callback(schedule: Schedule) -> keras.callbacks.Callback:
    """A LearningRateScheduler that sets schedule(epoch) at each epoch start."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _current: float(schedule(epoch))
    )
