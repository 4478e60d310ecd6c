"""Where the configuration file is, and reading it as TOML: shared by the dashboard (milo_tui.config, which
owns the top-level keys and [ui], [keys]) and `milo-train prepare` (which reads [audit]). Torch-free."""
from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from platformdirs import user_config_path

APP = "milo-tui"


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line saying what and how to fix it."""


def config_file() -> Path:
    """$MILO_CONFIG, else ~/.config/milo-tui/config.toml (or under $XDG_CONFIG_HOME)."""
    explicit = os.environ.get("MILO_CONFIG")
    return Path(explicit).expanduser() if explicit else user_config_path(APP) / "config.toml"


def read_config(path: Path | None = None) -> dict:
    """The file's tables as a dict; {} when there is no file. ConfigError (one line) when it cannot be read."""
    path = config_file() if path is None else path
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax or move the file away") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
