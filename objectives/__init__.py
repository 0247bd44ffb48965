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
from objectives.dp_bounds import DPBound, DPBounds, dp_bounds
from objectives.exposure import ExposedRecord, Exposure, exposed_members, posterior_membership
from objectives.objective import (
    adequacy_constraint,
    exposure_constraint,
    is_adequate,
    weighted_objective,
)
from objectives.observations import Observations
from objectives.realistic import AttackScores, OperatingPoint, RealisticRisk, realistic_risk
from objectives.signals import (
    ACCESS_MODES,
    logit_scaled_confidence,
    restrict_to_access,
    true_class_log_prob,
)
from objectives.stats import (
    auc_interval,
    binomial_interval,
    break_even_prior,
    dp_ppv_bound,
    dp_tpr_bound,
    is_resolvable,
    nonmembers_needed,
    ppv,
    ppv_interval,
    ppv_upper_bound,
    realistic_advantage,
    resolution_warning,
)
from objectives.utility import UTILITY_METRICS, UtilityMetric, utility_metric
from objectives.worst_case import (
    WorstCaseAttack,
    WorstCaseRisk,
    oracle_attack,
    roc_points,
    worst_case_risk,
)

__all__ = [
    "ACCESS_MODES",
    "ATTACKS",
    "UTILITY_METRICS",
    "Attack",
    "AttackScores",
    "DPBound",
    "DPBounds",
    "ExposedRecord",
    "Exposure",
    "Observations",
    "OperatingPoint",
    "RealisticRisk",
    "Threshold",
    "UtilityMetric",
    "WorstCaseAttack",
    "WorstCaseRisk",
    "adequacy_constraint",
    "auc_interval",
    "binomial_interval",
    "break_even_prior",
    "calibrate_threshold",
    "claim_probabilities",
    "dp_bounds",
    "dp_ppv_bound",
    "dp_tpr_bound",
    "expected_claims",
    "exposure_constraint",
    "exposed_members",
    "is_adequate",
    "is_resolvable",
    "logit_scaled_confidence",
    "make_attack",
    "nonmembers_needed",
    "oracle_attack",
    "posterior_membership",
    "ppv",
    "ppv_interval",
    "ppv_upper_bound",
    "realistic_advantage",
    "realistic_risk",
    "register",
    "resolution_warning",
    "restrict_to_access",
    "roc_points",
    "true_class_log_prob",
    "utility_metric",
    "weighted_objective",
    "worst_case_risk",
]
