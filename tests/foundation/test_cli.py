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


@pytest.mark.parametrize("args", [
    ["prune", "{missing}"],
    ["prune", "{missing}", "--dry-run"],
    ["adopt", "{missing}"],
    ["run", "--run", "{missing}", "--resume"],
    ["eval", "{missing}/epoch-0001"],
])
def test_a_missing_run_folder_is_named_in_one_line(tmp_path, args):
    """milo-train given a run (or checkpoint) folder that is not there says so, rather than that it holds
    nothing, and leaves nothing behind."""
    missing = tmp_path / "no-such-run"
    proc = run_module("training", *[a.format(missing=missing) for a in args])
    assert proc.returncode in (2, 3), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(missing) in lines[0] and "does not exist" in lines[0], lines[0]
    assert not missing.exists()


def test_prune_of_a_file_says_it_is_not_a_folder(tmp_path):
    file = tmp_path / "run.txt"
    file.write_text("")
    proc = run_module("training", "prune", str(file))
    assert proc.returncode == 3 and proc.stderr.strip() == f"milo-train: error: {file} is not a folder", proc.stderr


def test_no_flash_attn_banner_from_a_command(tmp_path):
    """qwen_tts prints a four-line flash-attn notice at import (a DGX Spark never has flash-attn);
    inference/qwen.py drops it, so a command that imports qwen_tts prints only its own lines."""
    proc = run_module("training", "tiny-model", str(tmp_path / "tiny"))
    assert proc.returncode == 0, proc.stderr
    assert "flash-attn" not in proc.stdout + proc.stderr and "********" not in proc.stdout + proc.stderr
    assert proc.stderr.strip() == "" and proc.stdout.strip().startswith("tiny Qwen3-TTS Base model written to")


def test_what_qwen_tts_prints_besides_the_notice_still_shows():
    from inference.qwen import _FLASH_ATTN_NOTICE

    notice = ("\n********\nWarning: flash-attn is not installed. Will only run the manual PyTorch version. Please "
              "install flash-attn for faster inference.\n********\n \n")
    assert _FLASH_ATTN_NOTICE.sub("", "before\n" + notice + "a real warning\n") == "before\na real warning\n"


def test_the_readme_says_where_the_commands_are():
    """The README's two set-up commands leave the console commands in .venv/bin, off PATH: it says so."""
    import re

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", setup, re.S).group(1)
    assert [line.split()[0] for line in block.splitlines() if line.strip()] == ["scripts/run.sh", "scripts/test.sh"]
    assert "source .venv/bin/activate" in setup and ".venv/bin/milo-train " in setup
    assert "-m venv .venv" in (ROOT / "scripts" / "bootstrap.sh").read_text()  # where bootstrap puts them
