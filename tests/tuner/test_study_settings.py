"""A study continues only under the settings its trials were measured with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.config import config_from_dict
from tuner.errors import ConfigError
from tuner.study import SETTINGS_ATTR, open_study, settings_differences, study_settings

BASE = {"study": {"name": "s", "seed": 1, "trials": 4}, "training": {"epochs": 5}}


def config(**sections):
    merged = {key: dict(value) for key, value in BASE.items()}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return config_from_dict(merged)


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def test_a_new_study_records_its_settings(tmp_path):
    shared = open_study(config(), url(tmp_path), data_fingerprint="f")
    stored = shared.study.user_attrs[SETTINGS_ATTR]
    assert stored == study_settings(config())
    assert stored["training"] == {"epochs": 5, "batch_size": 64, "learning_rate": 0.05, "optimizer": "sgd"}
    assert "trials" not in stored["study"] and "confirmation" not in stored


@pytest.mark.parametrize(
    "change",
    [
        {"study": {"trials": 40}},  # the study's size: --trials extends it
        {"training": {"device": "cpu", "threads": 2, "processes": 1}},  # where and how fast it runs
        {"confirmation": {"seeds": 5}},  # after the trials
        {"data": {"path": None}},
    ],
)
def test_settings_that_do_not_change_a_trial_may_differ(tmp_path, change):
    open_study(config(), url(tmp_path), data_fingerprint="f")
    open_study(config(**change), url(tmp_path), data_fingerprint="f")  # no error


def test_another_recipe_seed_or_bound_is_refused_naming_each_difference(tmp_path):
    open_study(config(), url(tmp_path), data_fingerprint="f")
    changed = config(training={"epochs": 6}, study={"seed": 7}, adequacy={"max_ppv": 0.3})
    with pytest.raises(ConfigError) as info:
        open_study(changed, url(tmp_path), data_fingerprint="f")
    message = str(info.value)
    assert "was run with other settings (adequacy.max_ppv: 0.5 → 0.3; study.seed: 1 → 7; training.epochs: 5 → 6)" in message
    assert message.endswith("nothing was changed")
    # Refused before anything was written: the stored settings are the first run's.
    shared = open_study(config(), url(tmp_path), data_fingerprint="f")
    assert shared.study.user_attrs[SETTINGS_ATTR]["training"]["epochs"] == 5


def test_differences_are_dotted_keys_with_old_and_new_values():
    stored = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    current = {"a": {"b": 1, "c": [1, 3]}, "d": "y", "e": None}
    assert settings_differences(stored, current) == ['a.c: [1, 2] → [1, 3]', 'd: "x" → "y"']


def test_a_refused_run_leaves_no_new_run_folder(tmp_path):
    """A worker refused by a shared study removes the --out folder it had just created."""
    from tuner.run_folder import RunFolder
    from tuner.tune import open_run_study, prepare

    storage = url(tmp_path)
    open_study(config(), storage, data_fingerprint=prepare(config()).roles.fingerprint)
    out = tmp_path / "worker-b"
    with pytest.raises(ConfigError, match="training.epochs: 5 → 6"):
        open_run_study(prepare(config(training={"epochs": 6})), RunFolder(out), storage=storage)
    assert not out.exists()
    existing = tmp_path / "kept"
    existing.mkdir()
    with pytest.raises(ConfigError):
        open_run_study(prepare(config(training={"epochs": 6})), RunFolder(existing), storage=storage)
    assert existing.is_dir()  # a folder that was there before is left alone
