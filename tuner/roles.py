"""Splitting one data set into the disjoint data roles of the threat model.

| role | used for |
| --- | --- |
| members | the target model's training set |
| nonmembers | ground truth for evaluating attacks (never seen by the attacker) |
| attacker_reference | the attacker's pool part that trains its reference models |
| attacker_population | the attacker's population samples (RMIA's z) |
| attacker_calibration | the attacker's known non-members, for choosing thresholds |
| validation | early stopping and pruning |
| test | the reported utility |

The split is stratified, seeded and exact: role sizes are apportioned from the
fractions by largest remainders, and each role's count of every class is the
floor or the ceiling of its proportional share (a controlled rounding of the
role × class table), so class proportions match to within one record per
class. The attacker never sees members or evaluation non-members.

Example:
    >>> from tuner.config import DataConfig, PoolFractions, RoleFractions
    >>> from tuner.data import load_data
    >>> roles = split_roles(load_data(DataConfig()), RoleFractions(), PoolFractions(), seed=0)
    >>> roles.sizes()["members"], roles.sizes()["test"]
    (359, 180)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tuner.errors import DataError

if TYPE_CHECKING:
    from tuner.config import PoolFractions, RoleFractions
    from tuner.data import LabelledData

ROLES = (
    "members",
    "nonmembers",
    "attacker_reference",
    "attacker_population",
    "attacker_calibration",
    "validation",
    "test",
)


@dataclass(frozen=True, eq=False)
class RoleSplit:
    """The records of one role.

    ``rows`` are row ids into the loaded data set; rows of a separate test
    file are numbered ``n_rows + i``.
    """

    X: np.ndarray
    y: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, eq=False)
class DataRoles:
    """The data set split into disjoint roles that together cover every row once."""

    members: RoleSplit
    nonmembers: RoleSplit
    attacker_reference: RoleSplit
    attacker_population: RoleSplit
    attacker_calibration: RoleSplit
    validation: RoleSplit
    test: RoleSplit
    n_classes: int
    n_features: int
    fingerprint: str
    input_shape: tuple[int, ...] | None = None  # one record's shape before flattening (user loaders)

    def sizes(self) -> dict[str, int]:
        """Records per role, in :data:`ROLES` order."""
        return {role: len(getattr(self, role)) for role in ROLES}

    def reference_training_set(self, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference model ``k``'s training set, seeded by ``(seed, k)``.

        As many records as the target trained on, drawn without replacement
        from ``attacker_reference``, stratified so that each class's count is
        its share of the reference part (largest remainders).
        """
        pool = self.attacker_reference
        n = len(self.members)
        rng = np.random.default_rng([seed, k])
        counts = np.bincount(pool.y, minlength=self.n_classes)
        take = _apportion(n, counts / counts.sum())
        chosen = np.concatenate(
            [
                rng.choice(np.flatnonzero(pool.y == c), size=int(m), replace=False)
                for c, m in enumerate(take)
                if m
            ]
        )
        chosen = rng.permutation(chosen)
        return pool.X[chosen], pool.y[chosen]


