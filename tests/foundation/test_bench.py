"""Every benchmark still runs: each bench/*.py in its smallest setting (`--quick`) as a real process, and the
GPU scripts (bench/gpu_*.sh, which need a GPU) checked for syntax and for calling scripts and flags that exist.
Nothing else runs the benchmarks, so without this a broken one goes unnoticed until someone needs its numbers.
The figures themselves are not checked: docs/benchmarks.md keeps those."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, need_binary, python_env

BENCH = ROOT / "bench"
# Each script with the programs it needs beyond the venv. Those over about 20 s here (2 shared cores) are
# marked slow; the suite runs them all the same (scripts/test.sh deselects nothing).
SLOW = pytest.mark.slow
SCRIPTS = [
    pytest.param("adopt.py", (), id="adopt"),                                        # under 1 s
    pytest.param("audition_latency.py", (), id="audition_latency"),                  # about 15 s
    pytest.param("before_after.py", (), id="before_after"),                          # a few s: --help of each
    pytest.param("corpus_audit.py", ("text2wave",), marks=SLOW, id="corpus_audit"),  # 25 s: every audit model
    pytest.param("dashboard.py", (), id="dashboard"),                                # 20 s: six app processes
    pytest.param("recognizer.py", ("text2wave",), id="recognizer"),                  # about 25 s: a tiny model's babble
    pytest.param("record_checks.py", ("text2wave",), id="record_checks"),            # about 15 s: the checker's models
    pytest.param("scoring.py", (), marks=SLOW, id="scoring"),                        # 45-85 s: prepare, 3 runs, scorer
    pytest.param("serve.py", (), marks=SLOW, id="serve"),                            # 25 s: two servers
    pytest.param("start.py", ("tmux",), id="start"),                                 # about 20 s: makes a demo
    pytest.param("start_policy.py", ("pulseaudio", "pactl", "parec"), id="start_policy"),  # about 10 s
    pytest.param("train_throughput.py", (), marks=SLOW, id="train_throughput"),      # 25 s: two model builds
    pytest.param("two_hosts.py", (), id="two_hosts"),                                # about 20 s: two tiny runs
]


def test_every_bench_script_is_run_here():
    assert sorted(p.name for p in BENCH.glob("*.py")) == [case.values[0] for case in SCRIPTS]


@pytest.mark.parametrize("script, needs", SCRIPTS)
def test_bench_runs_in_its_smallest_setting(script, needs, tmp_path):
    for binary in needs:
        need_binary(binary)
    if script == "start.py" and not (ROOT / ".venv" / "bin" / "milo-tui").exists():
        pytest.skip("bench/start.py times this checkout's scripts/run.sh, which needs the checkout's own .venv")
    args = ["--quick"] + (["--work", str(tmp_path / "work")] if script in ("dashboard.py", "start.py") else [])
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=400, env=python_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    assert "Traceback" not in proc.stderr and proc.stdout.strip(), proc.stderr[-4000:]


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.sh")))
def test_gpu_script_parses_and_calls_what_exists(script):
    """A GPU script cannot run here: bash -n, and each bench/X.py it calls exists and knows every flag given."""
    path = BENCH / script
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text().replace("\\\n", " ")
    calls = re.findall(r"(bench/\w+\.py)([^>\n]*)", text)
    assert calls, f"{script} runs no benchmark"
    helps = {}
    for name, rest in calls:
        assert (ROOT / name).is_file(), f"{script} calls {name}, which does not exist"
        if name not in helps:
            helps[name] = subprocess.run([sys.executable, str(ROOT / name), "--help"], capture_output=True, text=True,
                                         env=python_env(), timeout=60).stdout
        for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", rest):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[name]), f"{script}: {name} has no {flag}"
