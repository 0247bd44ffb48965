"""The defense settings one training run applies, and the recipe it trains with.

A :class:`DefenseConfig` is what privtune searches over and what it exports:
a plain, validated, serializable record. A :class:`TrainingRecipe` holds the
settings that are *not* defenses (epochs, batch size, learning rate, model
shape); the attacker who "knows the recipe" trains its reference models with
both.

Validation happens once, in ``__post_init__``; every problem is collected and
raised together as one :class:`InvalidDefenseError` whose message names the
field, the value received and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

ACCOUNTANTS = ("prv", "rdp")
OPTIMIZERS = ("sgd", "adam")


class InvalidDefenseError(ValueError):
    """A defense or recipe setting is outside what is allowed.

    ``problems`` holds one ``(field, message)`` pair per problem so that a
    caller (the tuner's config loader) can prefix its own key path.
    """

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in problems))


def _check_range(
    problems: list[tuple[str, str]],
    key: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Append a problem unless ``value`` is a number inside the interval."""
    kind = "an integer" if integer else "a number"
    left = "(" if low_open else "["
    right = ")" if high_open or high == math.inf else "]"
    allowed = f"{kind} in {left}{low:g}, {high:g}{right}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append((key, f"must be {allowed}, but got {value!r}"))
        return
    if integer and not float(value).is_integer():
        problems.append((key, f"must be {allowed}, but got {value!r}"))
        return
    if not math.isfinite(float(value)) and high != math.inf:
        problems.append((key, f"must be {allowed}, but got {value!r}"))
        return
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high or math.isnan(float(value)):
        problems.append((key, f"must be {allowed}, but got {value!r}"))


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD through Opacus: either a noise multiplier or a target epsilon.

    Args:
        noise_multiplier: σ, the std of the Gaussian noise relative to
            ``max_grad_norm``. Exactly one of ``noise_multiplier`` and
            ``target_epsilon`` is set.
        max_grad_norm: C, the per-sample gradient clipping bound.
        target_epsilon: ε to reach after the recipe's maximum epochs; Opacus
            (``make_private_with_epsilon``) finds σ.
        delta: δ of the (ε, δ) guarantee; ``None`` means 1/(10·n) for a
            training set of n records.
        accountant: ``"prv"`` (default) or ``"rdp"``.

    Example:
        >>> DPSettings(noise_multiplier=1.0, max_grad_norm=1.0).accountant
        'prv'
    """

    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    target_epsilon: float | None = None
    delta: float | None = None
    accountant: str = "prv"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidDefenseError(problems)

    def problems(self, prefix: str = "dp.") -> list[tuple[str, str]]:
        """Every problem with these settings, as ``(key, message)`` pairs."""
        out: list[tuple[str, str]] = []
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            out.append(
                (
                    f"{prefix}noise_multiplier",
                    "set exactly one of noise_multiplier and target_epsilon, but got "
                    f"noise_multiplier={self.noise_multiplier!r}, "
                    f"target_epsilon={self.target_epsilon!r}",
                )
            )
        if self.noise_multiplier is not None:
            _check_range(out, f"{prefix}noise_multiplier", self.noise_multiplier, low=0, low_open=True)
        if self.target_epsilon is not None:
            _check_range(out, f"{prefix}target_epsilon", self.target_epsilon, low=0, low_open=True)
        _check_range(out, f"{prefix}max_grad_norm", self.max_grad_norm, low=0, low_open=True)
        if self.delta is not None:
            _check_range(out, f"{prefix}delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        if self.accountant not in ACCOUNTANTS:
            out.append(
                (f"{prefix}accountant", f"must be one of {sorted(ACCOUNTANTS)}, but got {self.accountant!r}")
            )
        return out


@dataclass(frozen=True)
class DefenseConfig:
    """The defenses one training run applies; all off by default.

    Args:
        dp: DP-SGD settings, or ``None`` for non-private training.
        weight_decay: L2 penalty passed to the optimizer (0 = off).
        dropout: dropout probability in the model's hidden layers (0 = off).
        label_smoothing: label smoothing of the cross-entropy loss (0 = off).
        early_stopping_patience: stop after this many epochs without a
            validation-utility improvement and keep the best epoch's weights;
            ``None`` trains for the recipe's full epochs.

    Example:
        >>> d = DefenseConfig(weight_decay=1e-4)
        >>> DefenseConfig.from_dict(d.to_dict()) == d
        True
        >>> DefenseConfig().is_undefended
        True
    """

    dp: DPSettings | None = None
    weight_decay: float = 0.0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        _check_range(problems, "weight_decay", self.weight_decay, low=0)
        _check_range(problems, "dropout", self.dropout, low=0, high=1, high_open=True)
        _check_range(problems, "label_smoothing", self.label_smoothing, low=0, high=1, high_open=True)
        if self.early_stopping_patience is not None:
            _check_range(problems, "early_stopping_patience", self.early_stopping_patience, low=1, integer=True)
        if self.dp is not None and not isinstance(self.dp, DPSettings):
            problems.append(("dp", f"must be DPSettings or None, but got {self.dp!r}"))
        if problems:
            raise InvalidDefenseError(problems)

    @property
    def is_undefended(self) -> bool:
        """True when no defense is applied at all (the baseline)."""
        return self == DefenseConfig()

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict; :meth:`from_dict` reverses it exactly."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DefenseConfig":
        """Build from a dict, refusing unknown keys with a message naming them."""
        data = dict(data)
        _refuse_unknown(data, cls, "")
        dp = data.pop("dp", None)
        if dp is not None:
            if not isinstance(dp, Mapping):
                raise InvalidDefenseError([("dp", f"must be a mapping or null, but got {dp!r}")])
            _refuse_unknown(dict(dp), DPSettings, "dp.")
            dp = DPSettings(**dp)
        return cls(dp=dp, **data)

    def describe(self) -> str:
        """A short human summary, e.g. ``"DP σ=1.2 C=0.8, wd=1e-4"``."""
        parts = []
        if self.dp is not None:
            if self.dp.target_epsilon is not None:
                parts.append(f"DP ε≤{self.dp.target_epsilon:.3g} C={self.dp.max_grad_norm:.3g}")
            else:
                parts.append(f"DP σ={self.dp.noise_multiplier:.3g} C={self.dp.max_grad_norm:.3g}")
        if self.weight_decay:
            parts.append(f"wd={self.weight_decay:.2g}")
        if self.dropout:
            parts.append(f"dropout={self.dropout:.2f}")
        if self.label_smoothing:
            parts.append(f"ls={self.label_smoothing:.2f}")
        if self.early_stopping_patience is not None:
            parts.append(f"early stop p={self.early_stopping_patience}")
        return ", ".join(parts) if parts else "no defense"


@dataclass(frozen=True)
class TrainingRecipe:
    """How a model is trained apart from its defenses.

    Args:
        hidden_sizes: widths of the MLP's hidden layers.
        epochs: the maximum number of epochs (early stopping may end sooner).
        batch_size: expected batch size (with DP, Poisson sampling draws
            batches of this expected size).
        learning_rate: optimizer step size.
        optimizer: ``"sgd"`` (with momentum 0.9) or ``"adam"``.

    Example:
        >>> TrainingRecipe(epochs=5).batch_size
        64
    """

    hidden_sizes: tuple[int, ...] = (128,)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.05
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        problems: list[tuple[str, str]] = []
        for i, width in enumerate(self.hidden_sizes):
            _check_range(problems, f"hidden_sizes[{i}]", width, low=1, integer=True)
        _check_range(problems, "epochs", self.epochs, low=1, integer=True)
        _check_range(problems, "batch_size", self.batch_size, low=1, integer=True)
        _check_range(problems, "learning_rate", self.learning_rate, low=0, low_open=True)
        if self.optimizer not in OPTIMIZERS:
            problems.append(("optimizer", f"must be one of {sorted(OPTIMIZERS)}, but got {self.optimizer!r}"))
        if problems:
            raise InvalidDefenseError(problems)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict; :meth:`from_dict` reverses it exactly."""
        out = asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingRecipe":
        """Build from a dict, refusing unknown keys with a message naming them."""
        data = dict(data)
        _refuse_unknown(data, cls, "")
        return cls(**data)


def _refuse_unknown(data: dict[str, Any], cls: type, prefix: str) -> None:
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidDefenseError(
            [(f"{prefix}{key}", f"unknown key; allowed keys are {sorted(known)}") for key in unknown]
        )


__all__ = [
    "ACCOUNTANTS",
    "DPSettings",
    "DefenseConfig",
    "InvalidDefenseError",
    "OPTIMIZERS",
    "TrainingRecipe",
]
