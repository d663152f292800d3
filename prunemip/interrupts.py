"""Ctrl-C as a request to stop with the best result so far.

Long searches (an attack's MIPs, a property's branch and bound, a study's jobs) run inside
:func:`deferred`: the first Ctrl-C only sets a process-wide flag, which every stage polls
(:func:`requested`: the falsifier between steps, branch and bound between batches, HiGHS in
its MIP interrupt callback), so the search returns what it has, marked interrupted, and its
caller writes it. A second Ctrl-C raises ``KeyboardInterrupt`` at once. Outside
:func:`deferred`, or off the main thread (where signal handlers cannot be set), Ctrl-C is
Python's ``KeyboardInterrupt`` as usual and :func:`requested` stays False.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

_requested = threading.Event()
_watching = threading.Event()


def requested() -> bool:
    """Whether Ctrl-C asked the running search to stop (inside :func:`deferred`).

    Returns:
        True after the first Ctrl-C, until :func:`deferred` exits.
    """
    return _requested.is_set()


def watching() -> bool:
    """Whether a search runs inside :func:`deferred` (solvers only poll :func:`requested` then).

    Returns:
        True inside :func:`deferred`.
    """
    return _watching.is_set()


def stopping(cancel: Callable[[], bool] | None = None) -> bool:
    """Whether a search should stop now: Ctrl-C asked it to, or its caller's ``cancel`` says so
    (a search racing another that settled the question).

    Args:
        cancel: the caller's own stop condition, or None.

    Returns:
        True to stop.
    """
    return _requested.is_set() or (cancel is not None and cancel())


def request() -> None:
    """Ask the running search to stop, as a first Ctrl-C does (for callers without a terminal)."""
    _requested.set()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Turn the first Ctrl-C into a stop request; a second one raises ``KeyboardInterrupt``.

    The flag is cleared on entry and on exit, so one interrupted search does not stop the next.

    Yields:
        Nothing; poll :func:`requested`.
    """
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if _requested.is_set():
            raise KeyboardInterrupt
        _requested.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    _watching.set()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _watching.clear()
        _requested.clear()
