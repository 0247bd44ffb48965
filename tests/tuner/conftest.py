"""A small real run shared by the tests of its outputs (TensorBoard, figures, export).

``privtune tune`` runs once per test session in a subprocess on digits with a
few short trials; the tests then read what it wrote. DP is forced on for the
searched trials so that ε is logged (the baseline is still trained without
any defense), and one confirmation retrain keeps the run short.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml

SMALL_RUN = {
    "study": {"name": "outputs", "trials": 4, "seed": 3},
    "training": {"epochs": 4},
    "confirmation": {"seeds": 1},
    "threat_model": {"calibration_fprs": [0.01, 0.1]},
    "search_space": {
        "dp": {"use": [True], "noise_multiplier": {"low": 0.5, "high": 2.0, "log": True}},
        "early_stopping": {"use": [False]},
    },
}


@dataclass(frozen=True)
class SmallRun:
    """A finished `privtune tune` run folder and what the command printed."""

    root: Path
    config: dict
    result: subprocess.CompletedProcess

    @property
    def study(self) -> optuna.Study:
        return optuna.load_study(
            study_name=self.config["study"]["name"], storage=f"sqlite:///{self.root / 'study.db'}"
        )


def run_privtune(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`privtune ARGS` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tuner.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    base = tmp_path_factory.mktemp("small_run")
    config = base / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL_RUN, sort_keys=False))
    root = base / "run"
    result = run_privtune("tune", str(config), "--out", str(root), cwd=base)
    assert result.returncode in (0, 3), result.stdout + result.stderr
    return SmallRun(root=root, config=SMALL_RUN, result=result)


@pytest.fixture(scope="session")
def privtune():
    """The `privtune` command as a function: ``privtune("export", RUN, cwd=...)``."""
    return run_privtune
