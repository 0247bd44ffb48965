"""The attack extension point: one small base class and a registry by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from objectives.observations import Observations


class Attack(ABC):
    """A membership-inference attack: a membership score per candidate record.

    Contract:
        * :meth:`score` returns a float array of shape ``(n_records,)``;
          higher means "more likely a member". It is a pure function of its
          arguments: it never sees membership labels, only model outputs,
          true class labels and the attacker's population data.
        * ``records`` and ``population`` are already restricted to what the
          threat model's ``access`` allows.
        * Attacks with ``uses_reference_models = True`` need
          ``records.n_reference_models >= 1`` (and RMIA a ``population``).
          Offline attacks (``online = False``) treat every reference model as
          OUT for every record and ignore ``records.reference_membership``;
          they are the realistic attacker's. Online attacks (``online =
          True``) need ``records.reference_membership`` with at least one IN
          and one OUT reference model per record; they run only in the
          worst-case audit, where the auditor trains shadow models on the
          candidates.
        * ``population`` holds records of the attacker's pool that no
          reference model and not the target trained on (RMIA's z samples).
        * Scores are computed from logits in a numerically stable way so that
          saturated probabilities do not collapse into ties.
        * :meth:`log_likelihood_ratio` is optional: attacks whose statistic is
          (or bounds) a likelihood ratio ``Λ = p(obs | member) / p(obs |
          non-member)`` return ``log Λ`` per record, from which
          :func:`objectives.exposure.posterior_membership` gives each record's
          posterior membership probability at a prior π. Others return
          ``None`` (the default): a score that only ranks records carries no
          posterior.

    Hyperparameters are keyword arguments of ``__init__`` stored as
    attributes, as in scikit-learn; ``__init__`` does nothing else.
    """

    name: ClassVar[str]
    uses_reference_models: ClassVar[bool] = False
    online: ClassVar[bool] = False

    @abstractmethod
    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        """Membership scores of ``records``; higher = more likely member."""

    def log_likelihood_ratio(
        self, records: Observations, population: Observations | None = None
    ) -> np.ndarray | None:
        """``log Λ`` per record where the attack has a likelihood ratio, else ``None``.

        Computed in log space: Λ of a confidently fitted record overflows
        float64 long before its posterior stops being meaningful.
        """
        return None

    def likelihood_ratio(
        self, records: Observations, population: Observations | None = None
    ) -> np.ndarray | None:
        """``Λ = exp(log Λ)`` per record (may be ``inf``), or ``None`` without one."""
        log_lr = self.log_likelihood_ratio(records, population)
        if log_lr is None:
            return None
        with np.errstate(over="ignore"):
            return np.exp(log_lr)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))
        return f"{type(self).__name__}({params})"


ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    """Class decorator: make an attack selectable by its ``name``."""
    ATTACKS[cls.name] = cls
    return cls


def make_attack(name: str, **params: object) -> Attack:
    """Instantiate a registered attack; unknown names list the allowed ones."""
    try:
        cls = ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; allowed attacks are {sorted(ATTACKS)}") from None
    return cls(**params)
