"""Data roles: disjoint, covering, stratified, seeded, sized as computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.config import DataConfig, PoolFractions, RoleFractions
from tuner.data import LabelledData, load_data
from tuner.errors import DataError
from tuner.roles import ROLES, DataRoles, split_roles


@pytest.fixture(scope="module")
def digits() -> LabelledData:
    return load_data(DataConfig(name="digits"))


@pytest.fixture(scope="module")
def roles(digits: LabelledData) -> DataRoles:
    return split_roles(digits, RoleFractions(), PoolFractions(), seed=0)


def _tiny(n_per_class: tuple[int, ...], test: LabelledData | None = None) -> LabelledData:
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    X = np.arange(len(y), dtype=np.float32)[:, None]
    return LabelledData(X, y, ("x",), tuple("abcdefgh"[: len(n_per_class)]), "tiny", test)


class TestSizes:
    def test_digits_default_sizes(self, roles: DataRoles) -> None:
        # 1797 rows × (0.2, 0.2, 0.4, 0.1, 0.1) = 359.4, 359.4, 718.8, 179.7, 179.7: floors sum to 1794,
        # the 3 left go to the largest remainders (pool .8, validation .7, test .7) -> 359, 359, 719, 180, 180.
        # Pool 719 × (0.25, 0.25, 0.5) = 179.75, 179.75, 359.5: floors 717, 2 left -> 180, 180, 359.
        assert roles.sizes() == {
            "members": 359,
            "nonmembers": 359,
            "attacker_reference": 359,
            "attacker_population": 180,
            "attacker_calibration": 180,
            "validation": 180,
            "test": 180,
        }
        assert (roles.n_classes, roles.n_features) == (10, 64)

    def test_reference_part_keeps_up_with_the_members(self) -> None:
        # 569 rows: 113.8, 113.8, 227.6, 56.9, 56.9 -> 114, 114, 227, 57, 57; the pool's 56.75, 56.75,
        # 113.5 round to 57, 57, 113 < 114 members, so the reference part takes one from calibration.
        data = load_data(DataConfig(name="breast_cancer"))
        assert split_roles(data, RoleFractions(), PoolFractions(), seed=0).sizes() == {
            "members": 114,
            "nonmembers": 114,
            "attacker_reference": 114,
            "attacker_population": 57,
            "attacker_calibration": 56,
            "validation": 57,
            "test": 57,
        }


class TestSplit:
    def test_disjoint_and_covering(self, digits: LabelledData, roles: DataRoles) -> None:
        rows = np.concatenate([getattr(roles, role).rows for role in ROLES])
        assert np.array_equal(np.sort(rows), np.arange(digits.n_rows))
        for role in ROLES:
            split = getattr(roles, role)
            assert np.array_equal(split.X, digits.X[split.rows])
            assert np.array_equal(split.y, digits.y[split.rows])

    def test_stratified_within_one_record_per_class(
        self, digits: LabelledData, roles: DataRoles
    ) -> None:
        class_counts = np.bincount(digits.y)
        for role in ROLES:
            split = getattr(roles, role)
            expected = class_counts * len(split) / digits.n_rows
            assert np.all(np.abs(np.bincount(split.y, minlength=10) - expected) < 1), role

    def test_seeded(self, digits: LabelledData, roles: DataRoles) -> None:
        again = split_roles(digits, RoleFractions(), PoolFractions(), seed=0)
        other = split_roles(digits, RoleFractions(), PoolFractions(), seed=1)
        for role in ROLES:
            assert np.array_equal(getattr(roles, role).rows, getattr(again, role).rows)
        assert not np.array_equal(np.sort(roles.members.rows), np.sort(other.members.rows))
        assert roles.fingerprint == digits.fingerprint()

    def test_separate_test_file_is_the_test_role(self) -> None:
        test = _tiny((3, 2))
        data = _tiny((20, 20), test=test)
        roles = split_roles(data, RoleFractions(0.2, 0.2, 0.4, 0.2, 0.0), PoolFractions(), seed=0)
        assert roles.test.rows.tolist() == [40, 41, 42, 43, 44]
        assert np.array_equal(roles.test.X, test.X)
        rows = np.concatenate([getattr(roles, role).rows for role in ROLES if role != "test"])
        assert np.array_equal(np.sort(rows), np.arange(40))

    def test_separate_test_file_needs_test_fraction_zero(self) -> None:
        data = _tiny((20, 20), test=_tiny((3, 2)))
        with pytest.raises(DataError) as info:
            split_roles(data, RoleFractions(), PoolFractions(), seed=0)
        assert str(info.value) == (
            "data.roles.test is 0.1 but a separate test file is given; "
            "set data.roles.test to 0 (the test file is the test role)"
        )


class TestTooSmall:
    def test_too_few_rows(self) -> None:
        # 6 rows: 1.2, 1.2, 2.4, 0.6, 0.6 -> 1, 1, 2, 1, 1; the pool's 0.5, 0.5, 1 -> 1, 0, 1.
        with pytest.raises(DataError) as info:
            split_roles(_tiny((3, 3)), RoleFractions(), PoolFractions(), seed=0)
        lines = str(info.value).splitlines()
        assert lines[0] == "cannot split tiny (6 rows) into the data roles:"
        assert lines[1] == (
            "  role 'attacker_population' (size 0) is empty; raise data.pool.population (now 0.25) "
            "or data.roles.attacker_pool (now 0.4), or use a larger data set"
        )
        assert lines[2].startswith("  role 'members' (size 1) has no record of class(es) ['")
        assert lines[2].endswith(
            "']; raise data.roles.members (now 0.2) so that every class is represented, or use a larger data set"
        )
        assert len(lines) == 3

    def test_reference_part_smaller_than_the_members(self, digits: LabelledData) -> None:
        # 1797 × (0.3, 0.2, 0.3, 0.1, 0.1) -> 539, 359, 539, 180, 180; pool 539 × (0.25, 0.25, 0.5)
        # = 134.75, 134.75, 269.5 -> 135, 135, 269 reference records for 539 members.
        with pytest.raises(DataError) as info:
            split_roles(digits, RoleFractions(0.3, 0.2, 0.3, 0.1, 0.1), PoolFractions(), seed=0)
        assert str(info.value) == (
            "cannot split digits (1797 rows) into the data roles:\n"
            "  role 'attacker_reference' (size 269) is smaller than the members (size 539), but reference "
            "models train on as many records as the target; raise data.roles.attacker_pool (now 0.3), "
            "lower data.pool.calibration + data.pool.population (now 0.5) or lower data.roles.members (now 0.3)"
        )


class TestReferenceTrainingSet:
    def test_size_origin_and_determinism(self) -> None:
        data = _tiny((300, 200))  # X is the row id, so drawn records can be traced
        roles = split_roles(data, RoleFractions(0.2, 0.2, 0.5, 0.05, 0.05), PoolFractions(), seed=0)
        # 500 rows: members 100, pool 250 -> reference 125: the models' draws can differ
        assert (len(roles.members), len(roles.attacker_reference)) == (100, 125)
        X0, y0 = roles.reference_training_set(0, seed=7)
        assert X0.shape == (100, 1) and y0.shape == (100,)
        drawn = X0[:, 0].astype(int)
        assert len(set(drawn)) == 100  # without replacement
        assert set(drawn) <= set(roles.attacker_reference.rows.tolist())
        assert np.array_equal(y0, data.y[drawn])
        X0_again, y0_again = roles.reference_training_set(0, seed=7)
        assert np.array_equal(X0, X0_again) and np.array_equal(y0, y0_again)
        X1, _ = roles.reference_training_set(1, seed=7)
        X0_other_seed, _ = roles.reference_training_set(0, seed=8)
        assert set(X1[:, 0]) != set(X0[:, 0]) and set(X0_other_seed[:, 0]) != set(X0[:, 0])
        # stratified: each class's count is its share of the reference part, rounded
        share = np.bincount(roles.attacker_reference.y) * 100 / 125
        assert np.all(np.abs(np.bincount(y0) - share) < 1)

    def test_reference_part_as_large_as_the_members_is_used_whole(self, roles: DataRoles) -> None:
        X, _ = roles.reference_training_set(3, seed=0)
        assert len(X) == len(roles.attacker_reference) == len(roles.members)
