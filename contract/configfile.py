"""Where the configuration file is, reading it as TOML, and checking one of its tables against a schema:
shared by the dashboard (milo_tui.config, which owns the top-level keys and [ui], [keys]), `milo-train
prepare` (which reads [audit]) and the contract modules that own [best], [scoring] and [retention].
Torch-free."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "milo-tui"


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line saying what and how to fix it."""


def config_file() -> Path:
    """$MILO_CONFIG, else ~/.config/milo-tui/config.toml (or under $XDG_CONFIG_HOME)."""
    from platformdirs import user_config_path

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


# ---- a table's schema ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One key of a configuration table: its default, and how a value given for it is checked. `check`
    returns the value to use, or raises ValueError; `expected` finishes the line "KEY = VALUE must be ..."."""
    default: Any
    expected: str
    check: Callable[[Any], Any]


def whole(default: int | None = 0, lo: int = 0, hi: int | None = None, expected: str | None = None) -> Key:
    """A whole number from lo (to hi); true and false are not numbers here."""
    said = expected or (f"a whole number of {lo} or more" if hi is None else f"a whole number from {lo} to {hi}")

    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise ValueError
        return v
    return Key(default, said, check)


def number(default: float | None, lo: float | None = None, hi: float | None = None,
           expected: str | None = None) -> Key:
    """A number (whole or not, read as a float) from lo (to hi)."""
    said = expected or ("a number" if lo is None else f"a number of {lo:g} or more" if hi is None
                        else f"a number from {lo:g} to {hi:g}")

    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (lo is not None and v < lo) \
                or (hi is not None and v > hi):
            raise ValueError
        return float(v)
    return Key(default, said, check)


def true_or_false(default: bool | None = False) -> Key:
    def check(v):
        if not isinstance(v, bool):
            raise ValueError
        return v
    return Key(default, "true or false", check)


def one_of(default: str, choices) -> Key:
    choices = tuple(choices)

    def check(v):
        if v not in choices:
            raise ValueError
        return v
    return Key(default, f"one of {', '.join(choices)}", check)


def parsed(default: Any, parse: Callable[[Any], Any]) -> Key:
    """A value read by `parse`, whose ValueError says what is wrong: the line is "[table] KEY: <its words>"."""
    return Key(default, "", parse)


def read_table(config: dict | None, table: str, keys: dict[str, Key], origin: str | Path = "the configuration file",
               *, only: tuple[str, ...] | None = None, given: bool = False) -> dict:
    """The [table] of a configuration (read_config()), checked against `keys`: key -> checked value, a default
    for each key not given (`given=True`: only the keys given). `only` checks those keys alone and leaves the
    table's other keys to their readers (so unknown keys are not this caller's to judge). ConfigError (one
    line: what is wrong and the valid keys or values) when the table is wrong."""
    values = (config or {}).get(table, {})
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: [{table}] must be a table")
    if only is None:
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise ConfigError(f"{origin}: unknown key(s) in [{table}]: {', '.join(unknown)}; valid keys are "
                              f"{', '.join(keys)}")
    out = {}
    for name in (keys if only is None else only):
        key = keys[name]
        if name not in values:
            if not given:
                out[name] = key.default
            continue
        value = values[name]
        try:
            out[name] = key.check(value)
        except ValueError as exc:
            said = f"{name}: {exc}" if not key.expected else f"{name} = {value!r} must be {key.expected}"
            raise ConfigError(f"{origin}: [{table}] {said}") from None
    return out
