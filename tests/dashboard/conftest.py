"""Fixtures of the dashboard tests: run folders written to the documented schema (metrics.jsonl v1,
state.json), the dashboard app with fake NVML / psutil at the hardware boundary, waiting helpers."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import json
import os
import random
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from contract.runfolder import append_records, record, write_json_atomic
from tests.dashboard.fakes import FakeNvml, FakePsutil

ASYNC_TEST_TIMEOUT = 240  # s, for one Pilot test
FIXED_NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: the snapshot clock
BASE_MODEL = "/models/Qwen3-TTS-12Hz-1.7B-Base"  # shown in the title line; need not exist


def step_records(first: int, last: int, *, per_epoch: int = 100, t0: float = FIXED_NOW - 3600, dt: float = 0.5,
                 seed: int = 0) -> list[dict]:
    """Schema-v1 step records of a loss going down, with noise, 16 layers each."""
    rng = random.Random(seed + first)
    out = []
    for s in range(first, last + 1):
        decay = math.exp(-s / 400)
        layers = [(4.0 if i == 0 else 0.9 - 0.02 * i) * (0.6 + 0.4 * decay) + rng.uniform(-0.05, 0.05) for i in range(16)]
        out.append(record("step", time=t0 + s * dt, epoch=(s - 1) // per_epoch + 1, step=s,
                          epoch_step=(s - 1) % per_epoch + 1, epoch_steps=per_epoch,
                          objective=layers[0] + 0.3 * sum(layers[1:]) / 15, layer_sum=sum(layers), layers=layers,
                          lr=2e-5, grad_norm=rng.uniform(0.5, 2), samples_per_s=9.8, tokens_per_s=1225.0,
                          memory_bytes=19 << 30))
    return out


def validation_record(epoch: int, step: int, objective: float, best: bool, t: float) -> dict:
    return record("validation", time=t, epoch=epoch, step=step, objective=objective, layer_sum=objective * 3.1,
                  layers=[objective / 2] * 16, samples=4, best=best)


def write_run(root: Path, name: str, steps: int, *, status: str = "running", epochs: int = 5, per_epoch: int = 100,
              state: dict | None = None, checkpoints: bool = True, log_lines: int = 30) -> Path:
    """A run folder as the trainer leaves it after `steps` steps (validation and checkpoint per epoch)."""
    run = Path(root) / name
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "run.json", {"base_model": BASE_MODEL, "data": "/data/train.jsonl", "speaker": "milo",
                                         "hyper": {"epochs": epochs, "lr": 2e-5, "batch_size": 2, "grad_accum": 4}})
    t0 = FIXED_NOW - steps * 0.5 - 60
    recs = [record("event", time=t0, event="start", message="start", epochs=epochs, steps_per_epoch=per_epoch,
                   total_steps=epochs * per_epoch, train_samples=800, val_samples=40, resumed_from_step=None)]
    best, best_epoch = None, None
    for s in range(1, steps + 1):
        recs += step_records(s, s, per_epoch=per_epoch, t0=t0)
        if s % per_epoch == 0:
            epoch = s // per_epoch
            val = recs[-1]["objective"] + 0.15
            is_best = best is None or val < best
            if is_best:
                best, best_epoch = val, epoch
            recs.append(validation_record(epoch, s, val, is_best, recs[-1]["time"]))
            if checkpoints:
                ck = run / f"epoch-{epoch:04d}"
                ck.mkdir(exist_ok=True)
                (ck / "model.safetensors").write_bytes(b"\0" * 4096 * epoch)
                write_json_atomic(ck / "eval.json", {"objective": val, "layer_sum": val * 3.1, "epoch": epoch, "step": s})
                os.utime(ck, (t0 + s * 0.5, t0 + s * 0.5))
    append_records(run / "metrics.jsonl", recs)
    with open(run / "train.log", "w") as f:
        for r in recs[-log_lines:]:
            if r["kind"] == "step":
                f.write(f"epoch {r['epoch']} step {r['epoch_step']}/{r['epoch_steps']} (#{r['step']}) objective "
                        f"{r['objective']:.4f}\n")
    fields = {"status": status, "epoch": (steps - 1) // per_epoch, "step": steps, "best_val": best,
              "best_epoch": best_epoch, "started_at": t0, "updated_at": FIXED_NOW - 5, "host": "spark"}
    fields.update(state or {})
    write_json_atomic(run / "state.json", fields)
    return run


def write_scores(run: Path, *, scored: dict[int, dict] | None = None, states: dict[int, str] | None = None,
                 baseline: dict | None = None, ceiling: dict | None = None, ratings: dict[int, list[int]] | None = None,
                 preferences: list[tuple[int, int, int | None]] = ()) -> Path:
    """Scores as the run's scorer and the audition screen leave them: `scored` epoch -> score means (written into
    that checkpoint's eval.json beside the trainer's fields), `states` epoch -> scoring.json state, the baseline
    and ceiling rows (means), `ratings` epoch -> stars of auditions, `preferences` (epoch A, epoch B, the preferred
    epoch or None) as decided A/B pairs."""
    from contract import scores as sc
    from contract.samples import append_preference, append_rating, append_sample

    def means(**m) -> dict:
        out = {"similarity": 0.8, "wer": 0.2, "cer": 0.1, "dnsmos_sig": 3.4, "dnsmos_bak": 3.9, "dnsmos_ovrl": 3.1,
               "rate_cps": 14.0, "rate_ratio": 1.0, "silence_ratio": 0.1, "clipping": 0.0, "runaway": 0}
        out.update(m)
        return out

    for epoch, m in (scored or {}).items():
        ck = run / f"epoch-{epoch:04d}"
        ev = json.loads((ck / "eval.json").read_text())
        ev[sc.SCORES] = {"v": 1, "scored_at": FIXED_NOW - 100, "seconds": 30.0, "means": means(**m), "clips": []}
        mtime = ck.stat().st_mtime
        write_json_atomic(ck / "eval.json", ev)
        os.utime(ck, (mtime, mtime))
        sc.set_state(run, ck.name, sc.DONE)
    for epoch, state in (states or {}).items():
        sc.set_state(run, f"epoch-{epoch:04d}", state, **({"error": "RuntimeError: out of memory"} if state == sc.FAILED else {}))
    for name, m in (("baseline", baseline), ("ceiling", ceiling)):
        if m is not None:
            write_json_atomic(run / (sc.BASELINE_JSON if name == "baseline" else sc.CEILING_JSON),
                              {"v": 1, "row": name, "means": means(**m), "clips": []})
            sc.set_state(run, name, sc.DONE, section="rows")
    sample_id = 0
    for epoch, stars in (ratings or {}).items():
        for star in stars:
            sample_id += 1
            append_sample(run, id=sample_id, wav=f"{sample_id:04d}.wav", checkpoint=f"epoch-{epoch:04d}", text="hi", seed=1)
            append_rating(run, sample_id, star)
    for k, (a, b, preferred) in enumerate(preferences):
        group = f"ab-{k}"
        ids = {}
        for label, epoch in (("A", a), ("B", b)):
            sample_id += 1
            ids[epoch] = sample_id
            append_sample(run, id=sample_id, wav=f"{sample_id:04d}.wav", checkpoint=f"epoch-{epoch:04d}", text="hi",
                          seed=1, ab_group=group, ab_label=label)
        append_preference(run, group, ids[preferred] if preferred is not None else None)
    return run


def make_app(checkpoints: Path, profile: str = "nodriver", *, demo: bool = False, clock=lambda: FIXED_NOW,
             telemetry_interval=None, **kw):
    from milo_tui.app import MiloApp
    from milo_tui.config import Settings

    # Runs launched here are not scored after each save (tests/scoring covers that): it would only load the machine.
    settings = Settings(checkpoints=Path(checkpoints), base_model=Path(BASE_MODEL), demo=demo,
                        **{"score_checkpoints": False, **kw.pop("settings", {})})
    kw.setdefault("ascii", False)
    return MiloApp(settings, nvml=FakeNvml(profile), psutil_module=FakePsutil(), clock=clock,
                   telemetry_interval=telemetry_interval, **kw)


def latest_step(app) -> int | None:
    """The newest step the app has read for the selected run."""
    latest = app.run_metrics.latest if app.run_metrics else None
    return latest["step"] if latest else None


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Let the app run until condition() is true (draws pending parts as it goes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)
    await settle(pilot)


async def settle(pilot) -> None:
    """Draw what is pending now, then let every widget process what that caused (a DataTable measures
    its new rows' widths when idle)."""
    draw_now = getattr(pilot.app, "draw_now", None)   # the dashboard's; other apps (milo-tui record) draw as they go
    if draw_now is not None:
        draw_now()
    for _ in range(3):
        await pilot.pause()
        await pilot.pause(0.05)


@contextlib.contextmanager
def immutable(path):
    """`path` made immutable (chattr +i: nothing can be written into it, root included) for the block, then
    writable again; the test is skipped where the file system does not support it."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def screen_text(app) -> str:
    """The screen as plain text (what a terminal would show)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text(styles=False).splitlines())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests (Pilot) in a fresh event loop; no asyncio plugin needed."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), ASYNC_TEST_TIMEOUT))
    return True


