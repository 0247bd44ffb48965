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

The ε curve of a run (:func:`curve_epsilon`). Even cached, one ``prv`` query
costs 50–70 ms on 2 cores (a digits run at σ = 1; seconds at σ = 0.3), so ε
after each of 30 epochs cost more than the training itself (a profile of the
default study: 120 queries, 8.7 s of 57 s). Only the run's final ε is a
guarantee anyone acts on; the epochs before it draw a progress curve
(``EpochLog.epsilon``, TensorBoard's ``privacy/epsilon``). So:

* the final ε of a run is :func:`compute_epsilon`, the accountant's own number
  (:func:`curve_epsilon` returns it too at the planned last step);
* with ``rdp`` every curve point is exact as well (it is cheap);
* with ``prv`` a curve point is PRV's upper bound from the same method
  (Opacus' discretization, composition and ε search) with a coarser ε error
  ε_c = 0.01 + ¼·(the ε that, by RDP, the run's last planned epoch adds),
  at most 1,
  computed on one discretization per run (sized as Opacus sizes it for the
  planned number of steps at that error, widened symmetrically to a fast FFT
  length), so a point costs one inverse FFT of ~25,000 points, 2–3 ms.
  It is a valid upper bound on ε at that step (the grid is at least as fine
  and the domain at least as wide as PRV's error analysis asks for at ε_c),
  and it lies above the accountant's own number for that step by about
  ε_c − 0.01: a quarter of one epoch's ε increment, so the curve rises
  monotonically into the exact final value (checked in the tests over
  σ = 0.3–5). If that coarse computation fails, the point is exact.

Measured side by side on 2 busy cores, a digits run (q = 1/6, 30 epochs of 6
steps, δ = 1/3590), ε after every epoch: 0.5 s with 29 curve points and the
exact final value, against 4.0 s exact at every epoch (σ = 1); 0.8 s against
11.6 s at σ = 0.5.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.analysis.prv import (
    DiscretePRV,
    Domain,
    PoissonSubsampledGaussianPRV,
    TruncatedPrivacyRandomVariable,
    compose_heterogeneous,
    discretize,
)
from opacus.accountants.utils import get_noise_multiplier
from scipy.fft import irfft, next_fast_len, rfft

from defenses.config import ACCOUNTANTS

# PRVAccountant.get_epsilon's defaults: ε error 0.01 and δ error δ/1000.
PRV_EPS_ERROR = 0.01
PRV_DELTA_ERROR_FRACTION = 1e-3
# Curve points (see the module docstring): ε_c = 0.01 + this · (RDP ε of the
# last planned epoch), at most CURVE_MAX_EPS_ERROR.
CURVE_EPS_ERROR_PER_EPOCH_GAIN = 0.25
CURVE_MAX_EPS_ERROR = 1.0

# RDP advice on the alpha range ("Optimal order is the largest/smallest alpha"): it speaks to
# a reported RDP ε, not to the RDP figures that only size the PRV domain or the curve error.
_ALPHA_RANGE_WARNING = ".*Optimal order is the (largest|smallest) alpha.*"


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
    _check_arguments(noise_multiplier, sample_rate, steps, delta, accountant)
    if steps == 0:
        return 0.0
    return _cached_epsilon(
        float(noise_multiplier), float(sample_rate), int(steps), float(delta), accountant
    )


def curve_epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    planned_steps: int,
    epoch_steps: int,
    accountant: str = "prv",
) -> float:
    """ε after ``steps`` steps of a run, as a point of the run's ε curve: cheap every epoch.

    At ``steps >= planned_steps`` (the run's planned end), and always with
    ``rdp``, this is :func:`compute_epsilon`, the accountant's own number.
    Before the end with ``prv`` it is PRV's upper bound with a coarser ε
    error, about a quarter of an epoch's ε increment above the accountant's
    number (see the module docstring): right for a progress curve, not for
    the ε a run reports, which comes from :func:`compute_epsilon`.

    Args:
        noise_multiplier: σ.
        sample_rate: q, the Poisson sampling rate of each step.
        steps: noisy steps taken so far (0 gives ε = 0).
        delta: the δ of the (ε, δ) guarantee.
        planned_steps: the steps the run is planned to take (epochs × steps
            per epoch); the curve's discretization is sized for them.
        epoch_steps: steps per epoch (sizes the curve's ε error).
        accountant: ``"prv"`` or ``"rdp"``.

    Raises:
        ValueError: an argument is out of range or the accountant is unknown.

    Example:
        >>> point = curve_epsilon(noise_multiplier=1.0, sample_rate=0.2, steps=25,
        ...                       delta=1e-5, planned_steps=50, epoch_steps=5)
        >>> exact = compute_epsilon(noise_multiplier=1.0, sample_rate=0.2, steps=25, delta=1e-5)
        >>> round(point, 2), round(exact, 2)  # an epoch (5 steps) adds ~0.65
        (7.45, 7.31)
        >>> curve_epsilon(noise_multiplier=1.0, sample_rate=0.2, steps=50, delta=1e-5,
        ...               planned_steps=50, epoch_steps=5) == compute_epsilon(
        ...     noise_multiplier=1.0, sample_rate=0.2, steps=50, delta=1e-5)
        True
    """
    _check_arguments(noise_multiplier, sample_rate, steps, delta, accountant)
    for name, value in (("planned_steps", planned_steps), ("epoch_steps", epoch_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, but got {name}={value!r}")
    if steps == 0:
        return 0.0
    if accountant != "prv" or steps >= planned_steps:
        return compute_epsilon(
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            steps=steps,
            delta=delta,
            accountant=accountant,
        )
    return _cached_curve_epsilon(
        float(noise_multiplier),
        float(sample_rate),
        int(steps),
        float(delta),
        int(planned_steps),
        int(epoch_steps),
    )


def _check_arguments(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> None:
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
    domain = _prv_domain(noise_multiplier, sample_rate, steps, delta_error, eps_error)
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


def _prv_domain(
    noise_multiplier: float, sample_rate: float, steps: int, delta_error: float, eps_error: float
) -> Domain:
    """The domain ``PRVAccountant`` discretizes on for ``steps`` steps at these errors."""
    # compute_safe_domain_size: the larger of the RDP ε of the whole run at
    # δ_error/4 and of one step at δ_error/(8·T), plus a margin. These only
    # size the domain, so RDP's advice on the alpha range
    # does not apply to the reported ε.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ALPHA_RANGE_WARNING)
        l_max = max(
            _rdp_epsilon(noise_multiplier, sample_rate, steps, delta_error / 4),
            _rdp_epsilon(noise_multiplier, sample_rate, 1, delta_error / (8 * steps)),
        )
    half_width = max(l_max, eps_error) + 3
    mesh_size = eps_error / np.sqrt(steps * np.log(12 / delta_error) / 2)
    return Domain.create_aligned(-half_width, half_width, mesh_size)


def _curve_eps_error(
    noise_multiplier: float, sample_rate: float, delta: float, planned_steps: int, epoch_steps: int
) -> float:
    """ε_c: 0.01 plus a quarter of the RDP ε that the last planned epoch adds, at most 1.

    ε grows slowest in the last epoch; keeping the extra error well under
    that epoch's increment keeps the curve below the exact final value.
    """
    if planned_steps <= epoch_steps:
        return PRV_EPS_ERROR
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ALPHA_RANGE_WARNING)
        last_epoch = _rdp_epsilon(
            noise_multiplier, sample_rate, planned_steps, delta
        ) - _rdp_epsilon(noise_multiplier, sample_rate, planned_steps - epoch_steps, delta)
    extra = CURVE_EPS_ERROR_PER_EPOCH_GAIN * max(float(last_epoch), 0.0)
    return min(PRV_EPS_ERROR + extra, CURVE_MAX_EPS_ERROR)


@lru_cache(maxsize=8)
def _curve_discretization(
    noise_multiplier: float,
    sample_rate: float,
    delta: float,
    planned_steps: int,
    eps_error: float,
) -> tuple[np.ndarray, Domain]:
    """The spectrum of one step's discretized PRV on the run's curve domain, and that domain.

    The domain is PRV's for ``planned_steps`` at ``eps_error``, widened
    symmetrically (PRV's composition needs t_min = -(size/2 - 1)·dt) to an
    even size the FFT handles fast. Wider and at least as fine as PRV needs
    for any step count up to ``planned_steps``.
    """
    delta_error = delta * PRV_DELTA_ERROR_FRACTION
    aligned = _prv_domain(noise_multiplier, sample_rate, planned_steps, delta_error, eps_error)
    size = next_fast_len(aligned.size, real=True)
    while size % 2:
        size = next_fast_len(size + 1, real=True)
    half = size // 2 - 1
    domain = Domain(t_min=-half * aligned.dt, t_max=(half + 1) * aligned.dt, size=size)
    prv = PoissonSubsampledGaussianPRV(sample_rate, noise_multiplier)
    with np.errstate(divide="ignore"):  # q = 1: log(0) on purpose, as in _prv_epsilon
        truncated = TruncatedPrivacyRandomVariable(prv, domain.t_min, domain.t_max)
        discrete = discretize(truncated, domain)
    spectrum = rfft(discrete.pmf)
    spectrum.setflags(write=False)
    return spectrum, discrete.domain


@lru_cache(maxsize=4096)
def _cached_curve_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    planned_steps: int,
    epoch_steps: int,
) -> float:
    eps_error = _curve_eps_error(noise_multiplier, sample_rate, delta, planned_steps, epoch_steps)
    try:
        spectrum, domain = _curve_discretization(
            noise_multiplier, sample_rate, delta, planned_steps, eps_error
        )
        # opacus' _compose_fourier (what compose_heterogeneous does for one
        # segment) with the one-step spectrum computed once per run.
        pmf = irfft(spectrum**steps, n=domain.size)
        shift = steps - 1 + (domain.size // 2 if steps % 2 == 0 else 0)
        composed = DiscretePRV(
            pmf=np.roll(pmf, shift), domain=domain.shift_right(domain.shifts * (steps - 1))
        )
        _, _, eps_upper = composed.compute_epsilon(
            delta, delta * PRV_DELTA_ERROR_FRACTION, eps_error
        )
    except (RuntimeError, ValueError):  # PRV refused the coarse grid: give the exact point
        return _cached_epsilon(noise_multiplier, sample_rate, steps, delta, "prv")
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
            warnings.filterwarnings("ignore", message=_ALPHA_RANGE_WARNING)
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                epochs=epochs,
                accountant=accountant,
            )
        )


__all__ = ["compute_epsilon", "curve_epsilon", "noise_multiplier_for_epsilon"]
