"""LiRA, offline with a fixed global variance (Carlini et al., S&P 2022)."""

from __future__ import annotations

import numpy as np

from objectives.attacks._base import Attack, register
from objectives.observations import Observations
from objectives.signals import logit_scaled_confidence


@register
class LiRAOfflineAttack(Attack):
    """Likelihood-ratio attack against OUT reference models only.

    Carlini et al. ("Membership Inference Attacks From First Principles",
    S&P 2022) model the logit-scaled confidence ``φ = log(p_y / (1 - p_y))``
    of a record under models that did not train on it as Gaussian,
    ``N(μ_out(x), σ²)``, with ``μ_out(x)`` the mean of φ over the K OUT
    reference models. The offline attack is a one-sided test: the further φ
    on the target lies above the OUT distribution, the more likely x is a
    member; its statistic is ``Φ((φ - μ_out(x)) / σ)``.

    With few reference models the paper recommends a fixed global variance
    rather than one per record; σ here is the standard deviation of all
    reference φ values over the scored records and the K models (as in the
    authors' released code for ``fix_variance``). With σ shared by every
    record, Φ is a strictly increasing map of ``z = (φ - μ_out(x)) / σ``, so
    the score returned is ``z`` itself: the same ranking, and no saturation
    of Φ at 1.0 for large z.

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
        phi_target = logit_scaled_confidence(records.target_logits, records.labels)
        phi_refs = logit_scaled_confidence(records.reference_logits, records.labels)  # (K, n)
        mu_out = phi_refs.mean(axis=0)
        sigma = float(np.std(phi_refs))
        if not np.isfinite(sigma) or sigma == 0.0:
            sigma = 1.0  # every reference φ equal: the variance only scales z, keep the ranking
        return (phi_target - mu_out) / sigma
