"""The user's own code named in the config: a model builder and a data loader.

A config names a Python callable as ``"module:function"`` (``module`` may be
dotted, ``function`` may be an attribute path such as ``Class.build``):

.. code-block:: yaml

    data:
      source: python
      loader: "mnist_data:load"      # returns arrays or torch Datasets
      options: {}                    # keyword arguments for the loader
    model:
      builder: "cnn:build_cnn"       # returns a torch.nn.Module
      options: {width: 16}           # keyword arguments for the builder

The module is imported with ``python_path`` (the section's key; by default the
config file's folder, or the current folder for a config without a file)
placed in front of ``sys.path``, so a module next to the config just works.
The folders stay on ``sys.path`` for the rest of the process, so the user's
module can import its siblings lazily.

**Loader contract.** ``loader(**options)`` returns one of

* ``(X, y)``: numeric features of shape ``(n, *input_shape)`` (numpy arrays
  or torch tensors) and one class label per row (integers >= 0);
* ``(X, y, X_test, y_test)``: the same plus a test split of your own, which
  becomes the test role (then ``data.roles.test`` must be 0);
* a ``torch.utils.data.Dataset`` whose items are ``(x, label)`` pairs, or a
  pair ``(train_dataset, test_dataset)``; the items are read once into
  memory.

Labels are mapped to class ids by their sorted distinct values.

**Builder contract.** ``builder(*, input_shape, n_classes, dropout,
**options)`` returns a fresh ``torch.nn.Module`` mapping float32 inputs of
shape ``(batch, *input_shape)`` to logits ``(batch, n_classes)``:

* ``input_shape``: the shape of one record as the loader returned it, e.g.
  ``(1, 28, 28)`` (privtune stores records flat and reshapes them in front of
  your model with ``nn.Unflatten``);
* ``n_classes``: the number of classes;
* ``dropout``: the dropout probability the trial searches; give it to every
  dropout layer of the model (:func:`defenses.prepare_training` sets that
  same probability on every dropout layer of your model in your own loop).

For DP-SGD the model must be one Opacus can train (no BatchNorm: use
GroupNorm or LayerNorm). :func:`check_target_model` builds the model once
before any training and refuses one that breaks the contract, with a
message naming the key.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.data import encode_test_labels
from tuner.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch import nn

    from tuner.config import DataConfig, RunConfig
    from tuner.data import LabelledData
    from tuner.roles import DataRoles

REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
REFERENCE_FORM = "'module:function' (e.g. 'mypkg.models:build_cnn')"
BUILDER_ARGUMENTS = ("input_shape", "n_classes", "dropout")


def search_path(python_path: Sequence[Path] | None, base_dir: Path | None) -> tuple[Path, ...]:
    """The folders a reference is imported from: ``python_path``, else the config's folder."""
    if python_path:
        return tuple(Path(p) for p in python_path)
    return ((base_dir or Path.cwd()).resolve(),)


def resolve_callable(reference: str, *, key: str, python_path: Sequence[Path]) -> Callable[..., Any]:
    """Import ``"module:function"`` and return the callable.

    Args:
        reference: the config value.
        key: the config key path, for messages (``"model.builder"``).
        python_path: folders put in front of ``sys.path`` before importing.

    Raises:
        ConfigError: malformed reference, missing folder or module, a module
            that fails to import, a missing attribute, or one that is not
            callable; the message names the key and the value.
    """
    return _resolve(reference, key, tuple(str(Path(p)) for p in python_path))


@lru_cache(maxsize=64)
def _resolve(reference: str, key: str, folders: tuple[str, ...]) -> Callable[..., Any]:
    if not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
        raise ConfigError(f"{key}: must be {REFERENCE_FORM}, but got {reference!r}")
    for folder in folders:
        if not Path(folder).is_dir():
            raise ConfigError(
                f"{key}: the folder {folder} to import {reference!r} from does not exist; "
                f"fix {key.split('.')[0]}.python_path"
            )
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module_name, attribute = reference.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise ConfigError(
                f"{key}: cannot import module {module_name!r} of {reference!r}: no such module in "
                f"{list(folders)} or on sys.path; put it there or set {key.split('.')[0]}.python_path"
            ) from None
        raise ConfigError(f"{key}: importing {module_name!r} of {reference!r} failed: {_describe(err)}") from None
    except Exception as err:  # the user's module raised while importing
        raise ConfigError(f"{key}: importing {module_name!r} of {reference!r} failed: {_describe(err)}") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ConfigError(
                f"{key}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no attribute "
                f"{attribute!r} of {reference!r}; its public callables are {names}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{key}: {reference!r} must name a callable, but it is a {type(target).__name__}")
    return target


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


# --- data --------------------------------------------------------------------


