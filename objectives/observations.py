"""What an attacker observes about a set of records: the input to every attack.

Objectives work on model outputs and data, never on training code: the tuner
trains the target and the reference models, runs them on the records, and
hands the resulting arrays to the attacks in an :class:`Observations`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Observations:
    """Outputs of the target and the attacker's reference models on some records.

    Args:
        labels: true class of each record, shape ``(n,)``, ints in ``[0, C)``.
        target_logits: the target model's logits, shape ``(n, C)``.
        reference_logits: the K reference models' logits on the same records,
            shape ``(K, n, C)``; ``K = 0`` when the attacker trained none.
        reference_membership: which reference model trained on which record,
            shape ``(K, n)``, bool (``True`` = IN). ``None`` (the default) means
            every reference model is OUT for every record: the offline setting
            of the realistic attacker. Online attacks (LiRA online in the
            worst-case audit) need it.

    Logits are kept (as float64) rather than probabilities so that scores can
    be computed stably; :func:`objectives.signals.restrict_to_access` maps
    them to what the threat model's ``access`` lets the attacker see.

    Example:
        >>> obs = Observations(labels=np.array([0, 1]),
        ...                    target_logits=np.zeros((2, 2)),
        ...                    reference_logits=np.zeros((0, 2, 2)))
        >>> obs.n_records, obs.n_classes, obs.n_reference_models
        (2, 2, 0)
    """

    labels: np.ndarray
    target_logits: np.ndarray
    reference_logits: np.ndarray
    reference_membership: np.ndarray | None = None

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64)
        target = np.asarray(self.target_logits, dtype=np.float64)
        refs = np.asarray(self.reference_logits, dtype=np.float64)
        if refs.size == 0:
            refs = refs.reshape(0, *target.shape)
        if target.ndim != 2 or labels.shape != (target.shape[0],):
            raise ValueError(
                f"target_logits must have shape (n, C) and labels shape (n,), but got "
                f"{target.shape} and {labels.shape}"
            )
        if refs.ndim != 3 or refs.shape[1:] != target.shape:
            raise ValueError(
                f"reference_logits must have shape (K, {target.shape[0]}, {target.shape[1]}), "
                f"but got {refs.shape}"
            )
        membership = self.reference_membership
        if membership is not None:
            membership = np.asarray(membership)
            if membership.dtype != np.bool_ or membership.shape != refs.shape[:2]:
                raise ValueError(
                    f"reference_membership must be a bool array of shape {refs.shape[:2]} "
                    f"(K, n), but got dtype {membership.dtype} and shape {membership.shape}"
                )
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "target_logits", target)
        object.__setattr__(self, "reference_logits", refs)
        object.__setattr__(self, "reference_membership", membership)

    @property
    def n_records(self) -> int:
        return int(self.target_logits.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.target_logits.shape[1])

    @property
    def n_reference_models(self) -> int:
        return int(self.reference_logits.shape[0])

    @property
    def is_offline(self) -> bool:
        """Whether every reference model is OUT for every record."""
        membership = self.reference_membership
        return membership is None or not bool(membership.any())

    def subset(self, index: np.ndarray) -> "Observations":
        """The observations of the records selected by ``index``."""
        membership = self.reference_membership
        return Observations(
            labels=self.labels[index],
            target_logits=self.target_logits[index],
            reference_logits=self.reference_logits[:, index],
            reference_membership=None if membership is None else membership[:, index],
        )

    def with_logits(self, *, target_logits: np.ndarray, reference_logits: np.ndarray) -> "Observations":
        """The same records and membership with other logits (e.g. restricted by ``access``)."""
        return Observations(
            labels=self.labels,
            target_logits=target_logits,
            reference_logits=reference_logits,
            reference_membership=self.reference_membership,
        )
