"""The recommendation as a file the user's own training code can apply.

``recommendation.yaml`` and ``recommendation.json`` hold the same document:
the defense settings and training recipe, the threat model they were judged
under, the expected utility and risk with intervals (from the confirmation
retrains), ε/δ where DP, the data fingerprint and the tool version.
:func:`defenses.load_recommendation` reads either back.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

import yaml

from defenses.recommendation import SCHEMA_VERSION
from tuner.privacy_cost import which_epsilon_lines
from tuner.report import PRIOR_GRID, ppv_over_priors
from tuner.run_folder import RunFolder, write_atomic
from tuner.tune import Prepared, Recommendation

FORMATS = ("yaml", "json")


def tool_version() -> str:
    try:
        return metadata.version("privtune")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def recommendation_document(prepared: Prepared, outcome: Recommendation, *, study_name: str) -> dict[str, Any]:
    """The exported document; requires ``outcome.chosen`` and its confirmation."""
    chosen, confirmation = outcome.chosen, outcome.confirmation
    if chosen is None or confirmation is None:
        raise ValueError("there is no confirmed recommendation to export")
    config, roles = prepared.config, prepared.roles
    threat = config.threat_model
    priors = sorted({*PRIOR_GRID, threat.membership_prior}, reverse=True)
    realistic = confirmation.realistic
    worst = confirmation.worst_case
    dp = chosen.defense.dp
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "privtune", "version": tool_version()},
        "status": "no_defense_needed" if outcome.no_defense_needed else "defense_recommended",
        "defense": chosen.defense.to_dict(),
        "recipe": config.recipe.to_dict(),
        "threat_model": {
            "membership_prior": threat.membership_prior,
            "reference_models": threat.reference_models,
            "knows_recipe": threat.knows_recipe,
            "access": threat.access,
            "calibration_fprs": list(threat.calibration_fprs),
            "attacks": list(threat.attacks),
            "risk_view": config.objective.risk,
        },
        "adequacy": {"max_ppv": config.adequacy.max_ppv, "max_exposed": config.adequacy.max_exposed},
        "expected": {
            "utility": {
                "metric": config.objective.utility,
                "test": confirmation.utility_test,
                "test_interval": list(confirmation.utility_test_interval),
                "test_per_seed": list(confirmation.utility_test_per_seed),
                "validation_in_search": chosen.utility_validation,
            },
            "realistic_risk": {
                "ppv": realistic["risk"],
                "interval": realistic["interval"],
                "advantage": realistic["advantage"],
                "break_even_prior": realistic["break_even_prior"],
                "uncertain": realistic["uncertain"],
                "upper_bound_95": realistic.get("upper_bound"),
                "pooled_retrains": len(confirmation.seeds),
                "ppv_over_prior": {str(pi): value for pi, value in ppv_over_priors(realistic, priors)},
                "baseline_ppv_over_prior": None
                if outcome.baseline is None
                else {str(pi): value for pi, value in ppv_over_priors(outcome.baseline.realistic, priors)},
                "warning": realistic.get("warning"),
            },
            "exposed_members": _exposed(confirmation.exposure, config.adequacy.max_exposed),
            "worst_case": {
                "auc": worst["auc"],
                "tpr_at_fpr": worst["tpr_at_fpr"],
                "ppv_at_prior_0.5": worst["risk"],
            },
        },
        "privacy": None
        if dp is None
        else {
            "epsilon": confirmation.epsilon,
            "delta": chosen.delta,
            "noise_multiplier": chosen.noise_multiplier,
            "max_grad_norm": dp.max_grad_norm,
            "accountant": dp.accountant,
            "note": "ε of one training run; the tuning procedure itself spent more (it trained many "
            "configurations on the same members): see tuning_cost",
            "tuning_cost": None if outcome.privacy_cost is None else outcome.privacy_cost.to_dict(),
            "which_epsilon": which_epsilon_lines(outcome.privacy_cost, dp_recommended=True),
            "dp_bounds": confirmation.dp_bounds,
        },
        "data": {"name": prepared.data_name, "fingerprint": roles.fingerprint, "roles": roles.sizes()},
        "study": {"name": study_name, "trial": chosen.number, "trials_completed": len(outcome.records)},
    }


def _exposed(exposure: dict[str, Any] | None, max_exposed: int | None) -> dict[str, Any] | None:
    """Members whose posterior exceeded the bound in the confirmation retrains (row ids of the data set)."""
    if exposure is None:
        return None
    return {
        "prior": exposure["prior"],
        "posterior_bound": exposure["max_ppv"],
        "attacks": exposure["attacks"],
        "max_per_retrain": exposure["max_count"],
        "max_exposed": max_exposed,
        "retrains": exposure["retrains"],
        "rows": [m["row"] for m in exposure["members"]],
        "members": exposure["members"],
        "per_retrain": exposure.get("per_retrain"),
        "false_alarms_per_retrain": exposure.get("false_alarms_per_retrain"),
        "n_nonmembers": exposure.get("n_nonmembers"),
    }


def render(document: dict[str, Any], fmt: str) -> str:
    """The document as YAML or JSON text."""
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    raise ValueError(f"format must be one of {list(FORMATS)}, but got {fmt!r}")


def write_recommendation(folder: RunFolder, document: dict[str, Any]) -> list[str]:
    """Write ``recommendation.yaml`` and ``.json`` atomically; return their paths."""
    paths = []
    for fmt in FORMATS:
        path = folder.recommendation(fmt)
        write_atomic(path, render(document, fmt))
        paths.append(str(path))
    return paths
