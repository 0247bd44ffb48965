"""Config loading and validation: defaults, round trips, one exact message per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from defenses.config import TrainingRecipe
from tuner.config import (
    DEFAULT_CONFIG_PATH,
    DataConfig,
    Range,
    RoleFractions,
    RunConfig,
    config_from_dict,
    config_to_dict,
    default_config,
    load_config,
)
from tuner.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _message(raw: object) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    return str(info.value)


def _problems(raw: object) -> list[str]:
    """The problem lines of the ConfigError raised for ``raw``."""
    lines = _message(raw).splitlines()
    assert lines[0] == "invalid config:"
    return [line.strip() for line in lines[1:]]


def _keys(tree: dict, prefix: str = "") -> set[str]:
    """Every key path of a config tree, not descending into knob ranges."""
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict) and "low" not in value:
            out |= _keys(value, f"{prefix}{key}.")
    return out


class TestDefaults:
    def test_default_values(self) -> None:
        cfg = default_config()
        assert cfg == RunConfig()
        assert cfg.study.trials == 20 and cfg.study.name == "default" and cfg.study.storage is None
        assert cfg.data.roles == RoleFractions(0.2, 0.2, 0.4, 0.1, 0.1)
        assert cfg.recipe == TrainingRecipe(
            hidden_sizes=(128,), epochs=30, batch_size=64, learning_rate=0.05
        )
        assert cfg.threat_model.attacks == ("loss", "rmia")
        assert cfg.search_space.weight_decay == Range(1e-6, 0.1, log=True)
        assert cfg.search_space.early_stopping.patience == Range(1, 10)
        assert cfg.source is None

    def test_empty_mapping_and_none_give_the_default(self) -> None:
        assert config_from_dict({}) == default_config()
        assert config_from_dict(None) == default_config()
        assert load_config(None) == default_config()

    @pytest.mark.parametrize("path", [REPO / "configs" / "default.yaml", DEFAULT_CONFIG_PATH])
    def test_shipped_default_files_equal_the_builtin_default(self, path: Path) -> None:
        cfg = load_config(path)
        assert cfg == default_config()
        assert cfg.source == path
        # the files spell out every key, so users see the whole config
        assert _keys(yaml.safe_load(path.read_text())) == _keys(config_to_dict(default_config()))

    def test_user_copy_is_identical_to_the_packaged_one(self) -> None:
        assert (REPO / "configs" / "default.yaml").read_text() == DEFAULT_CONFIG_PATH.read_text()


class TestRoundTrip:
    def test_default_round_trips_through_a_yaml_file(self, tmp_path: Path) -> None:
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(config_to_dict(default_config())))
        assert load_config(path) == default_config()

    def test_changed_config_round_trips(self, tmp_path: Path) -> None:
        raw = {
            "study": {"name": "x1", "trials": 5},
            "search_space": {
                "dp": {
                    "use": [True],
                    "target_epsilon": {"low": 0.5, "high": 50, "log": True},
                    "delta": 1e-5,
                },
                "dropout": 0.1,
                "label_smoothing": None,
            },
            "data": {"source": "csv", "path": "d.csv", "target": "y"},
        }
        (tmp_path / "a.yaml").write_text(yaml.safe_dump(raw))
        cfg = load_config(tmp_path / "a.yaml")
        assert cfg.data.path == tmp_path / "d.csv"  # resolved against the config file's folder
        assert cfg.search_space.dp.target_epsilon == Range(0.5, 50.0, log=True)
        assert cfg.search_space.dropout == 0.1 and cfg.search_space.label_smoothing is None
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
        assert load_config(tmp_path / "b.yaml") == cfg

    def test_adult_config(self) -> None:
        cfg = load_config(REPO / "configs" / "adult.yaml")
        assert cfg.study.name == "adult"
        assert cfg.data == DataConfig(
            source="csv",
            path=(REPO / ".." / "shared" / "data" / "adult" / "adult.csv").resolve(),
            target="income",
            test_path=(REPO / ".." / "shared" / "data" / "adult" / "adult.test").resolve(),
            roles=RoleFractions(0.15, 0.15, 0.6, 0.1, 0.0),
        )
        assert cfg.recipe == TrainingRecipe(
            hidden_sizes=(64,), epochs=20, batch_size=256, learning_rate=0.05
        )
        assert config_from_dict(config_to_dict(cfg)) == cfg

    def test_exponent_without_a_dot_is_a_float(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("search_space:\n  weight_decay: {low: 1e-6, high: 1e-2, log: true}\n")
        assert load_config(path).search_space.weight_decay == Range(1e-6, 1e-2, log=True)


class TestProblems:
    @pytest.mark.parametrize("threads", [0, -2, "many", True, 1.5])
    def test_threads_must_be_auto_or_a_positive_integer(self, threads: object) -> None:
        assert _problems({"training": {"threads": threads}}) == [
            f"training.threads: must be 'auto' or an integer >= 1, but got {threads!r}"
        ]

    def test_threads_round_trip(self) -> None:
        assert config_from_dict({"training": {"threads": 3}}).threads == 3
        assert config_to_dict(config_from_dict({}))["training"]["threads"] == "auto"

    @pytest.mark.parametrize("processes", [0, 3, "two", True, 1.0])
    def test_processes_must_be_auto_1_or_2(self, processes: object) -> None:
        assert _problems({"training": {"processes": processes}}) == [
            f"training.processes: must be 'auto', 1 or 2, but got {processes!r}"
        ]

    def test_processes_round_trip(self) -> None:
        assert config_from_dict({"training": {"processes": 1}}).processes == 1
        assert config_to_dict(config_from_dict({}))["training"]["processes"] == "auto"

    def test_unknown_key_names_its_path_and_the_allowed_keys(self) -> None:
        assert _problems({"threat_model": {"prior": 0.1}}) == [
            (
                "threat_model.prior: unknown key; allowed keys are ['access', 'attacks', 'calibration_fprs', "
                "'knows_recipe', 'max_reference_models', 'membership_prior', 'min_expected_false_positives', "
                "'reference_models']"
            )
        ]

    def test_unknown_section(self) -> None:
        assert _problems({"optimizer": {}}) == [
            (
                "optimizer: unknown key; allowed keys are ['adequacy', 'audit', 'confirmation', 'data', 'model', "
                "'objective', 'search_space', 'study', 'threat_model', 'training']"
            )
        ]

    def test_negative_noise_multiplier_range(self) -> None:
        assert _problems(
            {"search_space": {"dp": {"noise_multiplier": {"low": -1, "high": 5}}}}
        ) == ["search_space.dp.noise_multiplier.low: must be a number > 0, but got -1"]

    def test_negative_fixed_noise_multiplier(self) -> None:
        assert _problems({"search_space": {"dp": {"noise_multiplier": -1}}}) == [
            "search_space.dp.noise_multiplier: must be a number > 0, but got -1"
        ]

    def test_low_above_high(self) -> None:
        assert _problems({"search_space": {"dropout": {"low": 0.5, "high": 0.1}}}) == [
            "search_space.dropout: must be a range with low <= high, but got {'low': 0.5, 'high': 0.1}"
        ]

    def test_log_range_needs_a_positive_low(self) -> None:
        assert _problems(
            {"search_space": {"weight_decay": {"low": 0, "high": 0.1, "log": True}}}
        ) == ["search_space.weight_decay.low: must be a number > 0 in a log range, but got 0"]

    def test_bad_enum_lists_the_allowed_values(self) -> None:
        assert _problems({"threat_model": {"access": "proba"}}) == [
            "threat_model.access: must be one of ['label', 'logits', 'probs'], but got 'proba'"
        ]

    def test_unknown_attack_lists_the_registry(self) -> None:
        from objectives.attacks import ATTACKS

        assert _problems({"threat_model": {"attacks": ["loss", "lira2"]}}) == [
            f"threat_model.attacks[1]: must be one of {sorted(ATTACKS)}, but got 'lira2'"
        ]

    def test_unknown_utility_lists_the_registry(self) -> None:
        assert _problems({"objective": {"utility": "f1"}}) == [
            "objective.utility: must be one of ['accuracy', 'balanced_accuracy', 'roc_auc'], but got 'f1'"
        ]

    def test_reference_models_above_the_feasibility_bound(self) -> None:
        assert _problems({"threat_model": {"reference_models": 20, "max_reference_models": 8}}) == [
            (
                "threat_model.reference_models: must be an integer in [1, 8] (threat_model.max_reference_models "
                "= 8) because attacks ['rmia'] train reference models, but got 20"
            )
        ]

    def test_reference_models_are_unbounded_without_an_attack_that_trains_them(self) -> None:
        cfg = config_from_dict({"threat_model": {"attacks": ["loss"], "reference_models": 0}})
        assert cfg.threat_model.reference_models == 0

    @pytest.mark.parametrize("prior", [0, 1, 1.5, -0.1])
    def test_prior_outside_the_open_unit_interval(self, prior: float) -> None:
        assert _problems({"threat_model": {"membership_prior": prior}}) == [
            f"threat_model.membership_prior: must be a number in (0, 1), but got {prior!r}"
        ]

    def test_role_fractions_must_sum_to_one(self) -> None:
        assert _problems({"data": {"roles": {"test": 0.2}}}) == [
            "data.roles: must be fractions that sum to 1, but got 0.2 + 0.2 + 0.4 + 0.1 + 0.2 = 1.1"
        ]

    def test_separate_test_file_needs_test_fraction_zero(self) -> None:
        raw = {"data": {"source": "csv", "path": "a.csv", "target": "y", "test_path": "b.csv"}}
        assert _problems(raw) == [
            "data.roles.test: must be 0 when data.test_path is set (the test file is the test role), but got 0.1"
        ]

    def test_pool_too_small_for_the_reference_models(self) -> None:
        assert _problems({"data": {"pool": {"calibration": 0.4, "population": 0.4}}}) == [
            (
                "data.pool: must be fractions that leave the reference models as many records as the members: "
                "data.roles.attacker_pool × (1 - calibration - population) >= data.roles.members = 0.2, "
                "but got 0.4 × 0.2 = 0.08"
            )
        ]

    def test_recipe_problems_carry_their_key_paths(self) -> None:
        assert _problems(
            {"model": {"hidden_sizes": [0]}, "training": {"optimizer": "rmsprop"}}
        ) == [
            "model.hidden_sizes[0]: must be an integer in [1, inf), but got 0",
            "training.optimizer: must be one of ['adam', 'sgd'], but got 'rmsprop'",
        ]

    def test_dp_needs_a_noise_knob_when_it_can_be_on(self) -> None:
        assert _problems({"search_space": {"dp": {"noise_multiplier": None}}}) == [
            (
                "search_space.dp.noise_multiplier: must be a number > 0 or a range while search_space.dp.use "
                "includes true and search_space.dp.target_epsilon is null, but got None"
            )
        ]
        assert config_from_dict(
            {"search_space": {"dp": {"use": [False], "noise_multiplier": None}}}
        )

    def test_builtin_source_refuses_a_file_path(self) -> None:
        assert _problems({"data": {"path": "x.csv"}}) == [
            (
                "data.path: must be null when data.source is 'builtin' (set data.source to 'csv' or 'npz' to "
                "load a file), but got 'x.csv'"
            )
        ]

    def test_study_name_and_storage(self) -> None:
        assert _problems({"study": {"name": "../x", "storage": "mydb"}}) == [
            (
                "study.name: must be a name of letters, digits, '.', '_' or '-' (it names the run folder), "
                "but got '../x'"
            ),
            (
                "study.storage: must be an Optuna storage URL such as 'postgresql://user@host/db' or null, "
                "but got 'mydb'"
            ),
        ]

    def test_unknown_builtin_data_set(self) -> None:
        assert _problems({"data": {"name": "mnist"}}) == [
            (
                "data.name: must be one of ['breast_cancer', 'digits'] when data.source is 'builtin', "
                "but got 'mnist'"
            )
        ]

    def test_several_problems_are_reported_together(self) -> None:
        raw = {
            "study": {"trials": 0},
            "threat_model": {"prior": 0.1, "membership_prior": 2},
            "search_space": {"dp": {"noise_multiplier": -1}},
            "training": {"device": "gpu"},
        }
        assert _message(raw) == (
            "invalid config:\n"
            "  study.trials: must be an integer >= 1, but got 0\n"
            "  training.device: must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got 'gpu'\n"
            "  threat_model.prior: unknown key; allowed keys are ['access', 'attacks', 'calibration_fprs', "
            "'knows_recipe', 'max_reference_models', 'membership_prior', 'min_expected_false_positives', "
            "'reference_models']\n"
            "  threat_model.membership_prior: must be a number in (0, 1), but got 2\n"
            "  search_space.dp.noise_multiplier: must be a number > 0, but got -1"
        )

    def test_not_a_mapping(self) -> None:
        assert _problems([1, 2]) == [
            (
                "config: must be a mapping with keys ['adequacy', 'audit', 'confirmation', 'data', 'model', 'objective', "
                "'search_space', 'study', 'threat_model', 'training'], but got [1, 2]"
            )
        ]

    def test_exit_code_is_two(self) -> None:
        assert ConfigError.exit_code == 2


class TestFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / "nope.yaml")
        assert str(info.value) == f"config file {tmp_path / 'nope.yaml'}: not found"

    def test_yaml_syntax_error_names_the_file_and_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text("study:\n  name: [unclosed\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(f"config file {path} is not valid YAML: ")
        assert "line 3" in str(info.value)

    def test_problems_name_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text("objective:\n  mode: both\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == (
            f"invalid config {path}:\n"
            "  objective.mode: must be one of ['pareto', 'weighted'], but got 'both'"
        )
