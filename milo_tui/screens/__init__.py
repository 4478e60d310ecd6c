"""Screens: runs (the main view), checkpoints, the new-run form, dialogs, help."""
