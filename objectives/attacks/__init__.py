"""Membership-inference attacks, selectable by name.

Importing this package registers every attack in :data:`ATTACKS`; each lives
in its own private module and is re-exported here.
"""

from __future__ import annotations

from objectives.attacks._base import ATTACKS, Attack, make_attack, register
from objectives.attacks._confidence import ConfidenceAttack
from objectives.attacks._lira_offline import LiRAOfflineAttack, log_p_value_bayes_factor_bound
from objectives.attacks._lira_online import LiRAOnlineAttack
from objectives.attacks._loss import LossAttack
from objectives.attacks._modified_entropy import ModifiedEntropyAttack, log_modified_entropy
from objectives.attacks._rmia import RMIAAttack, log_relative_probability

__all__ = [
    "ATTACKS",
    "Attack",
    "ConfidenceAttack",
    "LiRAOfflineAttack",
    "LiRAOnlineAttack",
    "LossAttack",
    "ModifiedEntropyAttack",
    "RMIAAttack",
    "log_modified_entropy",
    "log_p_value_bayes_factor_bound",
    "log_relative_probability",
    "make_attack",
    "register",
]
