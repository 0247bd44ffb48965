"""Per-record risk: each member's posterior membership probability, and who stays exposed.

The realistic risk (:mod:`objectives.realistic`) is about the attacker's
claims on average. A defense can keep that precision low while a few
records (typically outliers) remain individually recognisable. For an
attack with a likelihood ratio ``Λ(x) = p(obs | x member) / p(obs | x not a
member)`` (see :meth:`objectives.attacks.Attack.log_likelihood_ratio`),
Bayes' rule gives the attacker's posterior belief that x is a member when a
fraction π of the records it considers are members:

    Pr(member | obs) = π·Λ / (π·Λ + 1 − π).

A member is *exposed* when that posterior exceeds the adequacy bound
``max_ppv`` under any attack with a likelihood ratio: the attacker's claim
about that one person is more likely right than the bound allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit


def posterior_membership(*, log_likelihood_ratio: np.ndarray, prior: float) -> np.ndarray:
    """``π·Λ / (π·Λ + 1 − π)`` per record, computed as ``expit(log Λ + logit π)``.

    Args:
        log_likelihood_ratio: ``log Λ`` per record (``±inf`` allowed).
        prior: the membership prior π, in ``(0, 1)``.

    Example:
        >>> posterior_membership(log_likelihood_ratio=np.log([1.0, 99.0]), prior=0.01).round(4)
        array([0.01, 0.5 ])
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), but got prior={prior!r}")
    log_lr = np.asarray(log_likelihood_ratio, dtype=np.float64)
    if np.isnan(log_lr).any():
        raise ValueError("log_likelihood_ratio contains NaN")
    return expit(log_lr + logit(prior))


@dataclass(frozen=True)
class ExposedRecord:
    """One exposed member: its row id, its largest posterior and the attack behind it."""

    row: int
    posterior: float
    attack: str


@dataclass(frozen=True)
class Exposure:
    """Members whose posterior exceeds ``max_ppv`` at ``prior`` under some attack.

    Args:
        prior: π.
        max_ppv: the bound a posterior must exceed to count.
        attacks: the attacks with a likelihood ratio that were consulted
            (empty: exposure could not be assessed, ``count`` is 0).
        n_members: members examined.
        records: the exposed members, largest posterior first.
        max_posterior: the largest posterior of any member (0 without attacks).
        per_attack: ``(attack, members above the bound under it alone)``.

    Example:
        >>> e = exposed_members({"rmia": np.log([1.0, 200.0, 50.0])}, rows=np.array([7, 8, 9]),
        ...                     prior=0.01, max_ppv=0.5)
        >>> e.count, e.rows
        (1, (8,))
    """

    prior: float
    max_ppv: float
    attacks: tuple[str, ...]
    n_members: int
    records: tuple[ExposedRecord, ...]
    max_posterior: float
    per_attack: tuple[tuple[str, int], ...] = ()

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(r.row for r in self.records)

    @property
    def assessed(self) -> bool:
        """Whether any attack with a likelihood ratio was consulted."""
        return bool(self.attacks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "prior": float(self.prior),
            "max_ppv": float(self.max_ppv),
            "attacks": list(self.attacks),
            "n_members": int(self.n_members),
            "count": self.count,
            "rows": [int(r) for r in self.rows],
            "posteriors": [float(r.posterior) for r in self.records],
            "by_attack": [r.attack for r in self.records],
            "max_posterior": float(self.max_posterior),
            "per_attack": {a: int(n) for a, n in self.per_attack},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Exposure":
        return cls(
            prior=float(data["prior"]),
            max_ppv=float(data["max_ppv"]),
            attacks=tuple(data["attacks"]),
            n_members=int(data["n_members"]),
            records=tuple(
                ExposedRecord(row=int(r), posterior=float(p), attack=str(a))
                for r, p, a in zip(data["rows"], data["posteriors"], data["by_attack"], strict=True)
            ),
            max_posterior=float(data["max_posterior"]),
            per_attack=tuple((str(a), int(n)) for a, n in data.get("per_attack", {}).items()),
        )


def exposed_members(
    log_likelihood_ratios: Mapping[str, np.ndarray],
    *,
    rows: np.ndarray | Sequence[int],
    prior: float,
    max_ppv: float,
) -> Exposure:
    """The members whose posterior at ``prior`` exceeds ``max_ppv`` under any attack.

    Args:
        log_likelihood_ratios: ``attack name -> log Λ`` of every member (in
            the order of ``rows``), one entry per attack with a likelihood
            ratio; attacks without one are simply left out.
        rows: the members' row ids in the data set.
        prior: π, in ``(0, 1)``.
        max_ppv: the bound, in ``(0, 1]``.

    Returns:
        The :class:`Exposure`; each exposed member appears once, with its
        largest posterior over attacks.
    """
    if not 0.0 < max_ppv <= 1.0:
        raise ValueError(f"max_ppv must be in (0, 1], but got max_ppv={max_ppv!r}")
    rows = np.asarray(rows, dtype=np.int64)
    best = np.zeros(rows.size)
    which = np.full(rows.size, "", dtype=object)
    per_attack = []
    for attack, log_lr in log_likelihood_ratios.items():
        log_lr = np.asarray(log_lr, dtype=np.float64)
        if log_lr.shape != rows.shape:
            raise ValueError(
                f"log_likelihood_ratios[{attack!r}] must have one value per row {rows.shape}, "
                f"but got shape {log_lr.shape}"
            )
        posterior = posterior_membership(log_likelihood_ratio=log_lr, prior=prior)
        per_attack.append((attack, int(np.count_nonzero(posterior > max_ppv))))
        higher = posterior > best
        best = np.where(higher, posterior, best)
        which = np.where(higher, attack, which)
    exposed = np.flatnonzero(best > max_ppv)
    exposed = exposed[np.lexsort((rows[exposed], -best[exposed]))]  # largest posterior first
    return Exposure(
        prior=prior,
        max_ppv=max_ppv,
        attacks=tuple(log_likelihood_ratios),
        n_members=int(rows.size),
        records=tuple(
            ExposedRecord(row=int(rows[i]), posterior=float(best[i]), attack=str(which[i]))
            for i in exposed
        ),
        max_posterior=float(best.max()) if best.size else 0.0,
        per_attack=tuple(per_attack),
    )
