"""EarlyStopping on its own, as a user's loop would use it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defenses import EarlyStopping


def test_stops_after_patience_non_improving_epochs() -> None:
    stopper = EarlyStopping(patience=2)
    assert [stopper.step(v) for v in [0.5, 0.7, 0.6, 0.65]] == [False, False, False, True]
    assert (stopper.best_epoch, stopper.best_value, stopper.bad_epochs) == (2, 0.7, 2)


def test_ties_do_not_improve_and_min_delta_is_a_margin() -> None:
    stopper = EarlyStopping(patience=3, min_delta=0.05)
    for value in [0.5, 0.5, 0.54, 0.56]:
        stopper.step(value)
    assert (stopper.best_epoch, stopper.best_value) == (4, 0.56)


def test_min_mode() -> None:
    stopper = EarlyStopping(patience=1, mode="min")
    assert [stopper.step(v) for v in [3.0, 2.0, 2.5]] == [False, False, True]
    assert stopper.best_epoch == 2


def test_nan_never_improves() -> None:
    stopper = EarlyStopping(patience=2)
    assert [stopper.step(v) for v in [float("nan"), 0.3, float("nan"), float("nan")]] == [
        False,
        False,
        False,
        True,
    ]
    assert stopper.best_epoch == 2


def test_restore_brings_back_the_best_weights() -> None:
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=5)
    with torch.no_grad():
        model.weight.fill_(1.0)
        stopper.step(0.9, model)
        model.weight.fill_(2.0)  # a worse epoch
        stopper.step(0.8, model)
    stopper.restore(model)
    assert torch.equal(model.weight, torch.ones(1, 2))


def test_snapshot_is_a_copy() -> None:
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=1)
    stopper.step(1.0, model)
    with torch.no_grad():
        model.weight.add_(5.0)
    stopper.restore(model)
    assert model.weight.abs().max() < 5.0


def test_restore_without_a_snapshot() -> None:
    stopper = EarlyStopping(patience=1)
    stopper.step(0.5)
    with pytest.raises(RuntimeError, match="pass the model to step"):
        stopper.restore(nn.Linear(2, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 0}, "patience must be an integer >= 1, but got patience=0"),
        ({"patience": 2, "mode": "up"}, "mode must be one of ['max', 'min'], but got mode='up'"),
        ({"patience": 2, "min_delta": -1}, "min_delta must be a number >= 0, but got min_delta=-1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        EarlyStopping(**kwargs)
    assert str(info.value) == message


def test_repr() -> None:
    stopper = EarlyStopping(patience=3)
    stopper.step(0.25)
    assert (
        repr(stopper)
        == "EarlyStopping(patience=3, mode='max', best_value=0.25, best_epoch=1, bad_epochs=0)"
    )