@pytest.fixture
def live_process():
    """A real process standing in for a trainer that another dashboard started (pid + start time)."""
    procs = []

    def start() -> dict:
        proc = subprocess.Popen(["sleep", "300"], start_new_session=True, stdin=subprocess.DEVNULL)
        procs.append(proc)
        return {"pid": proc.pid, "pid_start_time": psutil.Process(proc.pid).create_time()}

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def no_run_outlives_its_test(tmp_path):
    """A test that fails half-way leaves its trainers running (they are detached by design): after each
    test, kill the process group of every keeper a run under tmp_path names."""
    yield
    import signal

    from contract.runfolder import read_json
    from milo_tui.supervisor import is_same_process

    for path in tmp_path.rglob("state.json"):
        state = read_json(path) or {}
        keeper = state.get("keeper_pid")
        if is_same_process(keeper, state.get("keeper_start_time")):
            try:
                os.killpg(keeper, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "checkpoints"
    root.mkdir()
    return root


@pytest.fixture
def three_runs(runs_root, live_process) -> Path:
    """alpha: running (a live process holds its pid), bravo: finished, charlie: crashed."""
    write_run(runs_root, "alpha", 250, status="running", state=live_process())
    write_run(runs_root, "bravo", 500, status="finished")
    write_run(runs_root, "charlie", 120, status="crashed",
              state={"exit_code": 1, "error": "RuntimeError: test hook: crash at step 120"})
    return runs_root


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    """Times on screen are local: make local UTC so snapshots do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    time.tzset()


@pytest.fixture
def base(tmp_path):
    """A folder that passes the base-model check (contract.checkpoint.check_base_model): config.json of a Base
    model, one-tensor weights, the text tokenizer's files and a speech tokenizer; nothing a trainer could load."""
    folder = tmp_path / "base"
    (folder / "speech_tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_tts", "tts_model_type": "base"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    weights = len(header).to_bytes(8, "little") + header + bytes(4)
    for name in ("model.safetensors", "speech_tokenizer/model.safetensors"):
        (folder / name).write_bytes(weights)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "speech_tokenizer/config.json",
                 "speech_tokenizer/preprocessor_config.json"):
        (folder / name).write_text("{}")
    return folder