def split_roles(
    data: LabelledData, roles: RoleFractions, pool: PoolFractions, *, seed: int
) -> DataRoles:
    """Split ``data`` into the data roles: disjoint, stratified, seeded.

    When ``data.test`` is given (a separate test file), ``roles.test`` must be
    0 and the test role is that file.

    Raises:
        DataError: a role would be empty, a class is missing from the members,
            or the reference part is smaller than the members; the message
            names the role, its size and the fraction to change.
    """
    if data.test is not None and roles.test != 0:
        raise DataError(
            f"data.roles.test is {roles.test:g} but a separate test file is given; "
            "set data.roles.test to 0 (the test file is the test role)"
        )
    total = roles.members + roles.nonmembers + roles.attacker_pool + roles.validation + roles.test
    if abs(total - 1) > 1e-9:
        raise ValueError(f"role fractions must sum to 1, but sum to {total:.10g}")
    sizes = _role_sizes(data.n_rows, roles, pool)
    counts = np.bincount(data.y, minlength=data.n_classes)
    table = _round_table(
        np.outer(list(sizes.values()), counts) / data.n_rows, list(sizes.values()), counts
    )
    _check_sizes(data, roles, pool, sizes, table[0])

    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {role: [] for role in sizes}
    for c in range(data.n_classes):
        ids = rng.permutation(np.flatnonzero(data.y == c))
        bounds = np.cumsum(table[:, c])[:-1]
        for role, chunk in zip(sizes, np.split(ids, bounds)):
            parts[role].append(chunk)
    splits = {}
    for role, chunks in parts.items():
        rows = rng.permutation(np.concatenate(chunks)).astype(np.int64)
        splits[role] = RoleSplit(data.X[rows], data.y[rows], rows)
    if data.test is not None:
        rows = data.n_rows + np.arange(data.test.n_rows, dtype=np.int64)
        splits["test"] = RoleSplit(data.test.X, data.test.y, rows)
    return DataRoles(
        **splits,
        n_classes=data.n_classes,
        n_features=data.n_features,
        fingerprint=data.fingerprint(),
        input_shape=data.input_shape,
    )


def _apportion(total: int, fractions: np.ndarray | list[float]) -> np.ndarray:
    """Integers summing to ``total`` in proportion to ``fractions`` (largest remainders).

    Ties go to the earlier entry; shares are rounded to 9 decimals first so
    that float noise (0.1·n = 179.70000000000002) cannot decide them.
    """
    shares = np.round(np.asarray(fractions, dtype=np.float64) * total, 9)
    out = np.floor(shares).astype(np.int64)
    remainders = shares - out
    order = sorted(range(len(out)), key=lambda i: -remainders[i])
    for i in order[: total - int(out.sum())]:
        out[i] += 1
    return out


def _role_sizes(n: int, roles: RoleFractions, pool: PoolFractions) -> dict[str, int]:
    """Records per role: top-level roles first, then the attacker pool's parts.

    The pool's reference part gets priority over calibration and population
    when rounding alone would leave it smaller than the members although the
    fractions give it enough (breast cancer's 569 rows: 114 members, a pool of
    227 that splits 57/57/113): it takes the missing records from the larger
    of the other two pool parts.
    """
    top = _apportion(
        n, [roles.members, roles.nonmembers, roles.attacker_pool, roles.validation, roles.test]
    )
    members, nonmembers, pool_size, validation, test = (int(v) for v in top)
    calibration, population, reference = (
        int(v) for v in _apportion(pool_size, [pool.calibration, pool.population, pool.reference])
    )
    if roles.attacker_pool * pool.reference >= roles.members - 1e-9:
        while reference < members and calibration + population > 0:
            reference += 1
            if calibration >= population:
                calibration -= 1
            else:
                population -= 1
    return {
        "members": members,
        "nonmembers": nonmembers,
        "attacker_reference": reference,
        "attacker_population": population,
        "attacker_calibration": calibration,
        "validation": validation,
        "test": test,
    }


_FRACTION_KEYS = {
    "members": "data.roles.members",
    "nonmembers": "data.roles.nonmembers",
    "validation": "data.roles.validation",
    "test": "data.roles.test",
    "attacker_population": "data.pool.population",
    "attacker_calibration": "data.pool.calibration",
}


