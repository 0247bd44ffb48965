"""DefenseConfig / DPSettings / TrainingRecipe: validation messages and round trips."""

from __future__ import annotations

import pytest

from defenses import DefenseConfig, DPSettings, InvalidDefenseError, TrainingRecipe


class TestDPSettings:
    def test_negative_noise_multiplier(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DPSettings(noise_multiplier=-1.0)
        assert str(info.value) == "dp.noise_multiplier: must be a number in (0, inf), but got -1.0"
        assert info.value.problems == [
            ("dp.noise_multiplier", "must be a number in (0, inf), but got -1.0")
        ]

    def test_both_sigma_and_target_epsilon(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DPSettings(noise_multiplier=1.0, target_epsilon=3.0)
        assert str(info.value) == (
            "dp.noise_multiplier: set exactly one of noise_multiplier and target_epsilon, "
            "but got noise_multiplier=1.0, target_epsilon=3.0"
        )

    def test_neither_sigma_nor_target_epsilon(self) -> None:
        with pytest.raises(InvalidDefenseError, match="set exactly one of"):
            DPSettings()

    def test_unknown_accountant_lists_the_allowed_ones(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DPSettings(noise_multiplier=1.0, accountant="gdp")
        assert str(info.value) == "dp.accountant: must be one of ['prv', 'rdp'], but got 'gdp'"

    def test_defaults(self) -> None:
        dp = DPSettings(target_epsilon=2.0)
        assert (dp.max_grad_norm, dp.delta, dp.accountant) == (1.0, None, "prv")


class TestDefenseConfig:
    def test_dropout_of_one_is_refused(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DefenseConfig(dropout=1.0)
        assert str(info.value) == "dropout: must be a number in [0, 1), but got 1.0"

    def test_every_problem_is_reported_at_once(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DefenseConfig(weight_decay=-1.0, dropout=1.5, early_stopping_patience=0)
        assert [key for key, _ in info.value.problems] == [
            "weight_decay",
            "dropout",
            "early_stopping_patience",
        ]

    def test_unknown_key_in_from_dict(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DefenseConfig.from_dict({"weight_decay": 0.1, "l1": 0.5})
        assert str(info.value) == (
            "l1: unknown key; allowed keys are "
            "['dp', 'dropout', 'early_stopping_patience', 'label_smoothing', 'weight_decay']"
        )

    def test_unknown_dp_key_in_from_dict(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            DefenseConfig.from_dict({"dp": {"noise_multiplier": 1.0, "sigma": 2.0}})
        assert info.value.problems[0][0] == "dp.sigma"

    @pytest.mark.parametrize(
        "config",
        [
            DefenseConfig(),
            DefenseConfig(
                weight_decay=1e-4, dropout=0.2, label_smoothing=0.1, early_stopping_patience=3
            ),
            DefenseConfig(
                dp=DPSettings(noise_multiplier=1.3, max_grad_norm=0.7, delta=1e-6, accountant="rdp")
            ),
            DefenseConfig(dp=DPSettings(target_epsilon=4.0), weight_decay=1e-3),
        ],
    )
    def test_round_trip(self, config: DefenseConfig) -> None:
        assert DefenseConfig.from_dict(config.to_dict()) == config

    def test_to_dict_is_plain(self) -> None:
        assert DefenseConfig(dp=DPSettings(noise_multiplier=2.0)).to_dict() == {
            "dp": {
                "noise_multiplier": 2.0,
                "max_grad_norm": 1.0,
                "target_epsilon": None,
                "delta": None,
                "accountant": "prv",
            },
            "weight_decay": 0.0,
            "dropout": 0.0,
            "label_smoothing": 0.0,
            "early_stopping_patience": None,
        }


class TestTrainingRecipe:
    def test_round_trip(self) -> None:
        recipe = TrainingRecipe(
            hidden_sizes=(64, 32), epochs=12, batch_size=32, learning_rate=1e-3, optimizer="adam"
        )
        assert recipe.to_dict()["hidden_sizes"] == [64, 32]
        assert TrainingRecipe.from_dict(recipe.to_dict()) == recipe

    def test_unknown_optimizer(self) -> None:
        with pytest.raises(InvalidDefenseError) as info:
            TrainingRecipe(optimizer="rmsprop")
        assert str(info.value) == "optimizer: must be one of ['adam', 'sgd'], but got 'rmsprop'"
