"""The Optuna search space over defenses, built from the config's ``search_space``.

Each trial's parameters map to one :class:`~defenses.config.DefenseConfig`.
Optuna parameter names:

* ``dp`` (on/off, only when ``search_space.dp.use`` is ``[false, true]``);
  when on: ``noise_multiplier`` or, in ε mode, ``target_epsilon``; and
  ``max_grad_norm``;
* ``weight_decay``, ``dropout``, ``label_smoothing``;
* ``early_stopping`` (on/off, like ``dp``); when on: ``patience``.

Fixed knobs are not suggested and removed knobs give their off value.

**The undefended baseline.** A regularization range that excludes the
knob's off value 0 (weight decay's default log range 1e-6..0.1 must, since a
log range cannot hold 0) gets an on/off switch parameter ``<knob>_on``, with
the value suggested only when the switch is on. So every searched knob can
be off, and :meth:`SearchSpace.baseline_params` (all switches off, linear
ranges at 0) is a point *inside* the space: the baseline is an ordinary
trial, every sampler sees its parameters in range (NSGA-II's intersection
search space keeps them), and ``skip_if_exists`` finds it again when a study
resumes. A space that forces a defense (``use: [true]``) or fixes a non-zero
knob cannot hold the baseline; :meth:`SearchSpace.enqueue_baseline` covers
that case too by marking the trial with the user attribute
:data:`BASELINE_ATTR`, which makes :meth:`SearchSpace.suggest` return
``DefenseConfig()`` whatever the parameters.

Example:
    >>> import optuna
    >>> from tuner.config import SearchSpaceConfig
    >>> space = SearchSpace(SearchSpaceConfig())
    >>> space.suggest(optuna.trial.FixedTrial(space.baseline_params())).is_undefended
    True
"""

from __future__ import annotations

from typing import Any

import optuna

from defenses.config import DefenseConfig, DPSettings
from tuner.config import Knob, Range, SearchSpaceConfig

BASELINE_ATTR = "baseline"  # the same marker tuner.records reads
_REGULARIZERS = ("weight_decay", "dropout", "label_smoothing")


