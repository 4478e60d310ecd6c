"""Keys shared by the app and its screens: binding ids, and the mixin that makes a dimmed key say why.

Every binding has an id (remappable from a [keys] table in config.toml, docs/keys.md), a description and
a tooltip. The app imports the screens and the screens import this module, never the app.
"""
from __future__ import annotations


def action_name(action: str) -> str:
    """"app.overlay(1)" -> "overlay"."""
    return action.split("(")[0].rsplit(".", 1)[-1]


class WhyNot:
    """Mixin for the app and its screens: an action is dimmed (None) exactly when why_not gives a reason."""

    def why_not(self, action: str) -> str | None:
        return None

    def check_action(self, action: str, parameters) -> bool | None:
        return None if self.why_not(action) else True


class ExplainDisabled(WhyNot):
    """Mixin for screens: a key whose action is dimmed says why in one line instead of doing nothing."""

    def on_key(self, event) -> None:
        active = self.active_bindings.get(event.key)  # the keymap from config.toml applied
        if active is not None and active.node is self and not active.enabled:
            reason = self.why_not(action_name(active.binding.action))
            if reason:
                event.stop()
                self.notify(reason, severity="warning", timeout=4)


def why_not(screen, node, action: str) -> str | None:
    """Why `action` (a binding's action on `node`) cannot act now on `screen`, or None when it can: the
    node's own reason, else the screen's; an action dimmed with no reason given is "not possible here now"."""
    name = action_name(action)
    for owner in (node, screen):
        explain = getattr(owner, "why_not", None)
        reason = explain(name) if explain is not None else None
        if reason:
            return reason
    target = screen if node is screen else node
    try:
        enabled = target.check_action(name, ())
    except Exception:  # noqa: BLE001 - an action whose check needs parameters: it can act
        enabled = True
    return None if enabled else "not possible here now"


def binding_ids(*classes) -> set[str]:
    """The binding ids the given App and Screen classes declare."""
    return {b.id for cls in classes for b in cls.BINDINGS if getattr(b, "id", None)}
