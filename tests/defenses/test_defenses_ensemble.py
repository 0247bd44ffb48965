"""train_ensemble and the stacked DP-SGD step: equal to train_model, to Opacus, to a hand loop."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.func import stack_module_state

import defenses.ensemble as ensemble_module
from defenses import (
    DefenseConfig,
    DPSettings,
    TrainingRecipe,
    build_mlp,
    predict_logits,
    train_ensemble,
    train_model,
)
from defenses.stacked import MLPStack, VmapStack, _dropout, private_gradients, stack_for

CPU = torch.device("cpu")
RECIPE = TrainingRecipe(hidden_sizes=(32,), epochs=4, batch_size=64)
SEEDS = [11, 12, 13]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def mlp(defense: DefenseConfig = DefenseConfig()):
    return lambda: build_mlp(64, 10, hidden_sizes=(32,), dropout=defense.dropout)


def conv_net() -> nn.Module:
    """Not a plain MLP: trained through VmapStack (functional_call under vmap)."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 64)), nn.Conv1d(1, 3, 5), nn.ReLU(), nn.Flatten(), nn.Linear(180, 10)
    )


def batchnorm_net() -> nn.Module:
    """Has buffers that change in training: not vectorized."""
    return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def datasets(digits) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three disjoint training sets of 200 digits: same size, different records."""
    X, y = digits
    return [(X[200 * k : 200 * (k + 1)], y[200 * k : 200 * (k + 1)]) for k in range(3)]


@pytest.fixture(scope="module")
def validation(digits) -> tuple[np.ndarray, np.ndarray]:
    X, y = digits
    return X[1000:1200], y[1000:1200]


def one_by_one(build, defense, recipe, datasets, **kwargs):
    return [
        train_model(build, defense, recipe, d, seed=s, device=CPU, track_epsilon=False, **kwargs)
        for d, s in zip(datasets, SEEDS)
    ]


def assert_same_models(together, apart, X: np.ndarray) -> None:
    assert len(together) == len(apart)
    for a, b in zip(together, apart):
        np.testing.assert_allclose(
            predict_logits(a.model, X, device=CPU), predict_logits(b.model, X, device=CPU),
            atol=1e-5, rtol=0,
        )
        assert (a.epochs_run, a.best_epoch, a.epsilon) == (b.epochs_run, b.best_epoch, None)
        np.testing.assert_allclose(
            [log.train_loss for log in a.history], [log.train_loss for log in b.history], rtol=1e-5
        )
        assert [log.validation_utility for log in a.history] == [
            log.validation_utility for log in b.history
        ]
        assert (a.delta, a.noise_multiplier, a.sample_rate, a.steps) == (
            b.delta, b.noise_multiplier, b.sample_rate, b.steps
        )
        assert not a.model.training


class TestEqualsSequentialTrainModel:
    """Same seeds, same batches, same noise: the K models are train_model's K models."""

    @pytest.mark.parametrize(
        ("defense", "recipe"),
        [
            (DefenseConfig(), RECIPE),
            (
                DefenseConfig(weight_decay=1e-3, label_smoothing=0.1),
                TrainingRecipe(hidden_sizes=(32,), epochs=4, optimizer="adam", learning_rate=0.01),
            ),
            (DefenseConfig(dp=DPSettings(noise_multiplier=1.0), weight_decay=1e-3), RECIPE),
            (DefenseConfig(dp=DPSettings(target_epsilon=3.0, accountant="rdp")), RECIPE),
        ],
        ids=["sgd", "adam-wd-smoothing", "dp-sigma", "dp-epsilon"],
    )
    def test_mlp(self, datasets, validation, defense, recipe, monkeypatch) -> None:
        monkeypatch.setattr(ensemble_module, "train_model", _no_fallback)
        kwargs = dict(validation=validation, validation_score=accuracy)
        together = train_ensemble(
            mlp(defense), defense, recipe, datasets, seeds=SEEDS, device=CPU, **kwargs
        )
        monkeypatch.undo()
        assert_same_models(together, one_by_one(mlp(defense), defense, recipe, datasets, **kwargs),
                           validation[0])
        if defense.dp is not None:
            assert together[0].steps == recipe.epochs * math.ceil(200 / 64)

    @pytest.mark.parametrize("dp", [None, DPSettings(noise_multiplier=1.0)], ids=["plain", "dp"])
    def test_any_model_functional_call_runs(self, datasets, validation, dp, monkeypatch) -> None:
        defense = DefenseConfig(dp=dp, label_smoothing=0.1)
        assert type(stack_for(conv_net(), nn.CrossEntropyLoss())) is VmapStack
        monkeypatch.setattr(ensemble_module, "train_model", _no_fallback)
        together = train_ensemble(conv_net, defense, RECIPE, datasets, seeds=SEEDS, device=CPU)
        monkeypatch.undo()
        assert_same_models(together, one_by_one(conv_net, defense, RECIPE, datasets), validation[0])

    def test_a_model_with_buffers_falls_back_to_train_model(self, datasets, validation) -> None:
        together = train_ensemble(
            batchnorm_net, DefenseConfig(), RECIPE, datasets, seeds=SEEDS, device=CPU
        )
        apart = one_by_one(batchnorm_net, DefenseConfig(), RECIPE, datasets)
        for a, b in zip(together, apart):
            assert np.array_equal(
                predict_logits(a.model, validation[0], device=CPU),
                predict_logits(b.model, validation[0], device=CPU),
            )


    def test_a_model_vmap_cannot_run_falls_back_to_train_model(self, datasets, validation) -> None:
        together = train_ensemble(
            ItemInForward, DefenseConfig(), RECIPE, datasets, seeds=SEEDS, device=CPU
        )
        apart = one_by_one(ItemInForward, DefenseConfig(), RECIPE, datasets)
        for a, b in zip(together, apart):
            assert np.array_equal(
                predict_logits(a.model, validation[0], device=CPU),
                predict_logits(b.model, validation[0], device=CPU),
            )


