"""The runs table and the checkpoints table: rows keyed by run / checkpoint name, updated in place."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from milo_tui.format import fmt_bytes, fmt_duration, fmt_num, fmt_time
from contract.runfolder import (
    CRASHED, EXTERNAL, FINISHED, KILLED, RUNNING, STARTING, STOPPED, STOPPING, checkpoint_epoch,
)
from contract.scores import is_score
from milo_tui.widgets.theme import ERROR, INFO, MUTED, SUCCESS, WARNING, themed

STATUS_STYLE = {
    RUNNING: f"bold {SUCCESS}", STARTING: SUCCESS, STOPPING: WARNING, STOPPED: "$foreground",
    CRASHED: f"bold {ERROR}", FINISHED: INFO, EXTERNAL: f"italic {MUTED}", KILLED: "$warning",
}


class KeyedTable(DataTable):
    """A DataTable whose rows are kept by key: `show` adds, updates and removes only what changed."""
    COLUMNS: tuple[tuple[str, str], ...] = ()

    def _ensure_columns(self) -> None:
        # before any row: columns added after rows would keep their label widths
        if not self.columns:
            self.cursor_type = "row"
            for key, label in self.columns_now():
                self.add_column(label, key=key)

    def columns_now(self) -> tuple[tuple[str, str], ...]:
        return self.COLUMNS

    def on_mount(self) -> None:
        self._ensure_columns()
        self._widths: list[int] = []

    def on_idle(self) -> None:
        # DataTable measures new rows when idle, but its row caches do not key on column widths
        # (Textual 8.2): a row drawn before the measurement would stay cut at the old widths.
        widths = [column.content_width for column in self.columns.values()]
        if widths != self._widths:
            self._widths = widths
            self.notify_style_update()

    def show_rows(self, rows: dict[str, tuple]) -> None:
        self._ensure_columns()
        _update_rows(self, rows)


def _update_rows(table: DataTable, rows: dict[str, tuple]) -> None:
    """Make the table hold exactly `rows` (key -> cells), touching only what changed."""
    columns = list(table.columns.values())
    for key in [k.value for k in table.rows if k.value not in rows]:
        table.remove_row(key)
    for key, cells in rows.items():
        if key in table.rows:
            for column, value in zip(columns, cells):
                old = table.get_cell(key, column.key)
                if old != value or getattr(old, "style", None) != getattr(value, "style", None):  # Text's == ignores it
                    wider = Text.from_markup(value).cell_len > column.content_width if isinstance(value, str) \
                        else value.cell_len > column.content_width
                    table.update_cell(key, column.key, value, update_width=wider)  # a reflow only when wider
        else:
            table.add_row(*cells, key=key)


class RunsTable(KeyedTable):
    COLUMNS = (("run", "run"), ("status", "status"), ("method", "method"), ("epoch", "epoch"), ("step", "step"),
               ("speed", "samples/s"), ("eta", "ETA"), ("best", "best val"), ("voice", "\u2605"))

    def columns_now(self) -> tuple[tuple[str, str], ...]:
        # the voice column is titled by the [best] rule's metric: "★ sim" by default
        metric = self.app.settings.best.metric
        return self.COLUMNS[:-1] + (("voice", f"\u2605 {METRIC_WORD.get(metric, metric)}"),)

    def show(self, runs) -> None:
        rows = {}
        for r in runs:
            shown = "-" if r.epoch is None else str(r.epoch)  # epoch 0 is an epoch (the official script counts from 0)
            epoch = f"{shown}/{r.epochs}" if r.epochs else shown
            step = f"{r.step}" if r.step is not None else "-"
            best = fmt_num(r.best_val) + (f" @{r.best_epoch}" if r.best_epoch else "") if r.best_val is not None else "-"
            status = "adopted" if r.status == EXTERNAL and r.adopted else r.status
            rows[str(r.path)] = (r.name, Text(status, themed(self.app, STATUS_STYLE.get(r.status, ""))), r.method_text,
                                 epoch, step,
                                 fmt_num(r.samples_per_s, 1) if r.live else "-",
                                 fmt_duration(r.eta_s) if r.live else "-", best, voice_cell(self.app, r.voice))
        self.show_rows(rows)


METRIC_WORD = {"similarity": "sim", "dnsmos_ovrl": "OVRL", "wer": "WER", "cer": "CER", "val_loss": "val"}


def voice_cell(app, voice) -> Text | str:
    """The runs table's voice column: the best checkpoint by the [best] rule (the checkpoints view's ★), as
    the rule metric's value and the epoch; "none" when scores exist but none meets the rule. In the warning
    colour while it does not beat zero-shot cloning (the baseline row), as the checkpoints view's verdict says."""
    if voice is None or not voice.scored:
        return "-"
    if voice.name is None:
        return Text("none", themed(app, MUTED))
    epoch = checkpoint_epoch(voice.name)
    value = f"{voice.value:.2f}" if voice.value is not None else "?"
    colour = WARNING if voice.beats_zero_shot is False else SUCCESS
    return Text(f"{value} @{epoch if epoch is not None else voice.name}", themed(app, f"bold {colour}"))


