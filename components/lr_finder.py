"""The learning-rate finder: a short sweep that picks the Trainer's rate.

The configured model is trained from scratch while the learning rate grows
exponentially, per batch (over a configurable number of steps, about one epoch)
or per epoch (the classic `1e-3 * 10**(epoch / 20)` rule). Each step records the
rate, the training loss of that batch and the loss on a fixed validation batch.

The chosen rate follows a documented rule (`choose_learning_rate`): smooth
the training loss, cut the curve where it diverges, and either take a tenth of
the rate of minimum smoothed loss (`min_tenth`), or take the rate where the
loss falls fastest against log10(rate) (a least-squares slope over a centred
window of 10% of the steps, skipping the first 10%), below the rate of minimum
smoothed loss. That is where the model learns fastest while
still stable; the rate at the minimum itself is already on the edge of
divergence.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os

import numpy as np

# Loss above this multiple of the best smoothed loss so far means divergence.
DIVERGENCE_FACTOR = 4.0
# The moving average spans about this share of the sweep's steps.
SMOOTHING_SHARE = 0.025
SWEEP_CSV = "sweep.csv"
SWEEP_PLOT = "sweep.png"
CHOICE_JSON = "choice.json"


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    step: int
    learning_rate: float
    loss: float
    val_loss: float | None = None


@dataclasses.dataclass(frozen=True)
class Choice:
    """The chosen rate and how it was found."""

    learning_rate: float
    rule: str
    min_loss_learning_rate: float
    diverged_at: float | None


def exponential_rates(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """`steps` rates from min_lr to max_lr, evenly spaced on a log scale."""
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    if steps < 5:
        raise ValueError(f"a sweep needs at least 5 steps, got {steps}")
    return np.geomspace(min_lr, max_lr, steps)


def per_epoch_rate(epoch: int, start: float = 1e-3) -> float:
    """The per-epoch sweep rule: x10 every 20 epochs from `start`."""
    return start * 10 ** (epoch / 20)


def smooth(losses: np.ndarray) -> np.ndarray:
    """Bias-corrected exponential moving average over ~2.5% of the steps.

    A 300-step batch sweep is averaged over about 8 steps; a 40-epoch sweep,
    whose points are already epoch means, is left as it is.
    """
    beta = max(0.0, 1.0 - 1.0 / (SMOOTHING_SHARE * len(losses)))
    smoothed = np.empty(len(losses))
    average = 0.0
    for index, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed[index] = average / (1 - beta ** (index + 1))
    return smoothed


STEEPEST = "steepest"
MIN_TENTH = "min_tenth"
RULES = (STEEPEST, MIN_TENTH)


def choose_learning_rate(rates, losses, rule: str = STEEPEST) -> Choice:
    """Picks a rate from a sweep by one of two rules.

    Args:
      rates: increasing learning rates, one per step.
      losses: the training loss at each step (NaN or inf where it blew up).
      rule: `steepest`, the rate where the loss falls fastest; or
        `min_tenth`, a tenth of the rate of minimum smoothed loss.

    Returns:
      The choice. When the loss never falls, `steepest` also falls back to a
      tenth of the rate of minimum loss, and the choice's rule says so.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {list(RULES)}")
    rates = np.asarray(rates, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if len(rates) != len(losses) or len(rates) < 5:
        raise ValueError("need at least 5 (rate, loss) pairs of equal length")
    finite = np.isfinite(losses)
    end = len(losses) if finite.all() else int(np.argmin(finite))
    smoothed = smooth(losses[:end])
    diverged_at = None
    best = np.minimum.accumulate(smoothed)
    over = np.nonzero(smoothed > DIVERGENCE_FACTOR * best)[0]
    if len(over):
        end = int(over[0])
        diverged_at = float(rates[end])
    elif end < len(losses):
        diverged_at = float(rates[end])
    smoothed = smoothed[:end]
    if len(smoothed) < 3:
        raise ValueError(
            f"the loss diverged after {len(smoothed)} steps, at rate "
            f"{rates[len(smoothed)]:.3g}; lower the sweep's min_lr"
        )
    minimum = int(np.argmin(smoothed))
    min_loss_rate = float(rates[minimum])
    if rule == MIN_TENTH:
        return Choice(
            min_loss_rate / 10,
            "a tenth of the rate of minimum loss",
            min_loss_rate,
            diverged_at,
        )
    skip = len(losses) // 10
    half_window = max(2, len(losses) // 20)
    if minimum - skip < 2 * half_window:
        return Choice(
            min_loss_rate / 10,
            "no clear descent: a tenth of the rate of minimum loss",
            min_loss_rate,
            diverged_at,
        )
    # The slopes are fitted to the raw losses in a centred window: the moving
    # average lags behind the rate and would move the choice too high.
    log_rates = np.log10(rates)
    slopes = {
        index: np.polyfit(
            log_rates[index - half_window : index + half_window + 1],
            losses[index - half_window : index + half_window + 1],
            1,
        )[0]
        for index in range(max(skip, half_window), minimum - half_window + 1)
    }
    steepest = min(slopes, key=slopes.get)
    return Choice(
        float(rates[steepest]),
        "steepest descent of the loss",
        min_loss_rate,
        diverged_at,
    )


def write_sweep(points: list[SweepPoint], choice: Choice, folder: str) -> None:
    """Writes the sweep as CSV, the choice as JSON and the plot as PNG."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, SWEEP_CSV), "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["step", "learning_rate", "loss", "val_loss"])
        for point in points:
            writer.writerow(
                [
                    point.step,
                    f"{point.learning_rate:.6g}",
                    f"{point.loss:.6g}",
                    "" if point.val_loss is None else f"{point.val_loss:.6g}",
                ]
            )
    with open(os.path.join(folder, CHOICE_JSON), "w") as stream:
        json.dump(dataclasses.asdict(choice), stream, indent=2)
    plot_sweep(points, choice, os.path.join(folder, SWEEP_PLOT))


def plot_sweep(points: list[SweepPoint], choice: Choice, path: str) -> None:
    """Loss against learning rate on a log axis, the chosen rate marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rates = [point.learning_rate for point in points]
    losses = np.array([point.loss for point in points])
    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    axes.plot(rates, losses, color="#bbbbbb", linewidth=1, label="training loss")
    finite = np.isfinite(losses)
    if finite.any():
        count = int(np.argmin(finite)) if not finite.all() else len(losses)
        axes.plot(
            rates[:count], smooth(losses[:count]), color="#1f77b4", label="smoothed"
        )
    val = [
        (point.learning_rate, point.val_loss)
        for point in points
        if point.val_loss is not None
    ]
    if val:
        axes.plot(
            *zip(*val, strict=True),
            color="#ff7f0e",
            linewidth=1,
            label="validation loss",
        )
    axes.axvline(
        choice.learning_rate,
        color="#2ca02c",
        linestyle="--",
        label=f"chosen {choice.learning_rate:.2g}",
    )
    axes.set_xscale("log")
    upper = (
        np.nanpercentile(np.where(finite, losses, np.nan), 90) if finite.any() else 1
    )
    lower = np.nanmin(np.where(finite, losses, np.nan)) if finite.any() else 0
    axes.set_ylim(max(0.0, lower * 0.9), upper * 1.5)
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("loss")
    axes.set_title("Learning-rate sweep")
    axes.legend(loc="upper left")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def per_batch_sweep(model, train_batches, val_batch, rates) -> list[SweepPoint]:
    """Trains one batch per rate; stops early once the loss diverges.

    Args:
      model: a compiled Keras model, freshly initialised.
      train_batches: an iterable of (features, labels), at least len(rates).
      val_batch: one fixed (features, labels) batch for the validation loss.
      rates: the increasing learning rates, one per step.
    """
    points: list[SweepPoint] = []
    best = math.inf
    for step, (rate, (features, labels)) in enumerate(
        zip(rates, train_batches, strict=False)
    ):
        model.optimizer.learning_rate.assign(float(rate))
        loss = float(model.train_on_batch(features, labels, reset_metrics=True)[0])
        val_loss = float(
            model.test_on_batch(val_batch[0], val_batch[1], reset_metrics=True)[0]
        )
        points.append(SweepPoint(step, float(rate), loss, val_loss))
        if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * 2 * best:
            break
        best = min(best, loss)
    return points


def per_epoch_sweep(
    model, train_data, validation_data, epochs: int, start: float = 1e-3
):
    """The per-epoch sweep: fit with rate `start * 10**(epoch / 20)` per epoch.

    Returns the sweep points (one per epoch, with validation loss) and the full
    Keras history.
    """
    import tf_keras as keras

    history = model.fit(
        *train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=[
            keras.callbacks.LearningRateScheduler(
                lambda epoch: per_epoch_rate(epoch, start)
            )
        ],
        verbose=0,
    ).history
    points = [
        SweepPoint(
            epoch,
            float(history["lr"][epoch]),
            float(history["loss"][epoch]),
            float(history["val_loss"][epoch]),
        )
        for epoch in range(len(history["loss"]))
    ]
    return points, {
        name: [float(value) for value in values] for name, values in history.items()
    }
