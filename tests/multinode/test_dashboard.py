"""A run across hosts in the dashboard: started from the form, the dashboard SIGKILLed, a new one re-attaches and
finds the other host's rank live, shows that host's GPU (its own NVML, sampled there over SSH) and its log, and
its Kill reaches that host. The other host is a real OpenSSH server on 127.0.0.1 (tests/multinode/conftest.py)."""
from __future__ import annotations

import signal
import socket
import subprocess

import psutil
import pytest

from contract.runfolder import read_json
from contract.ssh import signal_group
from milo_tui.telemetry.remote import UNKNOWN, UNREACHABLE, HostEntry, HostLinks
from tests.conftest import python_env
from tests.dashboard.conftest import make_app, screen_text, wait_for
from tests.dashboard.headless_dashboard import first_dashboard
from tests.dashboard.test_reattach import _steps, _wait

pytestmark = pytest.mark.slow
START = 150  # s: two trainers' start-up and their rendezvous on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(process: int | psutil.Process) -> bool:
    """Dead or a zombie. A Process taken while it ran is not fooled by its pid's reuse (is_running checks its
    start time)."""
    try:
        process = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _processes(run) -> list[psutil.Process]:
    """Every live process of the run on either host (the launcher, each torchrun, each trainer): here both
    hosts are this machine."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(run) in cmd and "training" in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def _panel(app, height: int = 60) -> str:
    from milo_tui.widgets.telemetry import TelemetryPanel

    panel = app.screen.query_one(TelemetryPanel)
    return "\n".join(line.plain for line in panel.lines(60, height)[:height])


def _log(app) -> tuple[str, list[str]]:
    from milo_tui.widgets.log_tail import LogTail

    log = app.screen.query_one(LogTail)
    return str(log.border_title), list(log.source)


async def test_a_new_dashboard_finds_the_other_hosts_rank_gpu_and_log_and_kills_every_host(
        gb10_host, tiny_base, demo_data, tmp_path, monkeypatch):
    root, home = tmp_path / "runs", socket.gethostname()
    run = root / "duo"
    env = python_env(**gb10_host.env, MILO_TEST_HOOKS="step_delay=0.4", MILO_RDZV_PORT=str(_free_port()))
    with first_dashboard(root, tiny_base, demo_data, "duo", env, tmp_path / "first-dashboard.log",
                         f"hosts={gb10_host.name}", "master_addr=127.0.0.1", "iface=lo"):
        _wait(lambda: _steps(run) >= 2 and (read_json(run / "state.json") or {}).get("hosts"), START,
              "the run across hosts to train")
    state = read_json(run / "state.json")
    (other,) = state["hosts"]
    assert other["host"] == gb10_host.name and state["home_host"] == home
    before = _steps(run)
    _wait(lambda: _steps(run) >= before + 2, 60, "steps after the dashboard died")

    for var, value in gb10_host.env.items():   # the new dashboard reaches the host through the same ssh config
        monkeypatch.setenv(var, value)
    app = make_app(root, "nodriver", poll_s=0.3, telemetry_interval=0.5)
    try:
        await _watch_and_kill(app, run, gb10_host, home, state, other)
    finally:
        for p in _processes(run):   # a failed check must not leave the run training
            p.kill()


async def _watch_and_kill(app, run, gb10_host, home, state, other) -> None:
    async with app.run_test(size=(120, 50)) as pilot:
        # both ranks live: this host's from the run's state, the other's as its sampler there says
        await wait_for(pilot, lambda: f"on {home} (live) + {gb10_host.name} (live)" in screen_text(app), 60,
                       "both ranks live on the runs line")
        # the other host's GPU, read by NVML there (a GB10: no device memory, the shared memory instead)
        await wait_for(pilot, lambda: f"{gb10_host.name} · NVIDIA GB10" in _panel(app), 30, "the other host's GPU")
        panel = _panel(app)
        assert "GPU · 2 hosts" == str(app.screen.query_one("#telemetry").border_title)
        section = panel[panel.index(f"{gb10_host.name} · NVIDIA GB10"):]
        assert "N/A (unified)" in section and "shared" in section and "pid 4242" in section, panel
        assert panel.index("no NVIDIA driver") < panel.index(gb10_host.name), panel  # this host's section first
        brief = _panel(app, 9)   # a panel too short for both in full: three lines a host, both hosts seen
        assert f"{gb10_host.name} · NVIDIA GB10\ngpu " in brief and "\nshared " in brief, brief
        # its log: `h` shows the other host's, `h` again this host's train.log
        assert _log(app)[0] == "train.log"
        await pilot.press("h")
        await wait_for(pilot, lambda: _log(app)[0] == f"{gb10_host.name}: its log" and _log(app)[1], 20,
                       "the other host's log")
        remote_log = (run / "hosts" / f"{gb10_host.name}.log").read_text().splitlines()
        shown = _log(app)[1]
        assert "\n".join(shown) in "\n".join(remote_log), shown   # its lines, in order, none lost between
        assert any("rank" in line.lower() or "epoch" in line.lower() for line in shown), shown
        await pilot.press("h")
        await wait_for(pilot, lambda: _log(app)[0] == "train.log", 10, "this host's log again")
        # Kill reaches every host
        members = _processes(run)   # the launcher, and a torchrun and a trainer a host
        assert len(members) >= 5 and {other["pid"], state["pid"]} <= {p.pid for p in members}, members
        await pilot.press("K")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.runs[run].status == "killed", 30, "the run killed")
        # every process on both hosts: torchrun starts its trainers in sessions of their own, which a group's
        # SIGKILL does not reach; each trainer dies with its torchrun (training/dist.py die_with_torchrun, which
        # tests/training/test_distributed.py checks alone: here a trainer may also end of its peer's end).
        # Each is watched as the Process it was: one still tearing down its memory reads an empty command line
        # for a moment before it is a zombie, which a look by command line alone takes for gone.
        _wait(lambda: all(_gone(p) for p in members) and not _processes(run), 30,
              "every process of the run, on both hosts, gone")
        await wait_for(pilot, lambda: gb10_host.name not in _panel(app), 30, "the other host's section gone")


def test_kill_sends_sigkill_to_the_other_hosts_side_over_ssh(ssh_host, tmp_path, monkeypatch):
    """The launcher cannot pass a SIGKILL on: the dashboard's Kill sends it to each other host's group itself."""
    from milo_tui.supervisor import Supervisor
    from contract.runfolder import update_state

    for var, value in ssh_host.env.items():
        monkeypatch.setenv(var, value)
    started = ssh_host.run("setsid sh -c 'sleep 300 & sleep 300' > /dev/null 2>&1 < /dev/null & echo $!")
    remote = int(started.stdout.strip())
    local = subprocess.Popen(["sleep", "300"], start_new_session=True)
    run = tmp_path / "duo"
    run.mkdir()
    update_state(run, status="running", pid=local.pid, pid_start_time=psutil.Process(local.pid).create_time(),
                 hosts=[{"host": ssh_host.name, "pid": remote, "log": str(run / "hosts/x.log")}])
    _wait(lambda: len(psutil.Process(remote).children()) == 2, 10, "the remote group")
    members = [remote, *(c.pid for c in psutil.Process(remote).children())]
    Supervisor().kill(run)
    local.wait(10)
    _wait(lambda: all(_gone(pid) for pid in members), 20, "the other host's whole group killed")
    assert read_json(run / "state.json")["status"] == "killed"
    assert signal_group(ssh_host.name, remote, signal.SIGKILL)   # a group already gone is not an error


def test_a_host_out_of_reach_is_reported_unreachable_with_ssh_s_reason(ssh_host, down_host, tmp_path, monkeypatch):
    for var, value in ssh_host.env.items():
        monkeypatch.setenv(var, value)
    reports = []
    links = HostLinks(reports.append)
    links.want([HostEntry(down_host, 1, str(tmp_path / "x.log"), None, tmp_path)])
    try:
        _wait(lambda: reports, 20, "a report")
    finally:
        links.close()
    assert reports[0].rank == UNREACHABLE and reports[0].host == down_host
    assert "Connection refused" in reports[0].error, reports[0].error


def test_a_host_reached_whose_sampler_cannot_run_is_not_called_unreachable(ssh_host, tmp_path, monkeypatch):
    for var, value in ssh_host.env.items():
        monkeypatch.setenv(var, value)
    reports = []
    links = HostLinks(reports.append)
    links.want([HostEntry(ssh_host.name, 1, str(tmp_path / "x.log"), str(tmp_path / "no-such-python"), tmp_path)])
    try:
        _wait(lambda: reports, 20, "a report")
    finally:
        links.close()
    assert reports[0].rank == UNKNOWN, reports[0]
    assert reports[0].error.startswith("its sampler ended (exit 127)") and "no-such-python" in reports[0].error


async def test_a_run_from_the_form_whose_other_host_is_down_says_which_host_and_what_to_do(
        ssh_host, down_host, tiny_base, demo_data, tmp_path, monkeypatch):
    """The 2 a.m. case: spark2 is off. The run ends at its preflight, and its line names the host and the fix,
    not only that nothing was started."""
    from tests.dashboard.test_trainer_actions import start_from_form

    for var, value in {**ssh_host.env, "MILO_RDZV_PORT": str(_free_port())}.items():
        monkeypatch.setenv(var, value)
    root = tmp_path / "runs"
    app = make_app(root, "nodriver", poll_s=0.3, env=python_env(**ssh_host.env))
    app.settings = app.settings.with_values("test", base_model=tiny_base, data=demo_data)
    async with app.run_test(size=(160, 40)) as pilot:
        await start_from_form(pilot, "duo", hosts=down_host, master_addr="127.0.0.1", iface="lo")
        run = root / "duo"
        await wait_for(pilot, lambda: app.runs.get(run) is not None and not app.runs[run].live, 120,
                       "the run to end at its preflight")
        await wait_for(pilot, lambda: f"{down_host}: cannot log in over SSH" in screen_text(app), 10,
                       "the preflight's line on the runs view")
        assert not _processes(run)
