"""The reading machinery behind :mod:`tuner.config`: a problem collector and rule builders.

This private module holds the generic, config-agnostic half of validation: the
:class:`_Checker` that collects every problem as ``<key.path>: must be
<allowed>, but got <value>``, the ``_BAD`` marker that stands in for a value
that failed its check, the :class:`_Bound` number intervals, the rule builders
(``_num``, ``_flag``, ``_one_of``, ``_knob``, ``_section``, ...) that turn one
raw YAML value into a checked one, and the YAML loader that reads ``1e-6`` as a
float. It knows nothing of the config's sections, which
:mod:`tuner._config_reader` spells out; it lives apart from :mod:`tuner.config`
so that the public module stays a short list of dataclasses and entry points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tuner.config import Range

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


def _ok(*values: Any) -> bool:
    return all(v is not _BAD for v in values)
