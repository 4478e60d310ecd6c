"""Keys shared by the app and its screens: binding ids, and the mixin that makes a dimmed key say why.

Every binding has an id (remappable from a [keys] table in config.toml, docs/keys.md), a description and
a tooltip. The app imports the screens and the screens import this module, never the app.
"""
from __future__ import annotations


def action_name(action: str) -> str:
    """"app.overlay(1)" -> "overlay"."""
    return action.split("(")[0].rsplit(".", 1)[-1]


class ExplainDisabled:
    """Mixin for screens: a key whose action is dimmed says why in one line instead of doing nothing."""

    def why_not(self, action: str) -> str | None:
        return None

    def check_action(self, action: str, parameters) -> bool | None:
        return None if self.why_not(action) else True

    def on_key(self, event) -> None:
        active = self.active_bindings.get(event.key)  # the keymap from config.toml applied
        if active is not None and active.node is self and not active.enabled:
            reason = self.why_not(action_name(active.binding.action))
            if reason:
                event.stop()
                self.notify(reason, severity="warning", timeout=4)


def binding_ids(*classes) -> set[str]:
    """The binding ids the given App and Screen classes declare."""
    return {b.id for cls in classes for b in cls.BINDINGS if getattr(b, "id", None)}
