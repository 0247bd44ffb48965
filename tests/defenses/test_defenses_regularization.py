"""Weight decay, label smoothing and the acceptance check that the undefended model overfits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from defenses import (
    OPTIMIZERS,
    DefenseConfig,
    TrainingRecipe,
    build_criterion,
    build_mlp,
    build_optimizer,
    predict_logits,
    train_model,
)
from defenses.regularization import OPTIMIZER_FACTORIES

CPU = torch.device("cpu")


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-record cross-entropy in numpy, independent of torch."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]


class TestOptimizer:
    def test_registry_matches_the_config(self) -> None:
        assert sorted(OPTIMIZER_FACTORIES) == sorted(OPTIMIZERS)

    def test_sgd_has_momentum_and_weight_decay(self) -> None:
        opt = build_optimizer(
            build_mlp(4, 2), DefenseConfig(weight_decay=0.01), TrainingRecipe(learning_rate=0.1)
        )
        assert isinstance(opt, torch.optim.SGD)
        assert (opt.defaults["lr"], opt.defaults["momentum"], opt.defaults["weight_decay"]) == (
            0.1,
            0.9,
            0.01,
        )

    def test_adam(self) -> None:
        opt = build_optimizer(
            build_mlp(4, 2),
            DefenseConfig(weight_decay=1e-4),
            TrainingRecipe(optimizer="adam", learning_rate=1e-3),
        )
        assert isinstance(opt, torch.optim.Adam)
        assert (opt.defaults["lr"], opt.defaults["weight_decay"]) == (1e-3, 1e-4)

    def test_weight_decay_shrinks_the_weights(self, digits) -> None:
        X, y = digits

        def weight_norm(weight_decay: float) -> float:
            trained = train_model(
                lambda: build_mlp(64, 10, hidden_sizes=(32,)),
                DefenseConfig(weight_decay=weight_decay),
                TrainingRecipe(hidden_sizes=(32,), epochs=20),
                (X[:300], y[:300]),
                seed=0,
                device=CPU,
            )
            with torch.no_grad():
                return float(torch.sqrt(sum((p**2).sum() for p in trained.model.parameters())))

        assert weight_norm(0.05) < 0.8 * weight_norm(0.0)


class TestLabelSmoothing:
    def test_loss_matches_the_formula(self) -> None:
        logits, target, s = [2.0, 0.0, -1.0], 0, 0.2
        log_norm = math.log(sum(math.exp(v) for v in logits))
        nll = [log_norm - v for v in logits]  # -log p_k
        expected = (1 - s) * nll[target] + s / 3 * sum(nll)  # target (1-s)·onehot + s/K
        loss = build_criterion(DefenseConfig(label_smoothing=s))(
            torch.tensor([logits]), torch.tensor([target])
        )
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        plain = build_criterion(DefenseConfig())(torch.tensor([logits]), torch.tensor([target]))
        assert plain.item() == pytest.approx(nll[target], rel=1e-6)

    def test_training_uses_it_and_it_tempers_confidence(self, digits) -> None:
        X, y = digits

        def train(smoothing: float):
            return train_model(
                lambda: build_mlp(64, 10, hidden_sizes=(32,)),
                DefenseConfig(label_smoothing=smoothing),
                TrainingRecipe(hidden_sizes=(32,), epochs=15),
                (X[:300], y[:300]),
                seed=0,
                device=CPU,
            )

        def mean_top_probability(trained) -> float:
            logits = predict_logits(trained.model, X[:300], device=CPU)
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            return float((probs.max(axis=1) / probs.sum(axis=1)).mean())

        plain, smoothed = train(0.0), train(0.3)
        # A fitted model's smoothed loss stays well above its plain loss: the
        # smoothed target can never be matched by a confident prediction.
        assert smoothed.history[-1].train_loss > plain.history[-1].train_loss + 0.3
        assert mean_top_probability(smoothed) < mean_top_probability(plain) - 0.1


def test_undefended_model_overfits_a_tiny_training_set(digits) -> None:
    """Acceptance: without defenses, members' loss is far below non-members' (what MIAs exploit)."""
    X, y = digits
    members, non_members = (X[:60], y[:60]), (X[60:560], y[60:560])
    trained = train_model(
        lambda: build_mlp(64, 10, hidden_sizes=(128,)),
        DefenseConfig(),
        TrainingRecipe(hidden_sizes=(128,), epochs=200, batch_size=32),
        members,
        seed=0,
        device=CPU,
    )
    member_loss = cross_entropy(
        predict_logits(trained.model, members[0], device=CPU), members[1]
    ).mean()
    non_member_loss = cross_entropy(
        predict_logits(trained.model, non_members[0], device=CPU), non_members[1]
    ).mean()
    assert member_loss < 0.1 * non_member_loss


def test_criterion_is_cross_entropy() -> None:
    assert isinstance(build_criterion(DefenseConfig()), nn.CrossEntropyLoss)
