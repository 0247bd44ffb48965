"""The worst-case audit: shadow membership, the pooled LiRA-online evaluation, the printout."""

from __future__ import annotations

import numpy as np
import pytest

from defenses import DefenseConfig
from tuner.audit import audit_rows, audit_text, run_audit, shadow_membership
from tuner.config import config_from_dict
from tuner.report import render_table
from tuner.tune import prepare


class TestShadowMembership:
    def test_every_record_in_for_exactly_half(self) -> None:
        m = shadow_membership(50, 8, seed=3)
        assert m.shape == (8, 50) and m.dtype == bool
        np.testing.assert_array_equal(m.sum(axis=0), np.full(50, 4))
        np.testing.assert_array_equal(m, shadow_membership(50, 8, seed=3))
        assert not np.array_equal(m, shadow_membership(50, 8, seed=4))

    def test_shadow_training_sets_are_about_half_the_candidates(self) -> None:
        m = shadow_membership(1000, 16, seed=0)
        assert abs(m.sum(axis=1) - 500).max() < 100

    @pytest.mark.parametrize("bad", [0, 3])
    def test_rejects_odd_or_too_few(self, bad: int) -> None:
        with pytest.raises(ValueError, match="even integer >= 2"):
            shadow_membership(10, bad, seed=0)


@pytest.fixture(scope="module")
def small_audit():
    config = config_from_dict({"training": {"epochs": 4}, "threat_model": {"attacks": ["loss", "rmia", "lira_offline"]}})
    prepared = prepare(config)
    return prepared, run_audit(prepared.context, DefenseConfig(), shadow_models=4, source="test")


def test_pooled_evaluation_counts_every_model_candidate_pair(small_audit) -> None:
    prepared, result = small_audit
    n_members, n_nonmembers = len(prepared.roles.members), len(prepared.roles.nonmembers)
    n = n_members + n_nonmembers
    assert (result.online.n_members, result.online.n_nonmembers) == (n_members, n_nonmembers)
    # target + 4 leave-one-out shadows, each candidate IN for 2 of the 4 shadows
    assert result.online_pooled.n_members == n_members + 2 * n
    assert result.online_pooled.n_nonmembers == n_nonmembers + 2 * n
    assert 0.0 <= result.online.auc <= 1.0


def test_exposure_at_prior_half_is_at_least_that_at_the_realistic_prior(small_audit) -> None:
    _, result = small_audit
    assert result.exposure_half.count >= result.exposure_prior.count
    assert set(result.exposure_prior.rows) <= set(result.exposure_half.rows)
    assert result.exposure_half.attacks == ("lira_online",)


def test_realistic_side_carries_exposure_from_the_ratio_attacks(small_audit) -> None:
    _, result = small_audit
    exposure = result.evaluation.exposure
    assert exposure is not None and exposure.attacks == ("rmia", "lira_offline")  # loss has no ratio
    assert exposure.n_members == result.online.n_members


def test_printout_shows_both_views_side_by_side(small_audit) -> None:
    _, result = small_audit
    text = audit_text(result, render_table=render_table)
    assert "WORST CASE" in text and "REALISTIC" in text
    rows = audit_rows(result)
    assert [r["attack"].split(" ")[0] for r in rows] == ["lira_online", "lira_online", "loss", "rmia", "lira_offline"]
    assert rows[0]["α→FPR"] == "—"  # online attacks have no realistic column
    assert rows[2]["α→FPR"] != "—"
    assert "worst-case view:" in text and "realistic view:" in text and "utility: test" in text


def test_audit_refuses_too_few_shadows(small_audit) -> None:
    prepared, _ = small_audit
    with pytest.raises(ValueError, match="even integer >= 4"):
        run_audit(prepared.context, DefenseConfig(), shadow_models=2)
