"""The run configuration: frozen dataclasses, loaded and validated once from YAML.

Every key of the YAML file is optional; a missing key takes the value of the
built-in default, which :func:`default_config` returns and which
``tuner/default.yaml`` (shipped with the package) and ``configs/default.yaml``
spell out. Validation happens here, at the boundary, and only here: every
problem is collected and one :class:`~tuner.errors.ConfigError` lists them,
one per line, as ``<key.path>: must be <allowed>, but got <value>``. Unknown
keys are errors, not ignored, so that a typo cannot silently fall back to a
default.

A search-space knob is a :class:`Range` (searched), a plain number (fixed) or
``None`` (removed: the defense's off value).

Example:
    >>> cfg = config_from_dict({"threat_model": {"membership_prior": 0.05}})
    >>> cfg.threat_model.membership_prior, cfg.study.trials
    (0.05, 20)
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from defenses.config import ACCOUNTANTS, InvalidDefenseError, TrainingRecipe
from tuner.data import BUILTIN_DATASETS, DATA_SOURCES
from tuner.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")
ACCESS_MODES = ("probs", "logits", "label")
RISK_VIEWS = ("realistic", "worst_case")
OBJECTIVE_MODES = ("weighted", "pareto")


@dataclass(frozen=True)
class Range:
    """A searched knob: values from ``low`` to ``high``, log-uniform when ``log``."""

    low: float
    high: float
    log: bool = False


Knob = Range | float | int | None


SEARCH_BUDGETS = ("fixed", "poisson", "truncated_negative_binomial")


@dataclass(frozen=True)
class SearchBudget:
    """How many trials the search runs (Papernot & Steinke, ICLR 2022).

    ``fixed``: ``study.trials`` per run, adaptive sampler (TPE / NSGA-II).
    ``poisson`` (``mean``) or ``truncated_negative_binomial`` (``eta``,
    ``gamma``): the number of DP trials is drawn once per study from that
    distribution and the configurations are drawn at random, so that
    releasing the best run has a finite, accountable ε (see
    :mod:`tuner.privacy_cost`).
    """

    distribution: str = "fixed"
    mean: float | None = None
    eta: float | None = None
    gamma: float | None = None

    @property
    def is_random(self) -> bool:
        return self.distribution != "fixed"


@dataclass(frozen=True)
class StudyConfig:
    """Where the Optuna study lives and how many trials one run adds."""

    name: str = "default"
    storage: str | None = None
    trials: int = 20
    seed: int = 0
    pruning: bool = True
    search_budget: SearchBudget = field(default_factory=SearchBudget)


@dataclass(frozen=True)
class RoleFractions:
    """Fractions of the data set per role; they sum to 1."""

    members: float = 0.2
    nonmembers: float = 0.2
    attacker_pool: float = 0.4
    validation: float = 0.1
    test: float = 0.1


@dataclass(frozen=True)
class PoolFractions:
    """How the attacker splits its pool; the rest trains reference models."""

    calibration: float = 0.25
    population: float = 0.25

    @property
    def reference(self) -> float:
        """The fraction of the pool left for reference-model training."""
        return 1.0 - self.calibration - self.population


@dataclass(frozen=True)
class DataConfig:
    """Which data set to load and how to split it into roles.

    ``path`` and ``test_path`` are absolute when the config came from a file
    (relative paths resolve against the file's folder).
    """

    source: str = "builtin"
    name: str = "digits"
    path: Path | None = None
    target: str | None = None
    test_path: Path | None = None
    missing_values: tuple[str, ...] = ("?", "", "NA", "NaN")
    roles: RoleFractions = field(default_factory=RoleFractions)
    pool: PoolFractions = field(default_factory=PoolFractions)
    loader: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    python_path: tuple[Path, ...] | None = None


@dataclass(frozen=True)
class ModelConfig:
    """The target model: the built-in MLP, or the user's own builder.

    ``builder`` is ``"module:function"`` (see :mod:`tuner.user_code` for the
    contract), called with ``options`` as extra keyword arguments and
    imported from ``python_path`` (default: the config file's folder). The
    MLP's ``hidden_sizes`` live in the recipe and are ignored by a builder.
    """

    builder: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    python_path: tuple[Path, ...] | None = None


@dataclass(frozen=True)
class ThreatModelConfig:
    """The realistic attacker: prior, reference models, access, calibration."""

    membership_prior: float = 0.01
    reference_models: int = 2
    max_reference_models: int = 16
    knows_recipe: bool = True
    access: str = "probs"
    calibration_fprs: tuple[float, ...] = (0.001, 0.01, 0.1)
    attacks: tuple[str, ...] = ("loss", "rmia")
    min_expected_false_positives: float = 10


@dataclass(frozen=True)
class AdequacyConfig:
    """When a defense is adequate: realistic PPV bound, optional exposure bound."""

    max_ppv: float = 0.5
    max_exposed: int | None = None


@dataclass(frozen=True)
class ObjectiveConfig:
    """What the search optimizes."""

    utility: str = "accuracy"
    risk: str = "realistic"
    risk_weight: float = 1.0
    mode: str = "weighted"


@dataclass(frozen=True)
class DPSpace:
    """DP-SGD knobs; a non-null ``target_epsilon`` is searched instead of σ."""

    use: tuple[bool, ...] = (False, True)
    noise_multiplier: Knob = Range(0.3, 5.0, log=True)
    max_grad_norm: Knob = Range(0.1, 10.0, log=True)
    target_epsilon: Knob = None
    delta: float | None = None
    accountant: str = "prv"


@dataclass(frozen=True)
class EarlyStoppingSpace:
    """Early-stopping knobs."""

    use: tuple[bool, ...] = (False, True)
    patience: Knob = Range(1, 10)


@dataclass(frozen=True)
class SearchSpaceConfig:
    """The defense space the search explores."""

    dp: DPSpace = field(default_factory=DPSpace)
    weight_decay: Knob = Range(1e-6, 1e-1, log=True)
    dropout: Knob = Range(0.0, 0.6)
    label_smoothing: Knob = Range(0.0, 0.3)
    early_stopping: EarlyStoppingSpace = field(default_factory=EarlyStoppingSpace)


@dataclass(frozen=True)
class ConfirmationConfig:
    """How the recommendation is confirmed before export."""

    seeds: int = 3


@dataclass(frozen=True)
class AuditConfig:
    """The worst-case audit (``privtune audit``): LiRA online with IN/OUT shadow models."""

    shadow_models: int = 16


@dataclass(frozen=True)
class RunConfig:
    """One run's whole configuration.

    ``source`` (the YAML file, ``None`` for the built-in default) is not part
    of equality: two configs with the same settings are equal wherever they
    came from.
    """

    study: StudyConfig = field(default_factory=StudyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    device: str = "auto"
    threads: int | str = "auto"   # CPU threads per process: "auto" (see defenses.cpu_threads) or N
    processes: int | str = "auto"  # 1, or 2: reference models beside the target (tuner.references)
    model: ModelConfig = field(default_factory=ModelConfig)
    threat_model: ThreatModelConfig = field(default_factory=ThreatModelConfig)
    adequacy: AdequacyConfig = field(default_factory=AdequacyConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    search_space: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    confirmation: ConfirmationConfig = field(default_factory=ConfirmationConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    source: Path | None = field(default=None, compare=False)


def default_config() -> RunConfig:
    """The built-in default: digits, the realistic threat model, the full space."""
    return RunConfig()


def load_config(path: str | Path | None) -> RunConfig:
    """Load and validate a YAML config; ``None`` gives the built-in default.

    Raises:
        ConfigError: the file is missing or not valid YAML, or any setting is
            invalid (all problems are listed together).
    """
    from tuner._config_rules import _Loader  # lazily: _config_rules imports this module

    if path is None:
        return default_config()
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        where = "is a folder, not a file" if path.is_dir() else "not found"
        raise ConfigError(f"config file {path}: {where}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return config_from_dict(raw, source=path)


def config_from_dict(raw: Any, *, source: Path | None = None) -> RunConfig:
    """Validate a parsed YAML tree into a :class:`RunConfig`.

    Relative data paths resolve against ``source``'s folder when given, and
    stay relative otherwise.

    Raises:
        ConfigError: listing every problem, one per line.
    """
    from tuner._config_reader import _read_config  # lazily: both import this module
    from tuner._config_rules import _Checker

    check = _Checker()
    cfg = _read_config(check, raw, base_dir=source.parent if source else None)
    if check.problems:
        where = f" {source}" if source else ""
        raise ConfigError(f"invalid config{where}:\n" + "\n".join(f"  {p}" for p in check.problems))
    return dataclasses.replace(cfg, source=source)


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as a YAML-ready dict; loading it gives ``cfg`` back."""
    data = cfg.data
    space = cfg.search_space
    recipe = cfg.recipe.to_dict()
    return {
        "study": asdict(cfg.study),
        "data": {
            "source": data.source,
            "name": data.name,
            "path": None if data.path is None else str(data.path),
            "target": data.target,
            "test_path": None if data.test_path is None else str(data.test_path),
            "missing_values": list(data.missing_values),
            "roles": asdict(data.roles),
            "pool": asdict(data.pool),
            "loader": data.loader,
            "options": dict(data.options),
            "python_path": _paths_to_yaml(data.python_path),
        },
        "model": {
            "hidden_sizes": recipe.pop("hidden_sizes"),
            "builder": cfg.model.builder,
            "options": dict(cfg.model.options),
            "python_path": _paths_to_yaml(cfg.model.python_path),
        },
        "training": {**recipe, "device": cfg.device, "threads": cfg.threads, "processes": cfg.processes},
        "threat_model": {
            **asdict(cfg.threat_model),
            "calibration_fprs": list(cfg.threat_model.calibration_fprs),
            "attacks": list(cfg.threat_model.attacks),
        },
        "adequacy": asdict(cfg.adequacy),
        "objective": asdict(cfg.objective),
        "search_space": {
            "dp": {
                "use": list(space.dp.use),
                "noise_multiplier": _knob_to_yaml(space.dp.noise_multiplier),
                "max_grad_norm": _knob_to_yaml(space.dp.max_grad_norm),
                "target_epsilon": _knob_to_yaml(space.dp.target_epsilon),
                "delta": space.dp.delta,
                "accountant": space.dp.accountant,
            },
            "weight_decay": _knob_to_yaml(space.weight_decay),
            "dropout": _knob_to_yaml(space.dropout),
            "label_smoothing": _knob_to_yaml(space.label_smoothing),
            "early_stopping": {
                "use": list(space.early_stopping.use),
                "patience": _knob_to_yaml(space.early_stopping.patience),
            },
        },
        "confirmation": asdict(cfg.confirmation),
        "audit": asdict(cfg.audit),
    }


def _knob_to_yaml(knob: Knob) -> Any:
    return asdict(knob) if isinstance(knob, Range) else knob


def _paths_to_yaml(paths: tuple[Path, ...] | None) -> list[str] | None:
    return None if paths is None else [str(p) for p in paths]


__all__ = [
    "ACCESS_MODES",
    "ACCOUNTANTS",
    "BUILTIN_DATASETS",
    "DATA_SOURCES",
    "DEFAULT_CONFIG_PATH",
    "OBJECTIVE_MODES",
    "RISK_VIEWS",
    "SEARCH_BUDGETS",
    "AdequacyConfig",
    "AuditConfig",
    "ConfirmationConfig",
    "DPSpace",
    "DataConfig",
    "EarlyStoppingSpace",
    "InvalidDefenseError",
    "Knob",
    "ModelConfig",
    "ObjectiveConfig",
    "PoolFractions",
    "Range",
    "RoleFractions",
    "RunConfig",
    "SearchBudget",
    "SearchSpaceConfig",
    "StudyConfig",
    "ThreatModelConfig",
    "config_from_dict",
    "config_to_dict",
    "default_config",
    "load_config",
]
