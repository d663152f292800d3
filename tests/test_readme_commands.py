"""Every command of README.md's ```bash blocks runs as written, in a folder ``prunemip example`` filled.

The conventions (README.md's "Command line" section states the first two):

* The block holding ``prunemip example DIR && cd DIR`` is the set-up: it runs first, in a
  fresh temporary folder; every other command runs in ``DIR``, in the order of the page
  (``experiment report`` reads what ``experiment run`` wrote).
* A line whose comment starts with ``# long`` (training on Fashion-MNIST, a download, a real
  study, a Dask cluster) is not run; a line naming ``fashion-mnist`` runs only where that
  dataset is installed.
* ````` ```sh ````` blocks (installing prunemip, running this test suite) are shown, not run.
* A line is ``prunemip ARGS`` or ``cd DIR``, joined by ``&&`` and continued by a trailing
  backslash. ``prunemip ARGS`` runs in-process through :func:`prunemip.cli.main.main`, the
  console script's entry point (one interpreter start for the page instead of one per line),
  and must exit 0. Any other command fails the test until this file learns to run it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prunemip.cli.main import main
from prunemip.errors import PrunemipError
from prunemip.model_io import load_network
from prunemip.study.config import load_config
from prunemip.vnnlib import load_vnnlib

ROOT = Path(__file__).resolve().parents[1]
LONG = re.compile(r"#\s*long\b")


def bash_lines(text: str) -> list[list[str]]:
    """The command lines of each ```bash block (continuations joined, blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [[line for line in block.replace("\\\n", " ").splitlines() if line.strip()] for block in blocks]


BLOCKS = bash_lines((ROOT / "README.md").read_text(encoding="utf-8"))
SETUP = next((block for block in BLOCKS if any(line.startswith("prunemip example ") for line in block)), [])
COMMANDS = [line for block in BLOCKS if block is not SETUP for line in block]


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_line(line: str, cwd: Path) -> Path:
    """Run one README line from ``cwd``; returns the folder it ends in (after any ``cd``)."""
    words = shlex.split(line, comments=True)
    commands = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    for command in commands:
        if command[:1] == ["cd"] and len(command) == 2:
            cwd = (cwd / command[1]).resolve()
        elif command[:1] == ["prunemip"]:
            with working_directory(cwd):
                code = main(command[1:])
            assert code == 0, f"README line exited {code}: {line}"
        else:
            pytest.fail(f"README line {line!r}: tests/test_readme_commands.py runs only prunemip and cd")
    return cwd


def fashion_mnist_installed() -> bool:
    from prunemip.data import load_dataset

    try:
        load_dataset("fashion-mnist", "test")
    except PrunemipError:
        return False
    return True


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the set-up block ends in, holding the example files."""
    cwd = tmp_path_factory.mktemp("readme")
    for line in SETUP:
        cwd = run_line(line, cwd)
    return cwd


def test_the_readme_has_a_setup_block_and_commands() -> None:
    assert SETUP and SETUP[0].startswith("prunemip example ") and "&& cd " in SETUP[0]
    assert len(COMMANDS) >= 10
    assert not any(line.startswith(("python", ".venv", "pip")) for line in COMMANDS), "use ```sh"


def test_the_example_files_fit_the_readme(example_dir: Path) -> None:
    """The files the page names exist and agree: x.npy is classified as its label, the property
    is its L∞ box, the instances file lists model.onnx with it, the study config is valid."""
    network = load_network(example_dir / "model.onnx")
    assert network.input_spec.is_bounded and network.sparsity > 0.5
    x, label = np.load(example_dir / "x.npy"), int((example_dir / "label.txt").read_text())
    assert (
        network.predict(x.reshape(-1))
        == label
        == load_network(example_dir / "model.npz").predict(x.reshape(-1))
    )
    prop = load_vnnlib(example_dir / "prop.vnnlib")
    assert (prop.n_inputs, prop.n_outputs, len(prop.disjuncts)) == (64, 10, 9)
    assert not prop.satisfied_by(x.reshape(-1), network.forward(x.reshape(-1)))
    assert (example_dir / "instances.csv").read_text() == "model.onnx,prop.vnnlib,60\n"
    assert load_config(example_dir / "study.toml").dataset == "digits"
    assert load_network(example_dir / "dense.pt").sparsity == 0.0


@pytest.mark.parametrize(
    "line", COMMANDS, ids=[f"{n}-{line.split()[1]}" for n, line in enumerate(COMMANDS, 1)]
)
def test_readme_command_runs(line: str, example_dir: Path) -> None:
    if LONG.search(line):
        pytest.skip("marked # long in README.md")
    if "fashion-mnist" in line and not fashion_mnist_installed():
        pytest.skip("Fashion-MNIST is not installed")
    run_line(line, example_dir)
