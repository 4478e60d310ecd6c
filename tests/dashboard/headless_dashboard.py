"""A dashboard in a process of its own (Textual's headless driver) that starts one run from the form and
then keeps watching it; the re-attach test SIGKILLs it.

    python -m tests.dashboard.headless_dashboard CHECKPOINTS BASE DATA RUN_NAME [FIELD=VALUE ...]

(each FIELD=VALUE is set in the form too: `hosts=spark2 master_addr=127.0.0.1` starts a run across hosts)
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

from milo_tui.app import MiloApp
from milo_tui.config import Settings
from milo_tui.screens.new_run import NewRunScreen


@contextlib.contextmanager
def first_dashboard(checkpoints, base, data, name: str, env: dict, log_path: Path, *fields: str):
    """This module's dashboard in a process of its own, starting run NAME (FIELD=VALUE: more of the form); the
    block waits for what it needs, and the dashboard is SIGKILLed when the block ends (killed in any case)."""
    with open(log_path, "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "tests.dashboard.headless_dashboard", str(checkpoints), str(base),
                                  str(data), name, *fields],
                                 env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            yield first
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)


def main() -> None:
    checkpoints, base, data, name = sys.argv[1:5]
    fields = dict(arg.split("=", 1) for arg in sys.argv[5:])
    app = MiloApp(Settings(checkpoints=Path(checkpoints), base_model=Path(base), data=Path(data),
                           score_checkpoints=False),
                  telemetry_interval=None, ascii=True)

    async def auto_pilot(pilot) -> None:
        while type(app.screen).__name__ != "RunsScreen" or not app.screen.is_mounted:  # the first frame is up
            await pilot.pause(0.05)
        await pilot.press("n")
        while not isinstance(app.screen, NewRunScreen):
            await pilot.pause(0.05)
        app.screen.query_one("#run_name").value = name
        app.screen.query_one("#epochs").value = "500"
        for field, value in fields.items():
            app.screen.query_one(f"#{field}").value = value
        await pilot.press("ctrl+s")
        print("form submitted", flush=True)
        await asyncio.Event().wait()  # watch until killed

    app.run(headless=True, size=(100, 30), auto_pilot=auto_pilot)


if __name__ == "__main__":
    main()
