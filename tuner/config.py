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
import math
import re
from collections.abc import Callable, Iterable, Mapping
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
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STORAGE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


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
        "training": {**recipe, "device": cfg.device},
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


# --- reading and validation -------------------------------------------------


class _Bad:
    """Stands in for a value that failed its check, so later checks can skip it."""

    def __repr__(self) -> str:
        return "<invalid>"


_BAD: Any = _Bad()
Rule = Callable[["_Checker", str, Any], Any]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but ``1e-6`` (no dot) is a float, as in YAML 1.2."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _Checker:
    """Collects every problem found while reading a raw YAML tree."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, allowed: str, value: Any, *, shown: str | None = None) -> Any:
        """Record ``<path>: must be <allowed>, but got <value>``; return the bad marker."""
        self.problems.append(f"{path}: must be {allowed}, but got {shown or repr(value)}")
        return _BAD

    def mapping(self, path: str, raw: Any, keys: Iterable[str]) -> dict[str, Any]:
        """The known keys of a mapping (``None`` = empty); unknown keys are problems."""
        keys = sorted(keys)
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(path or "config", f"a mapping with keys {keys}", raw)
            return {}
        for key in raw:
            if key not in keys:
                self.problems.append(f"{_join(path, key)}: unknown key; allowed keys are {keys}")
        return {key: value for key, value in raw.items() if key in keys}


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


@dataclass(frozen=True)
class _Bound:
    """An interval of allowed numbers and the words that describe it."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        return kind

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value) or (self.integer and not float(value).is_integer()):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(
    check: _Checker, path: str, value: Any, bound: _Bound, *, nullable: bool = False
) -> Any:
    if value is None and nullable:
        return None
    if not bound.accepts(value):
        return check.fail(path, bound.describe() + (" or null" if nullable else ""), value)
    return int(value) if bound.integer else float(value)


def _num(*args: Any, nullable: bool = False, **kwargs: Any) -> Rule:
    bound = _Bound(*args, **kwargs)
    return lambda check, path, value: _number(check, path, value, bound, nullable=nullable)


def _flag() -> Rule:
    def rule(check: _Checker, path: str, value: Any) -> Any:
        return value if isinstance(value, bool) else check.fail(path, "true or false", value)

    return rule


def _one_of(options: Callable[[], Iterable[str]] | Iterable[str]) -> Rule:
    """A name from a fixed list or a registry (a callable, read lazily)."""

    def rule(check: _Checker, path: str, value: Any) -> Any:
        allowed = sorted(options() if callable(options) else options)
        return (
            value
            if isinstance(value, str) and value in allowed
            else check.fail(path, f"one of {allowed}", value)
        )

    return rule


def _text(*, nullable: bool = False, allowed: str = "a string") -> Rule:
    def rule(check: _Checker, path: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, str):
            return value.strip()
        return check.fail(path, allowed + (" or null" if nullable else ""), value)

    return rule