def load_python_data(spec: DataConfig, *, base_dir: Path | None = None) -> LabelledData:
    """Call ``data.loader`` and turn what it returns into a :class:`LabelledData`.

    Raises:
        ConfigError: the loader cannot be imported.
        DataError: the loader raised, or returned something outside the
            loader contract (the message says what it returned and what is
            expected).
    """
    from tuner.data import LabelledData

    reference = spec.loader
    loader = resolve_callable(
        reference or "", key="data.loader", python_path=search_path(spec.python_path, base_dir)
    )
    try:
        returned = loader(**dict(spec.options))
    except Exception as err:
        raise DataError(f"data.loader {reference!r} raised {_describe(err)}") from None
    train, test = _split_returned(returned, reference or "")
    X, y = _as_arrays(train, reference or "", "")
    classes, y_ids = np.unique(y, return_inverse=True)
    class_names = tuple(str(c) for c in classes)
    features = tuple(f"x{i}" for i in range(int(np.prod(X.shape[1:]))))
    name = spec.name or reference or "python"
    test_data = None
    if test is not None:
        X_test, y_test = _as_arrays(test, reference or "", "test ")
        if X_test.shape[1:] != X.shape[1:]:
            raise DataError(
                f"data.loader {reference!r}: the test records have shape {X_test.shape[1:]} but the "
                f"training records {X.shape[1:]}; both must describe records the same way"
            )
        test_data = LabelledData(
            X_test.reshape(len(X_test), -1),
            encode_test_labels(y_test, classes, where=f"data.loader {reference!r}", training="the training labels"),
            features,
            class_names,
            f"{name}/test",
            input_shape=tuple(X.shape[1:]),
        )
    elif spec.roles.test == 0:
        raise DataError(
            f"data.roles.test is 0 but data.loader {reference!r} returned no test split; return "
            "(X, y, X_test, y_test) or a pair of Datasets, or set data.roles.test > 0"
        )
    return LabelledData(
        X.reshape(len(X), -1), y_ids, features, class_names, name, test_data, input_shape=tuple(X.shape[1:])
    )


def _split_returned(returned: Any, reference: str) -> tuple[Any, Any]:
    """(train, test) parts: each a pair (X, y) or a Dataset; test may be None."""
    expected = (
        "(X, y), (X, y, X_test, y_test), a torch Dataset of (x, label) items, or a pair "
        "(train_dataset, test_dataset)"
    )
    if _is_dataset(returned):
        return returned, None
    if isinstance(returned, (tuple, list)):
        if len(returned) == 2 and all(_is_dataset(part) for part in returned):
            return returned[0], returned[1]
        if len(returned) == 2:
            return tuple(returned), None
        if len(returned) == 4:
            return tuple(returned[:2]), tuple(returned[2:])
        raise DataError(
            f"data.loader {reference!r}: must return {expected}, but returned a {type(returned).__name__} "
            f"of {len(returned)} items"
        )
    raise DataError(f"data.loader {reference!r}: must return {expected}, but returned {_kind(returned)}")


def _is_dataset(value: Any) -> bool:
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(value, Dataset)


