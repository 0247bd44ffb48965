"""RMIA, offline (Zarifzadeh, Liu & Shokri, ICML 2024)."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from objectives.attacks._base import Attack, register
from objectives.observations import Observations
from objectives.signals import true_class_log_prob


@register
class RMIAAttack(Attack):
    """Relative membership inference: compare x with population records z.

    Zarifzadeh, Liu & Shokri, "Low-Cost High-Power Membership Inference
    Attacks" (ICML 2024). With ``Pr(x|θ)`` the target's softmax probability
    of x's true class, the paper's equations (named here, not numbered: the
    numbering could not be checked against the paper text):

    * the pairwise likelihood ratio
      ``LR_θ(x, z) = (Pr(x|θ) / Pr(x)) / (Pr(z|θ) / Pr(z))``;
    * the membership score ``Score_MIA(x; θ) = Pr_z(LR_θ(x, z) ≥ γ)``, the
      fraction of population records z that x dominates by a factor γ;
    * the marginal ``Pr(x) = mean_k Pr(x|θ_k)`` over reference models, which
      offline (every reference model OUT for x) uses the paper's linear
      approximation of the missing IN models:
      ``Pr(x) = ½[(1 + a)·mean_k Pr(x|θ_k) + (1 − a)]``; the same for each z.

    The ratio is compared in log space (``log LR ≥ log γ``), and the score is
    vectorized: the population's log ratios are sorted once, and each x's
    count is a binary search (``np.searchsorted``), O((n + m) log m) instead of
    the n·m pairwise matrix.

    Args:
        gamma: the γ of the membership score, ``γ > 0``. Default 2.0: the
            value in the paper's released offline attack configurations
            (privacytrustlab/ml_privacy_meter, ``research/2023_rmia/
            attack_configs/cifar10/rmia_offline_2_ref_models.yaml``:
            ``gamma: 2.0``). privacy_meter's current library code compares
            the ratio with 1 instead.
        offline_a: the ``a`` of the offline approximation, ``0 ≤ a ≤ 1``
            (``a = 1`` uses the OUT mean alone). Default 0.3: the default of
            ``run_rmia``/``get_out_ref_signals`` in privacy_meter's
            ``modules/mia/attacks/rmia.py``; the research configuration above
            uses 0.33. privacy_meter can also tune a by attacking one of its
            own reference models with known IN records; here every reference
            model is OUT, so a stays fixed. Neither default could be checked
            against the paper's text itself.

    **Likelihood ratio.** :meth:`log_likelihood_ratio` returns
    ``log(Pr(x|θ) / Pr(x))``, the paper's likelihood ratio of x under the
    target against the population of (reference) models, by Bayes' rule
    ``Pr(θ|x) / Pr(θ)``. It is the per-record quantity the pairwise test
    above compares between x and z; privtune takes it as RMIA's Λ for
    per-record posteriors. With the offline ``Pr(x) ≥ (1 − a)/2`` it is at
    most ``2/(1 − a)`` (2.86 for a = 0.3): RMIA's offline ratio cannot by
    itself push a record's posterior far above the prior, which is what the
    formula says and not a defect of the implementation.

    Example:
        >>> refs = np.zeros((1, 2, 2))
        >>> target = np.array([[2.0, 0.0], [0.0, 0.0]])
        >>> x = Observations(labels=np.array([0, 0]), target_logits=target, reference_logits=refs)
        >>> RMIAAttack(gamma=1.0).score(x, population=x).tolist()
        [1.0, 0.5]
    """

    name = "rmia"
    uses_reference_models = True

    def __init__(self, *, gamma: float = 2.0, offline_a: float = 0.3) -> None:
        self.gamma = gamma
        self.offline_a = offline_a

    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        self._check_params()
        _require_references(records, population)
        assert population is not None
        log_ratio_x = log_relative_probability(obs=records, offline_a=self.offline_a)
        log_ratio_z = np.sort(log_relative_probability(obs=population, offline_a=self.offline_a))
        # LR(x, z) ≥ γ  ⇔  log_ratio_z ≤ log_ratio_x − log γ
        dominated = np.searchsorted(log_ratio_z, log_ratio_x - np.log(self.gamma), side="right")
        return dominated / log_ratio_z.size

    def log_likelihood_ratio(
        self, records: Observations, population: Observations | None = None
    ) -> np.ndarray:
        """``log(Pr(x|θ) / Pr(x))`` per record (offline ``Pr(x)``); needs no population."""
        self._check_params()
        if records.n_reference_models < 1:
            raise ValueError("rmia needs at least one reference model, but the records have K=0")
        return log_relative_probability(obs=records, offline_a=self.offline_a)

    def _check_params(self) -> None:
        if not self.gamma > 0:
            raise ValueError(f"rmia needs gamma > 0, but got gamma={self.gamma!r}")
        if not 0.0 <= self.offline_a <= 1.0:
            raise ValueError(
                f"rmia needs 0 <= offline_a <= 1, but got offline_a={self.offline_a!r}"
            )


def log_relative_probability(*, obs: Observations, offline_a: float) -> np.ndarray:
    """``log(Pr(x|θ) / Pr(x))`` per record, with offline RMIA's ``Pr(x)``.

    Args:
        obs: target and reference (all OUT) logits of the records.
        offline_a: the offline approximation's ``a``.

    Returns:
        float64 array of shape ``(n,)``.
    """
    log_target = true_class_log_prob(obs.target_logits, obs.labels)
    log_refs = true_class_log_prob(obs.reference_logits, obs.labels)  # (K, n)
    log_mean_out = logsumexp(log_refs, axis=0) - np.log(obs.n_reference_models)
    # Pr(x) = ½(1 + a)·mean_out + ½(1 − a), summed in log space (a = 1 drops the constant).
    with np.errstate(divide="ignore"):
        log_pr_x = np.logaddexp(
            np.log((1.0 + offline_a) / 2.0) + log_mean_out, np.log((1.0 - offline_a) / 2.0)
        )
    return log_target - log_pr_x


def _require_references(records: Observations, population: Observations | None) -> None:
    if records.n_reference_models < 1:
        raise ValueError("rmia needs at least one reference model, but the records have K=0")
    if population is None or population.n_records == 0:
        raise ValueError("rmia needs a non-empty population of attacker records (the z samples)")
    if population.n_reference_models != records.n_reference_models:
        raise ValueError(
            f"rmia needs the same reference models for records and population, but got "
            f"K={records.n_reference_models} and K={population.n_reference_models}"
        )
