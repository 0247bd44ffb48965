"""DP-SGD through Opacus: the one place that makes a training setup private.

:func:`privatize` hands a plain model, optimizer, loader and loss to Opacus'
``PrivacyEngine`` with privtune's choices fixed in one spot:

* Poisson sampling (Opacus' ``DPDataLoader``), which the accountants assume;
  the sampling rate is Opacus' ``1 / len(data_loader)``, i.e.
  ``1 / ceil(n / batch_size)``, with that many steps per epoch;
* the accountant named in :class:`DPSettings` (``prv`` by default);
* δ = 1/(10·n) unless set;
* σ either given, or found by Opacus for a target ε over the recipe's epochs
  (the σ ``make_private_with_epsilon`` would use; see
  :func:`defenses.epsilon.noise_multiplier_for_epsilon`);
* the fastest per-sample gradient mode the model allows, after checking that
  Opacus can train it at all (:mod:`defenses.dp_compatibility`);
* seeded noise: ``secure_mode`` stays off and the noise comes from a
  ``torch.Generator`` seeded by the caller, so the same seed gives the same
  run. That noise is pseudo-random, not cryptographically secure, which is
  the right trade for a search over many candidate runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from opacus import PrivacyEngine
from opacus.accountants import IAccountant
from opacus.grad_sample import AbstractGradSampleModule
from opacus.optimizers import DPOptimizerFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader

from defenses.config import DPSettings
from defenses.dp_compatibility import (
    GRAD_SAMPLE_MODES,
    IncompatibleModelError,
    choose_grad_sample_mode,
    validate_model,
)
from defenses.epsilon import compute_epsilon, curve_epsilon, noise_multiplier_for_epsilon

# Left on layers and parameters by Opacus 1.6 after to_standard_module().
_OPACUS_MODULE_ATTRS = ("activations", "max_batch_len")
_OPACUS_PARAM_ATTRS = ("summed_grad",)


@dataclass
class PrivacyLedger:
    """What a private run has spent, read from its Opacus accountant.

    Attributes:
        delta: δ of the guarantee.
        noise_multiplier: σ actually used (Opacus' when a target ε was given).
        max_grad_norm: C, the clipping bound.
        sample_rate: q, the Poisson sampling rate.
        steps_per_epoch: noisy steps per pass over the data (``1/q`` rounded down).
        planned_steps: the steps of the whole planned run (epochs × steps per
            epoch), where the ε curve meets the exact ε.
        accountant: ``"prv"`` or ``"rdp"``.
        grad_sample_mode: the per-sample gradient mode in use.
    """

    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps_per_epoch: int
    planned_steps: int
    accountant: str
    grad_sample_mode: str
    _engine_accountant: IAccountant = field(repr=False)

    @property
    def steps(self) -> int:
        """Noisy optimizer steps taken so far."""
        return int(sum(steps for _, _, steps in self._engine_accountant.history))

    def epsilon(self) -> float:
        """ε spent so far at :attr:`delta` (0 before the first step).

        One (σ, q) segment, as in every privtune run, goes through the cached
        :func:`defenses.epsilon.compute_epsilon` (the accountant's own number,
        computed faster); anything else asks the accountant directly.
        """
        history = self._engine_accountant.history
        if not history:
            return 0.0
        if len(history) == 1:
            sigma, rate, steps = history[0]
            return compute_epsilon(
                noise_multiplier=sigma,
                sample_rate=rate,
                steps=steps,
                delta=self.delta,
                accountant=self.accountant,
            )
        return float(self._engine_accountant.get_epsilon(self.delta))

    def curve_epsilon(self) -> float:
        """ε spent so far as a point of the run's ε curve: cheap enough for every epoch.

        Equal to :meth:`epsilon` with ``rdp`` and from the planned last step
        on; before it, with ``prv``, PRV's upper bound at a coarser ε error,
        about a quarter of an epoch's ε above the accountant's own number
        (:func:`defenses.epsilon.curve_epsilon`). The ε a run reports comes
        from :meth:`epsilon`.
        """
        history = self._engine_accountant.history
        if len(history) != 1:
            return self.epsilon()
        sigma, rate, steps = history[0]
        return curve_epsilon(
            noise_multiplier=sigma,
            sample_rate=rate,
            steps=steps,
            delta=self.delta,
            planned_steps=self.planned_steps,
            epoch_steps=self.steps_per_epoch,
            accountant=self.accountant,
        )


class _GhostClippingOptimizer(DPOptimizerFastGradientClipping):
    """Opacus' ghost-clipping optimizer, with the clipped gradient copied by ``clone``.

    Opacus' ``accumulate`` copies each parameter's clipped gradient with
    ``copy.deepcopy``, tens of µs a tensor in Python; ``clone`` makes the
    same copy, bit for bit, in a few µs (a DP epoch of the default digits
    MLP: about 8 % faster). Everything else is Opacus'.
    """

    def accumulate(self) -> None:
        for p in self.params:
            if p.summed_grad is not None:
                p.summed_grad.add_(p.grad.data)
            else:
                p.summed_grad = p.grad.detach().clone()


class PrivateTraining(NamedTuple):
    """The privatized training objects; unpacks as a 5-tuple."""

    model: AbstractGradSampleModule
    optimizer: torch.optim.Optimizer
    criterion: Any  # the loss to call; a DPLossFastGradientClipping in ghost mode
    data_loader: DataLoader
    ledger: PrivacyLedger


def privatize(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader,
    criterion: nn.Module,
    dp: DPSettings,
    *,
    epochs: int,
    n_train: int,
    noise_seed: int | None = None,
    grad_sample_mode: str | None = None,
) -> PrivateTraining:
    """Make a training setup differentially private with Opacus.

    Args:
        model: the plain model; it is validated and then wrapped (its
            parameters are shared with the wrapper).
        optimizer: an optimizer over ``model``'s parameters.
        data_loader: a loader with the intended batch size; it is replaced by
            a Poisson-sampling ``DPDataLoader`` that draws batch membership
            from ``data_loader.generator`` (give it a seeded generator for
            reproducible batches).
        criterion: the loss; call the returned one (ghost mode wraps it).
        dp: σ or target ε, clipping bound, δ and accountant.
        epochs: the number of epochs planned; Opacus calibrates σ to a target
            ε over exactly these.
        n_train: the number of training records, for the default δ = 1/(10·n).
        noise_seed: seeds the Gaussian noise (a generator on the model's
            device); ``None`` uses torch's global generator.
        grad_sample_mode: ``"ghost"`` or ``"hooks"`` to override
            :func:`choose_grad_sample_mode` (both give the same clipped
            gradients; only speed and memory differ).

    Returns:
        The private model, optimizer, criterion, data loader and a
        :class:`PrivacyLedger`.

    Raises:
        IncompatibleModelError: Opacus cannot train the model privately.
        ValueError: ``epochs`` or ``n_train`` is not a positive integer, or
            ``grad_sample_mode`` is unknown.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> from defenses.models import build_mlp
        >>> X, y = torch.randn(100, 4), torch.randint(0, 2, (100,))
        >>> loader = DataLoader(TensorDataset(X, y), batch_size=20,
        ...                     generator=torch.Generator().manual_seed(0))
        >>> model = build_mlp(4, 2)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> dp = DPSettings(noise_multiplier=1.0, accountant="rdp")
        >>> model, optimizer, criterion, loader, ledger = privatize(
        ...     model, optimizer, loader, nn.CrossEntropyLoss(), dp,
        ...     epochs=1, n_train=100, noise_seed=0)
        >>> for xb, yb in loader:
        ...     optimizer.zero_grad()
        ...     criterion(model(xb), yb).backward()
        ...     optimizer.step()
        >>> ledger.steps, ledger.sample_rate, ledger.delta, ledger.grad_sample_mode
        (5, 0.2, 0.001, 'ghost')
        >>> round(ledger.epsilon(), 2)
        2.91
        >>> plain = release_model(model)  # the trained nn.Sequential
    """
    for name, value in (("epochs", epochs), ("n_train", n_train)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, but got {name}={value!r}")
    if grad_sample_mode is not None and grad_sample_mode not in GRAD_SAMPLE_MODES:
        raise ValueError(
            f"grad_sample_mode must be one of {sorted(GRAD_SAMPLE_MODES)} or None, "
            f"but got {grad_sample_mode!r}"
        )
    validate_model(model)
    mode = grad_sample_mode or choose_grad_sample_mode(model)
    delta = dp.delta if dp.delta is not None else 1.0 / (10 * n_train)
    generator = None
    if noise_seed is not None:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device)
        generator.manual_seed(noise_seed)

    with warnings.catch_warnings():
        # secure_mode is off on purpose (seeded, reproducible noise; see the
        # module docstring), so its warning would only repeat every run.
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        engine = PrivacyEngine(accountant=dp.accountant)
    common = dict(
        module=model,
        optimizer=optimizer,
        data_loader=data_loader,
        criterion=criterion,
        max_grad_norm=dp.max_grad_norm,
        poisson_sampling=True,
        noise_generator=generator,
        grad_sample_mode=mode,
    )
    if dp.target_epsilon is not None:
        # What make_private_with_epsilon does (Opacus' σ search at the
        # loader's sampling rate, then make_private), with the σ remembered
        # for the other models of the same trial.
        sigma = noise_multiplier_for_epsilon(
            target_epsilon=dp.target_epsilon,
            delta=delta,
            sample_rate=1 / len(data_loader),
            epochs=epochs,
            accountant=dp.accountant,
        )
    else:
        sigma = float(dp.noise_multiplier)  # type: ignore[arg-type]
    made = engine.make_private(noise_multiplier=sigma, **common)
    if mode == "ghost":
        private_model, private_optimizer, private_criterion, private_loader = made
        if type(private_optimizer) is DPOptimizerFastGradientClipping:
            private_optimizer.__class__ = _GhostClippingOptimizer
    else:
        (private_model, private_optimizer, private_loader), private_criterion = made, criterion

    ledger = PrivacyLedger(
        delta=delta,
        noise_multiplier=float(private_optimizer.noise_multiplier),
        max_grad_norm=float(dp.max_grad_norm),
        sample_rate=float(private_loader.sample_rate),
        steps_per_epoch=len(private_loader),
        planned_steps=epochs * len(private_loader),
        accountant=dp.accountant,
        grad_sample_mode=mode,
        _engine_accountant=engine.accountant,
    )
    return PrivateTraining(
        private_model, private_optimizer, private_criterion, private_loader, ledger
    )


def release_model(model: nn.Module) -> nn.Module:
    """The plain module inside an Opacus wrapper, with Opacus' hooks and attributes removed.

    Besides what ``to_standard_module`` cleans up, this drops the optimizer's
    last clipped gradient (``summed_grad``, a full copy of every parameter)
    and the layers' activation lists, so a released model holds no training
    state. A plain module is returned unchanged.
    """
    if not isinstance(model, AbstractGradSampleModule):
        return model
    plain = model.to_standard_module()
    for module in plain.modules():
        for attr in _OPACUS_MODULE_ATTRS:
            if attr in vars(module):
                delattr(module, attr)
    for param in plain.parameters():
        for attr in _OPACUS_PARAM_ATTRS:
            if hasattr(param, attr):
                delattr(param, attr)
    return plain


__all__ = [
    "GRAD_SAMPLE_MODES",
    "IncompatibleModelError",
    "PrivacyLedger",
    "PrivateTraining",
    "choose_grad_sample_mode",
    "privatize",
    "release_model",
    "validate_model",
]
