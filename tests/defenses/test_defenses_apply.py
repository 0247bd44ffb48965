"""defenses.prepare_training: an exported recommendation applied in the user's own loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.grad_sample import AbstractGradSampleModule as GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from defenses import (
    DefenseConfig,
    DPSettings,
    IncompatibleModelError,
    PreparedTraining,
    TrainingRecipe,
    prepare_training,
)
from defenses.recommendation import LoadedRecommendation


def recommendation(defense: DefenseConfig, epochs: int = 3) -> LoadedRecommendation:
    return LoadedRecommendation(defense=defense, recipe=TrainingRecipe(epochs=epochs, batch_size=20), document={})


def user_model(p: float = 0.5) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(p), nn.Linear(8, 8), nn.Dropout1d(p), nn.Linear(8, 3))


def user_loader(n: int = 100, batch_size: int = 20) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(n, 4, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True, generator=generator)


def param_groups_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    first, rest = list(model.parameters())[:2], list(model.parameters())[2:]
    return torch.optim.SGD([{"params": first, "weight_decay": 0.5}, {"params": rest}], lr=0.1)


class TestWithoutDP:
    def test_regularization_reaches_the_users_objects(self):
        model = user_model(p=0.5)
        optimizer = param_groups_optimizer(model)
        loader = user_loader()
        defense = DefenseConfig(weight_decay=1e-3, dropout=0.2, label_smoothing=0.15, early_stopping_patience=2)
        ready = prepare_training(recommendation(defense), model, optimizer, loader)
        assert isinstance(ready, PreparedTraining)
        assert ready.model is model and ready.optimizer is optimizer and ready.data_loader is loader
        assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-3, 1e-3]
        assert [m.p for m in model.modules() if isinstance(m, (nn.Dropout, nn.Dropout1d))] == [0.2, 0.2]
        assert ready.criterion.label_smoothing == 0.15
        assert ready.early_stopping.patience == 2
        assert ready.privacy is None and ready.epsilon() is None and ready.epochs == 3

    def test_label_smoothing_in_the_loss_value(self):
        ready = prepare_training(
            recommendation(DefenseConfig(label_smoothing=0.3)), user_model(), param_groups_optimizer(user_model()),
            user_loader(),
        )
        logits = torch.tensor([[2.0, 0.0, -1.0]])
        log_p = torch.log_softmax(logits, dim=1)[0]
        # smoothed target: 0.7 on the label + 0.3/3 on every class
        expected = -(0.8 * log_p[0] + 0.1 * log_p[1] + 0.1 * log_p[2])
        assert float(ready.criterion(logits, torch.tensor([0]))) == pytest.approx(float(expected))

    def test_no_early_stopping_never_stops(self):
        ready = prepare_training(recommendation(DefenseConfig()), user_model(), param_groups_optimizer(user_model()),
                                 user_loader())
        assert ready.early_stopping is None
        assert not any(ready.should_stop(v) for v in [0.9, 0.1, 0.1, 0.1])

    def test_early_stopping_keeps_the_best_epochs_weights(self):
        model = user_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        ready = prepare_training(recommendation(DefenseConfig(early_stopping_patience=2), epochs=10), model,
                                 optimizer, user_loader())
        snapshots, stopped_at = [], None
        for epoch, value in enumerate([0.5, 0.8, 0.7, 0.6, 0.9], start=1):
            for xb, yb in ready.data_loader:
                ready.optimizer.zero_grad()
                ready.criterion(ready.model(xb), yb).backward()
                ready.optimizer.step()
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
            if ready.should_stop(value):
                stopped_at = epoch
                break
        assert stopped_at == 4  # epochs 3 and 4 did not beat 0.8
        released = ready.release()
        for key, value in released.state_dict().items():
            assert torch.equal(value, snapshots[1][key])  # epoch 2's weights

    def test_dropout_without_a_dropout_layer_is_refused(self):
        model = nn.Sequential(nn.Linear(4, 3))
        with pytest.raises(ValueError, match=r"the recommendation sets dropout=0\.3, but the model has no dropout layer"):
            prepare_training(recommendation(DefenseConfig(dropout=0.3)), model,
                             torch.optim.SGD(model.parameters(), lr=0.1), user_loader())

    def test_weight_decay_needs_an_optimizer_that_takes_it(self):
        model = user_model()
        optimizer = torch.optim.LBFGS(model.parameters())
        with pytest.raises(ValueError, match="LBFGS has no weight_decay setting"):
            prepare_training(recommendation(DefenseConfig(weight_decay=0.1)), model, optimizer, user_loader())


class TestWithDP:
    def test_opacus_gets_the_exported_settings(self):
        model = user_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        dp = DPSettings(noise_multiplier=1.3, max_grad_norm=0.7, accountant="rdp")
        ready = prepare_training(recommendation(DefenseConfig(dp=dp, weight_decay=1e-4)), model, optimizer,
                                 user_loader(n=100, batch_size=20), noise_seed=0)
        assert isinstance(ready.model, GradSampleModule)
        assert isinstance(ready.optimizer, DPOptimizer)
        assert ready.optimizer.noise_multiplier == 1.3 and ready.optimizer.max_grad_norm == 0.7
        assert ready.optimizer.param_groups[0]["weight_decay"] == 1e-4
        ledger = ready.privacy
        assert ledger.delta == pytest.approx(1 / (10 * 100))  # δ = 1/(10·n) for the user's n
        assert ledger.sample_rate == pytest.approx(20 / 100)  # 1 / len(loader)
        for xb, yb in ready.data_loader:  # one epoch of the user's loop
            ready.optimizer.zero_grad()
            ready.criterion(ready.model(xb), yb).backward()
            ready.optimizer.step()
        accountant = RDPAccountant()
        for _ in range(5):
            accountant.step(noise_multiplier=1.3, sample_rate=0.2)
        assert ready.epsilon() == pytest.approx(accountant.get_epsilon(delta=1e-3), rel=1e-9)
        plain = ready.release()
        assert not isinstance(plain, GradSampleModule) and isinstance(plain, nn.Sequential)

    def test_per_sample_gradients_are_clipped_to_C(self):
        model = nn.Sequential(nn.Linear(4, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        dp = DPSettings(noise_multiplier=1e-9, max_grad_norm=0.01, accountant="rdp")
        ready = prepare_training(recommendation(DefenseConfig(dp=dp)), model, optimizer, user_loader(), noise_seed=0)
        before = [p.detach().clone() for p in model.parameters()]
        for xb, yb in ready.data_loader:
            ready.optimizer.zero_grad()
            ready.criterion(ready.model(xb) * 100, yb).backward()
            ready.optimizer.step()
            batch = len(yb)
            break
        step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
        # the averaged clipped gradient has norm at most C (noise ≈ 0), scaled by lr = 1 and the
        # expected batch size 20 against the actual batch
        assert float(step.norm()) <= 0.01 * batch / 20 + 1e-6

    def test_target_epsilon_is_reached_over_the_epochs(self):
        model = user_model()
        dp = DPSettings(target_epsilon=2.0, max_grad_norm=1.0, accountant="rdp")
        ready = prepare_training(recommendation(DefenseConfig(dp=dp), epochs=2), model,
                                 torch.optim.SGD(model.parameters(), lr=0.1), user_loader(), noise_seed=0)
        accountant = RDPAccountant()
        for _ in range(2 * 5):
            accountant.step(noise_multiplier=ready.privacy.noise_multiplier, sample_rate=0.2)
        assert accountant.get_epsilon(delta=1e-3) == pytest.approx(2.0, abs=0.05)

    def test_batchnorm_is_refused_with_the_reason(self):
        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
        dp = DPSettings(noise_multiplier=1.0)
        with pytest.raises(IncompatibleModelError, match="BatchNorm"):
            prepare_training(recommendation(DefenseConfig(dp=dp)), model,
                             torch.optim.SGD(model.parameters(), lr=0.1), user_loader())


def test_epochs_argument_is_checked():
    model = user_model()
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, but got epochs=0"):
        prepare_training(recommendation(DefenseConfig()), model, torch.optim.SGD(model.parameters(), lr=0.1),
                         user_loader(), epochs=0)


def test_accuracy_matches_the_tuners_training_loop(digits):
    """Same defense and recipe, the user's loop and defenses.train_model land at similar accuracy."""
    from defenses import build_mlp, predict_logits, train_model

    X, y = digits
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:1200], order[1200:]
    defense = DefenseConfig(dp=DPSettings(noise_multiplier=0.8, max_grad_norm=1.0), weight_decay=1e-4)
    recipe = TrainingRecipe(epochs=8, batch_size=64, learning_rate=0.1)
    tuner = train_model(lambda: build_mlp(64, 10), defense, recipe, (X[train], y[train]), seed=0,
                        device=torch.device("cpu"))
    tuner_acc = float(np.mean(predict_logits(tuner.model, X[test], device=torch.device("cpu")).argmax(1) == y[test]))

    torch.manual_seed(0)
    model = build_mlp(64, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=0.9)
    loader = DataLoader(TensorDataset(torch.from_numpy(X[train]), torch.from_numpy(y[train])), batch_size=64,
                        shuffle=True, generator=torch.Generator().manual_seed(0))
    ready = prepare_training(LoadedRecommendation(defense, recipe, {}), model, optimizer, loader, noise_seed=1)
    for _ in range(ready.epochs):
        for xb, yb in ready.data_loader:
            ready.optimizer.zero_grad()
            ready.criterion(ready.model(xb), yb).backward()
            ready.optimizer.step()
    user_acc = float(np.mean(predict_logits(ready.release(), X[test], device=torch.device("cpu")).argmax(1) == y[test]))
    # both ran the same number of noisy steps at the same (σ, q): the same ε
    assert ready.epsilon() == pytest.approx(tuner.epsilon, rel=1e-9)
    assert math.isclose(user_acc, tuner_acc, abs_tol=0.05), (user_acc, tuner_acc)
