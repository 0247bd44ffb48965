"""A forked helper process that runs one job at a time beside the main process.

A trial trains its target and the attacker's reference models; both are
small, single-threaded and independent, so on a machine with a second CPU
core the reference models can train in a second process while the target
trains in the first (see :mod:`tuner.references`). This module is only the
plumbing: fork once, send a request, collect the answer.

* The child is forked from the main process, so it shares everything the
  main process had built (data roles, config, model builders) without
  pickling any of it; only requests and answers cross the pipe, pickled.
* Answers arrive in order. A request whose answer was never collected (its
  trial was pruned or failed meanwhile) is drained before the next one.
* The child ignores Ctrl-C (the main process handles it), dies of SIGTERM, and ends when the
  main process closes the pipe or dies, even by SIGKILL: its next read of
  the pipe, or its next answer, fails, and it exits.
* If the child dies, :meth:`HelperProcess.submit` and
  :meth:`Pending.result` raise :class:`HelperGone`; the caller decides what
  to do instead.
* :meth:`Pending.abandon` tells the child that nobody waits for an answer
  any more (a pruned trial's reference models): work that calls
  :func:`raise_if_abandoned` now and then stops at its next call, so the
  next request does not wait for it. Through one shared counter, no signal.

Fork the helper before the main process starts threads of its own
(heartbeats, TensorBoard writers): a forked child gets only the forking
thread, and a lock another thread held at that moment stays held.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import traceback
import weakref
from multiprocessing.connection import Connection
from typing import Any, Callable


class HelperGone(RuntimeError):
    """The helper process has ended (killed, crashed or closed)."""


class Abandoned(RuntimeError):
    """Raised in the helper by :func:`raise_if_abandoned`: the main process gave up on this request."""


# In the helper: (the number of the request being worked on, the shared "abandoned up to" counter).
_current: tuple[int, Any] | None = None


def raise_if_abandoned() -> None:
    """In the helper, raise :class:`Abandoned` if the request being answered was abandoned.

    Does nothing in any other process, so work functions may call it
    wherever they run.
    """
    if _current is not None:
        number, abandoned = _current
        if abandoned.value >= number:
            raise Abandoned(f"request {number} was abandoned")


class HelperProcess:
    """A child process that answers ``work(request)`` for each request, one at a time.

    Args:
        work: the function the child runs on each request (a closure over
            the main process's state is fine: the child is a fork).

    Example:
        >>> helper = HelperProcess(lambda n: n * n)
        >>> helper.submit(12).result()
        144
        >>> helper.close()
    """

    def __init__(self, work: Callable[[Any], Any]) -> None:
        ours, theirs = multiprocessing.Pipe(duplex=True)
        context = multiprocessing.get_context("fork")
        # Requests numbered up to this value are abandoned (shared memory, written only here).
        self._abandoned = context.Value("q", 0, lock=False)
        self._process = context.Process(
            target=_serve, args=(work, theirs, ours, self._abandoned), name="privtune-helper", daemon=True
        )
        self._process.start()
        theirs.close()  # the child holds the other end: its death closes the pipe for us
        self._conn: Connection | None = ours
        self._sent = 0  # requests sent so far
        self._received = 0  # answers read so far (answers come in request order)
        self._finalizer = weakref.finalize(self, _close, ours, self._process)

    @property
    def alive(self) -> bool:
        return self._conn is not None and self._process.is_alive()

    def submit(self, request: Any) -> Pending:
        """Send ``request`` to the child; its answer is :meth:`Pending.result`."""
        conn = self._connection()
        if not self._process.is_alive():
            raise self._gone()
        while self._received < self._sent:  # an earlier answer nobody collected: discard it
            try:
                self._receive()
            except HelperGone:
                raise
            except Exception:  # noqa: BLE001 - the failure of a request nobody waits for
                pass
        try:
            conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, ConnectionError, OSError) as err:
            raise self._gone() from err
        self._sent += 1
        return Pending(self, self._sent)

    def close(self) -> None:
        """End the child (it exits when the pipe closes) and wait for it briefly."""
        self._conn = None
        self._finalizer()

    def _connection(self) -> Connection:
        if self._conn is None:
            raise HelperGone("the helper process was closed")
        return self._conn

    def _receive(self) -> Any:
        conn = self._connection()
        try:
            kind, payload, detail = pickle.loads(conn.recv_bytes())
        except (EOFError, BrokenPipeError, ConnectionError, OSError) as err:
            raise self._gone() from err
        self._received += 1
        if kind == "error":
            if hasattr(payload, "add_note"):  # Python 3.11+
                payload.add_note(f"raised in privtune's helper process:\n{detail}")
            raise payload
        return payload

    def _gone(self) -> HelperGone:
        self._process.join(timeout=1.0)
        code = self._process.exitcode
        self.close()
        return HelperGone(f"the helper process ended unexpectedly (exit code {code})")


class Pending:
    """The answer to one request, read from the pipe on :meth:`result`."""

    def __init__(self, helper: HelperProcess, number: int) -> None:
        self._helper = helper
        self._number = number  # this request's place in the helper's sequence
        self._done = False
        self._value: Any = None

    def result(self) -> Any:
        """The child's answer; re-raises what ``work`` raised there.

        Raises:
            HelperGone: the child ended before answering.
            RuntimeError: a later request was submitted first, which
                discarded this answer.
        """
        if not self._done:
            if self._helper._received >= self._number:
                raise RuntimeError("this answer was discarded when a later request was submitted")
            self._value = self._helper._receive()
            self._done = True
        return self._value

    def abandon(self) -> None:
        """Nobody will read this answer: let the work stop early (see :func:`raise_if_abandoned`).

        Harmless when the answer has already come; it is drained, unread,
        before the next request.
        """
        helper = self._helper
        if not self._done and helper._received < self._number:
            helper._abandoned.value = max(helper._abandoned.value, self._number)


def _serve(work: Callable[[Any], Any], conn: Connection, parents_end: Connection, abandoned: Any) -> None:
    """The child's loop: answer requests until the pipe closes."""
    global _current
    parents_end.close()  # else the child would keep its own pipe open after the parent dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the main process's handler (tuner.cli.run)
    number = 0
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        number += 1
        _current = (number, abandoned)
        try:
            answer: tuple[str, Any, str] = ("ok", work(request), "")
        except Exception as err:  # noqa: BLE001 - sent back and raised in the main process
            answer = ("error", err, traceback.format_exc())
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001 - an unpicklable answer or exception
            data = pickle.dumps(("error", RuntimeError(f"unpicklable answer: {err}"), ""))
        try:
            conn.send_bytes(data)
        except (BrokenPipeError, ConnectionError, OSError):
            break
    os._exit(0)  # skip the atexit handlers the child inherited from the main process


def _close(conn: Connection, process: multiprocessing.process.BaseProcess) -> None:
    conn.close()
    process.join(timeout=5.0)
    if process.is_alive():
        process.kill()
        process.join(timeout=1.0)


__all__ = ["Abandoned", "HelperGone", "HelperProcess", "Pending", "raise_if_abandoned"]
