"""Serving a checkpoint from the dashboard (milo-serve, docs/serving.md): `S` in the checkpoints view serves
the highlighted checkpoint on the [serve] host and port, `X` in the runs view stops the server its line shows.
A mixin of MiloApp: the servers are found by RunWatcher from their state files (ServersScanned), started and
stopped through milo_tui/serving.py, whose fork, exec and waits run in a thread worker."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # milo_tui.messages is imported once the first frame is up
    from milo_tui.messages import ServersScanned, ServerStarted
    from milo_tui.serving import Server


class ServeOps:
    """MiloApp's speech-server actions and the state the runs view shows."""

    def shown_server(self) -> tuple[Server | None, int]:
        """The server the runs view's line is about, and how many other servers are live."""
        from milo_tui.serving import shown

        return shown(self.servers, self.settings.serve_port) if self.servers else (None, 0)

    def why_not(self, action: str) -> str | None:
        if action == "stop_server":
            from contract.serve import STOPPING

            server, _more = self.shown_server()
            if server is None or not server.live:
                return "no speech server is running; S in the checkpoints view serves the highlighted checkpoint"
            if server.status == STOPPING:
                return f"milo-serve on :{server.port} is already stopping"
            return None
        return super().why_not(action)

    def on_servers_scanned(self, message: ServersScanned) -> None:
        self.servers = message.servers
        if self.serve_control is not None:
            self.serve_control.reap()
        self.mark_dirty("servers")

    def serve(self, checkpoint: Path) -> None:
        """Serve `checkpoint` on the [serve] port: at once when nothing is served there, after a y/n when a server
        of another checkpoint is, not at all when it is the one served."""
        from contract.serve import STOPPING
        from milo_tui.screens.dialogs import ConfirmScreen
        from milo_tui.serving import server_on

        port = self.settings.serve_port
        current = server_on(port)  # read now, not as last scanned: the answer decides what is stopped
        if current is None or not current.live or current.status == STOPPING:
            self._serve_worker(checkpoint, current if current is not None and current.live else None)
            return
        if current.serves(checkpoint):
            self.notify(f"{current.what()} is already served at {current.url} ({current.status})")
            return
        self.push_screen(
            ConfirmScreen(f"Replace the server on :{port}?",
                          f"It serves {current.what()} ({current.status}, {current.requests} requests, "
                          f"{current.active} active, {current.queued} queued). y stops it (the streams in flight get "
                          f"a few seconds to finish) and serves {checkpoint.name}; n keeps it."),
            lambda yes: self._serve_worker(checkpoint, current) if yes else None)

    def _serve_worker(self, checkpoint: Path, old: Server | None) -> None:
        from milo_tui.messages import OperationFailed, ServerStarted
        from milo_tui.serving import ServeError

        s = self.settings
        device = s.device

        def work() -> None:
            try:
                if old is not None:
                    server = self.serve_control.replace(old, checkpoint, s.serve_host, s.serve_port, device)
                else:
                    server = self.serve_control.start(checkpoint, s.serve_host, s.serve_port, device)
            except ServeError as exc:
                self.post_message(OperationFailed(str(exc)))
            except Exception as exc:  # noqa: BLE001 - one line, never a crashed dashboard
                from contract.errors import one_line

                self.post_message(OperationFailed(f"cannot serve {checkpoint.name}: {one_line(exc)}"))
            else:
                self.post_message(ServerStarted(checkpoint, server))

        self.notify(f"serving {checkpoint.name} on :{s.serve_port}" + (f" in place of {old.name}" if old else "") + "...")
        self.run_worker(work, thread=True, group="serve", name=f"serve {checkpoint.name}", exit_on_error=False)

    def on_server_started(self, message: ServerStarted) -> None:
        server = message.server
        if server is None:
            from contract.serve import log_path

            self.notify(f"milo-serve started for {message.checkpoint.name} but has not said anything yet; its log: "
                        f"{log_path(self.settings.serve_port)}", severity="warning", timeout=8)
        else:
            self.notify(f"milo-serve {server.status} for {server.what()} at {server.url}; the runs view shows when it "
                        "is ready")
        if self.watcher is not None:
            self.watcher.wake()

    def action_stop_server(self) -> None:
        from milo_tui.serving import ServeError

        server, _more = self.shown_server()
        if server is None:
            return
        try:
            self.serve_control.stop(server)
        except ServeError as exc:
            self.notify(str(exc), severity="error")
        else:
            self.notify(f"stopping milo-serve on :{server.port} ({server.name}): the streams in flight finish first")
        if self.watcher is not None:
            self.watcher.wake()
