"""Config keys of the risk suite: attacks, reference models, calibration FPRs, search budget, audit."""

from __future__ import annotations

import pytest

from tuner.config import SearchBudget, config_from_dict, config_to_dict, default_config
from tuner.errors import ConfigError


def _problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    return [line.strip() for line in str(info.value).splitlines()[1:]]


def test_defaults() -> None:
    config = default_config()
    assert config.study.search_budget == SearchBudget("fixed", None, None, None)
    assert config.audit.shadow_models == 16
    assert config_to_dict(config)["audit"] == {"shadow_models": 16}
    assert config_to_dict(config)["study"]["search_budget"] == {
        "distribution": "fixed", "mean": None, "eta": None, "gamma": None
    }


class TestAttackSettings:
    def test_unknown_attack_lists_the_registry(self) -> None:
        assert _problems({"threat_model": {"attacks": ["shadow"]}}) == [
            "threat_model.attacks[0]: must be one of ['confidence', 'lira_offline', 'lira_online', 'loss', "
            "'modified_entropy', 'rmia'], but got 'shadow'"
        ]

    def test_online_attacks_belong_to_the_audit(self) -> None:
        assert _problems({"threat_model": {"attacks": ["loss", "lira_online"]}}) == [
            "threat_model.attacks: must be attacks of the realistic attacker, one of ['confidence', "
            "'lira_offline', 'loss', 'modified_entropy', 'rmia'] (['lira_online'] need shadow models trained IN "
            "on the candidates: they run in `privtune audit`, the worst-case view), but got ['loss', 'lira_online']"
        ]

    def test_more_reference_models_than_the_bound(self) -> None:
        assert _problems({"threat_model": {"reference_models": 17}}) == [
            "threat_model.reference_models: must be an integer in [1, 16] (threat_model.max_reference_models = "
            "16) because attacks ['rmia'] train reference models, but got 17"
        ]

    @pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5])
    def test_calibration_fpr_outside_the_open_unit_interval(self, alpha: float) -> None:
        assert _problems({"threat_model": {"calibration_fprs": [0.01, alpha]}}) == [
            f"threat_model.calibration_fprs[1]: must be a number in (0, 1), but got {alpha!r}"
        ]


class TestSearchBudget:
    def test_poisson(self) -> None:
        config = config_from_dict(
            {"study": {"search_budget": {"distribution": "poisson", "mean": 8}},
             "search_space": {"dp": {"use": [True]}}}
        )
        assert config.study.search_budget == SearchBudget("poisson", mean=8.0)
        assert config.study.search_budget.is_random

    def test_parameters_must_match_the_distribution(self) -> None:
        assert _problems(
            {"study": {"search_budget": {"distribution": "truncated_negative_binomial", "mean": 3, "gamma": 0.1}},
             "search_space": {"dp": {"use": [True]}}}
        ) == [
            "study.search_budget.mean: must be null when study.search_budget.distribution is "
            "'truncated_negative_binomial', but got 3.0",
            "study.search_budget.eta: must be set when study.search_budget.distribution is "
            "'truncated_negative_binomial', but got None",
        ]

    def test_random_budget_needs_dp_only(self) -> None:
        assert _problems({"study": {"search_budget": {"distribution": "poisson", "mean": 5}}}) == [
            "search_space.dp.use: must be [true] when study.search_budget.distribution is 'poisson' (a trial "
            "without DP trains on the members with no guarantee, so the search's ε would be infinite), but got "
            "[False, True]"
        ]

    def test_ranges(self) -> None:
        assert _problems(
            {"study": {"search_budget": {"distribution": "geometric", "gamma": 1.5}}}
        ) == [
            "study.search_budget.distribution: must be one of ['fixed', 'poisson', 'truncated_negative_binomial'], "
            "but got 'geometric'",
            "study.search_budget.gamma: must be a number in (0, 1) or null, but got 1.5",
        ]


@pytest.mark.parametrize("value", [3, 2, 0])
def test_audit_shadow_models(value: int) -> None:
    problems = _problems({"audit": {"shadow_models": value}})
    assert len(problems) == 1 and problems[0].startswith("audit.shadow_models: must be ")
    assert problems[0].endswith(f"but got {value}")


def test_max_exposed_needs_an_attack_with_a_likelihood_ratio() -> None:
    assert _problems({"adequacy": {"max_exposed": 3}, "threat_model": {"attacks": ["loss", "confidence"]}}) == [
        "adequacy.max_exposed: must be null unless threat_model.attacks includes an attack with a likelihood "
        "ratio (one of ['lira_offline', 'rmia']); the attacks ['loss', 'confidence'] cannot tell how many members "
        "are exposed, but got 3"
    ]
    assert config_from_dict({"adequacy": {"max_exposed": 0}}).adequacy.max_exposed == 0  # default attacks: rmia
