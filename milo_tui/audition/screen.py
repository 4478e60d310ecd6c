"""The audition screen: pick a checkpoint, type a sentence, hear it; replay, A/B (blind), rate.

Pushed by the dashboard's checkpoints view as `AuditionScreen(run_dir, checkpoint)`. It owns one
audition worker (milo_tui.audition.client) for as long as it is mounted: install it as a named screen
to keep the worker (and the loaded checkpoint) across visits, and call `retarget()` when the checkpoints
view asks for another run or checkpoint.

Data flow (STYLE.md): the worker's events arrive on a reader thread and are posted as `WorkerEvent`
messages; the screen hands each to its `AuditionSession` (milo_tui.audition.session: checkpoints A/B,
jobs in flight, A/B pairs, blind mode, history), which owns the state and returns the status to show;
the screen only draws it. History rows are keyed by sample id and updated in place.

Keys (80x24, keyboard only). In the text box: type, Enter to speak, Esc to leave it. Elsewhere:
t type, s/Esc stop, r or Enter replay the selected audition, c checkpoint, x A/B on/off (asks for B),
v blind, 1-5 rate, a/b/= A/B preference, o output (spark / laptop / none), f fix the seed, q back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from contract.samples import Sample
from milo_tui.audition.client import WorkerClient, output_settings
from milo_tui.audition.picker import CheckpointPicker
from milo_tui.audition.session import AuditionSession, Status
from milo_tui.messages import WorkerEvent
from milo_tui.widgets.status_line import StatusLine


class AuditionScreen(Screen):
    BINDINGS = [
        Binding("t", "type", "Type", id="audition.type", priority=True,
                tooltip="Put the cursor in the text box"),
        Binding("escape", "escape", "Stop", id="audition.stop", priority=True,
                tooltip="Stop speaking and playing at once"),
        Binding("s", "stop", "Stop", show=False, id="audition.stop_s", priority=True,
                tooltip="Stop speaking and playing at once"),
        Binding("r", "replay", "Replay", id="audition.replay", priority=True,
                tooltip="Play the highlighted sample again (an A/B pair: A then B)"),
        Binding("c", "choose_checkpoint", "Checkpoint", id="audition.checkpoint", priority=True,
                tooltip="Choose the checkpoint to hear"),
        Binding("x", "toggle_ab", "A/B", id="audition.ab", priority=True,
                tooltip="Compare with a second checkpoint: same sentence, same seed"),
        Binding("v", "toggle_blind", "Blind", id="audition.blind", priority=True,
                tooltip="Hide which checkpoint is A until you judge the pair"),
        *(Binding(str(n), f"rate({n})", f"Rate {n}", show=False, id=f"audition.rate{n}", priority=True,
                  tooltip=f"Rate the highlighted sample {n} of 5") for n in range(1, 6)),
        Binding("a", "prefer('A')", "Prefer A", show=False, id="audition.prefer_a", priority=True,
                tooltip="A/B: A sounds better"),
        Binding("b", "prefer('B')", "Prefer B", show=False, id="audition.prefer_b", priority=True,
                tooltip="A/B: B sounds better"),
        Binding("equals_sign", "prefer('=')", "No difference", show=False, id="audition.prefer_none", priority=True,
                tooltip="A/B: no difference"),
        Binding("o", "cycle_output", "Output", id="audition.output", priority=True,
                tooltip="Where audio plays: Spark speakers, the laptop (milo-listen), or nowhere"),
        Binding("f", "fix_seed", "Fix seed", show=False, id="audition.seed", priority=True,
                tooltip="Keep this seed for the next auditions (same seed, same audio)"),
        Binding("q", "back", "Back", id="audition.back", priority=True,
                tooltip="Back to the checkpoints; the worker keeps the checkpoint loaded"),
    ]
    def __init__(self, run_dir: str | Path, checkpoint: str | Path | None = None, *, device: str = "auto",
                 output: str | None = None, audio_device: str | None = None, listen_port: int | None = None,
                 sampling: dict | None = None, worker_env: dict | None = None, log_path: Path | None = None,
                 name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        output, audio_device, listen_port = output_settings(output, audio_device, listen_port)
        self.client = WorkerClient(self._from_worker, device=device, output=output, audio_device=audio_device,
                                   port=listen_port, env=worker_env, log_path=log_path)
        self.session = AuditionSession(run_dir, self.client.send, output=output, audio_device=audio_device,
                                       listen_port=listen_port, sampling=sampling)
        self._picking = False  # the checkpoint picker is open over this screen
        if checkpoint:  # loaded once mounted; "best": the run's best by the [best] rule
            self.session.checkpoint_a = self.session.resolve(checkpoint, self._rule())

    # ---- composition -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="audition-info")
        yield StatusLine(id="audition-status")
        yield Input(placeholder="Type a sentence, Enter to hear it (Esc: leave the box)", id="audition-text")
        table = DataTable(id="audition-history", cursor_type="row", zebra_stripes=True)
        table.add_column("#", key="id", width=4)
        table.add_column("checkpoint", key="checkpoint", width=16)
        table.add_column("text", key="text", width=28)
        table.add_column("1st", key="first", width=5)
        table.add_column("xRT", key="rtf", width=5)
        table.add_column("rate", key="rating", width=5)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self._draw_rows(self.session.read_history())
        self._refresh_view()
        self.query_one("#audition-text", Input).focus()
        self.client.start()
        if self.session.checkpoint_a is not None:
            self.session.load(self.session.checkpoint_a)

    def on_screen_resume(self) -> None:
        # Every arrival starts in the text box (the screen is reused: Textual would give focus back to the
        # history where the last visit left it, and the sentence typed next would run its commands). Back
        # from this screen's own checkpoint picker, the focus stays where the operator had it.
        if self._picking:
            self._picking = False
            return
        self.set_focus(self.query_one("#audition-text", Input))

    def on_unmount(self) -> None:
        self.client.close()

    def on_paste(self, event: events.Paste) -> None:
        """A sentence pasted while the history has focus goes into the text box, never to the keys."""
        box = self.query_one("#audition-text", Input)
        if self.focused is box:
            return
        event.stop()
        self.set_focus(box)
        box.insert_text_at_cursor(" ".join(event.text.split()))

    def retarget(self, run_dir: str | Path, checkpoint: str | Path | None) -> None:
        """Show another run or checkpoint (the dashboard reuses an installed screen)."""
        if self.session.switch_run(run_dir):
            self.query_one(DataTable).clear()
            self._draw_rows(self.session.samples.values())
        if checkpoint is not None:
            self.session.audition(checkpoint, self._rule())
        self._refresh_view()

    def _rule(self):
        """The dashboard's [best] rule; None (the configuration's) when run alone or not in an app yet."""
        try:
            settings = getattr(self.app, "settings", None)
        except Exception:  # noqa: BLE001 - not in an app yet (the constructor): the configuration's rule
            settings = None
        return getattr(settings, "best", None)

    # ---- rendering -------------------------------------------------------------------------------
    def _show(self, status: Status) -> None:
        """Draw a step's outcome: its history rows, the header and the status line."""
        self._draw_rows(status.rows)
        self._refresh_view()

    def _draw_rows(self, samples: Iterable[Sample]) -> None:
        """History rows by sample id: updated in place, or added (and the cursor put on the newest)."""
        samples = list(samples)
        if samples:
            table = self.query_one(DataTable)
            keys = {str(k.value) for k in table.rows}
            with self.app.batch_update():
                for sample in samples:
                    cells = self.session.cells(sample)
                    if str(sample.id) in keys:
                        for key, value in cells.items():
                            table.update_cell(str(sample.id), key, value)
                    else:
                        table.add_row(*cells.values(), key=str(sample.id))
                        table.move_cursor(row=table.row_count - 1)

    def _refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#audition-info", Static).update(self.session.info())
        self.query_one(StatusLine).say(self.session.status.text, self.session.status.error)
        self.refresh_bindings()

    def selected(self) -> Sample | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return self.session.samples.get(int(key.value))

    # ---- worker events ---------------------------------------------------------------------------
    def _from_worker(self, event: dict) -> None:
        # Called on the client's reader thread: hand over to the screen's message queue.
        self.post_message(WorkerEvent(event))

    @on(WorkerEvent)
    def _on_worker_event(self, message: WorkerEvent) -> None:
        self._show(self.session.on_event(message.event))

    # ---- speaking --------------------------------------------------------------------------------
    @on(Input.Submitted, "#audition-text")
    def _submitted(self, event: Input.Submitted) -> None:
        self.speak(event.value)

    def speak(self, text: str) -> None:
        self._show(self.session.speak(text))

    # ---- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # The screen's keys are priority bindings, decided in the order they are read (a burst such as
        # `t Hello` or `esc q`, one read over SSH, acts as typed). While the text box has focus they are
        # all off but Esc, so the keys go into the box as text: typing never runs a command.
        if action != "escape" and isinstance(self.focused, Input):
            return None
        if action in ("replay", "rate"):
            return True if self.selected() is not None else None
        if action == "prefer":
            s = self.selected()
            return True if s is not None and s.ab_group is not None else None
        if action == "toggle_blind":
            return True if self.session.ab_mode else None
        if action == "stop":
            return True if self.session.busy() else None
        if action == "back":
            return True if len(self.app.screen_stack) > 1 else None
        return True

    # Focus moves here are immediate (Screen.set_focus; Widget.focus() waits for the app's queue, behind
    # keys already read): the next key of the same read goes where the operator meant.
    def action_type(self) -> None:
        self.set_focus(self.query_one("#audition-text", Input))

    def action_escape(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(self.query_one(DataTable))
            return
        self.action_stop()

    def action_stop(self) -> None:
        self._show(self.session.stop())

    def action_replay(self) -> None:
        s = self.selected()
        if s is not None:
            self._show(self.session.replay(s))

    @on(DataTable.RowSelected, "#audition-history")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_replay()

    def action_rate(self, stars: int) -> None:
        s = self.selected()
        if s is not None:
            self._show(self.session.rate(s, stars))

    def action_prefer(self, which: str) -> None:
        s = self.selected()
        if s is not None and s.ab_group is not None:
            self._show(self.session.prefer(s, which))

    def _pick(self, title: str, current: Path | None, then, start: Path | None = None) -> None:
        checkpoints = self.session.checkpoints()
        if not checkpoints:
            self._show(self.session.say(f"no checkpoints in {self.session.run_dir} yet", error=True))
            return
        best, _why = self.session.best(self._rule())
        self._picking = True
        self.app.push_screen(CheckpointPicker(title, checkpoints, current, best, start), then)

    def action_choose_checkpoint(self) -> None:
        self._pick("Checkpoint to audition (A)", self.session.checkpoint_a,
                   lambda path: self._show(self.session.choose_a(path)))

    def action_toggle_ab(self) -> None:
        if self.session.ab_mode:
            self._show(self.session.ab_off())
            return
        self._pick("Compare with (B)", self.session.checkpoint_b, lambda path: self._show(self.session.choose_b(path)),
                   start=self.session.b_start(self._rule()))

    def action_toggle_blind(self) -> None:
        self._show(self.session.toggle_blind())

    def action_cycle_output(self) -> None:
        self._show(self.session.cycle_output())

    def action_fix_seed(self) -> None:
        self.session.toggle_fixed_seed()
        self._refresh_view()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
