"""Checks every registered attack must pass (one suite, run over the registry)."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import ATTACKS, Observations, make_attack, restrict_to_access


def _observations(
    rng: np.random.Generator, n: int, k: int = 2, c: int = 3, *, online: bool = False
) -> Observations:
    """Random outputs; ``online`` adds membership: reference model j is IN for records i+j even."""
    membership = (np.add.outer(np.arange(k), np.arange(n)) % 2 == 0) if online else None
    return Observations(
        labels=rng.integers(0, c, size=n),
        target_logits=rng.normal(scale=3.0, size=(n, c)),
        reference_logits=rng.normal(scale=3.0, size=(k, n, c)),
        reference_membership=membership,
    )


def _pair(name: str, rng: np.random.Generator, n: int, m: int) -> tuple[Observations, Observations]:
    online = ATTACKS[name].online
    return _observations(rng, n, online=online), _observations(rng, m, online=online)


def test_registry_holds_every_attack() -> None:
    assert sorted(ATTACKS) == [
        "confidence", "lira_offline", "lira_online", "loss", "modified_entropy", "rmia"
    ]


def test_unknown_attack_lists_allowed_ones() -> None:
    with pytest.raises(ValueError) as info:
        make_attack("shadow")
    assert str(info.value) == (
        "unknown attack 'shadow'; allowed attacks are "
        "['confidence', 'lira_offline', 'lira_online', 'loss', 'modified_entropy', 'rmia']"
    )


@pytest.mark.parametrize("name", sorted(ATTACKS))
class TestEveryAttack:
    def test_scores_are_finite_floats_per_record(self, name: str, rng: np.random.Generator) -> None:
        records, population = _pair(name, rng, 40, 25)
        scores = make_attack(name).score(records, population)
        assert scores.shape == (40,)
        assert scores.dtype == np.float64
        assert np.isfinite(scores).all()

    def test_pure_and_deterministic(self, name: str, rng: np.random.Generator) -> None:
        records, population = _pair(name, rng, 30, 20)
        before = records.target_logits.copy()
        attack = make_attack(name)
        first = attack.score(records, population)
        np.testing.assert_array_equal(first, attack.score(records, population))
        np.testing.assert_array_equal(records.target_logits, before)

    def test_probs_carry_the_same_information_as_logits(
        self, name: str, rng: np.random.Generator
    ) -> None:
        # softmax is unchanged by adding a constant per record: so must the scores be
        records, population = _pair(name, rng, 30, 20)
        shift = rng.normal(scale=10.0, size=(30, 1))
        shifted = records.with_logits(
            target_logits=records.target_logits + shift,
            reference_logits=records.reference_logits + shift,
        )
        attack = make_attack(name)
        np.testing.assert_allclose(
            attack.score(shifted, population), attack.score(records, population), atol=1e-9
        )

    def test_label_access_runs(self, name: str, rng: np.random.Generator) -> None:
        records, population = _pair(name, rng, 30, 20)
        scores = make_attack(name).score(
            restrict_to_access(records, "label"), restrict_to_access(population, "label")
        )
        assert np.isfinite(scores).all()

    def test_reference_attacks_refuse_no_reference_models(
        self, name: str, rng: np.random.Generator
    ) -> None:
        attack = make_attack(name)
        records = _observations(rng, 10, k=0, online=attack.online)
        if attack.uses_reference_models:
            with pytest.raises(ValueError, match="at least one reference model"):
                attack.score(records, _observations(rng, 10, k=0, online=attack.online))
        else:
            assert attack.score(records, None).shape == (10,)

    def test_a_record_the_target_fits_better_scores_higher(
        self, name: str, rng: np.random.Generator
    ) -> None:
        # same record twice; the second copy's true-class logit raised by 3 on the target only
        online = ATTACKS[name].online
        records = Observations(
            labels=np.array([0, 0]),
            target_logits=np.array([[1.0, 0.0], [4.0, 0.0]]),
            reference_logits=np.array([[[1.0, 0.0]] * 2, [[0.0, 0.0]] * 2]),
            reference_membership=np.array([[True, True], [False, False]]) if online else None,
        )
        population = _observations(rng, 50, c=2, online=online)
        scores = make_attack(name).score(records, population)
        assert scores[1] >= scores[0]

    def test_likelihood_ratio_is_none_or_one_finite_value_per_record(
        self, name: str, rng: np.random.Generator
    ) -> None:
        records, population = _pair(name, rng, 30, 20)
        attack = make_attack(name)
        log_lr = attack.log_likelihood_ratio(records, population)
        if log_lr is None:
            assert attack.likelihood_ratio(records, population) is None
            return
        assert log_lr.shape == (30,)
        assert np.isfinite(log_lr).all()
        np.testing.assert_allclose(attack.likelihood_ratio(records, population), np.exp(log_lr))

    def test_offline_attacks_ignore_reference_membership(
        self, name: str, rng: np.random.Generator
    ) -> None:
        attack = make_attack(name)
        if attack.online:
            records = _observations(rng, 12, online=False)
            with pytest.raises(ValueError, match="needs reference_membership"):
                attack.score(records, None)
            return
        offline, population = _observations(rng, 12), _observations(rng, 20)
        online = Observations(
            labels=offline.labels,
            target_logits=offline.target_logits,
            reference_logits=offline.reference_logits,
            reference_membership=np.ones((2, 12), dtype=bool),
        )
        np.testing.assert_array_equal(attack.score(online, population), attack.score(offline, population))
