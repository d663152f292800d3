"""Ctrl-C on a running ``attack``: the live status line, then the best result so far, written
and marked interrupted, and exit status 130 (``prunemip.cli.INTERRUPTED``)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prunemip import save_model
from prunemip.cli import INTERRUPTED
from tests.conftest import random_network

#: What the live display shows on a terminal while the search runs.
LIVE_HINT = b"Ctrl-C: stop"


def _read_until(fd: int, wanted: bytes, seconds: float) -> bytes:
    """Read the terminal's output until ``wanted`` appears, it closes, or ``seconds`` pass."""
    seen = b""
    deadline = time.monotonic() + seconds
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_ctrl_c_writes_the_best_result_so_far_and_exits_130(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    network = random_network(rng, [64, 100, 100, 10], 0.0)
    save_model(network, tmp_path / "net.npz")
    x0 = rng.random(64)
    np.save(tmp_path / "x.npy", x0)
    label = int(network.predict(x0))
    command = [sys.executable, "-m", "prunemip", "attack", "net.npz", "--input", "x.npy"]
    command += ["--label", str(label), "--norm", "l1", "--eps", "5", "--mode", "optimize"]
    command += ["--time-limit", "600", "--json", "a.json", "--png", ""]
    main_fd, child_fd = pty.openpty()  # a terminal, so the live display runs
    child = subprocess.Popen(
        command, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd, close_fds=True
    )
    os.close(child_fd)
    try:
        shown = _read_until(main_fd, LIVE_HINT, 120.0)
        assert LIVE_HINT in shown, shown.decode(errors="replace")
        assert b"target " in shown  # a line per target
        child.send_signal(signal.SIGINT)
        rest = _read_until(main_fd, b"prunemip: interrupted", 120.0)
        code = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(main_fd)
    text = (shown + rest).decode(errors="replace")
    assert code == INTERRUPTED, text
    assert "interrupted: the results above are the best found before Ctrl-C" in text
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["interrupted"] is True, result["status"]
    assert result["status"] in ("adversarial", "timeout")  # never a proof the search did not finish
    if result["status"] == "adversarial":  # the witness was re-checked: its margin is positive
        assert result["check_passed"] is True and result["margin"] > 0
