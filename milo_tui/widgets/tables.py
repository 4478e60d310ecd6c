"""The runs table and the checkpoints table: rows keyed by run / checkpoint name, updated in place."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from milo_tui.format import fmt_bytes, fmt_duration, fmt_num, fmt_time
from milo_tui.runfolder import CRASHED, FINISHED, RUNNING, STARTING, STOPPED, STOPPING

STATUS_STYLE = {
    RUNNING: "bold #87d787", STARTING: "#87d787", STOPPING: "#ffaf00", STOPPED: "#d7d7d7",
    CRASHED: "bold #ff5f5f", FINISHED: "#5fafff",
}


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


class RunsTable(DataTable):
    COLUMNS = (("run", "run"), ("status", "status"), ("epoch", "epoch"), ("step", "step"), ("speed", "samples/s"),
               ("eta", "ETA"), ("best", "best val"))

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def show(self, runs) -> None:
        rows = {}
        for r in runs:
            epoch = f"{r.epoch or '-'}/{r.epochs}" if r.epochs else (str(r.epoch) if r.epoch else "-")
            step = f"{r.step}" if r.step is not None else "-"
            best = fmt_num(r.best_val) + (f" @{r.best_epoch}" if r.best_epoch else "") if r.best_val is not None else "-"
            rows[str(r.path)] = (r.name, Text(r.status, STATUS_STYLE.get(r.status, "")), epoch, step,
                                 fmt_num(r.samples_per_s, 1) if r.live else "-",
                                 fmt_duration(r.eta_s) if r.live else "-", best)
        _update_rows(self, rows)


class CheckpointsTable(DataTable):
    COLUMNS = (("name", "checkpoint"), ("epoch", "epoch"), ("step", "step"), ("size", "size"),
               ("val", "val loss"), ("created", "created"))

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def show(self, checkpoints) -> None:
        known = [c.val_loss for c in checkpoints if c.val_loss is not None]
        best = min(known) if known else None
        rows = {}
        for c in checkpoints:
            val = fmt_num(c.val_loss, 4)
            rows[str(c.path)] = (c.name, str(c.epoch or "-"), str(c.step or "-"), fmt_bytes(c.bytes),
                                 Text(val + " *", "bold #87d787") if best is not None and c.val_loss == best else val,
                                 fmt_time(c.created))
        _update_rows(self, rows)