class ItemInForward(nn.Module):
    """Reads a tensor's value in forward (``.item()``), which vmap refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if x.sum().item() >= 0 else -1.0
        return self.linear(x) * scale


def _no_fallback(*args, **kwargs):
    raise AssertionError("train_ensemble fell back to train_model")


class TestEarlyStopping:
    # Patience 2. Model 0 peaks at epoch 3 and stops after 5; model 1 keeps
    # improving through all 6 epochs; model 2 peaks at epoch 1 and stops after 3.
    SCRIPTS = [
        [0.1, 0.5, 0.9, 0.4, 0.3, 0.2],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.8, 0.7, 0.6, 0.5, 0.4, 0.3],
    ]
    # Who is scored, in order: each epoch, the models still training.
    ORDER = [0, 1, 2] * 3 + [0, 1] * 2 + [1]
    RECIPE = TrainingRecipe(hidden_sizes=(32,), epochs=6, batch_size=64)

    def _ensemble_score(self, seen: list[tuple[int, np.ndarray]]):
        def score(logits: np.ndarray, labels: np.ndarray) -> float:
            k = self.ORDER[len(seen)]
            epoch = sum(1 for j, _ in seen if j == k)
            seen.append((k, logits.copy()))
            return self.SCRIPTS[k][epoch]

        return score

    def _single_score(self, k: int):
        calls: list[int] = []

        def score(logits: np.ndarray, labels: np.ndarray) -> float:
            calls.append(1)
            return self.SCRIPTS[k][len(calls) - 1]

        return score

    @pytest.mark.parametrize("dp", [None, DPSettings(noise_multiplier=1.0)], ids=["plain", "dp"])
    def test_each_model_stops_on_its_own_and_keeps_its_best_epoch(
        self, datasets, validation, dp
    ) -> None:
        defense = DefenseConfig(dp=dp, early_stopping_patience=2)
        seen: list[tuple[int, np.ndarray]] = []
        together = train_ensemble(
            mlp(), defense, self.RECIPE, datasets, seeds=SEEDS, device=CPU,
            validation=validation, validation_score=self._ensemble_score(seen),
        )
        assert len(seen) == len(self.ORDER)
        assert [(m.epochs_run, m.best_epoch) for m in together] == [(5, 3), (6, 6), (3, 1)]
        for k, trained in enumerate(together):
            assert [log.validation_utility for log in trained.history] == (
                self.SCRIPTS[k][: trained.epochs_run]
            )
            scored = [logits for j, logits in seen if j == k]
            kept = predict_logits(trained.model, validation[0], device=CPU)
            np.testing.assert_allclose(kept, scored[trained.best_epoch - 1], atol=1e-5, rtol=0)
            if trained.best_epoch < trained.epochs_run:  # it went on training, then came back
                assert not np.allclose(kept, scored[-1], atol=1e-3)
        for k, (d, seed) in enumerate(zip(datasets, SEEDS)):
            alone = train_model(
                mlp(), defense, self.RECIPE, d, seed=seed, device=CPU, track_epsilon=False,
                validation=validation, validation_score=self._single_score(k),
            )
            assert (alone.epochs_run, alone.best_epoch) == (
                together[k].epochs_run, together[k].best_epoch
            )
            np.testing.assert_allclose(
                predict_logits(alone.model, validation[0], device=CPU),
                predict_logits(together[k].model, validation[0], device=CPU),
                atol=1e-5, rtol=0,
            )


class TestPrivateGradients:
    """One fixed batch, σ = 0: the clipped sum over q·n, by hand and by Opacus."""

    N, RATE, SIZES = 100, 0.1, (7, 9)  # expected batch size q·n = 10; model 0 padded by 2

    @pytest.fixture()
    def setup(self, digits):
        X, y = digits
        models = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            models.append(build_mlp(64, 10, hidden_sizes=(16,)))
        batches = [
            (torch.from_numpy(X[10 * k : 10 * k + n]), torch.from_numpy(y[10 * k : 10 * k + n]))
            for k, n in enumerate(self.SIZES)
        ]
        return models, batches

    def _stacked_batch(self, batches):
        B = max(self.SIZES)
        Xs = torch.zeros(2, B, 64)
        ys = torch.zeros(2, B, dtype=torch.long)
        weights = torch.zeros(2, B)
        for k, (xb, yb) in enumerate(batches):
            Xs[k, : len(yb)], ys[k, : len(yb)], weights[k, : len(yb)] = xb, yb, 1.0
            Xs[k, len(yb) :] = 5.0  # padding rows: large, and they must not count
        return Xs, ys, weights

    @staticmethod
    def _by_hand(model, xb, yb, C, m, smoothing):
        """Per-sample gradients one record at a time, clipped, summed, divided by m."""
        params = list(model.parameters())
        total = [torch.zeros_like(p, dtype=torch.float64) for p in params]
        norms = []
        for i in range(len(yb)):
            criterion = nn.CrossEntropyLoss(label_smoothing=smoothing)
            loss = criterion(model(xb[i : i + 1]), yb[i : i + 1])
            grads = torch.autograd.grad(loss, params)
            norm = math.sqrt(sum(float(g.double().square().sum()) for g in grads))
            norms.append(norm)
            factor = min(1.0, C / (norm + 1e-6))
            for t, g in zip(total, grads):
                t += factor * g.double()
        return [t / m for t in total], norms

    @staticmethod
    def _opacus(model, xb, yb, C, m, smoothing):
        wrapped = GradSampleModule(copy.deepcopy(model))
        optimizer = DPOptimizer(
            torch.optim.SGD(wrapped.parameters(), lr=1.0),
            noise_multiplier=0.0, max_grad_norm=C, expected_batch_size=m,
        )
        optimizer.zero_grad()
        nn.CrossEntropyLoss(label_smoothing=smoothing)(wrapped(xb), yb).backward()
        optimizer.pre_step()
        return [p.grad.clone() for p in wrapped.parameters()]

    @pytest.mark.parametrize("stack_class", [MLPStack, VmapStack])
    def test_equals_hand_loop_and_opacus(self, setup, stack_class) -> None:
        models, batches = setup
        smoothing, m = 0.1, self.N * self.RATE
        norms = [
            self._by_hand(model, xb, yb, 1.0, m, smoothing)[1]
            for model, (xb, yb) in zip(models, batches)
        ]
        C = float(np.median(np.concatenate(norms)))  # some records clipped, some not
        params, _ = stack_module_state(models)
        stack = stack_class(models[0], nn.CrossEntropyLoss(label_smoothing=smoothing))
        grads, losses = private_gradients(
            stack, params, *self._stacked_batch(batches), max_grad_norm=C, noise_multiplier=0.0,
            expected_batch_size=m, generators=[torch.Generator(), torch.Generator()],
        )
        names = [name for name, _ in models[0].named_parameters()]
        assert list(grads) == names
        for k, (model, (xb, yb)) in enumerate(zip(models, batches)):
            hand, _ = self._by_hand(model, xb, yb, C, m, smoothing)
            opacus = self._opacus(model, xb, yb, C, m, smoothing)
            for name, h, o in zip(names, hand, opacus):
                torch.testing.assert_close(grads[name][k].double(), h, atol=1e-5, rtol=0)
                torch.testing.assert_close(grads[name][k], o, atol=1e-5, rtol=0)
            expected_loss = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none")(
                model(xb), yb
            )
            torch.testing.assert_close(losses[k, : len(yb)], expected_loss, atol=1e-5, rtol=0)

    def test_noise_alone_has_std_sigma_c_over_qn_and_opacus_draws(self, setup) -> None:
        models, batches = setup
        sigma, C, m = 1.3, 0.7, self.N * self.RATE
        Xs, ys, _ = self._stacked_batch(batches)
        no_records = torch.zeros(2, Xs.shape[1])  # every gradient is zero: only noise remains
        params, _ = stack_module_state(models)
        grads, _ = private_gradients(
            MLPStack(models[0], nn.CrossEntropyLoss()), params, Xs, ys, no_records,
            max_grad_norm=C, noise_multiplier=sigma, expected_batch_size=m,
            generators=[torch.Generator().manual_seed(s) for s in (7, 8)],
        )
        per_model = [torch.cat([g[k].flatten() for g in grads.values()]).double() for k in (0, 1)]
        noise = torch.cat(per_model).detach()
        N = noise.numel()  # 2 models × 1210 parameters
        target = sigma * C / m
        # The sample std of N normal draws has relative standard error 1/sqrt(2N).
        assert abs(float(noise.std()) / target - 1) < 5 / math.sqrt(2 * N)
        assert abs(float(noise.mean())) < 5 * target / math.sqrt(N)
        # The models' noise is independent ...
        correlation = float(torch.corrcoef(torch.stack(per_model))[0, 1])
        assert abs(correlation) < 5 / math.sqrt(N / 2)
        # ... and is what Opacus draws: σC-normal per parameter, in order, from model k's
        # generator.
        for k, seed in enumerate((7, 8)):
            generator = torch.Generator().manual_seed(seed)
            for name, p in models[0].named_parameters():
                draw = torch.normal(0, sigma * C, size=p.shape, generator=generator)
                assert torch.equal(grads[name][k], draw / m)


class TestArguments:
    def test_datasets_of_different_sizes_are_refused(self, datasets) -> None:
        short = (datasets[1][0][:150], datasets[1][1][:150])
        with pytest.raises(ValueError) as info:
            train_ensemble(mlp(), DefenseConfig(), RECIPE, [datasets[0], short], seeds=[1, 2],
                           device=CPU)
        assert str(info.value) == (
            "datasets must all have the same shape (the models step together), "
            "but got X shapes [(200, 64), (150, 64)]"
        )

    def test_one_seed_per_dataset(self, datasets) -> None:
        with pytest.raises(ValueError) as info:
            train_ensemble(mlp(), DefenseConfig(), RECIPE, datasets, seeds=[1, 2], device=CPU)
        assert str(info.value) == (
            "seeds must give one seed per dataset, but got 2 seeds for 3 datasets"
        )

    def test_negative_seed_is_refused(self, datasets) -> None:
        with pytest.raises(ValueError, match=r"seed must be an integer >= 0, but got seed=-1"):
            train_ensemble(mlp(), DefenseConfig(), RECIPE, datasets[:1], seeds=[-1], device=CPU)

    def test_patience_without_validation_is_refused_as_in_train_model(self, datasets) -> None:
        with pytest.raises(ValueError, match="early_stopping_patience=3 needs validation data"):
            train_ensemble(mlp(), DefenseConfig(early_stopping_patience=3), RECIPE, datasets,
                           seeds=SEEDS, device=CPU)

    def test_no_datasets_no_models(self) -> None:
        assert train_ensemble(mlp(), DefenseConfig(), RECIPE, [], seeds=[], device=CPU) == []


@pytest.mark.parametrize("dp", [None, DPSettings(noise_multiplier=1.0)], ids=["plain", "dp"])
def test_dropout_runs_are_reproducible_and_learn(datasets, validation, dp) -> None:
    defense = DefenseConfig(dp=dp, dropout=0.3)
    recipe = TrainingRecipe(hidden_sizes=(32,), epochs=10, learning_rate=0.1)
    runs = [
        train_ensemble(mlp(defense), defense, recipe, datasets, seeds=SEEDS, device=CPU)
        for _ in range(2)
    ]
    for a, b in zip(*runs):
        logits = predict_logits(a.model, validation[0], device=CPU)
        assert np.array_equal(logits, predict_logits(b.model, validation[0], device=CPU))
        assert accuracy(logits, validation[1]) > 0.5  # chance is 0.1; train_model gets 0.6-0.9


def test_mlp_stack_accepts_only_plain_mlps() -> None:
    assert MLPStack.accepts(build_mlp(64, 10, dropout=0.2))
    assert not MLPStack.accepts(conv_net())
    assert not MLPStack.accepts(batchnorm_net())
    assert not MLPStack.accepts(nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True)))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_stacked_dropout_keeps_1_minus_p_and_scales_by_its_inverse(p: float) -> None:
    """Inverted dropout: each entry is 0 with probability p, else x / (1 - p), so E[out] = x."""
    torch.manual_seed(0)
    n = 200_000
    out = _dropout(torch.full((2, n // 2), 3.0), p)
    kept = out != 0
    assert torch.allclose(out[kept], torch.tensor(3.0 / (1 - p)))
    # Binomial(n, 1 - p): the kept fraction lies within 5 standard errors of 1 - p.
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    x = torch.ones(3, requires_grad=True)
    assert torch.equal(_dropout(x, 1.0), torch.zeros(3))


class _Stop(Exception):
    pass


def test_on_epoch_end_sees_every_epoch_and_can_stop_training(datasets) -> None:
    defense = DefenseConfig()
    recipe = TrainingRecipe(hidden_sizes=(32,), epochs=4)
    seen: list[int] = []
    train_ensemble(mlp(defense), defense, recipe, datasets, seeds=SEEDS, device=CPU, on_epoch_end=seen.append)
    assert seen == [1, 2, 3, 4]

    def stop_after_two(epoch: int) -> None:
        if epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        train_ensemble(mlp(defense), defense, recipe, datasets, seeds=SEEDS, device=CPU, on_epoch_end=stop_after_two)
