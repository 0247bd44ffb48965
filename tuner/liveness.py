"""Which worker runs a trial, and whether that worker is dead.

A ``privtune tune`` killed mid-trial (SIGKILL, a crash, a lost machine)
leaves its trial RUNNING in the study. Two rules fail such a trial so that
its slot is run again and nothing waits for it forever:

* its heartbeat is older than the storage's grace period (any machine:
  Optuna's ``fail_stale_trials``, see :mod:`tuner.storage`);
* it was started by a process of *this* machine (same host name, boot and
  PID namespace) that no longer exists — then it is failed at once, so a
  rerun after a kill does not wait out the grace period.

The second rule only trusts what it can check: a process is identified by
its PID and its start time (Linux ``/proc``), so a reused PID is not taken
for the dead worker; without ``/proc`` only the heartbeat rule applies.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna

WORKER_ATTR = "privtune:worker"  # trial system attribute: the worker that runs the trial


def this_worker() -> dict[str, Any]:
    """The identity of this process, as stored with each trial it runs."""
    return {
        "host": socket.gethostname(),
        "boot": _read(Path("/proc/sys/kernel/random/boot_id")),
        "pid_namespace": _pid_namespace(),
        "pid": os.getpid(),
        "started": _start_time(os.getpid()),
    }


def is_dead_here(worker: dict[str, Any] | None) -> bool:
    """True when ``worker`` ran on this machine and its process is gone.

    False whenever that cannot be known for sure (another machine, another
    PID namespace, no ``/proc``): those trials wait for the heartbeat rule.
    """
    if not worker or worker.get("started") is None:
        return False
    here = this_worker()
    if any(worker.get(key) != here[key] for key in ("host", "boot", "pid_namespace")) or here["boot"] is None:
        return False
    return _start_time(int(worker["pid"])) != worker["started"]


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the study's RUNNING trials whose worker is dead; return their numbers.

    Call it inside the study's claim lock so two workers do not race to
    fail the same trial (the storage refuses the second one anyway).
    """
    running = (optuna.trial.TrialState.RUNNING,)
    before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # heartbeat older than the grace period
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=running):
        if is_dead_here(trial.system_attrs.get(WORKER_ATTR)):
            try:
                storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    return sorted(t.number for t in failed if t.number in before)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it is gone (or a zombie)."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if stat is None:
        return None
    # The command name (field 2) may hold spaces; fields after its ')' are fixed.
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return None
    return int(fields[19])  # field 22 of the line: starttime


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


__all__ = ["WORKER_ATTR", "fail_dead_trials", "is_dead_here", "this_worker"]
