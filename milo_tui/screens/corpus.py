"""The corpus report view (`C` on the runs screen): the clips `milo-train prepare` flagged or skipped, with
their reasons and the measured values against the thresholds, sortable, and a key to hear a clip through
the audition output (the same worker and targets as the audition screen, started on the first play).

The report is contract/audit.py's corpus-report.json (docs/corpus-audit.md); this view only reads it.
"""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from contract import audit as ca
from contract.protocol import Event, Playback
from contract.scores import is_score
from milo_tui.audition.client import WorkerClient, output_settings
from milo_tui.keys import ExplainDisabled
from milo_tui.messages import WorkerEvent
from milo_tui.widgets.status_line import StatusLine
from milo_tui.widgets.theme import ERROR, SUCCESS, WARNING, themed

SHOWS = ("flagged", "all", "skipped")
# sort name -> (key of a row, descending?) ; "worst first" for each measure
SORTS = {
    "file": (lambda r: 0, False),
    "flags": (lambda r: len(r.get("flags") or []), True),
    "voice": (lambda r: _num(r, "speaker_similarity", 9.0), False),
    "CER": (lambda r: _num(r, "cer", -1.0), True),
    "loudness": (lambda r: _num(r, "loudness_lufs", 99.0), False),
    "SNR": (lambda r: _num(r, "snr_db", 999.0), False),
    "speech": (lambda r: _num(r, "speech_ratio", 9.0), False),
}
STATUS_STYLE = {ca.FLAGGED: WARNING, ca.DROPPED: ERROR, ca.SKIPPED: ERROR, ca.KEPT: SUCCESS}
STATUS_WORD = {ca.FLAGGED: "flag", ca.DROPPED: "drop", ca.SKIPPED: "skip", ca.KEPT: "ok"}
# short names of the checks for the table (the detail pane says each reason in full)
CHECK_WORD = {"speaker": "voice", "transcript": "words", "clipping": "clip", "loudness": "loud", "snr": "snr",
              "speech_ratio": "speech", "leading_silence": "lead", "trailing_silence": "trail",
              ca.DUPLICATE_AUDIO: "dup", ca.DUPLICATE_TEXT: "dup-text",
              # a recording session's checks (contract/recording.py; its report opens here from the record screen)
              "peak": "peak", "cut_off": "cut", "length": "len", "pace": "pace", "misread": "misread",
              "voice": "voice", "no_speech": "silent"}


def _num(row: dict, key: str, missing: float) -> float:
    value = (row.get("measures") or {}).get(key)
    return float(value) if is_score(value) else missing


def _cell(row: dict, key: str, fmt: str, check: str, flagged_style: str) -> Text:
    value = (row.get("measures") or {}).get(key)
    if not is_score(value):
        return Text("-", style="dim")
    flagged = any(f.get("check") == check for f in row.get("flags") or [])
    return Text(format(value, fmt), style=flagged_style if flagged else "")


def _short(name: str, width: int = 25) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3):]


