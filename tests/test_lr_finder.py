"""The learning-rate chooser on planted curves, the sweep outputs, and the
schedules' per-epoch rates against their formulas."""

import csv
import json
import math

import numpy as np
import pytest

from components import lr_finder, schedules

RATES = np.geomspace(1e-6, 1.0, 300)


def _planted_curve(optimum, diverge_at=0.3):
    """High loss that falls fastest at `optimum`, bottoms out, then blows up."""
    log_rates = np.log10(RATES)
    loss = 2.3 - 1.5 * np.tanh((log_rates - math.log10(optimum)) / 0.6)
    beyond = RATES > diverge_at
    loss[beyond] += 50 * (np.log10(RATES[beyond]) - math.log10(diverge_at)) ** 2 * 10
    return loss


def _within(value, target, factor):
    return target / factor <= value <= target * factor


@pytest.mark.parametrize("optimum", [1e-4, 1e-3, 3e-3])
def test_clean_curve_picks_the_planted_optimum(optimum):
    choice = lr_finder.choose_learning_rate(RATES, _planted_curve(optimum))
    assert _within(choice.learning_rate, optimum, 1.3), choice
    assert choice.rule == "steepest descent of the loss"


def test_noisy_curve_picks_near_the_planted_optimum():
    noise = np.random.default_rng(7).normal(0, 0.15, size=len(RATES))
    choice = lr_finder.choose_learning_rate(RATES, _planted_curve(1e-3) + noise)
    assert _within(choice.learning_rate, 1e-3, 2.0), choice


def test_early_divergence_is_cut_and_the_choice_stays_before_it():
    losses = _planted_curve(1e-4, diverge_at=1e-2)
    losses[np.argmax(RATES > 2e-2) :] = np.inf
    choice = lr_finder.choose_learning_rate(RATES, losses)
    assert _within(choice.learning_rate, 1e-4, 1.5), choice
    assert choice.diverged_at is not None and choice.diverged_at <= 2e-2


def test_a_loss_that_never_falls_falls_back_to_a_tenth_of_the_minimum():
    losses = 2.0 + np.linspace(0, 1, len(RATES))
    choice = lr_finder.choose_learning_rate(RATES, losses)
    assert choice.learning_rate == pytest.approx(RATES[0] / 10)
    assert "a tenth" in choice.rule


def test_divergence_from_the_first_steps_is_an_error():
    losses = np.full(len(RATES), np.inf)
    losses[:2] = [2.3, 2.2]
    with pytest.raises(ValueError, match="lower the sweep's min_lr"):
        lr_finder.choose_learning_rate(RATES, losses)


def test_sweep_outputs_table_choice_and_plot(tmp_path):
    losses = _planted_curve(1e-3)
    points = [
        lr_finder.SweepPoint(step, float(rate), float(loss), float(loss) + 0.1)
        for step, (rate, loss) in enumerate(zip(RATES, losses, strict=True))
    ]
    choice = lr_finder.choose_learning_rate(RATES, losses)
    lr_finder.write_sweep(points, choice, str(tmp_path))
    with open(tmp_path / lr_finder.SWEEP_CSV) as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(RATES)
    assert float(rows[10]["learning_rate"]) == pytest.approx(RATES[10], rel=1e-5)
    assert json.loads((tmp_path / lr_finder.CHOICE_JSON).read_text())[
        "learning_rate"
    ] == pytest.approx(choice.learning_rate)
    assert (tmp_path / lr_finder.SWEEP_PLOT).read_bytes()[:4] == b"\x89PNG"


def test_exponential_rates_span_the_range():
    rates = lr_finder.exponential_rates(1e-5, 1e-1, 5)
    np.testing.assert_allclose(rates, [1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    with pytest.raises(ValueError):
        lr_finder.exponential_rates(1e-1, 1e-5, 10)


def test_per_epoch_rule_is_times_ten_every_twenty_epochs():
    assert lr_finder.per_epoch_rate(0) == pytest.approx(1e-3)
    assert lr_finder.per_epoch_rate(20) == pytest.approx(1e-2)
    assert lr_finder.per_epoch_rate(40) == pytest.approx(1e-1)


def _rates(name, epochs=10, **values):
    spec = schedules.ScheduleSpec(
        name=name, initial_learning_rate=1e-3, epochs=epochs, **values
    )
    schedule = schedules.make_schedule(spec)
    return [schedule(epoch) for epoch in range(epochs)]


def test_cosine_warms_up_then_falls_to_the_floor():
    rates = _rates("cosine", epochs=6, warmup_epochs=2, min_learning_rate=1e-5)
    expected_tail = [
        1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * k / 3)) for k in range(4)
    ]
    np.testing.assert_allclose(rates, [1e-4, 5.5e-4, *expected_tail], rtol=1e-9)


def test_one_cycle_rises_for_30_percent_then_falls():
    rates = _rates("one_cycle", epochs=10, min_learning_rate=1e-6)
    np.testing.assert_allclose(rates[:3], [1e-4, 4e-4, 7e-4], rtol=1e-9)
    assert rates[3] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-6)
    assert all(
        later <= earlier for earlier, later in zip(rates[3:], rates[4:], strict=False)
    )


def test_step_decay_formula_over_several_epochs():
    assert _rates(
        "step", epochs=7, step_every_epochs=3, step_factor=0.1
    ) == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5])


def test_lr_sweep_command_follows_the_per_epoch_rule(tmp_path, capsys):
    from pipeline import cli
    from tests.conftest import learnable_images, write_idx_pair

    images, labels = learnable_images(300)
    write_idx_pair(tmp_path / "data", "train", images, labels)
    write_idx_pair(tmp_path / "data", "t10k", images[:100], labels[:100])
    code = cli.main(
        [
            "lr-sweep",
            "--data-dir",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "out"),
            "--sweep-epochs",
            "8",
        ]
    )
    assert code == 0
    folder = tmp_path / "out" / "lr_sweep" / "seed_dense"
    history = json.loads((folder / "history.json").read_text())["history"]
    np.testing.assert_allclose(
        history["lr"],
        [lr_finder.per_epoch_rate(epoch) for epoch in range(8)],
        rtol=1e-6,
    )
    assert len(history["val_loss"]) == 8
    assert (folder / lr_finder.SWEEP_PLOT).exists()
    assert "Chosen learning rate" in capsys.readouterr().out


def test_min_tenth_rule_takes_a_tenth_of_the_minimum():
    losses = np.concatenate([np.linspace(2.3, 0.5, 200), np.linspace(0.5, 9.0, 100)])
    choice = lr_finder.choose_learning_rate(RATES, losses, lr_finder.MIN_TENTH)
    # The smoothed minimum lags the raw one by a few steps at most.
    assert _within(choice.min_loss_learning_rate, RATES[199], 1.4), choice
    assert choice.learning_rate == pytest.approx(choice.min_loss_learning_rate / 10)
    with pytest.raises(ValueError, match="unknown rule"):
        lr_finder.choose_learning_rate(RATES, losses, "median")
