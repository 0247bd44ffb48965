"""The package's public surface, its documented examples, and its import boundary."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import objectives

MODULES = [
    "objectives.signals",
    "objectives.stats",
    "objectives.calibration",
    "objectives.realistic",
    "objectives.worst_case",
    "objectives.utility",
    "objectives.objective",
    "objectives.observations",
    "objectives.attacks._loss",
    "objectives.attacks._confidence",
    "objectives.attacks._modified_entropy",
    "objectives.attacks._rmia",
    "objectives.attacks._lira_offline",
    "objectives.attacks._lira_online",
    "objectives.exposure",
    "objectives.dp_bounds",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0


def test_every_public_name_is_exported() -> None:
    for name in objectives.__all__:
        assert hasattr(objectives, name), name


def test_imports_neither_torch_nor_the_other_packages() -> None:
    code = (
        "import sys, objectives, objectives.attacks;"
        "bad = [m for m in ('torch', 'tuner', 'defenses', 'opacus') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