class CorpusScreen(ExplainDisabled, Screen):
    AUTO_FOCUS = "#corpus-clips"
    BINDINGS = [
        Binding("p", "play", "Play", id="corpus.play", tooltip="Play the highlighted clip through the audition output"),
        Binding("x", "stop", "Stop", id="corpus.stop", tooltip="Stop playing"),
        Binding("o", "sort", "Sort", id="corpus.sort",
                tooltip="Sort by the next column: file order, flags, voice, CER, loudness, SNR, speech (worst first)"),
        Binding("f", "show", "Show", id="corpus.show", tooltip="Show the flagged clips, all clips, or the skipped ones"),
        Binding("escape", "back", "Back", id="corpus.back", tooltip="Back to the runs"),
        Binding("q", "back", "Back", id="corpus.back_q", show=False, tooltip="Back to the runs"),
    ]
    def __init__(self, report_file: Path, *, device: str = "auto", output: str | None = None,
                 worker_env: dict | None = None, log_path: Path | None = None) -> None:
        super().__init__()
        self.report_file = Path(report_file)
        self.report: dict = ca.read_report(self.report_file) or {"clips": []}
        self.show_mode = SHOWS[0] if ca.flagged_clips(self.report) else SHOWS[1]
        self.sort_name = "file"
        self.playing: str | None = None
        target, audio_device, port = output_settings(output)
        self.output = target
        self.client = WorkerClient(self._from_worker, device=device, output=target, audio_device=audio_device, port=port,
                                   env=worker_env, log_path=log_path)
        self.started = False

    def compose(self) -> ComposeResult:
        yield Static(id="corpus-title")
        yield DataTable(id="corpus-clips", cursor_type="row", zebra_stripes=True)
        yield Static(id="corpus-detail")
        yield StatusLine(id="corpus-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("clip", "Clip"), ("status", "St"), ("flags", "Flags"), ("voice", "Voice"),
                           ("cer", "CER"), ("lufs", "LUFS"), ("snr", "SNR"), ("speech", "Sp")):
            table.add_column(label, key=key)
        self._fill()

    def on_unmount(self) -> None:
        if self.started:
            self.client.close()

    # ---- what is shown ---------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        clips = self.report.get("clips", [])
        if self.show_mode == "flagged":
            clips = [r for r in clips if r.get("flags")]
        elif self.show_mode == "skipped":
            clips = [r for r in clips if r.get("status") == ca.SKIPPED]
        key, descending = SORTS[self.sort_name]
        return sorted(clips, key=key, reverse=descending) if self.sort_name != "file" else list(clips)

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        flagged = themed(self.app, f"bold {ERROR}")

        def cell(row: dict, key: str, fmt: str, check: str) -> Text:
            return _cell(row, key, fmt, check, flagged)

        for row in self.rows():
            checks = ",".join(dict.fromkeys(CHECK_WORD.get(f.get("check"), "?") for f in row.get("flags") or [])) or "-"
            status = row.get("status", "?")
            table.add_row(
                _short(row.get("clip", "?")),
                Text(STATUS_WORD.get(status, status), style=themed(self.app, STATUS_STYLE.get(status, ""))),
                _short(checks, 14), cell(row, "speaker_similarity", ".2f", "speaker"), cell(row, "cer", ".2f", "transcript"),
                cell(row, "loudness_lufs", ".1f", "loudness"), cell(row, "snr_db", ".0f", "snr"),
                cell(row, "speech_ratio", ".2f", "speech_ratio"), key=row.get("clip"))
        self._title()
        self._detail()

    def _title(self) -> None:
        rep, c = self.report, self.report.get("counts") or {}
        where = f"{self.report_file.parent.name}/{rep.get('data', '')}"
        head = (f" [b]corpus report[/] · {escape(where)} · "
                f"{c.get('kept', 0)} kept, {c.get('flagged', 0)} flagged, {c.get('dropped', 0)} dropped, "
                f"{c.get('skipped', 0)} skipped")
        models = rep.get("models") or {}
        voice = rep.get("voice") or {}
        second = (f" showing {self.show_mode} ({len(self.rows())}) · sorted by {self.sort_name} · "
                  f"{escape(models.get('asr', '?'))}, {escape(models.get('speaker', '?'))}"
                  + ("" if voice.get("judged", True) else f" · voice not judged: {escape(str(voice.get('why')))}"))
        self.query_one("#corpus-title", Static).update(head + "\n" + second)

    def highlighted(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.report.get("clips", []) if r.get("clip") == key), None)

    def _detail(self) -> None:
        row = self.highlighted()
        lines = []
        if row is None:
            lines.append("no clips to show" + (": none was flagged (f shows all clips)" if self.show_mode == "flagged" else ""))
        else:
            if row.get("reason"):
                lines.append(f"[b]{escape(row['clip'])}[/] skipped: {escape(row['reason'])}")
            for f in row.get("flags") or []:  # each reason names the measured value and the threshold
                lines.append(f"[{WARNING}]{escape(f.get('check', '?'))}[/]: {escape(f.get('reason', ''))}")
            if row.get("text"):
                lines.append(f"text ({escape(str(row.get('text_source')))}): {escape(row['text'])}")
            heard = (row.get("measures") or {}).get("heard")
            if heard is not None:
                lines.append(f"heard: {escape(heard) or '[dim](nothing)[/]'}")
        self.query_one("#corpus-detail", Static).update("\n".join(lines))

    def _say(self, text: str, error: bool = False) -> None:
        self.query_one(StatusLine).say(text, error)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_play()

    # ---- keys -------------------------------------------------------------------------------------
    def why_not(self, action: str) -> str | None:
        if action == "play" and self.is_mounted:
            row = self.highlighted()
            if row is None:
                return "no clip highlighted"
            if not ca.clip_path(self.report_file, row).is_file():
                return f"{row.get('clip')} is no longer on disk"
        if action == "stop" and self.playing is None:
            return "nothing is playing"
        return None

    def action_play(self) -> None:
        row = self.highlighted()
        if row is None or self.why_not("play"):
            return
        if not self.started:
            self.started = True
            self.client.start()
            self._say("starting the audio worker (the first play only)...")
        self.client.play([str(ca.clip_path(self.report_file, row))], label=row["clip"], gap_s=0)
        self.playing = row["clip"]
        self.refresh_bindings()

    def action_stop(self) -> None:
        if self.started:
            self.client.stop()

    def action_sort(self) -> None:
        names = list(SORTS)
        self.sort_name = names[(names.index(self.sort_name) + 1) % len(names)]
        self._fill()

    def action_show(self) -> None:
        self.show_mode = SHOWS[(SHOWS.index(self.show_mode) + 1) % len(SHOWS)]
        self._fill()

    def action_back(self) -> None:
        self.app.pop_screen()

    # ---- the worker -------------------------------------------------------------------------------
    def _from_worker(self, event: dict) -> None:
        self.post_message(WorkerEvent(event))  # from the client's reader thread to this screen's queue

    @on(WorkerEvent)
    def _on_worker_event(self, message: WorkerEvent) -> None:
        e = message.event
        kind = e.get("event")
        if kind == Event.READY and self.playing:
            self._say(f"output: {e.get('output_detail', self.output)}")
        elif kind == Event.REPLAYING:
            self._say(f"playing {Path(e.get('wavs', ['?'])[0]).name} ({self.output})")
        elif kind == Event.PLAYBACK:
            state = e.get("state")
            if state == Playback.FINISHED:
                self._say(f"played {self.playing or 'the clip'}")
                self.playing = None
            elif state == Playback.STOPPED:
                self.playing = None
                self._say("stopped")
            elif state in (Playback.DEVICE_LOST, Playback.NO_DEVICE):
                self.playing = None
                self._say(f"not played: {e.get('message')}", error=True)
        elif kind == Event.STOPPED:
            self.playing = None
            self._say("stopped")
        elif kind in (Event.ERROR, Event.FATAL, Event.CRASHED, Event.GAVE_UP):
            self.playing = None
            self._say(str(e.get("message", "the audio worker failed")), error=True)
        self.refresh_bindings()
