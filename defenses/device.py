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


# Below this many parameters a training step is too small to split across
# threads; the threads mostly wait on each other. On 2 CPU cores shared with
# other jobs, one default digits trial (9.6k parameters: target and two
# reference models) took 0.4 s with one thread and 11–32 s with two,
# interleaved repeats of tuner.trial.evaluate_defense.
SMALL_MODEL_PARAMETERS = 1_000_000


def cpu_threads(setting: int | str, *, n_parameters: int) -> int:
    """Intra-op threads for training on the CPU.

    Args:
        setting: ``"auto"`` — one thread for models under
            :data:`SMALL_MODEL_PARAMETERS` parameters, else torch's own
            default (one per core) — or an explicit count ``N >= 1``.
        n_parameters: trainable parameters of the model.

    Example:
        >>> cpu_threads("auto", n_parameters=9_610)
        1
        >>> cpu_threads(4, n_parameters=9_610)
        4
    """
    if setting == "auto":
        return 1 if n_parameters < SMALL_MODEL_PARAMETERS else torch.get_num_threads()
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be 'auto' or an integer >= 1, but got {setting!r}")
    return setting


__all__ = ["DEVICE_FORMS", "SMALL_MODEL_PARAMETERS", "cpu_threads", "resolve_device"]
