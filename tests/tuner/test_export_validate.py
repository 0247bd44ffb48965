"""`privtune export` and `privtune validate`: the exported file round-trips and tampering is refused."""

from __future__ import annotations

import json

import pytest
import yaml

from defenses import DefenseConfig, TrainingRecipe, load_recommendation
from defenses.recommendation import DOCUMENT_KEYS, SCHEMA_VERSION
from tuner.cli import main
from tuner.records import trial_attrs


@pytest.fixture(scope="module")
def exported(small_run, privtune, tmp_path_factory):
    """The run's recommendation exported as YAML and as JSON (exit 0 required)."""
    # The small run's config has an adequate defense (its baseline is adequate at π = 0.01).
    assert small_run.result.returncode == 0, small_run.result.stdout + small_run.result.stderr
    folder = tmp_path_factory.mktemp("export")
    for fmt in ("yaml", "json"):
        result = privtune("export", str(small_run.root), "--format", fmt, "-o", f"defense.{fmt}", cwd=folder)
        assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_round_trips_to_the_chosen_trials_settings(small_run, exported, fmt):
    rec = load_recommendation(exported / f"defense.{fmt}")
    document = rec.document
    assert document["schema_version"] == SCHEMA_VERSION == 1
    assert set(document) <= set(DOCUMENT_KEYS)
    trial = small_run.study.trials[document["study"]["trial"]]
    # export -> load -> the same settings as the study recorded for the chosen trial
    assert rec.defense == DefenseConfig.from_dict(trial_attrs(trial)["defense"])
    assert rec.defense.to_dict() == trial_attrs(trial)["defense"]
    run_config = yaml.safe_load((small_run.root / "config.yaml").read_text())
    assert rec.recipe == TrainingRecipe(
        hidden_sizes=tuple(run_config["model"]["hidden_sizes"]),
        **{k: run_config["training"][k] for k in ("epochs", "batch_size", "learning_rate", "optimizer")},
    )
    # the export command writes the same document as the run folder's recommendation files
    assert dict(document) == dict(load_recommendation(small_run.root / f"recommendation.{fmt}").document)


def test_both_formats_hold_the_same_document(exported):
    assert yaml.safe_load((exported / "defense.yaml").read_text()) == json.loads((exported / "defense.json").read_text())


def test_validate_accepts_the_exported_file(exported, privtune):
    result = privtune("validate", "defense.yaml", cwd=exported)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("defense.yaml: valid (schema version 1)")


def _tamper(document: dict, how: str) -> dict:
    document = json.loads(json.dumps(document))
    if how == "unknown-key":
        document["defence"] = {"dropout": 0.1}
    elif how == "unknown-defense-key":
        document["defense"]["dropuot"] = 0.1
    elif how == "schema-version":
        document["schema_version"] = 2
    elif how == "negative-sigma":
        document["defense"]["dp"] = {"noise_multiplier": -1.0, "max_grad_norm": 1.0, "target_epsilon": None,
                                     "delta": None, "accountant": "prv"}
    elif how == "prior-out-of-range":
        document["threat_model"]["membership_prior"] = 1.5
    elif how == "utility-out-of-range":
        document["expected"]["utility"]["test"] = 7.0
    elif how == "ppv-above-bound":
        document["expected"]["realistic_risk"]["ppv"] = 0.9
    elif how == "status-contradiction":
        document["status"] = "defense_recommended" if document["status"] == "no_defense_needed" else "no_defense_needed"
    elif how == "truncated":
        del document["expected"]
    elif how == "privacy-mismatch":
        document["defense"]["dp"] = None
        document["privacy"] = {"epsilon": 1.0, "delta": 1e-5, "noise_multiplier": 1.0, "max_grad_norm": 1.0}
    return document


@pytest.mark.parametrize(
    "how, message",
    [
        ("unknown-key", "defence: unknown key; allowed keys are"),
        ("unknown-defense-key", "defense.dropuot: unknown key"),
        ("schema-version", "schema_version: must be 1, but got 2"),
        ("negative-sigma", "defense.dp.noise_multiplier: must be a number in (0, inf), but got -1.0"),
        ("privacy-mismatch", "privacy: must be null when defense.dp is null"),
        ("prior-out-of-range", "threat_model.membership_prior: must be a number in (0, 1), but got 1.5"),
        ("utility-out-of-range", "expected.utility.test: must be a number in [0, 1], but got 7.0"),
        ("ppv-above-bound", "expected.realistic_risk.ppv: must be at most adequacy.max_ppv (0.5)"),
        ("status-contradiction", "status: must be "),
        ("truncated", "expected: is missing"),
    ],
)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_tampered_file_is_refused_with_exit_2(exported, capsys, how, message, fmt):
    document = _tamper(yaml.safe_load((exported / "defense.yaml").read_text()), how)
    path = exported / f"tampered-{how}.{fmt}"
    path.write_text(json.dumps(document) if fmt == "json" else yaml.safe_dump(document))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("privtune: error: ") and message in err


def test_a_tampered_file_exits_2_from_the_command_line(exported, privtune):
    document = _tamper(yaml.safe_load((exported / "defense.yaml").read_text()), "negative-sigma")
    (exported / "bad.yaml").write_text(yaml.safe_dump(document))
    result = privtune("validate", "bad.yaml", cwd=exported)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "defense.dp.noise_multiplier: must be a number in (0, inf), but got -1.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_refused_with_exit_2(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nowhere.yaml")]) == 2
    assert "cannot be read" in capsys.readouterr().err