def _check_sizes(
    data: LabelledData,
    roles: RoleFractions,
    pool: PoolFractions,
    sizes: dict[str, int],
    members_by_class: np.ndarray,
) -> None:
    """Every role non-empty, every class among the members, enough reference records."""
    problems = []
    for role, size in sizes.items():
        if size > 0 or (role == "test" and data.test is not None):
            continue
        if role in _FRACTION_KEYS:
            key = _FRACTION_KEYS[role]
            section, name = key.split(".")[1:]
            now = getattr(roles if section == "roles" else pool, name)
            fix = f"raise {key} (now {now:g})"
        else:
            fix = f"lower data.pool.calibration + data.pool.population (now {1 - pool.reference:g})"
        if role.startswith("attacker_"):
            fix += f" or data.roles.attacker_pool (now {roles.attacker_pool:g})"
        problems.append(f"role '{role}' (size 0) is empty; {fix}, or use a larger data set")
    absent = [data.class_names[c] for c in np.flatnonzero(members_by_class == 0)]
    if absent and sizes["members"] > 0:
        problems.append(
            f"role 'members' (size {sizes['members']}) has no record of class(es) {absent}; "
            f"raise data.roles.members (now {roles.members:g}) so that every class is represented, "
            "or use a larger data set"
        )
    if 0 < sizes["attacker_reference"] < sizes["members"]:
        problems.append(
            f"role 'attacker_reference' (size {sizes['attacker_reference']}) is smaller than the members "
            f"(size {sizes['members']}), but reference models train on as many records as the target; raise "
            f"data.roles.attacker_pool (now {roles.attacker_pool:g}), lower data.pool.calibration + "
            f"data.pool.population (now {1 - pool.reference:g}) or lower data.roles.members "
            f"(now {roles.members:g})"
        )
    if problems:
        raise DataError(
            f"cannot split {data.name} ({data.n_rows} rows) into the data roles:\n"
            + "\n".join(f"  {p}" for p in problems)
        )


def _round_table(expected: np.ndarray, row_totals: list[int], col_totals: np.ndarray) -> np.ndarray:
    """Round a role × class table of expected counts to integers with exact margins.

    Each entry becomes the floor or the ceiling of its expected value while
    every row keeps its role size and every column its class count (a
    controlled rounding; it always exists because the fractional parts are
    themselves a feasible flow). Found by augmenting paths on the bipartite
    graph rows → columns, whose edges are the entries that may round up.
    """
    base = np.floor(np.round(expected, 9)).astype(np.int64)
    can_round_up = expected - base > 1e-9
    up = np.zeros_like(base, dtype=bool)
    row_left = np.asarray(row_totals) - base.sum(axis=1)
    col_left = np.asarray(col_totals) - base.sum(axis=0)
    while row_left.sum() > 0:
        # BFS from rows that still need records, alternating row -> col (round up)
        # and col -> row (undo a round-up), to a column that still needs records.
        parent: dict[tuple[str, int], tuple[str, int] | None] = {}
        queue: deque[tuple[str, int]] = deque()
        for r in np.flatnonzero(row_left > 0):
            parent[("r", int(r))] = None
            queue.append(("r", int(r)))
        end = None
        while queue and end is None:
            kind, i = queue.popleft()
            if kind == "r":
                for c in np.flatnonzero(can_round_up[i] & ~up[i]):
                    if ("c", int(c)) not in parent:
                        parent[("c", int(c))] = (kind, i)
                        if col_left[c] > 0:
                            end = ("c", int(c))
                            break
                        queue.append(("c", int(c)))
            else:
                for r in np.flatnonzero(up[:, i]):
                    if ("r", int(r)) not in parent:
                        parent[("r", int(r))] = (kind, i)
                        queue.append(("r", int(r)))
        if end is None:  # cannot happen for consistent margins
            raise AssertionError("no controlled rounding found")
        node: tuple[str, int] | None = end
        col_left[end[1]] -= 1
        while node is not None:
            prev = parent[node]
            if prev is None:
                row_left[node[1]] -= 1
            elif node[0] == "c":
                up[prev[1], node[1]] = True
            else:
                up[node[1], prev[1]] = False
            node = prev
    return base + up


__all__ = ["ROLES", "DataRoles", "RoleSplit", "split_roles"]
