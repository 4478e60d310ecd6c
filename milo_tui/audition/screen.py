"""The audition screen: pick a checkpoint, type a sentence, hear it; replay, A/B (blind), rate.

Pushed by the dashboard's checkpoints view as `AuditionScreen(run_dir, checkpoint)`. It owns one
audition worker (milo_tui.audition.client) for as long as it is mounted: install it as a named screen
to keep the worker (and the loaded checkpoint) across visits, and call `retarget()` when the checkpoints
view asks for another run or checkpoint.

Data flow (STYLE.md): the worker's events arrive on a reader thread and are posted as `WorkerEvent`
messages; the handlers here own the state (checkpoints A/B, jobs in flight, history, output); widgets
only render it. History rows are keyed by sample id and updated in place.

Keys (80x24, keyboard only). In the text box: type, Enter to speak, Esc to leave it. Elsewhere:
t type, s/Esc stop, r or Enter replay the selected audition, c checkpoint, x A/B on/off (asks for B),
v blind, 1-5 rate, a/b/= A/B preference, o output (spark / laptop / none), f fix the seed, q back.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from milo_tui.audition.client import WorkerClient, output_settings
from milo_tui.audition.picker import CheckpointPicker
from milo_tui.messages import WorkerEvent
from contract.protocol import OUTPUT_TARGETS as TARGETS, Cmd, Event, Playback
from contract.configfile import ConfigError
from contract.samples import Sample, append_preference, append_rating, fold, read_samples
from contract.scores import BEST, NoBest, best_checkpoint, resolve_checkpoint
from contract.text import TextError, split_sentences
from contract.runfolder import list_checkpoints

OUTPUT_NAMES = {"local": "spark speakers", "laptop": "laptop (milo-listen)", "none": "none (save only)"}
AB_GAP_S = 0.8


@dataclass
class Job:
    kind: Cmd                       # SAY, PLAY or LOAD
    checkpoint: str | None = None   # folder name
    text: str = ""
    ab_group: str | None = None
    ab_label: str | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass
class ABPair:
    group: str
    text: str
    blind: bool
    jobs: dict = field(default_factory=dict)    # job id -> label
    wavs: dict = field(default_factory=dict)    # label -> wav path
    names: dict = field(default_factory=dict)   # label -> checkpoint name


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
        Binding("1", "rate(1)", "Rate 1", show=False, id="audition.rate1", priority=True,
                tooltip="Rate the highlighted sample 1 of 5"),
        Binding("2", "rate(2)", "Rate 2", show=False, id="audition.rate2", priority=True,
                tooltip="Rate the highlighted sample 2 of 5"),
        Binding("3", "rate(3)", "Rate 3", show=False, id="audition.rate3", priority=True,
                tooltip="Rate the highlighted sample 3 of 5"),
        Binding("4", "rate(4)", "Rate 4", show=False, id="audition.rate4", priority=True,
                tooltip="Rate the highlighted sample 4 of 5"),
        Binding("5", "rate(5)", "Rate 5", show=False, id="audition.rate5", priority=True,
                tooltip="Rate the highlighted sample 5 of 5"),
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
    DEFAULT_CSS = """
    AuditionScreen #audition-info { height: 2; padding: 0 1; background: $boost; }
    AuditionScreen #audition-status { height: 2; padding: 0 1; }
    AuditionScreen #audition-status.error { color: $error; }
    AuditionScreen #audition-text { margin: 0 0; }
    AuditionScreen #audition-history { height: 1fr; }
    """

    def __init__(self, run_dir: str | Path, checkpoint: str | Path | None = None, *, device: str = "auto",
                 output: str | None = None, audio_device: str | None = None, listen_port: int | None = None,
                 sampling: dict | None = None, worker_env: dict | None = None, log_path: Path | None = None,
                 name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.run_dir = Path(run_dir).absolute()
        self.checkpoint_a: Path | None = None
        self.checkpoint_b: Path | None = None
        self.ab_mode = False
        self.blind = False
        self.output, self.audio_device, self.listen_port = output_settings(output, audio_device, listen_port)
        self.sampling = dict(sampling or {})
        self.fixed_seed: int | None = None
        self.last_seed: int | None = None
        self.jobs: dict[str, Job] = {}
        self.pairs: dict[str, ABPair] = {}
        self.samples: dict[int, Sample] = {}
        self.loaded: str | None = None
        self.playing: str | None = None
        self.worker_state = "starting"
        self._picking = False  # the checkpoint picker is open over this screen
        self.worker_detail = ""
        self.unheard: dict[str, str] = {}    # job id -> why its audio did not play (no device, lost)
        self.output_problem: str | None = None  # the last clip found no output device: said in the header
        self.status = "starting the audition worker..."
        self.status_error = False
        if checkpoint:
            self.checkpoint_a = self._resolve(checkpoint)  # "best": the run's best by the [best] rule
        self.client = WorkerClient(self._from_worker, device=device, output=self.output, audio_device=self.audio_device,
                                   port=self.listen_port, env=worker_env, log_path=log_path)

    # ---- composition -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="audition-info")
        yield Static(id="audition-status")
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
        for sample in read_samples(self.run_dir):
            self._add_sample(sample)
        self._refresh_view()
        self.query_one("#audition-text", Input).focus()
        self.client.start()
        if self.checkpoint_a is not None:
            self._load(self.checkpoint_a)

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
        run_dir = Path(run_dir).absolute()
        if run_dir != self.run_dir:
            self.run_dir = run_dir
            self.samples.clear()
            self.query_one(DataTable).clear()
            for sample in read_samples(run_dir):
                self._add_sample(sample)
            self.checkpoint_b, self.ab_mode = None, False
        if checkpoint is not None:
            self.checkpoint_a = self._resolve(checkpoint)
            if self.checkpoint_a is not None:
                self._load(self.checkpoint_a)
        self._refresh_view()

    def _resolve(self, checkpoint: str | Path) -> Path | None:
        """A checkpoint as given, or for `best` (or RUN/best) the run's best by the [best] rule."""
        if str(checkpoint) == BEST:
            checkpoint = self.run_dir / BEST
        try:
            settings = getattr(self.app, "settings", None)
        except Exception:  # noqa: BLE001 - not in an app yet (the constructor): the configuration's rule
            settings = None
        try:
            path, note = resolve_checkpoint(checkpoint, getattr(settings, "best", None))
        except (NoBest, ConfigError) as exc:
            self._say_status(str(exc), error=True)
            return None
        if note:
            self._say_status(note)
        return path.absolute()

    # ---- rendering -------------------------------------------------------------------------------
    def _ckpt_name(self, path: Path | None) -> str:
        return path.name if path else "-"

    def _refresh_view(self) -> None:
        if not self.is_mounted:
            return
        # In blind mode which checkpoint is loaded would tell which one spoke last, so A from B: never shown.
        blind_busy = self.blind or any(p.blind for p in self.pairs.values())
        loaded = not blind_busy and self.checkpoint_a is not None and self.loaded == str(self.checkpoint_a)
        a = self._ckpt_name(self.checkpoint_a) + (" (loaded)" if loaded else "")
        mode = f"A/B with {self._ckpt_name(self.checkpoint_b)}" + (", blind" if self.blind else "") if self.ab_mode else "single"
        seed = f"seed {self.fixed_seed} (fixed)" if self.fixed_seed is not None else "seed random"
        output = OUTPUT_NAMES.get(self.output, self.output)
        if self.output_problem:
            output += " [b](not playing: no device)[/]"
        info = (f"run {self.run_dir.name}   checkpoint {a}   {mode}\n"
                f"output {output}   {seed}   worker {self.worker_state}")
        self.query_one("#audition-info", Static).update(info)
        status = self.query_one("#audition-status", Static)
        status.update(self.status)
        status.set_class(self.status_error, "error")
        self.refresh_bindings()

    def _say_status(self, text: str, error: bool = False) -> None:
        self.status, self.status_error = text, error
        self._refresh_view()

    def _revealed(self, sample: Sample) -> bool:
        if not sample.blind or sample.ab_group is None:
            return True
        pair = [s for s in self.samples.values() if s.ab_group == sample.ab_group]
        return any(s.decided for s in pair) or (len(pair) > 1 and all(s.rating for s in pair))

    def _cells(self, s: Sample) -> dict:
        if s.ab_group is not None:
            mark = {True: " +", False: "", None: ""}[s.preferred] if s.decided else ""
            who = s.checkpoint if self._revealed(s) else "?"
            checkpoint = f"{s.ab_label}:{who}{mark}"
        else:
            checkpoint = s.checkpoint
        first, rtf = s.get("first_audio_s"), s.get("rtf")
        return {"id": f"{s.id:04d}", "checkpoint": checkpoint[:16], "text": s.text[:28],
                "first": f"{first:.2f}" if isinstance(first, (int, float)) else "-",
                "rtf": f"{rtf:.1f}" if isinstance(rtf, (int, float)) else "-",
                "rating": "*" * s.rating if s.rating else ""}

    def _add_sample(self, sample: Sample) -> None:
        table = self.query_one(DataTable)
        self.samples[sample.id] = sample
        cells = self._cells(sample)
        if str(sample.id) in {str(k.value) for k in table.rows}:
            self._update_row(sample)
            return
        table.add_row(*cells.values(), key=str(sample.id))
        table.move_cursor(row=table.row_count - 1)

    def _update_row(self, sample: Sample) -> None:
        table = self.query_one(DataTable)
        for key, value in self._cells(sample).items():
            table.update_cell(str(sample.id), key, value)

    def _refold(self, ids: list[int]) -> None:
        """Re-read the index (ratings were appended) and refresh the given rows in place."""
        fresh = {s.id: s for s in read_samples(self.run_dir)}
        with self.app.batch_update():
            for sid in ids:
                if sid in fresh:
                    self.samples[sid] = fresh[sid]
                    self._update_row(fresh[sid])

    def selected(self) -> Sample | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return self.samples.get(int(key.value))

    # ---- worker events ---------------------------------------------------------------------------
    def _from_worker(self, event: dict) -> None:
        # Called on the client's reader thread: hand over to the screen's message queue.
        self.post_message(WorkerEvent(event))

    @on(WorkerEvent)
    def _on_worker_event(self, message: WorkerEvent) -> None:
        e = message.event
        kind, job_id = e.get("event"), e.get("id")
        job = self.jobs.get(job_id) if job_id else None
        if kind == Event.READY:
            self.worker_state = f"ready ({e.get('device')}, {e.get('dtype')})"
            self.worker_detail = e.get("output_detail", "")
            self.output_problem = e.get("output_problem")
            if not self.jobs and not self.status_error:
                self._say_status(f"worker ready; output: {self.worker_detail}")
        elif kind == Event.FATAL:
            self.worker_state = "failed"
            self._say_status(e.get("message", "the audition worker cannot start"), error=True)
        elif kind == Event.LOADING:
            self.loaded = None
            what = f"the checkpoint for {job.ab_label}" if self._blind_job(job) else Path(e["checkpoint"]).name
            self._say_status(f"loading {what}...")
        elif kind == Event.LOADED:
            self.loaded = e.get("checkpoint")
            if job is not None and job.kind == Cmd.LOAD:
                self.jobs.pop(job_id, None)
            if job is None or job.kind == Cmd.LOAD:
                self._say_status(f"{e.get('name')} loaded in {e.get('load_s', 0):.1f} s on {e.get('device')}")
        elif kind == Event.STARTED and job:
            who = "?" if self._blind_job(job) else e.get("checkpoint")
            label = f"{job.ab_label} ({who})" if job.ab_label else who
            self.last_seed = e.get("seed")
            self._say_status(f"{label}: speaking, seed {e.get('seed')}, {e.get('sentences')} sentence(s)...")
        elif kind == Event.SENTENCE and job and e.get("count", 1) > 1:
            self._say_status(f"{self.status.split(':')[0]}: sentence {e['index'] + 1}/{e['count']}...")
        elif kind == Event.FIRST_AUDIO and job and not job.ab_group:
            self._say_status(f"{job.checkpoint}: first audio after {e.get('first_audio_s', 0):.2f} s, speaking...")
        elif kind == Event.DONE:
            self._on_done(job_id, job, e.get("sample") or {})
        elif kind == Event.CANCELLED:
            self.jobs.pop(job_id, None)
            self._forget_pair(job)
            self._say_status("stopped")
        elif kind == Event.STOPPED:
            self.playing = None
            self._say_status("stopped")
        elif kind == Event.PLAYBACK:
            self._on_playback(job_id, e)
        elif kind == Event.OUTPUT:
            self.worker_detail = e.get("detail", "")
            self.output_problem = e.get("problem")
            self._say_status(f"output: {self.worker_detail}")
        elif kind == Event.ERROR:
            self.jobs.pop(job_id, None)
            self._forget_pair(job)
            lines = e.get("lines") or []
            extra = f" ({'; '.join(lines[1:3])})" if len(lines) > 1 else ""
            self._say_status(f"{e.get('message')}{extra}", error=True)
        elif kind == Event.CRASHED:
            for lost in e.get("lost", []):
                self._forget_pair(self.jobs.pop(lost, None))
            self.worker_state, self.loaded, self.playing = "restarting", None, None
            self._say_status(f"{e.get('message')}; restarting it (log: {e.get('log')})", error=True)
        elif kind == Event.RESTARTED:
            self.worker_state = "restarted"
        elif kind == Event.GAVE_UP:
            self.worker_state = "stopped"
            self._say_status(e.get("message", "the audition worker keeps crashing"), error=True)
        self._refresh_view()

    def _on_done(self, job_id: str, job: Job | None, rec: dict) -> None:
        self.jobs.pop(job_id, None)
        unheard = self.unheard.pop(job_id, None)
        if "id" not in rec:  # not saved (no run folder)
            self._say_status(f"{rec.get('checkpoint')}: {rec.get('audio_s', 0):.1f} s of audio (not saved)"
                             + (f"; NOT PLAYED: {unheard}" if unheard else ""), error=unheard is not None)
            return
        sample = fold([rec], self.run_dir)[0]
        self._add_sample(sample)
        if job is not None and job.ab_group in self.pairs:
            pair = self.pairs[job.ab_group]
            pair.wavs[job.ab_label] = rec.get("wav_path") or str(sample.wav)
            pair.names[job.ab_label] = sample.checkpoint
            if len(pair.wavs) == 2:
                self._play_pair(pair)
            else:
                self._say_status(f"A/B: {job.ab_label} ready, generating the other...")
            return
        if unheard is not None:  # the success line must not hide that nothing played
            self._say_status(f"{sample.checkpoint}: {rec.get('audio_s', 0):.1f} s of audio, saved #{sample.id:04d}; "
                             f"NOT PLAYED: {unheard}", error=True)
            return
        tail = f" (load {rec['load_s']:.1f} s)" if rec.get("load_s") else ""
        self._say_status(f"{sample.checkpoint}: {rec.get('audio_s', 0):.1f} s of audio in {rec.get('wall_s', 0):.1f} s "
                         f"({rec.get('rtf', 0):.1f}x real time), first audio {rec.get('first_audio_s') or 0:.2f} s"
                         f"{tail}; saved #{sample.id:04d}")

    def _on_playback(self, job_id: str, e: dict) -> None:
        state = e.get("state")
        if state == Playback.STARTED:
            self.playing = job_id
            self.output_problem = None
        elif state in (Playback.FINISHED, Playback.STOPPED):
            if self.playing == job_id:
                self.playing = None
        elif state in (Playback.DEVICE_LOST, Playback.NO_DEVICE):
            self.playing = None
            what = "audio device lost mid-play" if state == Playback.DEVICE_LOST else "not played"
            if state == Playback.NO_DEVICE:
                self.output_problem = e.get("message") or "no output device"
            if job_id in self.jobs and self.jobs[job_id].kind == Cmd.SAY:
                self.unheard[job_id] = f"{e.get('message')}; o switches to the laptop"
            self._say_status(f"{what}: {e.get('message')}; o switches to the laptop; the audition is still saved",
                             error=True)

    def _blind_job(self, job: Job | None) -> bool:
        pair = self.pairs.get(job.ab_group) if job is not None and job.ab_group else None
        return pair is not None and pair.blind

    def _forget_pair(self, job: Job | None) -> None:
        if job is not None and job.ab_group:
            self.pairs.pop(job.ab_group, None)

    def _play_pair(self, pair: ABPair) -> None:
        job_id = self.client.play([pair.wavs["A"], pair.wavs["B"]], gap_s=AB_GAP_S, label="A then B", text=pair.text)
        self.jobs[job_id] = Job(kind=Cmd.PLAY, text=pair.text)
        names = "" if pair.blind else f" (A {pair.names['A']}, B {pair.names['B']})"
        self._say_status(f"A/B: playing A then B{names}; rate with a / b / = (or 1-5)")
        self.pairs.pop(pair.group, None)

    # ---- speaking --------------------------------------------------------------------------------
    @on(Input.Submitted, "#audition-text")
    def _submitted(self, event: Input.Submitted) -> None:
        self.speak(event.value)

    def _seed(self) -> int:
        return self.fixed_seed if self.fixed_seed is not None else random.randrange(2**31)

    def speak(self, text: str) -> None:
        try:
            split_sentences(text)
        except TextError as exc:
            self._say_status(str(exc), error=True)
            return
        if self.checkpoint_a is None:
            self._say_status("choose a checkpoint first (c)", error=True)
            return
        if self.ab_mode and self.checkpoint_b is not None:
            self._speak_ab(text)
            return
        job_id = self.client.say(text, checkpoint=str(self.checkpoint_a), run_dir=str(self.run_dir), seed=self._seed(),
                                 sampling=self.sampling, play=True)
        self.jobs[job_id] = Job(kind=Cmd.SAY, checkpoint=self.checkpoint_a.name, text=text)
        self._say_status(f"{self.checkpoint_a.name}: queued...")

    def _speak_ab(self, text: str) -> None:
        group = f"ab-{int(time.time())}-{random.randrange(16**4):04x}"
        order = [self.checkpoint_a, self.checkpoint_b]
        if self.blind:
            random.shuffle(order)
        pair = ABPair(group=group, text=text, blind=self.blind)
        seed = self._seed()
        for label, checkpoint in zip("AB", order):
            job_id = self.client.say(text, checkpoint=str(checkpoint), run_dir=str(self.run_dir), seed=seed,
                                     sampling=self.sampling, play=False, ab_group=group, ab_label=label,
                                     blind=self.blind, label=label)
            pair.jobs[job_id] = label
            self.jobs[job_id] = Job(kind=Cmd.SAY, checkpoint=checkpoint.name, text=text, ab_group=group, ab_label=label)
        self.pairs[group] = pair
        self._say_status(f"A/B: generating both (seed {seed}), then playing A then B...")

    def _load(self, checkpoint: Path) -> None:
        job_id = self.client.load(str(checkpoint))
        self.jobs[job_id] = Job(kind=Cmd.LOAD, checkpoint=checkpoint.name)

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
            return True if self.ab_mode else None
        if action == "stop":
            return True if (self.playing or any(j.kind == Cmd.SAY for j in self.jobs.values())) else None
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
        self.client.stop()
        self.jobs = {k: j for k, j in self.jobs.items() if j.kind == Cmd.LOAD}
        self.pairs.clear()
        self.playing = None
        self._say_status("stopping...")

    def action_replay(self) -> None:
        s = self.selected()
        if s is None:
            return
        label = s.ab_label if not self._revealed(s) else s.checkpoint
        job_id = self.client.play([str(s.wav)], label=label, text=s.text)
        self.jobs[job_id] = Job(kind=Cmd.PLAY, text=s.text)
        self._say_status(f"replaying #{s.id:04d} ({label})")

    @on(DataTable.RowSelected, "#audition-history")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_replay()

    def action_rate(self, stars: int) -> None:
        s = self.selected()
        if s is None:
            return
        append_rating(self.run_dir, s.id, stars)
        pair = [x.id for x in self.samples.values() if s.ab_group and x.ab_group == s.ab_group] or [s.id]
        self._refold(pair)
        self._say_status(f"#{s.id:04d} rated {stars}/5")

    def action_prefer(self, which: str) -> None:
        s = self.selected()
        if s is None or s.ab_group is None:
            return
        pair = {x.ab_label: x for x in self.samples.values() if x.ab_group == s.ab_group}
        chosen = pair.get(which)
        append_preference(self.run_dir, s.ab_group, chosen.id if chosen else None)
        self._refold([x.id for x in pair.values()])
        names = ", ".join(f"{label} was {x.checkpoint}" for label, x in sorted(pair.items()))
        verdict = "no difference" if chosen is None else f"{which} preferred"
        self._say_status(f"A/B: {verdict}; {names}")

    def _best(self) -> tuple[Path | None, str]:
        """The run's best checkpoint by the dashboard's [best] rule (the configuration's when run alone)."""
        settings = getattr(self.app, "settings", None)
        try:
            return best_checkpoint(self.run_dir, getattr(settings, "best", None))
        except ConfigError as exc:
            return None, str(exc)

    def _pick(self, title: str, current: Path | None, then, start: Path | None = None) -> None:
        checkpoints = list_checkpoints(self.run_dir)
        if not checkpoints:
            self._say_status(f"no checkpoints in {self.run_dir} yet", error=True)
            return
        best, _why = self._best()
        self._picking = True
        self.app.push_screen(CheckpointPicker(title, checkpoints, current, best, start), then)

    def action_choose_checkpoint(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.checkpoint_a = path
                self._load(path)
            self._refresh_view()

        self._pick("Checkpoint to audition (A)", self.checkpoint_a, chosen)

    def action_toggle_ab(self) -> None:
        if self.ab_mode:
            self.ab_mode = False
            self._say_status("A/B off")
            return

        def chosen(path: Path | None) -> None:
            if path is not None and self.checkpoint_a is not None and path.resolve() == self.checkpoint_a.resolve():
                self._say_status(f"B is A ({path.name}): the pair would always be 'no difference'; x, then "
                                 "choose another checkpoint", error=True)
            elif path is not None:
                self.checkpoint_b, self.ab_mode = path, True
                self._say_status(f"A/B on: {self._ckpt_name(self.checkpoint_a)} vs {path.name}; Enter speaks on both")
            self._refresh_view()

        self._pick("Compare with (B)", self.checkpoint_b, chosen, start=self.checkpoint_b or self._other_than_a())

    def _other_than_a(self) -> Path | None:
        """Where the B picker starts: the run's best if that is not A, else the newest checkpoint that is not."""
        a = self.checkpoint_a.resolve() if self.checkpoint_a is not None else None
        best, _why = self._best()
        if best is not None and best.resolve() != a:
            return best
        others = [p for p in list_checkpoints(self.run_dir) if p.resolve() != a]
        return others[-1] if others else None

    def action_toggle_blind(self) -> None:
        self.blind = not self.blind
        self._say_status("blind A/B: which is which stays hidden until you judge the pair" if self.blind
                         else "blind off")

    def action_cycle_output(self) -> None:
        self.output = TARGETS[(TARGETS.index(self.output) + 1) % len(TARGETS)]
        self.client.set_output(self.output, device=self.audio_device, port=self.listen_port)
        self._say_status(f"output: {OUTPUT_NAMES[self.output]}...")

    def action_fix_seed(self) -> None:
        self.fixed_seed = None if self.fixed_seed is not None else (self.last_seed or random.randrange(2**31))
        self._refresh_view()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