STATE_WORD = {"queued": "queued", "running": "scoring", "done": "done", "failed": "failed", "skipped": "skipped"}
PINNED = ("baseline", "ceiling")  # the run's reference rows, above the checkpoints


def _score(means: dict | None, key: str, error: str, digits: int = 2) -> Text | str:
    """A score as the table shows it: "?" in the error colour for a measure that could not be taken."""
    value = (means or {}).get(key)
    if is_score(value):
        return f"{value:.{digits}f}" if not isinstance(value, bool) else str(value)
    return Text("?", error) if isinstance(value, str) else "-"


def _ear(r) -> str:
    if r is None:
        return "-"
    parts = [f"{r.stars:.1f}" + "*" if r.stars is not None else ""]
    if r.won or r.lost or r.even:
        parts.append(f"{r.won}-{r.lost}" + (f"={r.even}" if r.even else ""))
    return " ".join(p for p in parts if p) or "-"


def score_state(name: str, means: dict | None, states: dict) -> tuple[str, str | None]:
    """A checkpoint's scoring state as the table says it, and the why (an error, or the measures that
    could not be taken), if any."""
    entry = states.get(name) or {}
    state = entry.get("state")
    if state in ("queued", "running") or (state in ("failed", "skipped") and means is None):
        return STATE_WORD[state], entry.get("error")
    if means is not None:
        missing = sorted({v for v in means.values() if isinstance(v, str)})
        return ("done", "; ".join(missing)) if not missing else ("partly", "; ".join(missing))
    return "not scored", "not queued: e scores it (E every unscored one)"


class CheckpointsTable(KeyedTable):
    COLUMNS = (("name", "checkpoint"), ("val", "val loss"), ("sim", "sim"), ("wer", "WER"), ("ovrl", "OVRL"),
               ("rate", "rate"), ("runaway", "run"), ("ear", "ear"), ("state", "scoring"), ("size", "size"),
               ("epoch", "epoch"), ("step", "step"), ("created", "created"))

    def show(self, checkpoints, judgement=None, best: str | None = None, ascii: bool = False) -> None:
        """The run's baseline and ceiling rows pinned at the top, then its checkpoints (oldest first) with
        their scores, scoring state and the ears' verdicts. When they are another run's than before, the
        cursor starts on the best checkpoint by the rule (marked), else the best by validation loss (*),
        else the newest. Later updates leave the cursor where the operator put it."""
        j = judgement
        error, muted, best_style = (themed(self.app, s) for s in (ERROR, MUTED, f"bold {SUCCESS}"))

        def score(means, key):
            return _score(means, key, error)

        known = [c.val_loss for c in checkpoints if c.val_loss is not None]
        best_val = min(known) if known else None
        rows, val_key, best_key = {}, None, None
        for pin in PINNED:
            row = getattr(j, pin, None) if j is not None else None
            means = (row or {}).get("means")
            entry = (j.rows if j is not None else {}).get(pin) or {}
            state = STATE_WORD.get(entry.get("state"), "done" if means else "waiting")
            if row is not None and "error" in row:
                state = "not scored"
            label = "baseline (Base)" if pin == "baseline" else "ceiling (real)"
            rows[pin] = (Text(label, f"italic {muted}"), "-", score(means, "similarity"), score(means, "wer"),
                         score(means, "dnsmos_ovrl"), score(means, "rate_ratio"),
                         str(means.get("runaway", "-")) if means else "-", "", state, "", "", "", "")
        mark = " *best" if ascii else " \u2605"
        for c in checkpoints:
            val = fmt_num(c.val_loss, 4)
            is_val_best = best_val is not None and c.val_loss == best_val
            val_key = val_key or (str(c.path) if is_val_best else None)
            if c.name == best:
                best_key = str(c.path)
            state, _why = score_state(c.name, c.scores, j.states if j is not None else {})
            runaway = (c.scores or {}).get("runaway")
            rows[str(c.path)] = (
                Text(c.name + mark, best_style) if c.name == best else c.name,
                Text(val + " *", best_style) if is_val_best else val,
                score(c.scores, "similarity"), score(c.scores, "wer"), score(c.scores, "dnsmos_ovrl"),
                score(c.scores, "rate_ratio"), Text(str(runaway), error) if is_score(runaway) and runaway else
                (str(runaway) if is_score(runaway) else "-"),
                _ear((j.ratings if j is not None else {}).get(c.name)),
                Text(state, "dim") if state == "not scored" else state,
                fmt_bytes(c.shown_bytes), "-" if c.epoch is None else str(c.epoch), "-" if c.step is None else str(c.step),
                fmt_time(c.created))
        start = best_key or val_key or next(reversed(rows), None)
        fresh = not any(key in self.rows for key in rows if key not in PINNED)
        self.show_rows(rows)
        if fresh and start is not None and start not in PINNED:
            self.move_cursor(row=self.get_row_index(start), animate=False)
