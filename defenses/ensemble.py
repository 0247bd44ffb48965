"""Train K models of one recipe at once, vectorized over the models.

The attacker's K reference models share a recipe and a defense and differ
only in their data and seed. For a small MLP, training costs Python and
per-operation overhead as much as arithmetic, so :func:`train_ensemble`
stacks the K models' parameters into ``(K, ...)`` tensors
(``torch.func.stack_module_state``) and takes each step for all of them with
one set of batched operations (:mod:`defenses.stacked`).

The math per model is that of :func:`defenses.training.train_model`:

* initial weights: ``torch.manual_seed(seeds[k])`` then ``build_model()``;
* batch order: model k's own generator, seeded as ``train_model`` seeds it and
  drawn by the same calls, so model k sees exactly ``train_model``'s batches;
* one optimizer (:func:`defenses.regularization.build_optimizer`) over the
  stacked tensors: SGD with momentum, Adam and their coupled weight decay are
  elementwise, so each model's slice gets its own update;
* the loss of :func:`defenses.regularization.build_criterion` (label
  smoothing); dropout from the model, a fresh mask per model and record (from
  the global generator: reproducible, but not mask for mask ``train_model``'s);
* DP-SGD as Opacus does it: Poisson sampling at Opacus' rate
  ``q = 1/ceil(n/batch_size)`` for ``int(1/q)`` steps an epoch, drawn from
  model k's generator as Opacus' sampler draws it, each model's batch padded
  to the step's largest with 0/1 weights; then
  :func:`defenses.stacked.private_gradients` (flat clipping, sum, noise from
  model k's seeded generator, division by ``int(q·n)``) and the optimizer;
* early stopping per model on the validation score (see :func:`train_ensemble`).

Without dropout, model k's logits equal ``train_model``'s for ``seeds[k]``
(with or without DP) up to float rounding: batched kernels sum in another order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import stack_module_state

from defenses.batching import as_device_tensors
from defenses.config import DefenseConfig, DPSettings, TrainingRecipe
from defenses.dp_compatibility import validate_model
from defenses.early_stopping import EarlyStopping
from defenses.epsilon import noise_multiplier_for_epsilon
from defenses.prediction import PREDICT_BATCH_SIZE
from defenses.regularization import build_criterion, build_optimizer
from defenses.stacked import Tensors, VmapStack, private_gradients, stack_for
from defenses.training import (
    EpochLog,
    TrainedModel,
    ValidationScore,
    _check_validation_arguments,
    train_model,
)


def train_ensemble(
    build_model: Callable[[], nn.Module],
    defense: DefenseConfig,
    recipe: TrainingRecipe,
    datasets: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seeds: Sequence[int],
    device: torch.device,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    validation_score: ValidationScore | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[TrainedModel]:
    """Train one model per dataset with the same defense and recipe, all at once.

    Model k is what ``train_model(build_model, defense, recipe, datasets[k],
    seed=seeds[k], track_epsilon=False, ...)`` trains (see the module
    docstring for what "the same" means with dropout).

    Early stopping: each model has its own :class:`EarlyStopping`, and every
    improving epoch copies the model's slice of the stacked weights. Once a
    model stops, its history ends and it is no longer scored; its slice keeps
    stepping with the others (masking it would save nothing) but is never read
    again: the model returned holds the copy of its best epoch, as
    ``train_model`` restores it.

    Fallback: a model with buffers (state outside the optimizer, such as
    BatchNorm's running statistics), or one that ``functional_call``/``vmap``
    cannot run, is trained by K sequential :func:`train_model` calls instead:
    the same results at K times the cost. The built-in MLP never falls back.

    Args:
        build_model: returns a fresh model; called once per model, after
            ``torch.manual_seed(seeds[k])``. It applies ``defense.dropout``.
        defense: the defenses every model applies.
        recipe: epochs, batch size, learning rate, optimizer.
        datasets: one ``(X, y)`` per model, all of the same shape (their
            contents may differ).
        seeds: one seed per model, as ``train_model``'s ``seed``.
        device: where the data, models and noise live.
        validation: ``(X, y)`` scored after every epoch, the same for every
            model; required, with ``validation_score``, for early stopping.
        validation_score: ``(logits, labels) -> utility``, higher is better;
            called once per epoch for each model still training, in model order.
        on_epoch_end: called with the epoch number after every epoch; an
            exception it raises stops training and propagates (the tuner
            uses this to drop reference models nobody waits for any more).

    Returns:
        One :class:`TrainedModel` per dataset, in order: a plain module in eval
        mode on ``device`` holding its best epoch's weights; ``epsilon`` is
        None (these models do not track ε) and, under DP, ``delta``,
        ``noise_multiplier``, ``sample_rate`` and ``steps`` are filled in.

    Raises:
        ValueError: ``seeds`` does not match ``datasets``, a seed is not an
            integer >= 0, a dataset is malformed, the datasets differ in
            shape, or validation data / score are unpaired.
        IncompatibleModelError: DP is on and Opacus cannot train the model.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from defenses import build_mlp
        >>> X, y = load_iris(return_X_y=True)
        >>> halves = [(X[::2], y[::2]), (X[1::2], y[1::2])]
        >>> models = train_ensemble(lambda: build_mlp(4, 3), DefenseConfig(),
        ...                         TrainingRecipe(epochs=3), halves,
        ...                         seeds=[1, 2], device=torch.device("cpu"))
        >>> [(m.epochs_run, m.best_epoch, m.epsilon) for m in models]
        [(3, 3, None), (3, 3, None)]
    """
    _check_validation_arguments(defense, validation, validation_score)
    seeds = _check_seeds(seeds, len(datasets))
    data = [as_device_tensors(d, device, role=f"datasets[{k}]") for k, d in enumerate(datasets)]
    shapes = [tuple(X.shape) for X, _ in data]
    if len(set(shapes)) > 1:
        raise ValueError(
            "datasets must all have the same shape (the models step together), "
            f"but got X shapes {shapes}"
        )
    if not data:
        return []

    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build_model().to(device))
    if defense.dp is not None:
        validate_model(models[0])  # the error train_model would raise
    params, buffers = stack_module_state(models)
    X, y = torch.stack([X for X, _ in data]), torch.stack([y for _, y in data])
    stack = stack_for(models[0], build_criterion(defense))
    if buffers or not _runs(stack, params, X, y, device, private=defense.dp is not None):
        return [
            train_model(
                build_model, defense, recipe, d, seed=seed, device=device,
                validation=validation, validation_score=validation_score, track_epsilon=False,
                on_epoch_end=(lambda log: on_epoch_end(log.epoch)) if on_epoch_end is not None else None,
            )
            for d, seed in zip(datasets, seeds)
        ]
    run = _Run(stack, models, params, X, y, defense, recipe, seeds, device)
    return run.fit(validation, validation_score, on_epoch_end)


def poisson_batches(
    generators: Sequence[torch.Generator], n: int, sample_rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Poisson-sampled batch per model, padded to a common size.

    Model k keeps each of its ``n`` records with probability ``sample_rate``,
    drawn from ``generators[k]`` as Opacus' ``UniformWithReplacementSampler``
    draws it. Returns ``(K, B)`` row indices (padding points at row 0) and
    ``(K, B)`` float weights (1 = sampled, 0 = padding), with ``B >= 1``.

    Example:
        >>> generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
        >>> index, weights = poisson_batches(generators, 10, 0.5)
        >>> index.tolist()
        [[0, 2, 3, 4, 6, 8], [1, 2, 4, 6, 9, 0]]
        >>> weights.tolist()[1]
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    """
    picks = [(torch.rand(n, generator=g) < sample_rate).nonzero().reshape(-1) for g in generators]
    index = torch.zeros(len(picks), max([1, *(len(p) for p in picks)]), dtype=torch.long)
    weights = torch.zeros(index.shape)
    for k, p in enumerate(picks):
        index[k, : len(p)] = p
        weights[k, : len(p)] = 1.0
    return index, weights


@dataclass(frozen=True)
class _DPSchedule:
    """What Opacus derives from the data size and DP settings (see :func:`defenses.privatize`)."""

    sample_rate: float
    steps_per_epoch: int
    expected_batch_size: int
    delta: float
    noise_multiplier: float


def _dp_schedule(dp: DPSettings, n: int, recipe: TrainingRecipe) -> _DPSchedule:
    sample_rate = 1 / math.ceil(n / recipe.batch_size)  # Opacus: 1 / len(data_loader)
    delta = dp.delta if dp.delta is not None else 1.0 / (10 * n)
    if dp.target_epsilon is not None:
        sigma = noise_multiplier_for_epsilon(
            target_epsilon=dp.target_epsilon,
            delta=delta,
            sample_rate=sample_rate,
            epochs=recipe.epochs,
            accountant=dp.accountant,
        )
    else:
        sigma = float(dp.noise_multiplier)  # type: ignore[arg-type]
    return _DPSchedule(
        sample_rate=sample_rate,
        steps_per_epoch=int(1 / sample_rate),  # UniformWithReplacementSampler's steps
        expected_batch_size=int(n * sample_rate),  # PrivacyEngine's expected_batch_size
        delta=delta,
        noise_multiplier=float(sigma),
    )


class _Run:
    """One vectorized training run: stacked weights, one optimizer, per-model generators."""

    def __init__(
        self,
        stack: VmapStack,
        models: list[nn.Module],
        params: Tensors,
        X: torch.Tensor,
        y: torch.Tensor,
        defense: DefenseConfig,
        recipe: TrainingRecipe,
        seeds: list[int],
        device: torch.device,
    ) -> None:
        self.stack, self.models, self.K = stack, models, len(models)
        self.params = {
            k: nn.Parameter(v.detach()) if v.requires_grad else v for k, v in params.items()
        }
        self.trainable = {k: v for k, v in self.params.items() if v.requires_grad}
        self.X, self.y, self.n = X, y, int(y.shape[1])
        self.defense, self.recipe, self.device = defense, recipe, device
        holder = nn.ParameterList(self.trainable.values())
        self.optimizer = build_optimizer(holder, defense, recipe)
        # train_model's two seeds per model: batch order / Poisson sampling, and DP noise.
        derived = [np.random.SeedSequence(s).generate_state(2, np.uint64) for s in seeds]
        self.batch_generators = [torch.Generator().manual_seed(int(b)) for b, _ in derived]
        self.noise_generators = [
            torch.Generator(device=device).manual_seed(int(n)) for _, n in derived
        ]
        self.schedule = _dp_schedule(defense.dp, self.n, recipe) if defense.dp else None
        self.rows = torch.arange(self.K, device=device)[:, None]

    def fit(
        self,
        validation: tuple[np.ndarray, np.ndarray] | None,
        validation_score: ValidationScore | None,
        on_epoch_end: Callable[[int], None] | None = None,
    ) -> list[TrainedModel]:
        val_X = None
        if validation is not None:
            val_X = as_device_tensors(validation, self.device, role="validation")[0]
            val_y = np.asarray(validation[1])
        patience = self.defense.early_stopping_patience
        stoppers = (
            [EarlyStopping(patience) for _ in range(self.K)] if patience is not None else None
        )
        best = {n: p.detach().clone() for n, p in self.trainable.items()} if stoppers else {}
        histories: list[list[EpochLog]] = [[] for _ in range(self.K)]
        active = list(range(self.K))
        for epoch in range(1, self.recipe.epochs + 1):
            losses = self._private_epoch() if self.schedule else self._plain_epoch()
            logits = self._logits(val_X) if val_X is not None else None
            for k in list(active):
                utility = None
                if logits is not None and validation_score is not None:
                    utility = float(validation_score(logits[k], val_y))
                histories[k].append(EpochLog(epoch, losses[k], utility, None))
                if stoppers is None or utility is None:
                    continue
                stop = stoppers[k].step(utility)
                if stoppers[k].best_epoch == epoch:  # improved: keep this epoch's weights
                    for name, p in self.trainable.items():
                        best[name][k].copy_(p.detach()[k])
                if stop:
                    active.remove(k)
            if on_epoch_end is not None:
                on_epoch_end(epoch)
            if not active:
                break
        return [
            self._release(k, histories[k], stoppers[k] if stoppers else None, best)
            for k in range(self.K)
        ]

    def _plain_epoch(self) -> list[float]:
        """One shuffled pass per model, as :func:`defenses.batching.shuffled_batches` orders it."""
        orders = [torch.randperm(self.n, generator=g) for g in self.batch_generators]
        order = torch.stack(orders).to(self.device)
        # One gather an epoch; each batch is then a view of the shuffled copy.
        X, y = self.X[self.rows, order], self.y[self.rows, order]
        sums = []
        for start in range(0, self.n, self.recipe.batch_size):
            xb, yb = X[:, start : start + self.recipe.batch_size], y[:, start : start + self.recipe.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            losses = self.stack.losses(self.params, xb, yb)
            losses.mean(1).sum().backward()  # each model's batch mean; each slice gets its own gradient
            self.optimizer.step()
            sums.append(losses.detach().sum(1))
        return (torch.stack(sums).sum(0) / self.n).tolist()

    def _private_epoch(self) -> list[float]:
        """One epoch of DP-SGD steps, batches drawn as Opacus' ``DPDataLoader`` draws them."""
        schedule, dp = self.schedule, self.defense.dp
        assert schedule is not None and dp is not None
        for g in self.batch_generators:  # what iterating a DataLoader draws first (its base seed)
            torch.empty((), dtype=torch.int64).random_(generator=g)
        total = torch.zeros(self.K, device=self.device)
        count = torch.zeros(self.K, device=self.device)
        for _ in range(schedule.steps_per_epoch):
            index, weights = poisson_batches(self.batch_generators, self.n, schedule.sample_rate)
            index, weights = index.to(self.device), weights.to(self.device)
            grads, losses = private_gradients(
                self.stack,
                self.params,
                self.X[self.rows, index],
                self.y[self.rows, index],
                weights,
                max_grad_norm=dp.max_grad_norm,
                noise_multiplier=schedule.noise_multiplier,
                expected_batch_size=schedule.expected_batch_size,
                generators=self.noise_generators,
            )
            for name, p in self.trainable.items():
                p.grad = grads[name]
            self.optimizer.step()
            total += (losses * weights).sum(1)
            count += weights.sum(1)
        return (total / count).tolist()  # NaN where every batch was empty, as train_model

    def _logits(self, X: torch.Tensor) -> list[np.ndarray]:
        """Each model's float64 eval-mode logits for the shared ``X``, in chunks."""
        params = {k: v.detach() for k, v in self.params.items()}
        chunks = []
        with torch.no_grad():
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                chunk = X[start : start + PREDICT_BATCH_SIZE].expand(self.K, -1, -1)
                chunks.append(self.stack.logits(params, chunk, training=False).double().cpu())
        out = torch.cat(chunks, dim=1).numpy()
        return [out[k] for k in range(self.K)]

    def _release(
        self, k: int, history: list[EpochLog], stopper: EarlyStopping | None, best: Tensors
    ) -> TrainedModel:
        """Model k as a plain module with its best epoch's weights (its last if none improved)."""
        restored = stopper is not None and stopper.best_epoch > 0
        source = best if restored else self.trainable
        model = self.models[k]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in source:
                    p.copy_(source[name][k])
        model.zero_grad(set_to_none=True)
        model.eval()
        schedule = self.schedule
        return TrainedModel(
            model=model,
            history=history,
            epochs_run=len(history),
            best_epoch=stopper.best_epoch if stopper is not None and restored else len(history),
            epsilon=None,
            delta=schedule.delta if schedule else None,
            noise_multiplier=schedule.noise_multiplier if schedule else None,
            sample_rate=schedule.sample_rate if schedule else None,
            steps=len(history) * schedule.steps_per_epoch if schedule else None,
        )


def _runs(
    stack: VmapStack,
    params: Tensors,
    X: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    private: bool,
) -> bool:
    """Whether the stack takes a step on two records (on copies of the weights, RNG untouched)."""
    probe = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in params.items()}
    x, t = X[:, :2], y[:, :2]
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            stack.losses(probe, x, t).sum().backward()
            if private:
                stack.clipped_sums(probe, x, t, torch.ones(t.shape, device=device), 1.0)
            with torch.no_grad():
                stack.logits(probe, x, training=False)
    except Exception:  # noqa: BLE001 - whatever fails, the models train one by one
        return False
    return True


def _check_seeds(seeds: Sequence[int], count: int) -> list[int]:
    seeds = list(seeds)
    if len(seeds) != count:
        raise ValueError(
            f"seeds must give one seed per dataset, but got {len(seeds)} seeds "
            f"for {count} datasets"
        )
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, but got seed={seed!r}")
    return [int(s) for s in seeds]


__all__ = ["poisson_batches", "train_ensemble"]
