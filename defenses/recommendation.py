"""Reading an exported recommendation back, for the user's own training code.

privtune's tuner writes ``recommendation.yaml`` / ``.json``; this module is
the one place that reads them. It checks the schema version and validates
every setting through :class:`DefenseConfig` and :class:`TrainingRecipe`, so a
tampered or hand-edited file is refused with a message naming the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from defenses.config import DefenseConfig, InvalidDefenseError, TrainingRecipe, _check_range

SCHEMA_VERSION = 1
# The top-level keys of an exported document (tuner/export.py writes them);
# any other key is refused, so a typo or a tampered file cannot pass silently.
DOCUMENT_KEYS = (
    "schema_version",
    "tool",
    "status",
    "defense",
    "recipe",
    "threat_model",
    "adequacy",
    "expected",
    "privacy",
    "data",
    "study",
)
STATUSES = ("defense_recommended", "no_defense_needed")


@dataclass(frozen=True)
class LoadedRecommendation:
    """The settings of an exported recommendation plus the rest of its document."""

    defense: DefenseConfig
    recipe: TrainingRecipe
    document: Mapping[str, Any]


def load_recommendation(path: str | Path) -> LoadedRecommendation:
    """Load and validate ``recommendation.yaml`` or ``.json``.

    Raises:
        InvalidDefenseError: the file is missing, unreadable, of another
            schema version, or holds an invalid setting.

    Example:
        >>> rec = load_recommendation("runs/default/recommendation.yaml")  # doctest: +SKIP
        >>> rec.defense.describe()  # doctest: +SKIP
        'no defense'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidDefenseError([(str(path), f"cannot be read ({err.strerror})")]) from None
    except UnicodeDecodeError:
        raise InvalidDefenseError([(str(path), "is not UTF-8 text (an exported recommendation is YAML or JSON)")]) from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise InvalidDefenseError([(str(path), f"is not valid {path.suffix[1:] or 'YAML'}: {err}")]) from None
    if not isinstance(document, Mapping):
        raise InvalidDefenseError([(str(path), "must hold a mapping (an exported recommendation)")])
    unknown = sorted(str(key) for key in document if key not in DOCUMENT_KEYS)
    if unknown:
        raise InvalidDefenseError(
            [(key, f"unknown key; allowed keys are {sorted(DOCUMENT_KEYS)}") for key in unknown]
        )
    version = document.get("schema_version")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise InvalidDefenseError(
            [("schema_version", f"must be {SCHEMA_VERSION}, but got {version!r}; re-export it with this privtune")]
        )
    for key in ("defense", "recipe"):
        if not isinstance(document.get(key), Mapping):
            raise InvalidDefenseError([(key, f"must be a mapping, but got {document.get(key)!r}")])
    problems: list[tuple[str, str]] = []
    defense = recipe = None
    try:
        defense = DefenseConfig.from_dict(document["defense"])
    except InvalidDefenseError as err:
        problems += [(f"defense.{key}", msg) for key, msg in err.problems]
    except TypeError as err:
        problems.append(("defense", str(err)))
    try:
        recipe = TrainingRecipe.from_dict(document["recipe"])
    except InvalidDefenseError as err:
        problems += [(f"recipe.{key}", msg) for key, msg in err.problems]
    if "status" in document and document["status"] not in STATUSES:
        problems.append(("status", f"must be one of {list(STATUSES)}, but got {document['status']!r}"))
    if defense is not None:
        problems += _privacy_problems(document.get("privacy"), defense)
        problems += _consistency_problems(document, defense)
    if problems:
        raise InvalidDefenseError(problems)
    assert defense is not None and recipe is not None
    return LoadedRecommendation(defense=defense, recipe=recipe, document=document)


REQUIRED_SECTIONS = ("status", "threat_model", "adequacy", "expected")


def _consistency_problems(document: Mapping[str, Any], defense: DefenseConfig) -> list[tuple[str, str]]:
    """The figures an export carries must be in range and agree with each other.

    A recommendation is a claim ("this defense keeps the attacker's precision
    under the bound"): a hand-edited file whose status, risk and bound
    contradict each other is refused rather than trusted.
    """
    problems: list[tuple[str, str]] = []
    for key in REQUIRED_SECTIONS:
        if key not in document:
            problems.append((key, "is missing; re-export the recommendation with `privtune export`"))
    if problems:
        return problems
    threat, adequacy, expected = document["threat_model"], document["adequacy"], document["expected"]
    for key, value in (("threat_model", threat), ("adequacy", adequacy), ("expected", expected)):
        if not isinstance(value, Mapping):
            problems.append((key, f"must be a mapping, but got {value!r}"))
    if problems:
        return problems
    _check_range(problems, "threat_model.membership_prior", threat.get("membership_prior"), low=0, high=1,
                 low_open=True, high_open=True)
    _check_range(problems, "adequacy.max_ppv", adequacy.get("max_ppv"), low=0, high=1, low_open=True)
    utility = expected.get("utility") if isinstance(expected.get("utility"), Mapping) else {}
    risk = expected.get("realistic_risk") if isinstance(expected.get("realistic_risk"), Mapping) else {}
    _check_range(problems, "expected.utility.test", utility.get("test"), low=0, high=1)
    _check_range(problems, "expected.realistic_risk.ppv", risk.get("ppv"), low=0, high=1)
    if problems:
        return problems
    if risk["ppv"] > adequacy["max_ppv"]:
        problems.append(
            ("expected.realistic_risk.ppv", f"must be at most adequacy.max_ppv ({adequacy['max_ppv']!r}) in a "
             f"recommendation, but got {risk['ppv']!r}")
        )
    undefended = defense.is_undefended
    if (document["status"] == "no_defense_needed") != undefended:
        problems.append(
            ("status", f"must be {'no_defense_needed' if undefended else 'defense_recommended'} for this "
             f"defense ({defense.describe()}), but got {document['status']!r}")
        )
    return problems


def _privacy_problems(privacy: Any, defense: DefenseConfig) -> list[tuple[str, str]]:
    """The ``privacy`` section must match the defense: null without DP, else valid figures."""
    if defense.dp is None:
        if privacy is not None:
            return [("privacy", f"must be null when defense.dp is null, but got {privacy!r}")]
        return []
    if not isinstance(privacy, Mapping):
        return [("privacy", f"must be a mapping when defense.dp is set, but got {privacy!r}")]
    problems: list[tuple[str, str]] = []
    rules = {
        "epsilon": (0.0, math.inf, False, True),
        "delta": (0.0, 1.0, True, False),
        "noise_multiplier": (0.0, math.inf, True, False),
        "max_grad_norm": (0.0, math.inf, True, False),
    }
    for key, (low, high, low_open, nullable) in rules.items():
        value = privacy.get(key)
        if value is None and nullable:
            continue
        _check_range(problems, f"privacy.{key}", value, low=low, high=high, low_open=low_open, high_open=high == 1.0)
    if privacy.get("max_grad_norm") != defense.dp.max_grad_norm and not problems:
        problems.append(
            (
                "privacy.max_grad_norm",
                f"must equal defense.dp.max_grad_norm ({defense.dp.max_grad_norm!r}), but got "
                f"{privacy.get('max_grad_norm')!r}",
            )
        )
    return problems
