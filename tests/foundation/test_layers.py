"""The layers of docs/architecture.md, as import-linter contracts in pyproject.toml: the contract package
imports none of the three, the dashboard neither engine, the engines not the dashboard, the trainer the
audition engine only through inference.qwen, and no two modules of one package import each other.

Each contract is also shown to fire: a copy of the packages with one wrong-way import added must break
exactly that contract."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, python_env

PACKAGES = ("contract", "milo_tui", "training", "inference")
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = python_env(PYTHONPATH=str(cwd), NO_COLOR="1")
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_the_checkout_keeps_every_contract():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 kept, 0 broken" in proc.stdout, proc.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The four packages and pyproject.toml, sources only, in a folder of their own."""
    root = tmp_path_factory.mktemp("layers")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize("module, line, broken", [
    ("contract/_wrong.py", "import milo_tui.config\n", "contract imports none of the three"),
    ("contract/_wrong.py", "def f():\n    import torch\n", "contract imports none of the three"),
    ("milo_tui/_wrong.py", "def f():\n    from inference import engine\n", "the dashboard imports neither engine"),
    ("inference/_wrong.py", "import milo_tui.runs\n", "the engines do not import the dashboard"),
    ("training/_wrong.py", "from inference import engine\n", "the trainer imports the audition engine only"),
    ("inference/_wrong.py", "from training import data\n", "the audition engine does not import the trainer"),
    ("inference/sampling.py", "from inference import engine\n", "no import cycles"),
])
def test_a_wrong_way_import_breaks_its_contract(tree_copy, module, line, broken):
    path = tree_copy / module
    before = path.read_text() if path.exists() else None
    path.write_text((before or "") + "\n" + line)
    try:
        proc = _lint(tree_copy)
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"{broken}" in out and "1 broken" in out, proc.stdout
    # The broken one is named in the summary with BROKEN; every other contract is still KEPT.
    summary = [m.group(1) for l in proc.stdout.splitlines() if (m := re.search(r"(KEPT|BROKEN)( \(.*\))?$", l))]
    assert summary.count("BROKEN") == 1 and summary.count("KEPT") == 5, proc.stdout
