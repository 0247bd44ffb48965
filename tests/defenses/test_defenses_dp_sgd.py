"""DP-SGD through Opacus: grad-sample mode, validation, accounting, target ε."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from torch import nn

from defenses import (
    DefenseConfig,
    DPSettings,
    IncompatibleModelError,
    TrainingRecipe,
    build_mlp,
    choose_grad_sample_mode,
    privatize,
    train_model,
    validate_model,
)
from defenses.batching import tensor_loader
from defenses.epsilon import curve_epsilon

N, BATCH, EPOCHS = 320, 64, 4  # q = 64/320 = 1/ceil(320/64) = 0.2, 5 steps per epoch
CPU = torch.device("cpu")
RECIPE = TrainingRecipe(hidden_sizes=(32,), epochs=EPOCHS, batch_size=BATCH)


def _train_dp(digits, dp: DPSettings, **kwargs):
    X, y = digits
    return train_model(
        lambda: build_mlp(64, 10, hidden_sizes=(32,)),
        DefenseConfig(dp=dp),
        RECIPE,
        (X[:N], y[:N]),
        seed=0,
        device=CPU,
        **kwargs,
    )


class TestGradSampleMode:
    def test_mlp_gets_ghost(self) -> None:
        assert (
            choose_grad_sample_mode(build_mlp(64, 10, hidden_sizes=(128, 64), dropout=0.2))
            == "ghost"
        )

    def test_layer_norm_and_embedding_keep_ghost(self) -> None:
        model = nn.Sequential(nn.Embedding(10, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        assert choose_grad_sample_mode(model) == "ghost"

    def test_conv_falls_back_to_hooks(self) -> None:
        model = nn.Sequential(
            nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(12, 2)
        )
        assert choose_grad_sample_mode(model) == "hooks"

    def test_tied_parameters_fall_back_to_hooks(self) -> None:
        shared = nn.Linear(4, 4)
        assert choose_grad_sample_mode(nn.Sequential(shared, nn.ReLU(), shared)) == "hooks"

    def test_no_ghost_layer_means_hooks(self) -> None:
        assert choose_grad_sample_mode(nn.Sequential(nn.LayerNorm(4))) == "hooks"

    @staticmethod
    def _one_step_update(mode: str, sigma: float, max_grad_norm: float = 0.1) -> torch.Tensor:
        """The parameter change of one DP step: same init, same batch, same noise seed."""
        generator = torch.Generator().manual_seed(0)
        X, y = (
            torch.randn(64, 8, generator=generator),
            torch.randint(0, 3, (64,), generator=generator),
        )
        torch.manual_seed(0)
        model = build_mlp(8, 3, hidden_sizes=(16,))
        before = torch.cat([p.detach().flatten() for p in model.parameters()])
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        loader = tensor_loader(X, y, batch_size=64, generator=torch.Generator().manual_seed(1))
        net, opt, criterion, loader, ledger = privatize(
            model,
            optimizer,
            loader,
            nn.CrossEntropyLoss(),
            DPSettings(noise_multiplier=sigma, max_grad_norm=max_grad_norm),
            epochs=1,
            n_train=64,
            noise_seed=0,
            grad_sample_mode=mode,
        )
        assert ledger.grad_sample_mode == mode
        assert isinstance(criterion, DPLossFastGradientClipping) == (mode == "ghost")
        opt.zero_grad()
        criterion(net(X), y).backward()
        opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()]) - before

    def test_ghost_and_hooks_give_the_same_clipped_noised_update(self) -> None:
        """The mode privtune picks (ghost) and Opacus' default (hooks): one step, σ = 1.

        Same initial weights, batch and noise seed: the clipped, noised update
        is the same, so the choice of mode changes only speed and memory.
        """
        assert choose_grad_sample_mode(build_mlp(8, 3, hidden_sizes=(16,))) == "ghost"
        ghost, hooks = (self._one_step_update(mode, sigma=1.0) for mode in ("ghost", "hooks"))
        torch.testing.assert_close(ghost, hooks, rtol=0, atol=1e-6)
        # the noise is in it (σ·C/B ≈ 1.6e-3 per coordinate) ...
        clipped_only = self._one_step_update("hooks", sigma=1e-9)
        assert (ghost - clipped_only).abs().max() > 1e-3
        # ... and so is the clipping: C = 0.1 binds (with C = 100 nothing is clipped)
        unclipped = self._one_step_update("hooks", sigma=1e-9, max_grad_norm=100.0)
        assert clipped_only.norm() <= 0.1 + 1e-6 < unclipped.norm()

    def test_ghost_and_hooks_clip_alike(self) -> None:
        """Without noise (σ ≈ 0) the clipped updates agree as well."""
        torch.testing.assert_close(
            self._one_step_update("ghost", sigma=1e-9),
            self._one_step_update("hooks", sigma=1e-9),
            rtol=0,
            atol=1e-6,
        )


def test_batch_norm_is_refused_with_a_clear_message() -> None:
    with pytest.raises(
        IncompatibleModelError,
        match=r"cannot be trained with DP-SGD.*BatchNorm.*ModuleValidator\.fix",
    ):
        validate_model(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))


def test_unknown_grad_sample_mode() -> None:
    model = build_mlp(4, 2)
    loader = tensor_loader(
        torch.zeros(8, 4),
        torch.zeros(8, dtype=torch.long),
        batch_size=4,
        generator=torch.Generator(),
    )
    with pytest.raises(ValueError) as info:
        privatize(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            nn.CrossEntropyLoss(),
            DPSettings(noise_multiplier=1.0),
            epochs=1,
            n_train=8,
            grad_sample_mode="functorch",
        )
    assert (
        str(info.value)
        == "grad_sample_mode must be one of ['ghost', 'hooks'] or None, but got 'functorch'"
    )


class TestAccounting:
    def test_epsilon_per_epoch_rises_and_matches_an_opacus_accountant(self, digits) -> None:
        sigma = 1.1
        trained = _train_dp(digits, DPSettings(noise_multiplier=sigma, max_grad_norm=1.0))
        epsilons = [log.epsilon for log in trained.history]
        assert all(e is not None for e in epsilons)
        assert all(b > a for a, b in zip(epsilons, epsilons[1:], strict=False))
        assert trained.delta == 1 / (10 * N)
        assert trained.noise_multiplier == sigma
        assert trained.sample_rate == BATCH / N
        assert trained.steps == EPOCHS * N // BATCH

        accountant = PRVAccountant()
        for _ in range(EPOCHS * N // BATCH):
            accountant.step(noise_multiplier=sigma, sample_rate=BATCH / N)
        assert trained.epsilon == pytest.approx(accountant.get_epsilon(1 / (10 * N)), rel=1e-9)
        assert trained.epsilon == epsilons[-1]

    def test_earlier_epochs_hold_curve_points_above_the_accountant(self, digits) -> None:
        sigma, steps_per_epoch, delta = 1.1, N // BATCH, 1 / (10 * N)
        trained = _train_dp(digits, DPSettings(noise_multiplier=sigma, max_grad_norm=1.0))
        for log in trained.history[:-1]:
            steps = log.epoch * steps_per_epoch
            assert log.epsilon == curve_epsilon(
                noise_multiplier=sigma,
                sample_rate=BATCH / N,
                steps=steps,
                delta=delta,
                planned_steps=EPOCHS * steps_per_epoch,
                epoch_steps=steps_per_epoch,
            )
            accountant = PRVAccountant()
            accountant.history = [(sigma, BATCH / N, steps)]
            assert accountant.get_epsilon(delta) < log.epsilon  # a looser upper bound

    def test_early_stopping_ends_on_the_accountants_epsilon(self, digits) -> None:
        X, y = digits
        trained = train_model(
            lambda: build_mlp(64, 10, hidden_sizes=(32,)),
            DefenseConfig(
                dp=DPSettings(noise_multiplier=1.1, max_grad_norm=1.0), early_stopping_patience=1
            ),
            RECIPE,
            (X[:N], y[:N]),
            seed=0,
            device=CPU,
            validation=(X[N : N + 100], y[N : N + 100]),
            validation_score=lambda logits, labels: 0.0,  # never improves: stops at epoch 2
        )
        assert trained.epochs_run == 2 < EPOCHS
        accountant = PRVAccountant()
        accountant.history = [(1.1, BATCH / N, 2 * N // BATCH)]
        assert trained.epsilon == trained.history[-1].epsilon
        assert trained.epsilon == pytest.approx(accountant.get_epsilon(1 / (10 * N)), rel=1e-9)
        assert trained.history[0].epsilon < trained.epsilon

    def test_the_returned_model_is_plain(self, digits) -> None:
        trained = _train_dp(digits, DPSettings(noise_multiplier=1.0), track_epsilon=False)
        assert type(trained.model) is nn.Sequential and not trained.model.training
        for module in trained.model.modules():
            assert not module._forward_hooks and not module._backward_hooks
            assert not {"activations", "max_batch_len"} & set(vars(module))
        for param in trained.model.parameters():
            assert param.grad is None
            assert not {"grad_sample", "summed_grad", "_forward_counter", "_norm_sample"} & set(
                vars(param)
            )

    def test_rdp_accountant_and_explicit_delta(self, digits) -> None:
        trained = _train_dp(digits, DPSettings(noise_multiplier=0.9, delta=1e-5, accountant="rdp"))
        accountant = RDPAccountant()
        for _ in range(EPOCHS * N // BATCH):
            accountant.step(noise_multiplier=0.9, sample_rate=BATCH / N)
        assert trained.delta == 1e-5
        assert trained.epsilon == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)

    def test_target_epsilon_resolves_sigma_and_stays_within_budget(self, digits) -> None:
        trained = _train_dp(digits, DPSettings(target_epsilon=2.0))
        expected_sigma = get_noise_multiplier(
            target_epsilon=2.0,
            target_delta=1 / (10 * N),
            sample_rate=BATCH / N,
            epochs=EPOCHS,
            accountant="prv",
        )
        assert trained.noise_multiplier == expected_sigma
        assert (
            2.0 - 0.01 <= trained.epsilon <= 2.0
        )  # Opacus' search stops within 0.01 below the target

    def test_track_epsilon_false_skips_the_queries(self, digits) -> None:
        trained = _train_dp(digits, DPSettings(noise_multiplier=1.0), track_epsilon=False)
        assert [log.epsilon for log in trained.history] == [None] * EPOCHS
        assert trained.epsilon is None
        assert (trained.delta, trained.noise_multiplier, trained.steps) == (1 / (10 * N), 1.0, 20)

    def test_non_private_run_has_no_privacy_fields(self, digits) -> None:
        X, y = digits
        trained = train_model(
            lambda: build_mlp(64, 10, hidden_sizes=(8,)),
            DefenseConfig(),
            RECIPE,
            (X[:N], y[:N]),
            seed=0,
            device=CPU,
        )
        assert (trained.epsilon, trained.delta, trained.noise_multiplier, trained.steps) == (
            None,
            None,
            None,
            None,
        )
        assert [log.epsilon for log in trained.history] == [None] * EPOCHS


def test_empty_poisson_batches_are_noise_only_steps() -> None:
    """Expected batch size 1: about a third of the batches are empty; both modes keep going."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 8)).astype(np.float32), rng.integers(0, 3, 100)

    def conv() -> nn.Module:  # per-sample gradients through hooks
        return nn.Sequential(
            nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(12, 3)
        )

    def mlp() -> nn.Module:  # ghost clipping
        return build_mlp(8, 3, hidden_sizes=(4,))

    for build in (mlp, conv):
        trained = train_model(
            build,
            DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=0.1)),
            TrainingRecipe(epochs=1, batch_size=1, learning_rate=0.01),
            (X, y),
            seed=0,
            device=CPU,
            track_epsilon=False,
        )
        assert trained.steps == 100
        assert np.isfinite(trained.history[0].train_loss)
        assert all(torch.isfinite(p).all() for p in trained.model.parameters())
