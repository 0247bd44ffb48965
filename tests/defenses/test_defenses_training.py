"""train_model and predict_logits: reproducibility, early stopping, callbacks, arguments."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from defenses import (
    DefenseConfig,
    DPSettings,
    EpochLog,
    TrainingRecipe,
    build_mlp,
    predict_logits,
    train_model,
)

CPU = torch.device("cpu")
RECIPE = TrainingRecipe(hidden_sizes=(32,), epochs=5, batch_size=64)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def _train(
    digits, defense: DefenseConfig, *, seed: int = 0, recipe: TrainingRecipe = RECIPE, **kwargs
):
    X, y = digits
    return train_model(
        lambda: build_mlp(64, 10, hidden_sizes=recipe.hidden_sizes, dropout=defense.dropout),
        defense,
        recipe,
        (X[:300], y[:300]),
        seed=seed,
        device=CPU,
        **kwargs,
    )


class TestReproducibility:
    @pytest.mark.parametrize(
        "defense",
        [
            DefenseConfig(dropout=0.2),
            DefenseConfig(dp=DPSettings(noise_multiplier=1.0), dropout=0.2, weight_decay=1e-3),
        ],
        ids=["plain", "dp"],
    )
    def test_same_seed_same_logits_other_seed_other_logits(
        self, digits, defense: DefenseConfig
    ) -> None:
        X = digits[0][1000:1100]
        first = predict_logits(
            _train(digits, defense, seed=3, track_epsilon=False).model, X, device=CPU
        )
        again = predict_logits(
            _train(digits, defense, seed=3, track_epsilon=False).model, X, device=CPU
        )
        other = predict_logits(
            _train(digits, defense, seed=4, track_epsilon=False).model, X, device=CPU
        )
        assert np.array_equal(first, again)
        assert not np.allclose(first, other)


class TestEarlyStopping:
    SCRIPT = [0.1, 0.5, 0.9, 0.4, 0.3, 0.2, 0.1, 0.0]  # peaks at epoch 3

    def _scripted(self) -> tuple[Callable[[np.ndarray, np.ndarray], float], list[np.ndarray]]:
        seen: list[np.ndarray] = []

        def score(logits: np.ndarray, labels: np.ndarray) -> float:
            seen.append(logits.copy())
            return self.SCRIPT[len(seen) - 1]

        return score, seen

    @pytest.mark.parametrize("dp", [None, DPSettings(noise_multiplier=1.0)], ids=["plain", "dp"])
    def test_stops_at_peak_plus_patience_and_restores_the_peak(
        self, digits, dp: DPSettings | None
    ) -> None:
        X, y = digits
        score, seen = self._scripted()
        trained = _train(
            digits,
            DefenseConfig(dp=dp, early_stopping_patience=2),
            recipe=TrainingRecipe(hidden_sizes=(32,), epochs=8),
            validation=(X[1000:1200], y[1000:1200]),
            validation_score=score,
        )
        assert (trained.epochs_run, trained.best_epoch, len(trained.history)) == (5, 3, 5)
        assert [log.validation_utility for log in trained.history] == self.SCRIPT[:5]
        assert not np.array_equal(seen[2], seen[4])
        assert np.array_equal(predict_logits(trained.model, X[1000:1200], device=CPU), seen[2])
        assert not trained.model.training

    def test_best_weights_are_kept_even_without_stopping(self, digits) -> None:
        X, y = digits
        score, seen = self._scripted()
        trained = _train(
            digits,
            DefenseConfig(early_stopping_patience=10),
            validation=(X[1000:1200], y[1000:1200]),
            validation_score=score,
        )
        assert (trained.epochs_run, trained.best_epoch) == (5, 3)
        assert np.array_equal(predict_logits(trained.model, X[1000:1200], device=CPU), seen[2])

    def test_patience_without_validation_is_refused(self, digits) -> None:
        with pytest.raises(ValueError) as info:
            _train(digits, DefenseConfig(early_stopping_patience=3))
        assert str(info.value) == (
            "early_stopping_patience=3 needs validation data and a validation_score "
            "to decide when to stop"
        )


def test_without_early_stopping_the_last_epoch_is_kept(digits) -> None:
    X, y = digits
    trained = _train(
        digits, DefenseConfig(), validation=(X[1000:1200], y[1000:1200]), validation_score=accuracy
    )
    assert (trained.epochs_run, trained.best_epoch) == (5, 5)
    assert [log.epoch for log in trained.history] == [1, 2, 3, 4, 5]
    assert trained.history[-1].validation_utility == accuracy(
        predict_logits(trained.model, X[1000:1200], device=CPU), y[1000:1200]
    )
    assert trained.history[-1].validation_utility > 0.5  # chance is 0.1


@pytest.mark.parametrize("dp", [None, DPSettings(noise_multiplier=1.0)], ids=["plain", "dp"])
def test_on_epoch_end_sees_each_epoch_and_its_exception_propagates(
    digits, dp: DPSettings | None
) -> None:
    class Pruned(Exception):
        pass

    logs: list[EpochLog] = []

    def on_epoch_end(log: EpochLog) -> None:
        logs.append(log)
        if log.epoch == 2:
            raise Pruned(log.epoch)

    with pytest.raises(Pruned):
        _train(digits, DefenseConfig(dp=dp), on_epoch_end=on_epoch_end)
    assert [log.epoch for log in logs] == [1, 2]
    assert all(np.isfinite(log.train_loss) for log in logs)
    assert (logs[0].epsilon is not None) == (dp is not None)


class TestArguments:
    def test_validation_without_score_is_refused(self, digits) -> None:
        X, y = digits
        with pytest.raises(ValueError) as info:
            _train(digits, DefenseConfig(), validation=(X[:10], y[:10]))
        assert str(info.value) == (
            "validation and validation_score must be given together, "
            "but got validation=set, validation_score=None"
        )

    def test_mismatched_rows_are_refused(self) -> None:
        with pytest.raises(ValueError) as info:
            train_model(
                lambda: build_mlp(4, 2),
                DefenseConfig(),
                RECIPE,
                (np.zeros((5, 4)), np.zeros(4, dtype=int)),
                seed=0,
                device=CPU,
            )
        assert str(info.value) == (
            "train must hold X of shape (n, d) and y of shape (n,) with n >= 1, "
            "but got X (5, 4) and y (4,)"
        )

    def test_float_labels_are_refused(self) -> None:
        with pytest.raises(
            ValueError, match="train y must hold integer class labels, but got dtype float64"
        ):
            train_model(
                lambda: build_mlp(4, 2),
                DefenseConfig(),
                RECIPE,
                (np.zeros((5, 4)), np.zeros(5)),
                seed=0,
                device=CPU,
            )


class TestPredictLogits:
    def test_float64_eval_mode_and_chunking(self) -> None:
        torch.manual_seed(0)
        model = build_mlp(6, 3, dropout=0.5)
        model.train()
        X = np.random.default_rng(0).normal(size=(50, 6))
        whole = predict_logits(model, X, device=CPU)
        chunked = predict_logits(model, X, device=CPU, batch_size=7)
        assert whole.dtype == np.float64 and whole.shape == (50, 3)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
        assert np.array_equal(whole, predict_logits(model, X, device=CPU))  # dropout is off
        assert model.training  # the caller's mode is restored

    def test_empty_input(self) -> None:
        assert predict_logits(build_mlp(6, 3), np.zeros((0, 6)), device=CPU).shape == (0, 3)
