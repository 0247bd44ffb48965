"""Objectives: utility metrics, attacks, realistic and worst-case risk, adequacy.

Works on model outputs and data only (numpy, scipy, scikit-learn): never on
training code, never importing ``tuner`` or ``defenses``.
"""

from __future__ import annotations

from objectives.attacks import ATTACKS, Attack, make_attack, register
from objectives.calibration import (
    Threshold,
    calibrate_threshold,
    claim_probabilities,
    expected_claims,
)
from objectives.objective import adequacy_constraint, is_adequate, weighted_objective
from objectives.observations import Observations
from objectives.realistic import AttackScores, OperatingPoint, RealisticRisk, realistic_risk
from objectives.signals import (
    ACCESS_MODES,
    logit_scaled_confidence,
    restrict_to_access,
    true_class_log_prob,
)
from objectives.stats import (
    binomial_interval,
    break_even_prior,
    dp_ppv_bound,
    is_resolvable,
    nonmembers_needed,
    ppv,
    ppv_interval,
    realistic_advantage,
)
from objectives.utility import UTILITY_METRICS, UtilityMetric, utility_metric
from objectives.worst_case import WorstCaseAttack, WorstCaseRisk, roc_points, worst_case_risk

__all__ = [
    "ACCESS_MODES",
    "ATTACKS",
    "UTILITY_METRICS",
    "Attack",
    "AttackScores",
    "Observations",
    "OperatingPoint",
    "RealisticRisk",
    "Threshold",
    "UtilityMetric",
    "WorstCaseAttack",
    "WorstCaseRisk",
    "adequacy_constraint",
    "binomial_interval",
    "break_even_prior",
    "calibrate_threshold",
    "claim_probabilities",
    "dp_ppv_bound",
    "expected_claims",
    "is_adequate",
    "is_resolvable",
    "logit_scaled_confidence",
    "make_attack",
    "nonmembers_needed",
    "ppv",
    "ppv_interval",
    "realistic_advantage",
    "realistic_risk",
    "register",
    "restrict_to_access",
    "roc_points",
    "true_class_log_prob",
    "utility_metric",
    "weighted_objective",
    "worst_case_risk",
]