class SearchSpace:
    """Maps Optuna trials to defense configs within the configured ranges.

    Args:
        config: the validated ``search_space`` section.
    """

    def __init__(self, config: SearchSpaceConfig):
        self.config = config

    def suggest(self, trial: optuna.trial.BaseTrial) -> DefenseConfig:
        """The defense config for ``trial``, suggesting only the parameters in play.

        Parameters present in every trial (the switches and the linear
        regularization ranges) are suggested first, conditional ones after;
        a trial marked with :data:`BASELINE_ATTR` stops after the first group
        and returns ``DefenseConfig()``.
        """
        cfg = self.config
        dp_on = _switch(trial, "dp", cfg.dp.use)
        stop_on = _switch(trial, "early_stopping", cfg.early_stopping.use)
        regularizers: dict[str, float | None] = {}
        for name in _REGULARIZERS:
            knob = getattr(cfg, name)
            if _needs_switch(knob):
                regularizers[name] = (
                    None if trial.suggest_categorical(f"{name}_on", [False, True]) else 0.0
                )
            else:
                regularizers[name] = _value(trial, name, knob, off=0.0)
        if is_baseline(trial):
            return DefenseConfig()
        for name, value in regularizers.items():
            if value is None:  # switched on: suggest the value now
                regularizers[name] = _value(trial, name, getattr(cfg, name), off=0.0)
        dp = self._suggest_dp(trial) if dp_on else None
        patience = (
            int(_value(trial, "patience", cfg.early_stopping.patience, off=0)) if stop_on else None
        )
        return DefenseConfig(dp=dp, early_stopping_patience=patience, **regularizers)

    def _suggest_dp(self, trial: optuna.trial.BaseTrial) -> DPSettings:
        dp = self.config.dp
        if dp.target_epsilon is not None:
            sigma, epsilon = None, _value(trial, "target_epsilon", dp.target_epsilon, off=0.0)
        else:
            sigma, epsilon = _value(trial, "noise_multiplier", dp.noise_multiplier, off=0.0), None
        return DPSettings(
            noise_multiplier=sigma,
            max_grad_norm=_value(trial, "max_grad_norm", dp.max_grad_norm, off=0.0),
            target_epsilon=epsilon,
            delta=dp.delta,
            accountant=dp.accountant,
        )

    def baseline_params(self) -> dict[str, Any]:
        """Parameters for ``study.enqueue_trial`` that make :meth:`suggest` return ``DefenseConfig()``.

        Every searched switch off and every linear regularization range at 0.
        Enough on its own when :attr:`holds_baseline`; otherwise use
        :meth:`enqueue_baseline`.
        """
        cfg = self.config
        params: dict[str, Any] = {}
        if len(cfg.dp.use) > 1:
            params["dp"] = False
        for name in _REGULARIZERS:
            knob = getattr(cfg, name)
            if _needs_switch(knob):
                params[f"{name}_on"] = False
            elif isinstance(knob, Range):
                params[name] = 0.0
        if len(cfg.early_stopping.use) > 1:
            params["early_stopping"] = False
        return params

    @property
    def holds_baseline(self) -> bool:
        """True when the undefended config is a point of this space."""
        cfg = self.config
        fixed_on = [
            getattr(cfg, name)
            for name in _REGULARIZERS
            if not isinstance(getattr(cfg, name), Range)
        ]
        return False in cfg.dp.use and False in cfg.early_stopping.use and not any(fixed_on)

    def enqueue_baseline(self, study: optuna.Study) -> None:
        """Enqueue the undefended baseline.

        The caller decides whether the study needs it (:meth:`tuner.study.SharedStudy.claim`
        does, under the workers' lock: once, and again only if the baseline's run failed).
        """
        study.enqueue_trial(self.baseline_params(), user_attrs={BASELINE_ATTR: True})

    def describe(self) -> list[str]:
        """One line per defense, for the dry-run output."""
        cfg = self.config
        dp = cfg.dp
        if dp.use == (False,):
            dp_line = "DP-SGD: off"
        else:
            how = "searched on/off" if len(dp.use) > 1 else "always on"
            if dp.target_epsilon is not None:
                noise = f"target ε {_describe(dp.target_epsilon)}"
            else:
                noise = f"noise multiplier σ {_describe(dp.noise_multiplier)}"
            delta = "1/(10·members)" if dp.delta is None else f"{dp.delta:g}"
            dp_line = (
                f"DP-SGD: {how}; {noise}; max grad norm C {_describe(dp.max_grad_norm)}; "
                f"δ {delta}; accountant {dp.accountant}"
            )
        lines = [dp_line]
        for name in _REGULARIZERS:
            knob = getattr(cfg, name)
            prefix = "off or " if _needs_switch(knob) else ""
            lines.append(f"{name.replace('_', ' ')}: {prefix}{_describe(knob)}")
        stop = cfg.early_stopping
        if stop.use == (False,):
            lines.append("early stopping: off")
        else:
            how = "searched on/off" if len(stop.use) > 1 else "always on"
            lines.append(f"early stopping: {how}; patience {_describe(stop.patience)} epochs")
        if not self.holds_baseline:
            lines.append(
                "baseline: outside this space (forced or fixed defenses); enqueued as a marked trial"
            )
        return lines


def is_baseline(trial: optuna.trial.BaseTrial | optuna.trial.FrozenTrial) -> bool:
    """True for the trial enqueued by :meth:`SearchSpace.enqueue_baseline`."""
    return bool(trial.user_attrs.get(BASELINE_ATTR, False))


def _needs_switch(knob: Knob) -> bool:
    """A searched range that cannot hold the off value 0 gets an on/off switch."""
    return isinstance(knob, Range) and knob.low > 0


def _switch(trial: optuna.trial.BaseTrial, name: str, use: tuple[bool, ...]) -> bool:
    if len(use) > 1:
        return bool(trial.suggest_categorical(name, [False, True]))
    return use[0]


def _value(trial: optuna.trial.BaseTrial, name: str, knob: Knob, *, off: float) -> float:
    """A searched knob is suggested, a fixed one returned, a removed one is ``off``."""
    if isinstance(knob, Range):
        if isinstance(knob.low, int) and isinstance(knob.high, int):
            return trial.suggest_int(name, knob.low, knob.high, log=knob.log)
        return trial.suggest_float(name, knob.low, knob.high, log=knob.log)
    return off if knob is None else knob


def _describe(knob: Knob) -> str:
    if isinstance(knob, Range):
        kind = "log-uniform" if knob.log else "uniform"
        return f"{kind} in [{knob.low:g}, {knob.high:g}]"
    return "off" if knob is None else f"fixed at {knob:g}"


__all__ = ["BASELINE_ATTR", "SearchSpace", "is_baseline"]
