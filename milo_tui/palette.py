"""The command palette's own commands (ctrl+p): every key's action of the screen below and of the app, one
entry per action; one that cannot act now is listed as "... (not now)" with the reason, which choosing it says
(as its dimmed key does when pressed); and, where the loss chart is, an entry per codebook layer to overlay.
Textual's own commands (theme, screenshot, maximize) come from its SystemCommandsProvider beside this one."""
from __future__ import annotations

from functools import partial
from typing import Iterator

from textual.app import SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from contract.runfolder import NUM_LAYERS
from milo_tui.keys import why_not

SKIPPED_IDS = ("quit_ctrl_c",)  # a second key for an action already listed


def action_commands(app, screen) -> Iterator[SystemCommand]:
    """The palette's entries for `screen` (the one it opens over): its bindings, then the app's."""
    seen = set()
    for node in (screen, app):
        for binding in getattr(node, "BINDINGS", ()):
            if not isinstance(binding, Binding) or not binding.id or binding.id in SKIPPED_IDS:
                continue
            if (binding.action, binding.description) in seen:
                continue  # one entry per action (esc, c and q all go back)
            seen.add((binding.action, binding.description))
            reason = why_not(screen, node, binding.action)
            if reason:
                yield SystemCommand(f"{binding.description} (not now)", reason,
                                    partial(app.notify, reason, severity="warning", timeout=4))
                continue
            yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                partial(app.run_action, binding.action, node))
    if screen.query("#chart"):
        for layer in range(NUM_LAYERS):
            yield SystemCommand(f"Overlay layer {layer}", f"Draw codebook layer {layer}'s loss on the chart",
                                partial(app.set_overlay, layer), discover=False)


class ActionCommands(Provider):
    """Every key's action in the palette: listed when it opens (but the per-layer overlays), and searched."""

    async def discover(self) -> Hits:
        for command in action_commands(self.app, self.screen):
            if command.discover:
                yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in action_commands(self.app, self.screen):
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.callback, help=command.help)
