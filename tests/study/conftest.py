"""Real processes for the study tests: ``prunemip`` and Dask's own command lines, each in a
session of its own (so a test can send Ctrl-C to a whole process group, as a terminal does),
every one of them killed with its children when the test ends, whatever its outcome."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: The virtual environment's scripts: ``prunemip``, ``dask``.
BIN = Path(sys.executable).parent

Start = Callable[[list[str], Path], subprocess.Popen]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def start() -> Iterator[Start]:
    """``start(command, log)`` runs ``command`` in its own session from ``log``'s folder, its
    stdout in ``log`` and its stderr in ``log`` with suffix ``.err``."""
    started: list[subprocess.Popen] = []

    def run(command: list[str], log: Path) -> subprocess.Popen:
        with log.open("wb") as output, log.with_suffix(".err").open("wb") as errors:
            process = subprocess.Popen(
                command, stdout=output, stderr=errors, start_new_session=True, cwd=log.parent
            )
        started.append(process)
        return process

    yield run
    for process in reversed(started):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
