"""The built wheel installs into a fresh virtual environment and works there.

``encoders/`` and ``solvers/`` sit at the top of the repository but must install only as
``prunemip.encoders`` and ``prunemip.solvers``. The fresh environment borrows the
current environment's third-party packages through a ``.pth`` file (so the test needs
no network and no second torch install) and installs the wheel with ``--no-deps``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            "-q",
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("prunemip-*.whl")
    return built


def _source_packages() -> set[str]:
    """Every package of the source tree, as installed: prunemip/…, encoders/ and solvers/ under prunemip."""
    packages = {
        "/".join(init.relative_to(ROOT).parent.parts) for init in (ROOT / "prunemip").rglob("__init__.py")
    }
    for top in ("encoders", "solvers"):
        packages |= {
            "/".join(("prunemip", *init.relative_to(ROOT).parent.parts))
            for init in (ROOT / top).rglob("__init__.py")
        }
    return packages


def test_wheel_holds_every_package_only_under_prunemip(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert shipped == _source_packages()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))
    }
    assert top_level == {"prunemip"}
    for module in ("prunemip/encoders/bigm.py", "prunemip/solvers/highs.py", "prunemip/cli/__init__.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "prunemip = prunemip.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_works_in_a_fresh_virtual_environment(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    site = Path(subprocess.run(purelib, check=True, capture_output=True, text=True).stdout.strip())
    # Third-party packages come from the current environment; prunemip itself must not.
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    check = (
        "import prunemip, prunemip.encoders.bigm, prunemip.solvers.highs, importlib.util as u;"
        "assert u.find_spec('encoders') is None and u.find_spec('solvers') is None;"
        "print(prunemip.__file__)"
    )
    installed = subprocess.run(
        [str(python), "-c", check], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.strip()
    assert Path(installed).is_relative_to(site), installed
    script = env_dir / "bin" / "prunemip"
    completed = subprocess.run(
        [str(script), "encode", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    assert "prunemip encode model.pt" in completed.stdout
