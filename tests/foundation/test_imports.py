"""The dashboard process never imports torch, transformers or qwen_tts."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import milo_tui
from tests.conftest import python_env

HEAVY = ("torch", "transformers", "qwen_tts", "librosa", "torchaudio")


def _dashboard_modules() -> list[str]:
    # __main__ runs the dashboard when imported; it imports only milo_tui.cli, which is checked.
    return sorted(m.name for m in pkgutil.walk_packages(milo_tui.__path__, "milo_tui.") if not m.name.endswith("__main__"))


def test_importtime_of_the_app_lists_no_heavy_package():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import milo_tui.app, milo_tui.cli"],
                          capture_output=True, text=True, timeout=120, env=python_env())
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "textual" in imported, "the check must see the app's real imports"
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_the_first_frame_needs_no_numpy():
    """What the dashboard imports before its first frame (the app, its screens and widgets, its config) leaves
    numpy out: it costs 40 ms and 12 MiB of a 0.2 s start (bench/dashboard.py); the threads that start after
    the first frame may load it."""
    modules = ["milo_tui.cli", "milo_tui.app", "milo_tui.screens.runs", "milo_tui.screens.checkpoints",
               "milo_tui.screens.corpus", "milo_tui.widgets.charts", "milo_tui.widgets.tables", "milo_tui.config"]
    assert _pulled(modules, ("numpy",)) == []
    assert _pulled(modules + ["contract.audio"], ("numpy",)) != []  # the control: contract.audio brings it


def _pulled(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    """Which of `packages` a fresh interpreter has loaded after importing every one of `modules`."""
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(k for k in sys.modules if k.split('.')[0] in {packages!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=python_env())
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip())


def test_no_dashboard_module_pulls_a_heavy_package():
    modules = _dashboard_modules()
    assert "milo_tui.app" in modules and len(modules) >= 5
    assert _pulled(modules, HEAVY) == []
    assert "textual" in _pulled(modules, HEAVY + ("textual",))  # the control: the same check sees what is imported


def test_the_contract_package_pulls_no_heavy_package_and_no_textual():
    import contract

    modules = sorted(m.name for m in pkgutil.walk_packages(contract.__path__, "contract."))
    assert {"contract.runfolder", "contract.protocol", "contract.listen"} <= set(modules)
    assert _pulled(modules, HEAVY + ("textual", "milo_tui", "training", "inference")) == []
    assert "contract.listen" in _pulled(modules, ("contract",))  # the control: the same check sees what is imported


def test_the_audition_length_budget_pulls_no_heavy_package():
    """milo-say and the worker size an audition from its text before any model loads; tests read it without torch."""
    assert _pulled(["inference.budget"], HEAVY) == []
    assert "torch" in _pulled(["inference.engine"], HEAVY)  # the control: the engine itself brings torch
