from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import Observations
from objectives.attacks import LiRAOnlineAttack


def _binary(phi_target: list[float], phi_refs: list[list[float]], membership: list[list[bool]]) -> Observations:
    """Two-class records of class 0 whose logits (φ, 0) give exactly the logit-scaled confidence φ."""
    target = np.array(phi_target)
    refs = np.array(phi_refs)
    return Observations(
        labels=np.zeros(target.size, dtype=int),
        target_logits=np.stack([target, np.zeros_like(target)], axis=-1),
        reference_logits=np.stack([refs, np.zeros_like(refs)], axis=-1),
        reference_membership=np.array(membership),
    )


# Three shadow models (rows), two records (columns).
#   record A: shadow φ (3, 1, 0), IN (yes, yes, no)  -> μ_in 2, μ_out 0
#   record B: shadow φ (0, 2, 2), IN (no, yes, no)   -> μ_in 2, μ_out 1
# Shared variances (fix_variance), pooled within records:
#   IN:  A (3 − 2)², (1 − 2)²; B (2 − 2)²   -> σ_in²  = (1 + 1 + 0)/3 = 2/3
#   OUT: A (0 − 0)²;  B (0 − 1)², (2 − 1)²  -> σ_out² = (0 + 1 + 1)/3 = 2/3
#   (the authors' code, std of all OUT values {0, 0, 2}, would give 8/9 instead)
# log Λ = log N(φ; μ_in, σ²) − log N(φ; μ_out, σ²) = [(φ − μ_out)² − (φ − μ_in)²] / (2σ²), 2σ² = 4/3
#   A, φ = 2.5: (6.25 − 0.25)·¾ = 4.5
#   B, φ = 1.0: (0 − 1)·¾       = −0.75
GLOBAL = _binary(
    [2.5, 1.0],
    [[3.0, 0.0], [1.0, 2.0], [0.0, 2.0]],
    [[True, False], [True, True], [False, False]],
)


def test_hand_worked_global_variance() -> None:
    expected = [4.5, -0.75]
    attack = LiRAOnlineAttack()
    np.testing.assert_allclose(attack.score(GLOBAL), expected, rtol=1e-12)
    np.testing.assert_allclose(attack.log_likelihood_ratio(GLOBAL), expected, rtol=1e-12)
    np.testing.assert_allclose(attack.likelihood_ratio(GLOBAL), np.exp(expected), rtol=1e-12)


def test_pooled_within_std_hand_values() -> None:
    from objectives.attacks._lira_online import pooled_within_std

    phi = np.array([[3.0, 0.0], [1.0, 2.0], [0.0, 2.0]])
    in_mask = np.array([[True, False], [True, True], [False, False]])
    assert pooled_within_std(phi, in_mask) == pytest.approx(math.sqrt(2 / 3), rel=1e-12)
    assert pooled_within_std(phi, ~in_mask) == pytest.approx(math.sqrt(2 / 3), rel=1e-12)
    # one value per record: no within-record spread; the std of all values, {3, 0}: 1.5
    assert pooled_within_std(np.array([[3.0, 0.0]])) == pytest.approx(1.5, rel=1e-12)


def test_hand_worked_per_record_variance() -> None:
    # One record, four shadows: φ (2, 4, 0, 1), IN (yes, yes, no, no)
    # μ_in 3, σ_in 1; μ_out 0.5, σ_out 0.5. Target φ 3:
    # log Λ = [−log 1 − 0] − [−log 0.5 − 2.5²/(2·0.25)] = −(0.693147 − 12.5) = 11.806853
    obs = _binary([3.0], [[2.0], [4.0], [0.0], [1.0]], [[True], [True], [False], [False]])
    score = LiRAOnlineAttack(fix_variance=False).score(obs)
    np.testing.assert_allclose(score, [12.5 - math.log(2.0)], rtol=1e-12)


def test_defaults_and_setting() -> None:
    assert LiRAOnlineAttack().fix_variance is True
    assert LiRAOnlineAttack.online and LiRAOnlineAttack.uses_reference_models
    assert repr(LiRAOnlineAttack()) == "LiRAOnlineAttack(fix_variance=True)"


class TestRefusals:
    def test_needs_membership(self) -> None:
        obs = Observations(labels=np.array([0]), target_logits=np.zeros((1, 2)),
                           reference_logits=np.zeros((2, 1, 2)))
        with pytest.raises(ValueError, match="lira_online needs reference_membership"):
            LiRAOnlineAttack().score(obs)

    def test_needs_an_in_and_an_out_shadow_per_record(self) -> None:
        obs = _binary([1.0, 1.0], [[0.0, 0.0], [1.0, 1.0]], [[True, True], [True, False]])
        with pytest.raises(ValueError) as info:
            LiRAOnlineAttack().score(obs)
        assert str(info.value) == (
            "lira_online needs at least 1 IN and 1 OUT shadow model(s) per record, "
            "but some record has 1 IN and some 0 OUT"
        )

    def test_per_record_variance_needs_two_of_each(self) -> None:
        obs = _binary([1.0], [[0.0], [1.0], [2.0]], [[True], [True], [False]])
        with pytest.raises(ValueError, match="at least 2 IN and 2 OUT"):
            LiRAOnlineAttack(fix_variance=False).score(obs)


def test_membership_shape_is_checked() -> None:
    with pytest.raises(ValueError) as info:
        Observations(labels=np.array([0]), target_logits=np.zeros((1, 2)),
                     reference_logits=np.zeros((2, 1, 2)), reference_membership=np.ones((1, 1), bool))
    assert str(info.value) == (
        "reference_membership must be a bool array of shape (2, 1) (K, n), "
        "but got dtype bool and shape (1, 1)"
    )


class TestLeaveOneOutBalance:
    """With no membership signal at all, scoring each shadow against the others must be a coin flip.

    φ = per-record difficulty + noise, the same whether IN or OUT. Holding out shadow s leaves,
    for its members, S/2 − 1 IN and S/2 OUT shadows (and the reverse for its non-members); the
    unequal noise of μ_in and μ_out then tilts log Λ by E ∝ 1/n_out − 1/n_in against the held-out
    model's members. Balanced masks remove the tilt.
    """

    @staticmethod
    def _pooled_auc(*, balanced: bool) -> float:
        from objectives.attacks._lira_online import balanced_masks, lira_online_log_lr
        from objectives.worst_case import roc_auc

        rng = np.random.default_rng(11)
        shadows, n = 4, 3000
        membership = np.argsort(rng.uniform(size=(shadows, n)), axis=0) < shadows // 2
        phi = rng.normal(0.0, 2.0, size=n) + rng.normal(0.0, 1.0, size=(shadows, n))
        members, nonmembers = [], []
        for s in range(shadows):
            others = np.arange(shadows) != s
            if balanced:
                in_mask, out_mask = balanced_masks(membership[others])
            else:
                in_mask, out_mask = membership[others], ~membership[others]
            score = lira_online_log_lr(phi_target=phi[s], phi_refs=phi[others], in_mask=in_mask, out_mask=out_mask)
            members.append(score[membership[s]])
            nonmembers.append(score[~membership[s]])
        return roc_auc(np.concatenate(members), np.concatenate(nonmembers))

    def test_balanced_masks_give_a_coin_flip(self) -> None:
        # 6,000 member and 6,000 non-member scores: the AUC's standard error is about 0.005
        assert abs(self._pooled_auc(balanced=True) - 0.5) < 0.02

    def test_unbalanced_masks_would_tilt_it(self) -> None:
        assert self._pooled_auc(balanced=False) < 0.45
