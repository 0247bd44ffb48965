"""The forked helper process: answers in order, errors carried back, and no orphan left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tuner.helper_process import Abandoned, HelperGone, HelperProcess, raise_if_abandoned


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once no process ``pid`` runs (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def test_answers_come_from_another_process_in_request_order():
    helper = HelperProcess(_square_and_pid)
    try:
        first, second = helper.submit(3), helper.submit(4)  # the first is drained, unread, by the second
        assert second.result() == (16, helper._process.pid) and helper._process.pid != os.getpid()
        with pytest.raises(RuntimeError, match="discarded when a later request was submitted"):
            first.result()
        assert helper.submit(5).result()[0] == 25
    finally:
        helper.close()
    assert not helper.alive and _gone(helper._process.pid)


def _fails(n: int) -> int:
    raise ValueError(f"no square for {n}")


def test_an_exception_in_the_child_is_raised_here_with_its_type_and_message():
    helper = HelperProcess(_fails)
    try:
        with pytest.raises(ValueError, match="no square for 7"):
            helper.submit(7).result()
        with pytest.raises(ValueError, match="no square for 8"):  # the helper keeps serving
            helper.submit(8).result()
    finally:
        helper.close()


def _polls_until_abandoned(steps: int) -> str:
    """Work that checks for abandonment between steps, as the reference-model epochs do."""
    for _ in range(steps):
        raise_if_abandoned()
        time.sleep(0.01)
    return "finished"


def test_abandoned_work_stops_at_its_next_check_and_the_helper_serves_on():
    helper = HelperProcess(_polls_until_abandoned)
    try:
        assert helper.submit(3).result() == "finished"  # not abandoned: runs to the end
        long = helper.submit(100_000)  # about 17 minutes of steps unless abandoned
        long.abandon()
        with pytest.raises(Abandoned, match="request 2 was abandoned"):
            long.result()
        assert helper.submit(2).result() == "finished"  # later requests are not abandoned
        done = helper.submit(1)
        assert done.result() == "finished"
        done.abandon()  # after its answer came: nothing to stop
        assert helper.submit(1).result() == "finished"
    finally:
        helper.close()


def test_raise_if_abandoned_does_nothing_outside_the_helper():
    raise_if_abandoned()


def test_a_killed_helper_is_reported_as_gone():
    helper = HelperProcess(_square_and_pid)
    os.kill(helper._process.pid, signal.SIGKILL)
    assert _gone(helper._process.pid)
    with pytest.raises(HelperGone, match=r"ended unexpectedly \(exit code -9\)"):
        helper.submit(2).result()
    assert not helper.alive


PARENT = textwrap.dedent(
    """
    import sys, time
    from tuner.helper_process import HelperProcess
    helper = HelperProcess(lambda seconds: time.sleep(seconds))
    if sys.argv[1] == "busy":
        helper.submit(3.0)  # the child is working when this process dies
    print(helper._process.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_helper_ends_when_its_parent_is_killed(tmp_path, state):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), state], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child, timeout=0.2)  # it runs while its parent does
    finally:
        parent.kill()
        parent.wait()
    assert _gone(child, timeout=10.0), f"helper {child} outlived its killed parent ({state})"
