"""Reading an exported recommendation back, for the user's own training code.

privtune's tuner writes ``recommendation.yaml`` / ``.json``; this module is
the one place that reads them. It checks the schema version and validates
every setting through :class:`DefenseConfig` and :class:`TrainingRecipe`, so a
tampered or hand-edited file is refused with a message naming the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from defenses.config import DefenseConfig, InvalidDefenseError, TrainingRecipe

SCHEMA_VERSION = 1


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
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise InvalidDefenseError([(str(path), f"is not valid {path.suffix[1:] or 'YAML'}: {err}")]) from None
    if not isinstance(document, Mapping):
        raise InvalidDefenseError([(str(path), "must hold a mapping (an exported recommendation)")])
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
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
    if problems:
        raise InvalidDefenseError(problems)
    assert defense is not None and recipe is not None
    return LoadedRecommendation(defense=defense, recipe=recipe, document=document)