def _kind(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"a {type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _as_arrays(part: Any, reference: str, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Numeric X of shape (n, ...) and integer labels y of shape (n,), checked."""
    if _is_dataset(part):
        part = _dataset_arrays(part, reference, which)
    X, y = (_to_numpy(v) for v in part)
    where = f"data.loader {reference!r}"
    if X.ndim < 2 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(
            f"{where}: {which}X must be a numeric array of shape (rows, ...features), but got {_kind(X)} "
            f"with dtype {X.dtype}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(
            f"{where}: {which}X has {len(X)} rows but {which}y has shape {tuple(y.shape)}; give one label per row"
        )
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(
                f"{where}: {which}y must hold integer class labels >= 0, but has dtype {y.dtype}"
            )
    if (y < 0).any():
        first = int(np.argmax(y < 0))
        raise DataError(f"{where}: {which}y must hold integer class labels >= 0, but row {first} has {y[first]}")
    return X.astype(np.float32, copy=False), y.astype(np.int64)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _dataset_arrays(dataset: Any, reference: str, which: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        n = len(dataset)
    except TypeError:
        raise DataError(
            f"data.loader {reference!r}: the {which}Dataset must have a length (a map-style Dataset)"
        ) from None
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(
                f"data.loader {reference!r}: {which}Dataset items must be (x, label) pairs, but item {i} "
                f"is {_kind(item)}"
            )
        label = _to_numpy(item[1])
        xs.append(_to_numpy(item[0]))
        ys.append(label.reshape(()) if label.size == 1 else label)
    if not xs:
        raise DataError(f"data.loader {reference!r}: the {which}Dataset is empty")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise DataError(
            f"data.loader {reference!r}: {which}Dataset items have different shapes {sorted(shapes)[:3]}; "
            "every record must have the same shape"
        )
    return np.stack(xs), np.stack(ys)


# --- model -------------------------------------------------------------------


def build_target_model(config: RunConfig, roles: DataRoles, *, dropout: float) -> nn.Module:
    """The model a trial trains: the built-in MLP, or the user's builder.

    The user's model gets records of shape ``(batch, *input_shape)``: privtune
    stores them flat, so a model whose records have more than one dimension
    is wrapped as ``nn.Sequential(nn.Unflatten(1, input_shape), model)``.
    """
    from torch import nn

    from defenses import build_mlp

    model_config = config.model
    if model_config.builder is None:
        return build_mlp(roles.n_features, roles.n_classes, hidden_sizes=config.recipe.hidden_sizes, dropout=dropout)
    base_dir = config.source.parent if config.source else None
    builder = resolve_callable(
        model_config.builder, key="model.builder", python_path=search_path(model_config.python_path, base_dir)
    )
    input_shape = tuple(roles.input_shape or (roles.n_features,))
    try:
        model = builder(
            input_shape=input_shape, n_classes=roles.n_classes, dropout=float(dropout), **dict(model_config.options)
        )
    except Exception as err:
        raise ConfigError(
            f"model.builder {model_config.builder!r} raised {_describe(err)} when called with "
            f"input_shape={input_shape}, n_classes={roles.n_classes}, dropout={float(dropout)!r}"
            + (f" and options {dict(model_config.options)}" if model_config.options else "")
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model.builder {model_config.builder!r} must return a torch.nn.Module, but returned {_kind(model)}"
        )
    if len(input_shape) > 1:
        return nn.Sequential(nn.Unflatten(1, input_shape), model)
    return model


def check_target_model(config: RunConfig, roles: DataRoles) -> None:
    """Build the user's model once and check the builder contract before any training.

    Checks that the builder accepts its arguments and returns a module whose
    output on two member records has shape ``(2, n_classes)``; that Opacus
    can train it when the search may turn DP-SGD on; and that the dropout
    argument reaches a dropout layer when the search varies dropout.

    Raises:
        ConfigError: naming ``model.builder`` and what to change.
    """
    if config.model.builder is None:
        return
    import torch

    from defenses import IncompatibleModelError, validate_model

    reference = config.model.builder
    base_dir = config.source.parent if config.source else None
    builder = resolve_callable(
        reference, key="model.builder", python_path=search_path(config.model.python_path, base_dir)
    )
    missing = builder_signature_problems(builder, config.model.options)
    if missing:
        raise ConfigError(
            f"model.builder {reference!r}: must accept the keyword arguments {list(BUILDER_ARGUMENTS)}"
            + (f" and model.options {sorted(config.model.options)}" if config.model.options else "")
            + f", but does not accept {missing}"
        )
    probe = _probe_dropout(config)
    model = build_target_model(config, roles, dropout=probe)
    sample = torch.from_numpy(np.ascontiguousarray(roles.members.X[:2], dtype=np.float32))
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as err:
        shape = tuple(roles.input_shape or (roles.n_features,))
        raise ConfigError(
            f"model.builder {reference!r}: the model fails on a batch of shape {(2, *shape)}: {_describe(err)}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, roles.n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"model.builder {reference!r}: the model must return logits of shape (batch, n_classes) = "
            f"(2, {roles.n_classes}), but returned {got}"
        )
    if True in config.search_space.dp.use:
        try:
            validate_model(model.train())
        except IncompatibleModelError as err:
            raise ConfigError(
                f"model.builder {reference!r}: {err}; or take DP-SGD out of the search "
                "(search_space.dp.use: [false])"
            ) from None
    if probe > 0:
        rates = sorted({float(m.p) for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)})
        if probe not in rates:
            raise ConfigError(
                f"model.builder {reference!r}: search_space.dropout is searched, but the model built with "
                f"dropout={probe} has no dropout layer with p={probe} (dropout rates found: {rates}); pass the "
                "dropout argument to your dropout layers, or set search_space.dropout: null"
            )


def _probe_dropout(config: RunConfig) -> float:
    """A dropout value inside the searched range (0 when dropout is not searched)."""
    from tuner.config import Range

    knob = config.search_space.dropout
    if isinstance(knob, Range):
        return float(knob.high) if knob.high > 0 else 0.0
    return float(knob or 0.0)


def builder_signature_problems(builder: Callable[..., Any], options: Mapping[str, Any]) -> list[str]:
    """Keyword arguments the builder cannot take (an empty list when it takes them all)."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return []
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [name for name in (*BUILDER_ARGUMENTS, *options) if name not in params]


__all__ = [
    "BUILDER_ARGUMENTS",
    "REFERENCE",
    "REFERENCE_FORM",
    "build_target_model",
    "check_target_model",
    "load_python_data",
    "resolve_callable",
    "search_path",
]
