"""scripts/bootstrap.sh on a set-up machine: it checks without importing torch, and once it has seen the
setup whole, the next start checks in milliseconds without running Python at all; a change (torch gone,
pyproject.toml edited) is still noticed.

The venv is a stand-in: its python logs every call and runs pip as a no-op (nothing is installed), and
its torch package records being imported."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_binary

TORCH_INIT = "import pathlib; pathlib.Path(__file__).with_name('IMPORTED').write_text('torch was imported')\n"


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A checkout (scripts/bootstrap.sh, pyproject.toml) with a venv whose torch and project are installed."""
    need_binary("dpkg-query")
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", root / "scripts" / "bootstrap.sh")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    venv = root / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(TORCH_INIT)
    (venv / "bin").mkdir()
    python = venv / "bin" / "python"
    python.write_text(f"""#!/bin/sh
echo "$*" >> {venv}/calls
[ "$1 $2" = "-m pip" ] && exit 0
PYTHONPATH={site} exec {sys.executable} -S "$@"
""")
    python.chmod(0o755)
    shutil.copy(python, venv / "bin" / "milo-tui")
    (venv / ".milo-installed").write_text(hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    return root


def bootstrap(root: Path) -> float:
    started = time.monotonic()
    proc = subprocess.run(["bash", str(root / "scripts" / "bootstrap.sh")], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "installing Debian packages" not in proc.stderr, "run scripts/test.sh first: it installs them"
    return time.monotonic() - started


def calls(root: Path) -> list[str]:
    path = root / ".venv" / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_bootstrap_finds_torch_without_importing_it(checkout):
    bootstrap(checkout)
    torch = next((checkout / ".venv" / "lib").glob("python*/site-packages/torch"))
    assert not (torch / "IMPORTED").exists(), "bootstrap imported torch to see whether it is installed (2-7 s)"
    assert not [c for c in calls(checkout) if "pip" in c], calls(checkout)


def test_an_unchanged_setup_is_checked_without_python(checkout):
    bootstrap(checkout)
    before = calls(checkout)
    seconds = min(bootstrap(checkout) for _ in range(3))
    assert calls(checkout) == before, "the second start ran the venv's python"
    assert seconds < 0.5, f"an unchanged setup took {seconds:.2f} s to check"


def test_a_changed_setup_is_noticed(checkout):
    bootstrap(checkout)
    shutil.rmtree(next((checkout / ".venv" / "lib").glob("python*/site-packages/torch")))
    bootstrap(checkout)
    assert calls(checkout)[-1].startswith("-m pip install -q torch=="), calls(checkout)

    with open(checkout / "pyproject.toml", "a") as f:
        f.write("\n# a new dependency\n")
    bootstrap(checkout)
    assert any(c.startswith("-m pip install -q -e .[engine,test]") for c in calls(checkout)), calls(checkout)
