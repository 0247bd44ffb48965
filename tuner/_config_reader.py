"""How a raw YAML tree becomes a :class:`~tuner.config.RunConfig`: the section rules and cross-checks.

This private module holds the config-specific half of validation: the rules
for every documented section (``_RULES``, ``_MODEL_RULES``), :func:`_read_config`
and :func:`_read_recipe`, which read a parsed tree into the frozen dataclasses of
:mod:`tuner.config`, and the ``_check_*`` functions that check keys spanning
several settings. It builds on the generic machinery of
:mod:`tuner._config_rules` and is imported by :mod:`tuner.config` only inside
:func:`~tuner.config.config_from_dict` and :func:`~tuner.config.load_config`,
so that it can import the dataclasses at module level without an import cycle.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tuner._config_rules import (
    Rule,
    _Bound,
    _Checker,
    _attack_registry,
    _file_path,
    _flag,
    _folders,
    _knob,
    _list,
    _num,
    _ok,
    _one_of,
    _options,
    _pattern,
    _reference,
    _section,
    _switch,
    _text,
    _utility_names,
)
from tuner.config import (
    ACCESS_MODES,
    ACCOUNTANTS,
    BUILTIN_DATASETS,
    DATA_SOURCES,
    OBJECTIVE_MODES,
    RISK_VIEWS,
    SEARCH_BUDGETS,
    AdequacyConfig,
    AuditConfig,
    ConfirmationConfig,
    DataConfig,
    DPSpace,
    EarlyStoppingSpace,
    InvalidDefenseError,
    ModelConfig,
    ObjectiveConfig,
    PoolFractions,
    RoleFractions,
    RunConfig,
    SearchBudget,
    SearchSpaceConfig,
    StudyConfig,
    ThreatModelConfig,
    TrainingRecipe,
)

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STORAGE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
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
            parts["recipe"], parts["device"], parts["threads"], parts["processes"], parts["model"] = _read_recipe(
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
) -> tuple[TrainingRecipe, str, int | str, int | str, ModelConfig]:
    """model.* and training.* become a TrainingRecipe (validated by defenses), the device,
    the CPU thread and process settings and a ModelConfig."""
    model = check.mapping("model", model, ["hidden_sizes", *_MODEL_RULES])
    model_config = ModelConfig(
        **{
            key: make(base_dir)(check, f"model.{key}", model[key])
            for key, make in _MODEL_RULES.items()
            if key in model
        }
    )
    training = check.mapping("training", training, [*_TRAINING_KEYS, "device", "threads", "processes"])
    device = training.get("device", "auto")
    if not (isinstance(device, str) and _DEVICE.fullmatch(device)):
        device = check.fail("training.device", "'auto', 'cpu', 'cuda' or 'cuda:N'", device)
    threads = training.get("threads", "auto")
    if threads != "auto" and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        threads = check.fail("training.threads", "'auto' or an integer >= 1", threads)
    processes = training.get("processes", "auto")
    if processes != "auto" and not (type(processes) is int and processes in (1, 2)):
        processes = check.fail("training.processes", "'auto', 1 or 2", processes)
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
    return recipe, device, threads, processes, model_config


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
