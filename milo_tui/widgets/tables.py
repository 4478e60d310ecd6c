"""The runs table and the checkpoints table: rows keyed by run / checkpoint name, updated in place."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from milo_tui.format import fmt_bytes, fmt_duration, fmt_num, fmt_time
from contract.runfolder import CRASHED, FINISHED, RUNNING, STARTING, STOPPED, STOPPING

STATUS_STYLE = {
    RUNNING: "bold #87d787", STARTING: "#87d787", STOPPING: "#ffaf00", STOPPED: "#d7d7d7",
    CRASHED: "bold #ff5f5f", FINISHED: "#5fafff",
}


class KeyedTable(DataTable):
    """A DataTable whose rows are kept by key: `show` adds, updates and removes only what changed."""
    COLUMNS: tuple[tuple[str, str], ...] = ()

    def _ensure_columns(self) -> None:
        # before any row: columns added after rows would keep their label widths
        if not self.columns:
            self.cursor_type = "row"
            for key, label in self.COLUMNS:
                self.add_column(label, key=key)

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
                if table.get_cell(key, column.key) != value:
                    wider = Text.from_markup(value).cell_len > column.content_width if isinstance(value, str) \
                        else value.cell_len > column.content_width
                    table.update_cell(key, column.key, value, update_width=wider)  # a reflow only when wider
        else:
            table.add_row(*cells, key=key)


class RunsTable(KeyedTable):
    COLUMNS = (("run", "run"), ("status", "status"), ("epoch", "epoch"), ("step", "step"), ("speed", "samples/s"),
               ("eta", "ETA"), ("best", "best val"))

    def show(self, runs) -> None:
        rows = {}
        for r in runs:
            epoch = f"{r.epoch or '-'}/{r.epochs}" if r.epochs else (str(r.epoch) if r.epoch else "-")
            step = f"{r.step}" if r.step is not None else "-"
            best = fmt_num(r.best_val) + (f" @{r.best_epoch}" if r.best_epoch else "") if r.best_val is not None else "-"
            rows[str(r.path)] = (r.name, Text(r.status, STATUS_STYLE.get(r.status, "")), epoch, step,
                                 fmt_num(r.samples_per_s, 1) if r.live else "-",
                                 fmt_duration(r.eta_s) if r.live else "-", best)
        self.show_rows(rows)


class CheckpointsTable(KeyedTable):
    COLUMNS = (("name", "checkpoint"), ("epoch", "epoch"), ("step", "step"), ("size", "size"),
               ("val", "val loss"), ("created", "created"))

    def show(self, checkpoints) -> None:
        """The rows of one run's checkpoints (oldest first). When they are another run's than before, the
        cursor starts on the best one by validation loss (marked *), else the newest: the one the operator
        most likely wants to hear. Later updates leave the cursor where the operator put it."""
        known = [c.val_loss for c in checkpoints if c.val_loss is not None]
        best = min(known) if known else None
        rows, best_key = {}, None
        for c in checkpoints:
            val = fmt_num(c.val_loss, 4)
            is_best = best is not None and c.val_loss == best
            best_key = best_key or (str(c.path) if is_best else None)
            rows[str(c.path)] = (c.name, str(c.epoch or "-"), str(c.step or "-"), fmt_bytes(c.bytes),
                                 Text(val + " *", "bold #87d787") if is_best else val, fmt_time(c.created))
        start = best_key or next(reversed(rows), None)
        fresh = not any(key in self.rows for key in rows)
        self.show_rows(rows)
        if fresh and start is not None:
            self.move_cursor(row=self.get_row_index(start), animate=False)