def _pattern(regex: re.Pattern[str], allowed: str, *, nullable: bool = False) -> Rule:
    def rule(check: _Checker, path: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        return check.fail(path, allowed + (" or null" if nullable else ""), value)

    return rule


def _list(item: Rule, *, what: str, nonempty: bool = True, unique: bool = False) -> Rule:
    def rule(check: _Checker, path: str, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or (nonempty and not value):
            return check.fail(path, f"a {'non-empty ' if nonempty else ''}list of {what}", value)
        items = tuple(item(check, f"{path}[{i}]", v) for i, v in enumerate(value))
        if unique and len(set(map(repr, items))) < len(items):
            return check.fail(path, f"a list of {what} without repeats", value)
        return items

    return rule


def _switch() -> Rule:
    """A defense's on/off choices: ``[false, true]`` searches, one value fixes."""

    def rule(check: _Checker, path: str, value: Any) -> Any:
        values = [value] if isinstance(value, bool) else value
        if not (
            isinstance(values, list) and values and all(isinstance(v, bool) for v in values)
        ) or len(set(values)) < len(values):
            return check.fail(
                path, "a non-empty list of distinct true/false, such as [false, true]", value
            )
        return tuple(sorted(values))

    return rule


def _knob(bound: _Bound) -> Rule:
    """A search-space knob: a range ``{low, high, log}``, a fixed number, or null."""

    def rule(check: _Checker, path: str, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return _number(check, path, value, bound)
            return check.fail(
                path, f"{bound.describe()}, a range {{low, high, log}} or null", value
            )
        given = check.mapping(path, value, ("low", "high", "log"))
        if "low" not in given or "high" not in given:
            return check.fail(path, "a range with both low and high", dict(value))
        low = _number(check, f"{path}.low", given["low"], bound)
        high = _number(check, f"{path}.high", given["high"], bound)
        log = _flag()(check, f"{path}.log", given.get("log", False))
        if _BAD in (low, high, log):
            return _BAD
        if low > high:
            return check.fail(path, "a range with low <= high", dict(value))
        if log and low <= 0:
            return check.fail(f"{path}.low", "a number > 0 in a log range", given["low"])
        return Range(low, high, log)

    return rule


def _file_path(base_dir: Path | None) -> Rule:
    def rule(check: _Checker, path: str, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            return check.fail(path, "a file path or null", value)
        resolved = Path(value.strip()).expanduser()
        if base_dir is not None and not resolved.is_absolute():
            resolved = (base_dir / resolved).resolve()
        return resolved

    return rule


def _reference(*, nullable: bool = True) -> Rule:
    """A ``"module:function"`` reference to the user's code (imported later, in prepare)."""
    from tuner.user_code import REFERENCE, REFERENCE_FORM

    return _pattern(REFERENCE, REFERENCE_FORM, nullable=nullable)


def _options(reserved: Iterable[str] = ()) -> Rule:
    """Keyword arguments for the user's callable: a mapping with identifier keys."""
    reserved = tuple(reserved)

    def rule(check: _Checker, path: str, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in value
        ):
            return check.fail(path, "a mapping of keyword arguments (identifier keys) or null", value)
        clash = sorted(set(value) & set(reserved))
        if clash:
            return check.fail(
                path, f"keyword arguments other than {list(reserved)}, which privtune passes itself", dict(value)
            )
        return dict(value)

    return rule


def _folders(base_dir: Path | None) -> Rule:
    """A list of folders (relative ones resolve against the config file's folder), or null."""
    folder = _file_path(base_dir)

    def rule(check: _Checker, path: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            return check.fail(path, "a folder, a non-empty list of folders, or null", value)
        items = tuple(folder(check, f"{path}[{i}]", v) for i, v in enumerate(value))
        if any(item is None for item in items):
            return check.fail(path, "a list of folders without nulls", value)
        return items

    return rule


def _section(cls: type, rules: dict[str, Rule]) -> Rule:
    """A nested mapping read into ``cls``; missing keys keep ``cls``'s defaults."""

    def rule(check: _Checker, path: str, value: Any) -> Any:
        given = check.mapping(path, value, rules)
        default = cls()
        values = {key: getattr(default, key) for key in rules}
        for key, raw in given.items():
            values[key] = rules[key](check, _join(path, key), raw)
        return cls(**values)

    return rule


def _attack_registry() -> Mapping[str, Any]:
    from objectives.attacks import ATTACKS  # lazily: objectives is not needed to load defaults

    return ATTACKS


def _utility_names() -> Iterable[str]:
    from objectives.utility import UTILITY_METRICS

    return UTILITY_METRICS


_PROB = _Bound(0, 1, low_open=True, high_open=True)
_POSITIVE = _Bound(0, low_open=True)

_RULES: dict[str, Callable[[Path | None], Rule]] = {
    "study": lambda _: _section(
        StudyConfig,
        {
            "name": _pattern(
                _STUDY_NAME, "a name of letters, digits, '.', '_' or '-' (it names the run folder)"
            ),
            "storage": _pattern(
                _STORAGE_URL,
                "an Optuna storage URL such as 'postgresql://user@host/db'",
                nullable=True,
            ),
            "trials": _num(1, integer=True),
            "seed": _num(0, integer=True),
            "pruning": _flag(),
            "search_budget": _section(
                SearchBudget,
                {
                    "distribution": _one_of(SEARCH_BUDGETS),
                    "mean": _num(1, nullable=True),
                    "eta": _num(0, nullable=True),
                    "gamma": _num(0, 1, True, True, nullable=True),
                },
            ),
        },
    ),
    "data": lambda base_dir: _section(
        DataConfig,
        {
            "source": _one_of(DATA_SOURCES),
            "name": _text(),
            "path": _file_path(base_dir),
            "target": _text(nullable=True),
            "test_path": _file_path(base_dir),
            "missing_values": _list(_text(), what="strings", nonempty=False),
            "roles": _section(
                RoleFractions,
                {
                    "members": _num(0, 1, low_open=True),
                    "nonmembers": _num(0, 1, low_open=True),
                    "attacker_pool": _num(0, 1, low_open=True),
                    "validation": _num(0, 1, low_open=True),
                    "test": _num(0, 1),
                },
            ),
            "pool": _section(
                PoolFractions,
                {"calibration": _num(0, 1, True, True), "population": _num(0, 1, True, True)},
            ),
            "loader": _reference(),
            "options": _options(),
            "python_path": _folders(base_dir),
        },
    ),
    "threat_model": lambda _: _section(
        ThreatModelConfig,
        {
            "membership_prior": _num(0, 1, True, True),
            "reference_models": _num(0, integer=True),
            "max_reference_models": _num(1, integer=True),
            "knows_recipe": _flag(),
            "access": _one_of(ACCESS_MODES),
            "calibration_fprs": _list(_num(0, 1, True, True), what="numbers in (0, 1)"),
            "attacks": _list(_one_of(lambda: _attack_registry()), what="attack names", unique=True),
            "min_expected_false_positives": _num(0, low_open=True),
        },
    ),
    "adequacy": lambda _: _section(
        AdequacyConfig,
        {"max_ppv": _num(0, 1, True, True), "max_exposed": _num(0, integer=True, nullable=True)},
    ),
    "objective": lambda _: _section(
        ObjectiveConfig,
        {
            "utility": _one_of(lambda: _utility_names()),
            "risk": _one_of(RISK_VIEWS),
            "risk_weight": _num(0),
            "mode": _one_of(OBJECTIVE_MODES),
        },
    ),
    "search_space": lambda _: _section(
        SearchSpaceConfig,
        {
            "dp": _section(
                DPSpace,
                {
                    "use": _switch(),
                    "noise_multiplier": _knob(_POSITIVE),
                    "max_grad_norm": _knob(_POSITIVE),
                    "target_epsilon": _knob(_POSITIVE),
                    "delta": _num(0, 1, True, True, nullable=True),
                    "accountant": _one_of(ACCOUNTANTS),
                },
            ),
            "weight_decay": _knob(_Bound(0)),
            "dropout": _knob(_Bound(0, 1, high_open=True)),
            "label_smoothing": _knob(_Bound(0, 1, high_open=True)),
            "early_stopping": _section(
                EarlyStoppingSpace, {"use": _switch(), "patience": _knob(_Bound(1, integer=True))}
            ),
        },
    ),
    "confirmation": lambda _: _section(ConfirmationConfig, {"seeds": _num(1, integer=True)}),
    "audit": lambda _: _section(AuditConfig, {"shadow_models": _num(4, integer=True)}),
}
_TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "optimizer")


def _read_config(check: _Checker, raw: Any, *, base_dir: Path | None) -> RunConfig:
    """Read every section, then run the checks that span several keys."""
    top = check.mapping("", raw, [*_RULES, "model", "training"])
    parts: dict[str, Any] = {}
    cross_checks = {
        "data": _check_data,
        "threat_model": _check_threat_model,
        "search_space": _check_search_space,
        "audit": _check_audit,
    }
    for name, make in _RULES.items():  # in the order of the documented file
        parts[name] = make(base_dir)(check, name, top.get(name))
        if name in cross_checks:
            cross_checks[name](check, parts[name])
        if name == "data":
            parts["recipe"], parts["device"], parts["model"] = _read_recipe(
                check, top.get("model"), top.get("training"), base_dir
            )
    data, model = parts["data"], parts["model"]
    raw_data = top.get("data") if isinstance(top.get("data"), Mapping) else {}
    if _ok(data) and data.source == "python" and "name" not in raw_data and _ok(data.loader) and data.loader:
        parts["data"] = data = dataclasses.replace(data, name=data.loader)  # what reports call the data
    if base_dir is not None:  # user code imports from the config file's folder unless told otherwise
        if _ok(data) and data.source == "python" and data.python_path is None:
            parts["data"] = dataclasses.replace(data, python_path=(base_dir.resolve(),))
        if _ok(model) and model.builder is not None and model.python_path is None:
            parts["model"] = dataclasses.replace(model, python_path=(base_dir.resolve(),))
    _check_search_budget(check, parts["study"], parts["search_space"])
    _check_max_exposed(check, parts["threat_model"], parts["adequacy"])
    return RunConfig(**parts)


_MODEL_RULES: dict[str, Callable[[Path | None], Rule]] = {
    "builder": lambda _: _reference(),
    "options": lambda _: _options(reserved=("input_shape", "n_classes", "dropout")),
    "python_path": _folders,
}


def _read_recipe(
    check: _Checker, model: Any, training: Any, base_dir: Path | None
) -> tuple[TrainingRecipe, str, ModelConfig]:
    """model.* and training.* become a TrainingRecipe (validated by defenses) and a ModelConfig."""
    model = check.mapping("model", model, ["hidden_sizes", *_MODEL_RULES])
    model_config = ModelConfig(
        **{
            key: make(base_dir)(check, f"model.{key}", model[key])
            for key, make in _MODEL_RULES.items()
            if key in model
        }
    )
    training = check.mapping("training", training, [*_TRAINING_KEYS, "device"])
    device = training.get("device", "auto")
    if not (isinstance(device, str) and _DEVICE.fullmatch(device)):
        device = check.fail("training.device", "'auto', 'cpu', 'cuda' or 'cuda:N'", device)
    hidden = model.get("hidden_sizes", [128])
    if not isinstance(hidden, (list, tuple)):
        check.fail("model.hidden_sizes", "a list of integers >= 1", hidden)
        hidden = [128]
    try:
        recipe = TrainingRecipe(
            hidden_sizes=tuple(hidden), **{k: training[k] for k in _TRAINING_KEYS if k in training}
        )
    except InvalidDefenseError as exc:
        for key, message in exc.problems:
            prefix = "model." if key.startswith("hidden_sizes") else "training."
            check.problems.append(f"{prefix}{key}: {message}")
        recipe = TrainingRecipe()
    if model_config.builder is None:  # keys that only a user's builder reads
        if _ok(model_config.options) and model_config.options:
            check.fail("model.options", "empty unless model.builder is set", model_config.options)
        if _ok(model_config.python_path) and model_config.python_path is not None:
            shown = [str(p) for p in model_config.python_path]
            check.fail("model.python_path", "null unless model.builder is set", shown)
    return recipe, device, model_config


def _ok(*values: Any) -> bool:
    return all(v is not _BAD for v in values)


def _check_data(check: _Checker, data: DataConfig) -> None:
    """Source-specific keys, role fractions summing to 1, a large enough pool."""
    if data.source == "builtin":
        if _ok(data.name) and data.name not in BUILTIN_DATASETS:
            check.fail(
                "data.name",
                f"one of {sorted(BUILTIN_DATASETS)} when data.source is 'builtin'",
                data.name,
            )
        for key in ("path", "target", "test_path"):
            value = getattr(data, key)
            if value is not None and _ok(value):
                check.fail(
                    f"data.{key}",
                    "null when data.source is 'builtin' (set data.source to 'csv' or 'npz' to load a file)",
                    str(value),
                )
    elif data.source == "python":
        if data.loader is None:
            check.fail("data.loader", f"{'module:function'!r} of your loader when data.source is 'python'", None)
        for key in ("path", "target", "test_path"):
            value = getattr(data, key)
            if value is not None and _ok(value):
                check.fail(
                    f"data.{key}",
                    "null when data.source is 'python' (the loader returns the data; pass its "
                    "arguments in data.options)",
                    str(value),
                )
    elif data.source in ("csv", "npz"):
        if data.path is None:
            check.fail("data.path", f"a file path when data.source is {data.source!r}", None)
        if data.source == "csv" and data.target is None:
            check.fail(
                "data.target", "the name of the label column when data.source is 'csv'", None
            )
        if data.source == "npz" and data.target is not None and _ok(data.target):
            check.fail(
                "data.target",
                "null when data.source is 'npz' (the labels are the array y)",
                data.target,
            )
    if data.source != "python":
        for key, empty in (("loader", None), ("options", {}), ("python_path", None)):
            value = getattr(data, key)
            if _ok(value) and value != empty:
                shown = [str(p) for p in value] if key == "python_path" else value
                check.fail(f"data.{key}", f"{empty!r} unless data.source is 'python'", shown)
    roles, pool = data.roles, data.pool
    if not (_ok(roles) and _ok(*vars(roles).values())):
        return
    total = sum(vars(roles).values())
    if abs(total - 1) > 1e-9:
        shown = " + ".join(f"{v:g}" for v in vars(roles).values()) + f" = {total:.10g}"
        check.fail("data.roles", "fractions that sum to 1", None, shown=shown)
    if _ok(data.test_path) and data.test_path is not None and roles.test != 0:
        check.fail(
            "data.roles.test",
            "0 when data.test_path is set (the test file is the test role)",
            roles.test,
        )
    if data.test_path is None and roles.test == 0 and data.source != "python":
        check.fail("data.roles.test", "a number in (0, 1] when data.test_path is null", roles.test)
    if not (_ok(pool) and _ok(pool.calibration, pool.population)):
        return
    if pool.reference <= 0:
        shown = (
            f"{pool.calibration:g} + {pool.population:g} = {pool.calibration + pool.population:g}"
        )
        check.fail(
            "data.pool",
            "calibration + population < 1 (the rest trains the reference models)",
            None,
            shown=shown,
        )
    elif roles.attacker_pool * pool.reference < roles.members - 1e-9:
        shown = f"{roles.attacker_pool:g} × {pool.reference:g} = {roles.attacker_pool * pool.reference:g}"
        check.fail(
            "data.pool",
            "fractions that leave the reference models as many records as the members: "
            f"data.roles.attacker_pool × (1 - calibration - population) >= data.roles.members = {roles.members:g}",
            None,
            shown=shown,
        )


def _check_threat_model(check: _Checker, threat: ThreatModelConfig) -> None:
    """Attacks that train reference models need 1..max_reference_models of them."""
    if not (
        _ok(threat) and _ok(threat.attacks, threat.reference_models, threat.max_reference_models)
    ):
        return
    registry = _attack_registry()
    online = [a for a in threat.attacks if getattr(registry.get(a), "online", False)]
    if online:
        offline = sorted(name for name, cls in registry.items() if not cls.online)
        check.fail(
            "threat_model.attacks",
            f"attacks of the realistic attacker, one of {offline} ({online} need shadow models "
            "trained IN on the candidates: they run in `privtune audit`, the worst-case view)",
            list(threat.attacks),
        )
    needing = [
        a for a in threat.attacks if getattr(registry.get(a), "uses_reference_models", False)
    ]
    k, k_max = threat.reference_models, threat.max_reference_models
    if needing and not 1 <= k <= k_max:
        check.fail(
            "threat_model.reference_models",
            f"an integer in [1, {k_max}] (threat_model.max_reference_models = {k_max}) "
            f"because attacks {needing} train reference models",
            k,
        )


def _check_audit(check: _Checker, audit: AuditConfig) -> None:
    """Each candidate is IN for exactly half the shadow models: their number must be even."""
    if _ok(audit) and _ok(audit.shadow_models) and audit.shadow_models % 2:
        check.fail(
            "audit.shadow_models",
            "an even integer >= 4 (each record is IN for exactly half of the shadow models)",
            audit.shadow_models,
        )


def _check_max_exposed(check: _Checker, threat: ThreatModelConfig, adequacy: AdequacyConfig) -> None:
    """Exposure is measured through likelihood ratios: a bound on it needs an attack that has one."""
    if not (_ok(threat, adequacy) and _ok(threat.attacks, adequacy.max_exposed)) or adequacy.max_exposed is None:
        return
    from objectives.attacks import Attack

    registry = _attack_registry()
    with_ratio = sorted(
        name for name, cls in registry.items()
        if cls.log_likelihood_ratio is not Attack.log_likelihood_ratio and not cls.online
    )
    if not set(threat.attacks) & set(with_ratio):
        check.fail(
            "adequacy.max_exposed",
            f"null unless threat_model.attacks includes an attack with a likelihood ratio (one of {with_ratio}); "
            f"the attacks {list(threat.attacks)} cannot tell how many members are exposed",
            adequacy.max_exposed,
        )


def _check_search_budget(check: _Checker, study: StudyConfig, space: SearchSpaceConfig) -> None:
    """A random budget names its parameters, and searches DP trials only."""
    if not (_ok(study) and _ok(study.search_budget)):
        return
    budget = study.search_budget
    if not _ok(budget.distribution, budget.mean, budget.eta, budget.gamma):
        return
    path = "study.search_budget"
    needs = {"fixed": (), "poisson": ("mean",), "truncated_negative_binomial": ("eta", "gamma")}
    wanted = needs[budget.distribution]
    for key in ("mean", "eta", "gamma"):
        value = getattr(budget, key)
        if key in wanted and value is None:
            check.fail(f"{path}.{key}", f"set when {path}.distribution is {budget.distribution!r}", None)
        elif key not in wanted and value is not None:
            check.fail(f"{path}.{key}", f"null when {path}.distribution is {budget.distribution!r}", value)
    if budget.is_random and _ok(space) and _ok(space.dp) and _ok(space.dp.use) and space.dp.use != (True,):
        check.fail(
            "search_space.dp.use",
            f"[true] when {path}.distribution is {budget.distribution!r} (a trial without DP "
            "trains on the members with no guarantee, so the search's ε would be infinite)",
            list(space.dp.use),
        )


def _check_search_space(check: _Checker, space: SearchSpaceConfig) -> None:
    """A defense that can be on needs its required knobs."""
    if not _ok(space):
        return
    dp, stop = space.dp, space.early_stopping
    if _ok(dp) and _ok(dp.use) and True in dp.use:
        if dp.noise_multiplier is None and dp.target_epsilon is None:
            check.fail(
                "search_space.dp.noise_multiplier",
                "a number > 0 or a range while search_space.dp.use includes true "
                "and search_space.dp.target_epsilon is null",
                None,
            )
        if dp.max_grad_norm is None:
            check.fail(
                "search_space.dp.max_grad_norm",
                "a number > 0 or a range while search_space.dp.use includes true",
                None,
            )
    if _ok(stop) and _ok(stop.use) and True in stop.use and stop.patience is None:
        check.fail(
            "search_space.early_stopping.patience",
            "an integer >= 1 or a range while search_space.early_stopping.use includes true",
            None,
        )


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
