"""Checks every registered attack must pass (one suite, run over the registry)."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import ATTACKS, Observations, make_attack, restrict_to_access


def _observations(rng: np.random.Generator, n: int, k: int = 2, c: int = 3) -> Observations:
    return Observations(
        labels=rng.integers(0, c, size=n),
        target_logits=rng.normal(scale=3.0, size=(n, c)),
        reference_logits=rng.normal(scale=3.0, size=(k, n, c)),
    )


def test_registry_holds_every_attack() -> None:
    assert sorted(ATTACKS) == ["confidence", "lira_offline", "loss", "modified_entropy", "rmia"]


def test_unknown_attack_lists_allowed_ones() -> None:
    with pytest.raises(ValueError) as info:
        make_attack("shadow")
    assert str(info.value) == (
        "unknown attack 'shadow'; allowed attacks are "
        "['confidence', 'lira_offline', 'loss', 'modified_entropy', 'rmia']"
    )


@pytest.mark.parametrize("name", sorted(ATTACKS))
class TestEveryAttack:
    def test_scores_are_finite_floats_per_record(self, name: str, rng: np.random.Generator) -> None:
        records, population = _observations(rng, 40), _observations(rng, 25)
        scores = make_attack(name).score(records, population)
        assert scores.shape == (40,)
        assert scores.dtype == np.float64
        assert np.isfinite(scores).all()

    def test_pure_and_deterministic(self, name: str, rng: np.random.Generator) -> None:
        records, population = _observations(rng, 30), _observations(rng, 20)
        before = records.target_logits.copy()
        attack = make_attack(name)
        first = attack.score(records, population)
        np.testing.assert_array_equal(first, attack.score(records, population))
        np.testing.assert_array_equal(records.target_logits, before)

    def test_probs_carry_the_same_information_as_logits(
        self, name: str, rng: np.random.Generator
    ) -> None:
        # softmax is unchanged by adding a constant per record: so must the scores be
        records, population = _observations(rng, 30), _observations(rng, 20)
        shift = rng.normal(scale=10.0, size=(30, 1))
        shifted = Observations(
            labels=records.labels,
            target_logits=records.target_logits + shift,
            reference_logits=records.reference_logits + shift,
        )
        attack = make_attack(name)
        np.testing.assert_allclose(
            attack.score(shifted, population), attack.score(records, population), atol=1e-9
        )

    def test_label_access_runs(self, name: str, rng: np.random.Generator) -> None:
        records, population = _observations(rng, 30), _observations(rng, 20)
        scores = make_attack(name).score(
            restrict_to_access(records, "label"), restrict_to_access(population, "label")
        )
        assert np.isfinite(scores).all()

    def test_reference_attacks_refuse_no_reference_models(
        self, name: str, rng: np.random.Generator
    ) -> None:
        attack = make_attack(name)
        records = _observations(rng, 10, k=0)
        if attack.uses_reference_models:
            with pytest.raises(ValueError, match="at least one reference model"):
                attack.score(records, _observations(rng, 10, k=0))
        else:
            assert attack.score(records, None).shape == (10,)

    def test_a_record_the_target_fits_better_scores_higher(
        self, name: str, rng: np.random.Generator
    ) -> None:
        # same record twice; the second copy's true-class logit raised by 3 on the target only
        records = Observations(
            labels=np.array([0, 0]),
            target_logits=np.array([[1.0, 0.0], [4.0, 0.0]]),
            reference_logits=np.zeros((2, 2, 2)),
        )
        population = _observations(rng, 50, c=2)
        scores = make_attack(name).score(records, population)
        assert scores[1] >= scores[0]
