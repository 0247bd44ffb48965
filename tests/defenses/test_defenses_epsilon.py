"""compute_epsilon gives the Opacus accountants' numbers; curve_epsilon meets them at the end."""

from __future__ import annotations

import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from defenses import compute_epsilon
from defenses.epsilon import curve_epsilon, noise_multiplier_for_epsilon

CASES = [(1.0, 1 / 6, 60, 1e-4), (3.0, 1.0, 30, 1e-3), (0.7, 0.05, 200, 1e-5)]


@pytest.mark.parametrize(("sigma", "rate", "steps", "delta"), CASES)
@pytest.mark.parametrize(
    ("name", "accountant_class"), [("prv", PRVAccountant), ("rdp", RDPAccountant)]
)
def test_equals_the_accountant(name, accountant_class, sigma, rate, steps, delta) -> None:
    accountant = accountant_class()
    accountant.history = [(sigma, rate, steps)]
    with np.errstate(divide="ignore"):  # PRV at q = 1 takes log(0) on purpose
        expected = accountant.get_epsilon(delta)
    assert compute_epsilon(
        noise_multiplier=sigma, sample_rate=rate, steps=steps, delta=delta, accountant=name
    ) == pytest.approx(expected, rel=1e-12)


def test_zero_steps_spend_nothing() -> None:
    assert compute_epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=0, delta=1e-5) == 0.0


def test_unknown_accountant() -> None:
    with pytest.raises(ValueError) as info:
        compute_epsilon(
            noise_multiplier=1.0, sample_rate=0.1, steps=1, delta=1e-5, accountant="gdp"
        )
    assert str(info.value) == "accountant must be one of ['prv', 'rdp'], but got 'gdp'"


def test_noise_for_target_is_opacus_search() -> None:
    kwargs = dict(target_epsilon=3.0, sample_rate=0.1, epochs=5, accountant="rdp")
    assert noise_multiplier_for_epsilon(delta=1e-5, **kwargs) == get_noise_multiplier(
        target_delta=1e-5, **kwargs
    )


class TestCurve:
    """curve_epsilon: exact at the planned end, a slightly looser bound before it."""

    # σ from the search space's ends and middle; q = 0.2 (5 steps per epoch), 10 epochs
    RATE, EPOCH_STEPS, EPOCHS, DELTA = 0.2, 5, 10, 1e-4

    def _curve(self, sigma: float, accountant: str = "prv") -> list[float]:
        return [
            curve_epsilon(
                noise_multiplier=sigma,
                sample_rate=self.RATE,
                steps=epoch * self.EPOCH_STEPS,
                delta=self.DELTA,
                planned_steps=self.EPOCHS * self.EPOCH_STEPS,
                epoch_steps=self.EPOCH_STEPS,
                accountant=accountant,
            )
            for epoch in range(1, self.EPOCHS + 1)
        ]

    def _exact(self, sigma: float, epoch: int, accountant: str = "prv") -> float:
        return compute_epsilon(
            noise_multiplier=sigma,
            sample_rate=self.RATE,
            steps=epoch * self.EPOCH_STEPS,
            delta=self.DELTA,
            accountant=accountant,
        )

    @pytest.mark.parametrize("sigma", [0.3, 1.0, 5.0])
    def test_rises_into_the_exact_final_value(self, sigma) -> None:
        curve = self._curve(sigma)
        accountant = PRVAccountant()
        accountant.history = [(sigma, self.RATE, self.EPOCHS * self.EPOCH_STEPS)]
        assert curve[-1] == self._exact(sigma, self.EPOCHS)
        assert curve[-1] == pytest.approx(accountant.get_epsilon(self.DELTA), rel=1e-12)
        assert all(b > a for a, b in zip(curve, curve[1:]))
        for epoch in (1, self.EPOCHS // 2, self.EPOCHS - 1):
            # above the accountant's own number (a looser bound), below the next epoch's
            assert self._exact(sigma, epoch) < curve[epoch - 1] < self._exact(sigma, epoch + 1)

    def test_rdp_points_are_exact(self) -> None:
        curve = self._curve(1.0, accountant="rdp")
        assert curve == [self._exact(1.0, e, accountant="rdp") for e in range(1, self.EPOCHS + 1)]

    def test_zero_steps_and_steps_past_the_plan(self) -> None:
        kwargs = dict(noise_multiplier=1.0, sample_rate=0.1, delta=1e-5, epoch_steps=10)
        assert curve_epsilon(steps=0, planned_steps=100, **kwargs) == 0.0
        assert curve_epsilon(steps=120, planned_steps=100, **kwargs) == compute_epsilon(
            noise_multiplier=1.0, sample_rate=0.1, steps=120, delta=1e-5
        )

    def test_planned_steps_must_be_positive(self) -> None:
        with pytest.raises(ValueError) as info:
            curve_epsilon(
                noise_multiplier=1.0,
                sample_rate=0.1,
                steps=1,
                delta=1e-5,
                planned_steps=0,
                epoch_steps=10,
            )
        assert str(info.value) == "planned_steps must be an integer >= 1, but got planned_steps=0"
