from __future__ import annotations

import json
import math

import numpy as np
import pytest

from objectives.exposure import Exposure, exposed_members, posterior_membership


class TestPosterior:
    def test_hand_values(self) -> None:
        # π = 0.01: Λ = 1 leaves the prior; Λ = 99 gives 0.99/(0.99 + 0.99) = ½;
        # Λ = 990: 9.9/(9.9 + 0.99) = 0.909091
        post = posterior_membership(log_likelihood_ratio=np.log([1.0, 99.0, 990.0]), prior=0.01)
        np.testing.assert_allclose(post, [0.01, 0.5, 9.9 / 10.89], rtol=1e-12)

    def test_extremes_do_not_overflow(self) -> None:
        post = posterior_membership(log_likelihood_ratio=np.array([-np.inf, 800.0, np.inf]), prior=0.5)
        np.testing.assert_array_equal(post, [0.0, 1.0, 1.0])

    def test_rejects_a_bad_prior(self) -> None:
        with pytest.raises(ValueError, match=r"prior must be in \(0, 1\), but got prior=1.0"):
            posterior_membership(log_likelihood_ratio=np.zeros(1), prior=1.0)


class TestExposedMembers:
    # π = 0.1, bound ½: exposed ⇔ Λ > 9 (posterior 0.1Λ/(0.1Λ + 0.9) > ½)
    ROWS = np.array([10, 11, 12, 13])

    def test_union_over_attacks_with_the_largest_posterior(self) -> None:
        lrs = {
            "rmia": np.log([1.0, 20.0, 8.0, 30.0]),   # rows 11 and 13 exposed
            "lira_offline": np.log([50.0, 2.0, 8.5, 1.0]),  # row 10; row 12 just below (0.485714)
        }
        e = exposed_members(lrs, rows=self.ROWS, prior=0.1, max_ppv=0.5)
        # posteriors: row 10: 5/5.9 = 0.847458, row 13: 3/3.9 = 0.769231, row 11: 2/2.9 = 0.689655
        assert e.rows == (10, 13, 11)
        assert [r.attack for r in e.records] == ["lira_offline", "rmia", "rmia"]
        np.testing.assert_allclose([r.posterior for r in e.records], [5 / 5.9, 3 / 3.9, 2 / 2.9])
        assert e.count == 3 and e.n_members == 4 and e.assessed
        assert e.per_attack == (("rmia", 2), ("lira_offline", 1))
        assert e.max_posterior == pytest.approx(5 / 5.9)

    def test_no_attack_with_a_ratio_means_not_assessed(self) -> None:
        e = exposed_members({}, rows=self.ROWS, prior=0.1, max_ppv=0.5)
        assert (e.count, e.assessed, e.max_posterior) == (0, False, 0.0)

    def test_round_trips_through_json(self) -> None:
        e = exposed_members({"rmia": np.log([1.0, 20.0, 8.0, 30.0])}, rows=self.ROWS, prior=0.1, max_ppv=0.5)
        assert Exposure.from_dict(json.loads(json.dumps(e.to_dict()))) == e

    def test_shape_mismatch_names_the_attack(self) -> None:
        with pytest.raises(ValueError, match=r"log_likelihood_ratios\['rmia'\] must have one value per row"):
            exposed_members({"rmia": np.zeros(3)}, rows=self.ROWS, prior=0.1, max_ppv=0.5)


def test_break_even_of_a_single_record() -> None:
    # the prior at which a record with Λ becomes exposed at bound b: π* = b/(b + Λ(1 − b)); Λ = 19, b = ½: 1/20
    log_lr = np.array([math.log(19.0)])
    assert posterior_membership(log_likelihood_ratio=log_lr, prior=0.05)[0] == pytest.approx(0.5)
