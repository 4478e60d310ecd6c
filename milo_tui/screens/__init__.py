"""Screens: runs (the main view), checkpoints, the new-run form, dialogs, help."""


def all_binding_ids() -> set[str]:
    """Every binding id a [keys] table in config.toml may remap (docs/keys.md)."""
    from milo_tui.app import MiloApp
    from milo_tui.audition.screen import AuditionScreen
    from milo_tui.screens.checkpoints import CheckpointsScreen
    from milo_tui.screens.dialogs import ConfirmScreen, NumberPrompt
    from milo_tui.screens.help import HelpScreen
    from milo_tui.screens.new_run import NewRunScreen
    from milo_tui.screens.runs import RunsScreen

    classes = (MiloApp, RunsScreen, CheckpointsScreen, NewRunScreen, ConfirmScreen, NumberPrompt, HelpScreen,
               AuditionScreen)
    return {b.id for cls in classes for b in cls.BINDINGS if getattr(b, "id", None)}
