"""ε spent by DP-SGD, computed with Opacus' accountants, fast enough to query every epoch.

Why this module exists: an Opacus accountant recomputes the Rényi-DP curve of
the sampled Gaussian mechanism on every ``get_epsilon`` call (about 0.1 s with
``rdp``; ``prv`` does it twice to size its domain, about 0.25 s). Querying ε
after each of 30 epochs would cost more than training a small model. But for
a run with one noise multiplier σ and one sampling rate q — every run privtune
makes — that curve is the same at every step: RDP composes additively, so the
curve after T steps is T times the one-step curve. We compute the one-step
curve once per (q, σ), cache it, and then run exactly the steps Opacus'
:class:`~opacus.accountants.RDPAccountant` and
:class:`~opacus.accountants.PRVAccountant` run (same functions, same orders,
same error budgets) on the scaled curve. Nothing is re-derived: the result is
the accountant's own number, which the tests check for equality.

Measured on 2 CPU cores for a digits-sized run (q = 1/6, 30 epochs of 6
steps), ε after every epoch: ``rdp`` 0.1 s in all (was 3 s); ``prv`` about
1.6 s (was 7 s). What remains for ``prv`` is its FFT composition, whose size
Opacus ties to the step count; it cannot be cut without changing the number.
Results are also memoized, so models of a trial that share (σ, q, δ) share ε.

Histories with several (σ, q) segments fall back to the accountant itself
(see :meth:`defenses.dp_sgd.PrivacyLedger.epsilon`).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.analysis.prv import (
    Domain,
    PoissonSubsampledGaussianPRV,
    TruncatedPrivacyRandomVariable,
    compose_heterogeneous,
    discretize,
)
from opacus.accountants.utils import get_noise_multiplier

from defenses.config import ACCOUNTANTS

# PRVAccountant.get_epsilon's defaults: ε error 0.01 and δ error δ/1000.
PRV_EPS_ERROR = 0.01
PRV_DELTA_ERROR_FRACTION = 1e-3

_LARGEST_ALPHA_WARNING = ".*Optimal order is the largest alpha.*"


def compute_epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "prv",
) -> float:
    """ε after ``steps`` Poisson-sampled Gaussian steps, as the Opacus accountant reports it.

    Args:
        noise_multiplier: σ.
        sample_rate: q, the Poisson sampling rate of each step.
        steps: how many noisy steps were taken (0 gives ε = 0).
        delta: the δ of the (ε, δ) guarantee.
        accountant: ``"prv"`` or ``"rdp"``.

    Returns:
        The accountant's ε (for ``prv``, the upper bound it reports).

    Raises:
        ValueError: an argument is out of range or the accountant is unknown.

    Example:
        >>> round(compute_epsilon(noise_multiplier=1.0, sample_rate=0.2, steps=50,
        ...                       delta=1e-5, accountant="rdp"), 3)
        11.286
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {sorted(ACCOUNTANTS)}, but got {accountant!r}")
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier must be > 0, but got {noise_multiplier!r}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], but got {sample_rate!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), but got {delta!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, but got {steps!r}")
    if steps == 0:
        return 0.0
    return _cached_epsilon(
        float(noise_multiplier), float(sample_rate), int(steps), float(delta), accountant
    )


@lru_cache(maxsize=4096)
def _cached_epsilon(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> float:
    if accountant == "rdp":
        return _rdp_epsilon(noise_multiplier, sample_rate, steps, delta)
    return _prv_epsilon(noise_multiplier, sample_rate, steps, delta)


@lru_cache(maxsize=256)
def _one_step_rdp(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """The RDP curve of one step over RDPAccountant's default orders (the costly part)."""
    curve = rdp_analysis.compute_rdp(
        q=sample_rate,
        noise_multiplier=noise_multiplier,
        steps=1,
        orders=RDPAccountant.DEFAULT_ALPHAS,
    )
    curve = np.asarray(curve)
    curve.setflags(write=False)
    return curve


def _rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """What ``RDPAccountant.get_epsilon(delta)`` returns for history [(σ, q, steps)]."""
    eps, _ = rdp_analysis.get_privacy_spent(
        orders=RDPAccountant.DEFAULT_ALPHAS,
        rdp=_one_step_rdp(noise_multiplier, sample_rate) * steps,
        delta=delta,
    )
    return float(eps)


def _prv_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """What ``PRVAccountant.get_epsilon(delta)`` returns for history [(σ, q, steps)].

    The steps of ``PRVAccountant._get_dprv`` and ``compute_safe_domain_size``
    (opacus 1.6) for a one-segment history, with their two RDP queries served
    from the cached one-step curve.
    """
    eps_error = PRV_EPS_ERROR
    delta_error = delta * PRV_DELTA_ERROR_FRACTION
    # compute_safe_domain_size: the larger of the RDP ε of the whole run at
    # δ_error/4 and of one step at δ_error/(8·T), plus a margin. These only
    # size the domain, so RDP's "optimal order is the largest alpha" advice
    # does not apply to the reported ε.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LARGEST_ALPHA_WARNING)
        l_max = max(
            _rdp_epsilon(noise_multiplier, sample_rate, steps, delta_error / 4),
            _rdp_epsilon(noise_multiplier, sample_rate, 1, delta_error / (8 * steps)),
        )
    half_width = max(l_max, eps_error) + 3
    mesh_size = eps_error / np.sqrt(steps * np.log(12 / delta_error) / 2)
    domain = Domain.create_aligned(-half_width, half_width, mesh_size)
    prv = PoissonSubsampledGaussianPRV(sample_rate, noise_multiplier)
    # With q = 1 the PRV's cdf takes log(1 - q) = log(0) = -inf on purpose;
    # numpy's divide warning says nothing about the result.
    with np.errstate(divide="ignore"):
        truncated = TruncatedPrivacyRandomVariable(prv, domain.t_min, domain.t_max)
        composed = compose_heterogeneous(
            dprvs=[discretize(truncated, domain)], num_self_compositions=[steps]
        )
        _, _, eps_upper = composed.compute_epsilon(delta, delta_error, eps_error)
    return float(eps_upper)


def noise_multiplier_for_epsilon(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    epochs: int,
    accountant: str = "prv",
) -> float:
    """σ that spends at most ``target_epsilon`` over ``epochs`` epochs, found by Opacus.

    This is exactly the σ that ``PrivacyEngine.make_private_with_epsilon``
    uses (Opacus' ``get_noise_multiplier``: a bisection on the accountant's ε,
    to within 0.01), remembered per argument tuple. The search takes seconds
    with ``prv`` (each probe is a full accountant query at a new σ), and
    the target model, its reference models and the confirmation retrains of
    one trial all ask for the same σ.

    Example:
        >>> noise_multiplier_for_epsilon(target_epsilon=5.0, delta=1e-5, sample_rate=0.2,
        ...                              epochs=10, accountant="rdp")
        1.663818359375
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {sorted(ACCOUNTANTS)}, but got {accountant!r}")
    return _cached_noise_multiplier(
        float(target_epsilon), float(delta), float(sample_rate), int(epochs), accountant
    )


@lru_cache(maxsize=1024)
def _cached_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str
) -> float:
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        if accountant == "prv":  # its RDP calls only size the PRV domain
            warnings.filterwarnings("ignore", message=_LARGEST_ALPHA_WARNING)
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                epochs=epochs,
                accountant=accountant,
            )
        )


__all__ = ["compute_epsilon", "noise_multiplier_for_epsilon"]
