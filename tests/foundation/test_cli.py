"""The console commands answer --help, and bad input gets one line and no traceback."""
from __future__ import annotations

import pytest

from tests.conftest import python_env, run_module


@pytest.mark.parametrize("module, words", [
    ("milo_tui", "demo workspace"),
    ("training", "tiny-model"),
])
def test_help(module, words):
    proc = run_module(module, "--help")
    assert proc.returncode == 0 and words in proc.stdout


def test_tiny_model_help():
    proc = run_module("training", "tiny-model", "--help")
    assert proc.returncode == 0 and "--seed" in proc.stdout


def test_bad_config_is_one_line_without_traceback(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('device = "tpu"\n')
    proc = run_module("milo_tui", "--print-config", env=python_env(MILO_CONFIG=str(cfg)))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "device 'tpu'" in proc.stderr


def test_print_config_on_demo(demo_workspace):
    proc = run_module("milo_tui", "--print-config", env=python_env(MILO_DEMO_DIR=str(demo_workspace.root)))
    assert proc.returncode == 0, proc.stderr
    assert str(demo_workspace.base) in proc.stdout and "(demo workspace)" in proc.stdout
