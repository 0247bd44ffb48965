"""LiRA, online with IN and OUT shadow models (Carlini et al., S&P 2022)."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from objectives.attacks._base import Attack, register
from objectives.observations import Observations
from objectives.signals import logit_scaled_confidence


@register
class LiRAOnlineAttack(Attack):
    """The online likelihood-ratio attack: per-record IN and OUT Gaussians.

    Carlini et al., "Membership Inference Attacks From First Principles"
    (S&P 2022), Algorithm 1 ("our online Likelihood Ratio Attack"), step by
    step (the paper's section IV derives each step; its equation numbers are
    not quoted here because they could not be checked against the text):

    1. membership inference as a hypothesis test between ``Q_in(x, y)``
       (models trained on datasets that contain (x, y)) and ``Q_out(x, y)``
       (datasets that do not); the statistic is the likelihood ratio
       ``Λ = p(f | Q_in(x, y)) / p(f | Q_out(x, y))``;
    2. the model f is summarized by the logit-scaled confidence
       ``φ = log(p_y / (1 − p_y))`` of the true class ("logit scaling",
       which makes φ approximately Gaussian over training runs), computed
       here from logits as ``logit_y − logsumexp_{j≠y} logit_j``;
    3. the two hypotheses are modelled as Gaussians fitted on the shadow
       models: ``μ_in(x), σ_in²`` over the shadows that trained on x and
       ``μ_out(x), σ_out²`` over those that did not (Algorithm 1, lines
       "confs_in / confs_out", "μ_in ← mean(confs_in)" …);
    4. ``Λ = N(φ_target; μ_in, σ_in²) / N(φ_target; μ_out, σ_out²)``
       (Algorithm 1's return value); the score returned is ``log Λ``.

    Which shadows trained on which record comes from
    ``records.reference_membership`` (``True`` = IN); every record needs at
    least one IN and one OUT shadow. The paper uses per-record variances
    with many shadows and a global variance with few (it reports the global
    estimate as better below 64 shadows). ``fix_variance=True`` (the
    default, for privtune's 8–32 audit shadows) shares one σ_in and one
    σ_out across records: the *pooled within-record* standard deviation,
    i.e. the spread of each record's φ around its own IN (OUT) mean, pooled
    over records (:func:`pooled_within_std`). The authors' released code
    takes the standard deviation of all IN values instead, which adds the
    spread *between* records' means; that leaves the ranking nearly as good
    but the ratio badly calibrated (on the default digits audit, 16
    shadows: the same AUC 0.614, but 91 % of non-members got Λ > 1 with the
    code's σ against 54 % with the pooled one), and privtune turns Λ into
    per-record posteriors. Variances that come out 0 (every φ equal, e.g.
    label access) are replaced by 1, which keeps Λ defined.

    Args:
        fix_variance: one global σ_in and σ_out (default) rather than one
            per record (which needs at least 2 IN and 2 OUT shadows per
            record).

    Example:
        >>> refs = np.array([[[2.0, 0.0]], [[0.0, 0.0]]])   # φ: IN model 2, OUT model 0
        >>> x = Observations(labels=np.array([0]), target_logits=np.array([[2.0, 0.0]]),
        ...                  reference_logits=refs, reference_membership=np.array([[True], [False]]))
        >>> LiRAOnlineAttack().score(x).tolist()   # σ = 1 (one value each): log Λ = 0 - (-2)
        [2.0]
    """

    name = "lira_online"
    uses_reference_models = True
    online = True

    def __init__(self, *, fix_variance: bool = True) -> None:
        self.fix_variance = fix_variance

    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        return self.log_likelihood_ratio(records, population)

    def log_likelihood_ratio(
        self, records: Observations, population: Observations | None = None
    ) -> np.ndarray:
        membership = _require_membership(records, per_record_variance=not self.fix_variance)
        return lira_online_log_lr(
            phi_target=logit_scaled_confidence(records.target_logits, records.labels),
            phi_refs=logit_scaled_confidence(records.reference_logits, records.labels),
            in_mask=membership,
            out_mask=~membership,
            fix_variance=self.fix_variance,
        )


def lira_online_log_lr(
    *,
    phi_target: np.ndarray,
    phi_refs: np.ndarray,
    in_mask: np.ndarray,
    out_mask: np.ndarray,
    fix_variance: bool = True,
) -> np.ndarray:
    """``log Λ`` of Algorithm 1 from logit-scaled confidences, with explicit IN and OUT masks.

    ``in_mask`` and ``out_mask`` (shape ``(K, n)``, disjoint) say which
    reference values fit which Gaussian; a value in neither is left out.
    The audit uses that to keep, for every record, as many IN as OUT
    shadows when one shadow is held out as the target: with a balanced
    design, holding out an IN shadow leaves one IN fewer than OUT, and the
    unequal noise of μ_in and μ_out alone would tilt Λ against the held-out
    model's members (E[log Λ] ∝ 1/n_out − 1/n_in without any signal).

    Example:
        >>> lira_online_log_lr(phi_target=np.array([2.0]), phi_refs=np.array([[2.0], [0.0]]),
        ...                    in_mask=np.array([[True], [False]]), out_mask=np.array([[False], [True]])).tolist()
        [2.0]
    """
    mu_in, sigma_in = _gaussian_fit(phi_refs, in_mask, pooled=fix_variance)
    mu_out, sigma_out = _gaussian_fit(phi_refs, out_mask, pooled=fix_variance)
    return norm.logpdf(phi_target, mu_in, sigma_in) - norm.logpdf(phi_target, mu_out, sigma_out)


def balanced_masks(membership: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IN and OUT masks with, per record, the larger side cut to the size of the smaller.

    The values dropped are the last ones (in model order) of the larger side.

    Example:
        >>> i, o = balanced_masks(np.array([[True], [False], [False]]))
        >>> i.ravel().tolist(), o.ravel().tolist()
        ([True, False, False], [False, True, False])
    """
    membership = np.asarray(membership, dtype=bool)
    n_in = membership.sum(axis=0)
    n_out = membership.shape[0] - n_in
    keep = np.minimum(n_in, n_out)
    rank_in = np.cumsum(membership, axis=0)      # 1-based position among the record's IN values
    rank_out = np.cumsum(~membership, axis=0)
    return membership & (rank_in <= keep), ~membership & (rank_out <= keep)


def _gaussian_fit(
    phi: np.ndarray, mask: np.ndarray, *, pooled: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-record mean of ``phi`` where ``mask``; std pooled over records or per record."""
    count = mask.sum(axis=0)
    mean = np.where(mask, phi, 0.0).sum(axis=0) / count
    if pooled:
        sigma = np.full(phi.shape[1], pooled_within_std(phi, mask))
    else:
        sigma = np.sqrt(np.where(mask, (phi - mean) ** 2, 0.0).sum(axis=0) / count)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0.0), sigma, 1.0)
    return mean, sigma


def pooled_within_std(phi: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Standard deviation of ``phi`` around each record's own mean, pooled over records.

    ``phi`` has shape ``(K, n)`` (models × records); ``mask`` (same shape)
    selects the values to use (default: all). ``sqrt(Σ (φ_ki − μ_i)² / N)``
    with μ_i the mean of record i's selected values and N the number of
    selected values (the maximum-likelihood pooled variance of Gaussians
    with their own means and one shared variance). When no record has two
    selected values there is no within-record spread to measure, and the
    standard deviation of all selected values is returned instead (what the
    LiRA authors' code uses with ``fix_variance``).

    Example:
        >>> pooled_within_std(np.array([[0.0, 5.0], [2.0, 5.0]]))  # record 0: ±1, record 1: 0, 0
        0.7071067811865476
    """
    phi = np.asarray(phi, dtype=np.float64)
    mask = np.ones(phi.shape, dtype=bool) if mask is None else mask
    count = mask.sum(axis=0)
    if not (count >= 2).any():
        return float(np.std(phi[mask])) if mask.any() else float("nan")
    mean = np.where(mask, phi, 0.0).sum(axis=0) / np.maximum(count, 1)
    return float(np.sqrt(np.where(mask, (phi - mean) ** 2, 0.0).sum() / mask.sum()))


def _require_membership(records: Observations, *, per_record_variance: bool) -> np.ndarray:
    if records.n_reference_models < 1:
        raise ValueError("lira_online needs at least one reference model, but the records have K=0")
    membership = records.reference_membership
    if membership is None:
        raise ValueError(
            "lira_online needs reference_membership (which shadow model trained on which record); "
            "it runs in the worst-case audit, not against the realistic attacker's OUT-only models"
        )
    least = 2 if per_record_variance else 1
    n_in = membership.sum(axis=0)
    n_out = membership.shape[0] - n_in
    if records.n_records and (n_in.min() < least or n_out.min() < least):
        raise ValueError(
            f"lira_online needs at least {least} IN and {least} OUT shadow model(s) per record, "
            f"but some record has {int(n_in.min())} IN and some {int(n_out.min())} OUT"
        )
    return membership
