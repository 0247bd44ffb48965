"""compute_epsilon gives the Opacus accountants' own numbers."""

from __future__ import annotations

import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from defenses import compute_epsilon
from defenses.epsilon import noise_multiplier_for_epsilon

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
