"""Turning the config's ``device`` string into a ``torch.device``.

One function so that the tuner, the tests and a user's script agree on what
``"auto"`` means and fail the same way when CUDA is asked for but missing
(silently training on the CPU would make a GPU run's timings meaningless).
"""

from __future__ import annotations

import re

import torch

DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N")

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str) -> torch.device:
    """Resolve ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Args:
        spec: ``"auto"`` picks CUDA when it is available and the CPU otherwise;
            the other forms name the device.

    Returns:
        The device to train and predict on.

    Raises:
        ValueError: ``spec`` is not one of the forms above, or it asks for
            CUDA (or a CUDA index) this machine does not have.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if not isinstance(spec, str):
        raise ValueError(f"device must be one of {list(DEVICE_FORMS)}, but got {spec!r}")
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ValueError(f"device must be one of {list(DEVICE_FORMS)}, but got {spec!r}")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {spec!r} needs CUDA, but CUDA is not available on this machine; "
            "use 'cpu' or 'auto'"
        )
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(
            f"device {spec!r} does not exist: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return torch.device("cuda", index)


__all__ = ["DEVICE_FORMS", "resolve_device"]
