"""Run control, the app's actions on a run: new run (the form), stop, kill, resume, delete, restart policy,
and why each cannot act now (its key is dimmed and says so). A mixin of MiloApp: the actions read the app's
state (the selected run, the supervisor, the watcher) and change runs only through the supervisor, whose fork
and exec, signals and deletion are off the event loop where they can take a while."""
from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from contract.runfolder import CRASHED, EXTERNAL, FINISHED

if TYPE_CHECKING:
    from milo_tui.messages import RunDeleted
    from milo_tui.supervisor import RunRequest


class RunControl:
    """MiloApp's run actions (`app.stop`, `app.kill`, ... in the runs view's bindings)."""

    def why_not(self, action: str) -> str | None:
        """Why an action cannot be done now (its key is dimmed and says this), or None."""
        r = self.selected_summary()
        if action in ("stop", "kill", "resume", "checkpoints", "restart_policy", "adopt") and r is None:
            return "no run selected"
        if action in ("stop", "kill", "resume", "restart_policy") and r.status == EXTERNAL:
            return (f"{r.name} holds checkpoints made elsewhere: read-only (audition, score, prune; "
                    + ("adopted; A gives its corpus)" if r.adopted else "A adopts it)"))
        if action == "adopt" and r.status != EXTERNAL:
            return f"{r.name} is a milo run: only a folder of the official script's checkpoints is adopted"
        if action in ("stop", "kill") and not r.live:
            return f"{r.name} is not running (it is {r.status})"
        if action == "resume":
            if r.live:
                return f"{r.name} is already running"
            if r.status == FINISHED:
                return f"{r.name} has finished"
            if not r.has_resume:
                return f"{r.name} has no resume point yet; start a new run"
        if action == "corpus":
            return self.corpus_report()[1]
        if action == "delete_run":
            if r is None:
                return "no run selected"
            if r.live:
                return f"{r.name} is running; stop (s) or kill (K) it first"
            if r.status == CRASHED and r.restart_at is not None:
                return f"{r.name}'s keeper is waiting to restart it; R with 0 calls that off, then delete"
        if action == "view" and getattr(self.screen, "wide", False):
            return "every pane is on screen at this size"
        if action == "host_log":
            if r is None or not r.remote:
                return "the selected run is on this host only: its log is train.log"
            if not r.live:
                return f"{r.name} is not running: its other hosts' logs are on their disks ({r.remote[0].host}:{r.remote[0].log})"
        return None

    def action_host_log(self) -> None:
        """The log pane shows the next host's log of the selected run across hosts: this host's train.log, then
        each other host's (read by its sampler over SSH), then this host's again."""
        r = self.selected_summary()
        if r is None or not r.remote:
            return
        order = [None, *(e.host for e in r.remote)]
        self.log_host = order[(order.index(self.log_host) + 1) % len(order)] if self.log_host in order else None
        self.mark_dirty("log")

    def action_new_run(self) -> None:
        from contract.defaults import RUN_DEFAULTS as D
        from milo_tui.screens.new_run import NewRunScreen, retention_defaults

        s = self.settings
        name = time.strftime("run-%Y%m%d-%H%M", time.localtime(self.clock()))
        defaults = {
            "base_model": str(s.base_model or ""), "data": str(self.default_data() or ""), "run_name": name,
            "lr": str(D["lr"]), "epochs": str(D["epochs"]), "batch_size": str(D["batch_size"]),
            "grad_accum": str(D["grad_accum"]), "speaker": self.default_speaker(), "attention": D["attn"],
            "restart_limit": str(s.restart_on_crash), **retention_defaults(s.retention_policy()),
        }
        self.push_screen(NewRunScreen(defaults, Path(s.checkpoints)), self._launch_from_form)

    def default_data(self) -> Path | None:
        """The configured data; in the demo workspace its prepared JSONL when there is one, else the corpus."""
        s = self.settings
        if s.demo and s.base_model is not None:
            prepared = Path(s.base_model).parent / "data" / "train.jsonl"
            if prepared.is_file():
                return prepared
        return s.data

    def default_speaker(self) -> str:
        if self.settings.demo:
            from contract.synth import SPEAKER

            return SPEAKER
        return ""

    def _launch_from_form(self, request: RunRequest | None) -> None:
        if request is not None:
            device = self.settings.device
            judging = ("--score-device", self.settings.score_device)
            if self.settings.demo:  # the tiny model never stops: its runs judge by the demo's own rule (demo.py)
                from milo_tui.demo import DEMO_BEST_FLAGS

                judging += DEMO_BEST_FLAGS
            self.launch(replace(request, device=None if device == "auto" else device,
                                score=self.settings.score_checkpoints, judging=judging))

    def launch(self, request: RunRequest) -> None:
        self._select_when_seen = request.run_dir
        self.run_worker(partial(self._launch, request.run_dir, request), thread=True, group="launch",
                        name=f"start {request.run_dir.name}", exit_on_error=False)

    def _launch(self, run_dir: Path, request: RunRequest | None = None) -> None:
        """Thread worker: start or resume a trainer (fork and exec stay off the event loop)."""
        from milo_tui.messages import LaunchFailed, RunLaunched
        from milo_tui.supervisor import SupervisorError

        try:
            if request is not None:
                pid = self.supervisor.start(request)
            else:
                pid = self.supervisor.resume(run_dir)
        except SupervisorError as exc:
            self.post_message(LaunchFailed(run_dir, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one line, never a crashed dashboard
            self.post_message(LaunchFailed(run_dir, f"{run_dir.name}: cannot start the trainer: {exc}"))
        else:
            self.post_message(RunLaunched(run_dir, pid, resumed=request is None))

    def _signal(self, what: str) -> None:
        from milo_tui.supervisor import SupervisorError

        r = self.selected_summary()
        if r is None:
            return
        try:
            getattr(self.supervisor, what)(r.path)
        except SupervisorError as exc:
            self.notify(str(exc), severity="error")
            return
        if what == "stop":
            self.notify(f"stopping {r.name}: the trainer finishes its step and saves a resume point")
        else:
            others = "".join(f", and to {e.host}'s" for e in r.remote)
            self.notify(f"killed {r.name} (SIGKILL to its process group{others})", severity="warning")
        self.watcher.wake()

    def action_stop(self) -> None:
        self._signal("stop")

    def action_kill(self) -> None:
        from milo_tui.screens.dialogs import ConfirmScreen

        r = self.selected_summary()
        if r is None:
            return
        self.push_screen(ConfirmScreen(f"Kill {r.name}?", "SIGKILL to its whole process group: the work since the "
                                       "last resume point is lost. s (Stop) saves it first."),
                         lambda yes: self._signal("kill") if yes else None)

    def action_resume(self) -> None:
        r = self.selected_summary()
        if r is None:
            return
        self.run_worker(partial(self._launch, r.path), thread=True, group="launch", name=f"resume {r.name}",
                        exit_on_error=False)

    def action_delete_run(self) -> None:
        """Delete the selected run's folder after a y/n that names what goes; refused while anything runs in
        it (Supervisor.why_not_delete, asked again at y). The deletion runs in a thread."""
        from milo_tui.screens.dialogs import ConfirmScreen
        from milo_tui.supervisor import SupervisorError, deletion_detail

        r, root = self.selected_summary(), Path(self.settings.checkpoints)
        why = self.why_not("delete_run") or (self.supervisor.why_not_delete(r.path, root) if r else None)
        if why:
            self.notify(why, severity="warning")
            return

        def work() -> None:
            from milo_tui.messages import OperationFailed, RunDeleted

            try:
                freed = self.supervisor.delete(r.path, root)
            except (SupervisorError, OSError) as exc:
                self.post_message(OperationFailed(str(exc)))
            else:
                self.post_message(RunDeleted(r.path, freed))

        def answered(yes: bool) -> None:
            if yes:
                self.run_worker(work, thread=True, group="delete", name=f"delete {r.name}", exit_on_error=False)

        self.push_screen(ConfirmScreen(f"Delete {r.name}?", deletion_detail(r.path)), answered)

    def on_run_deleted(self, message: RunDeleted) -> None:
        from contract.units import fmt_bytes

        self.notify(f"deleted {message.run_dir.name}, freed {fmt_bytes(message.freed)}")
        self.watcher.wake()

    def action_restart_policy(self) -> None:
        from milo_tui.screens.dialogs import NumberPrompt

        r = self.selected_summary()
        if r is None:
            return

        def apply(limit: int | None) -> None:
            if limit is None:
                return
            try:
                self.supervisor.set_restart_limit(r.path, limit)
            except OSError as exc:
                self.notify(f"{r.name}: cannot write state.json: {exc}", severity="error")
                return
            self.notify(f"{r.name}: " + (f"restart up to {limit} times on a crash" if limit else "no restarts on a crash"))
            self.watcher.wake()

        self.push_screen(NumberPrompt(f"Restarts on crash for {r.name} (0 = off)", r.restart_limit, 0, 100), apply)
