"""The package surface: exports, one-way dependencies, and the docstring examples."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import defenses

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(defenses.__path__, "defenses."))


def test_all_names_exist() -> None:
    assert sorted(defenses.__all__) == sorted(set(defenses.__all__))
    for name in defenses.__all__:
        assert hasattr(defenses, name), name


def test_does_not_import_tuner_or_objectives() -> None:
    """Dependencies run one way: tuner -> defenses, never back."""
    for path in Path(defenses.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not {"tuner", "objectives"} & set(roots), f"{path.name} imports {roots}"


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
