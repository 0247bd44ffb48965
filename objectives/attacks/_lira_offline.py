"""LiRA, offline with a fixed global variance (Carlini et al., S&P 2022)."""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from objectives.attacks._base import Attack, register
from objectives.attacks._lira_online import pooled_within_std
from objectives.observations import Observations
from objectives.signals import logit_scaled_confidence


@register
class LiRAOfflineAttack(Attack):
    """Likelihood-ratio attack against OUT reference models only.

    Carlini et al. ("Membership Inference Attacks From First Principles",
    S&P 2022; the steps of their Algorithm 1, offline variant):

    1. the signal is the logit-scaled confidence ``φ = log(p_y / (1 - p_y))``
       of the true class (their "logit scaling" of the confidence, which
       makes φ approximately Gaussian over training runs);
    2. under models that did not train on x, ``φ ~ N(μ_out(x), σ²)``, with
       ``μ_out(x)`` the mean of φ over the K OUT reference models;
    3. the offline test is one-sided: the statistic is
       ``Λ_off = 1 − Pr[Z > φ_target]``, ``Z ~ N(μ_out(x), σ²)``, i.e.
       ``Φ((φ_target − μ_out(x)) / σ)``.

    With few reference models the paper recommends a fixed global variance
    rather than one per record. σ here is the pooled within-record standard
    deviation of the reference φ (each record's spread around its own
    μ_out, pooled over records; see
    :func:`~objectives.attacks._lira_online.pooled_within_std`), measured
    on the attacker's ``population`` records when given (so every scored
    set shares one σ, whatever else is in it) and on the scored records
    otherwise; with one reference model there is no within-record spread,
    and σ is the standard deviation of all reference φ values, as in the
    authors' released code for ``fix_variance``. With σ shared by every record, Φ is a strictly
    increasing map of ``z = (φ - μ_out(x)) / σ``, so the score returned is
    ``z`` itself: the same ranking, and no saturation of Φ at 1.0 for large
    z. (σ does matter for the likelihood-ratio bound below: the code's σ,
    which adds the spread between records' means, would understate each
    record's evidence.)

    **Likelihood ratio.** The offline attack fits no IN distribution, so it
    has no likelihood ratio of its own, only a one-sided p-value. A p-value
    is not a likelihood ratio; privtune does not invent an IN distribution
    the attacker cannot estimate. Instead :meth:`log_likelihood_ratio`
    returns the largest likelihood ratio that a *valid* p-value can
    support: for every alternative under which the p-value has a decreasing
    density, ``Λ ≤ 1 / (−e·p·ln p)`` when ``p < 1/e`` and ``Λ ≤ 1``
    otherwise (Sellke, Bayarri & Berger, "Calibration of p Values for
    Testing Precise Null Hypotheses", The American Statistician 55(1),
    2001). The bound needs p to be valid under the null, and the Gaussian
    p-value ``Φ(−z)`` is only as valid as σ (estimated from K = 2 reference
    models, it is far too small in the tails). So with a ``population`` —
    records the attacker knows the target never saw, exchangeable with
    non-members — p is the empirical p-value
    ``(1 + #{z: score(z) ≥ score(x)}) / (1 + m)`` over its m records, valid
    by exchangeability; without one, ``Φ(−z)``. Posteriors from the bound
    are upper bounds; and an attacker with m population records cannot show
    a p-value below ``1/(m + 1)``, which caps what it can claim.

    Example:
        >>> refs = np.array([[[0.0, 0.0], [1.0, 0.0]]])
        >>> target = np.array([[2.0, 0.0], [1.0, 0.0]])
        >>> x = Observations(labels=np.array([0, 0]), target_logits=target, reference_logits=refs)
        >>> LiRAOfflineAttack().score(x).tolist()
        [4.0, 0.0]
    """

    name = "lira_offline"
    uses_reference_models = True

    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        if records.n_reference_models < 1:
            raise ValueError(
                "lira_offline needs at least one reference model, but the records have K=0"
            )
        return _offset(records) / _sigma(records, population)

    def log_likelihood_ratio(
        self, records: Observations, population: Observations | None = None
    ) -> np.ndarray:
        """``log`` of the Sellke–Bayarri–Berger bound ``1/(−e·p·ln p)`` on Λ (0 for p ≥ 1/e)."""
        scores = self.score(records, population)
        if population is None or population.n_records == 0:
            return log_p_value_bayes_factor_bound(log_p=log_ndtr(-scores))
        null = np.sort(self.score(population, population))
        at_least = null.size - np.searchsorted(null, scores, side="left")  # #{z: score(z) ≥ score(x)}
        return log_p_value_bayes_factor_bound(log_p=np.log((1.0 + at_least) / (1.0 + null.size)))


def _offset(obs: Observations) -> np.ndarray:
    """``φ_target − μ_out(x)`` per record."""
    phi_target = logit_scaled_confidence(obs.target_logits, obs.labels)
    phi_refs = logit_scaled_confidence(obs.reference_logits, obs.labels)  # (K, n)
    return phi_target - phi_refs.mean(axis=0)


def _sigma(records: Observations, population: Observations | None) -> float:
    source = records if population is None or population.n_records == 0 else population
    if source.n_reference_models != records.n_reference_models:
        source = records
    sigma = pooled_within_std(logit_scaled_confidence(source.reference_logits, source.labels))
    if not np.isfinite(sigma) or sigma == 0.0:
        sigma = 1.0  # every reference φ equal: the variance only scales z, keep the ranking
    return sigma


def log_p_value_bayes_factor_bound(*, log_p: np.ndarray) -> np.ndarray:
    """``log`` of the largest likelihood ratio a p-value supports (Sellke et al. 2001).

    ``B(p) = 1 / (−e·p·ln p)`` for ``p < 1/e``, else 1; in logs
    ``−1 − ln p − ln(−ln p)``, computed from ``ln p`` so that tiny p-values
    (``ln p`` ≈ −700) neither underflow nor lose precision.

    Example:
        >>> float(log_p_value_bayes_factor_bound(log_p=np.array([np.log(0.01)]))[0].round(4))
        2.078
    """
    log_p = np.asarray(log_p, dtype=np.float64)
    out = np.zeros_like(log_p)
    small = log_p < -1.0
    out[small] = -1.0 - log_p[small] - np.log(-log_p[small])
    return out
