from __future__ import annotations

import pytest

from objectives import adequacy_constraint, is_adequate, weighted_objective


class TestIsAdequate:
    def test_bound_is_inclusive(self) -> None:
        assert is_adequate(risk=0.5, max_ppv=0.5)
        assert not is_adequate(risk=0.5000001, max_ppv=0.5)

    def test_exposed_records_bound(self) -> None:
        assert is_adequate(risk=0.1, max_ppv=0.5, exposed=3, max_exposed=3)
        assert not is_adequate(risk=0.1, max_ppv=0.5, exposed=4, max_exposed=3)
        assert is_adequate(risk=0.1, max_ppv=0.5, exposed=400)  # no bound set

    def test_bound_without_a_count_is_an_error(self) -> None:
        with pytest.raises(ValueError) as info:
            is_adequate(risk=0.1, max_ppv=0.5, max_exposed=3)
        assert str(info.value) == (
            "max_exposed=3 needs the number of exposed records, but got exposed=None"
        )


class TestWeightedObjective:
    def test_hand_value(self) -> None:
        # 0.9 - 2·0.15 = 0.6
        assert weighted_objective(utility=0.9, advantage=0.15, risk_weight=2.0) == pytest.approx(
            0.6
        )

    def test_worse_than_guessing_earns_nothing(self) -> None:
        assert weighted_objective(utility=0.9, advantage=-0.2, risk_weight=2.0) == 0.9


def test_adequacy_constraint_is_feasible_at_or_below_zero() -> None:
    assert adequacy_constraint(risk=0.3, max_ppv=0.5) == pytest.approx(-0.2)
    assert adequacy_constraint(risk=0.7, max_ppv=0.5) == pytest.approx(0.2)
