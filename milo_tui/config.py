"""Layered configuration: defaults, then the TOML file, then environment variables, then flags.

    ~/.config/milo-tui/config.toml      (or $XDG_CONFIG_HOME/milo-tui/config.toml, or $MILO_CONFIG)
        base_model  = "/models/Qwen3-TTS-12Hz-1.7B-Base"
        checkpoints = "/data/milo/checkpoints"
        data        = "/data/milo/corpus"
        device      = "cuda"            # auto | cpu | cuda | cuda:N
        demo_dir    = "~/.local/share/milo-tui/demo"

        [ui]
        ascii            = false        # ASCII charts and borders (default: auto, from the locale)
        restart_on_crash = 0            # the new-run form's default restart policy (0 = off)
        restart_backoff  = 5.0          # seconds before the first restart; doubles each time
        score_checkpoints = true        # new runs score each checkpoint after it is saved (docs/scoring.md)

        [scoring]
        device = "cpu"                  # where the scorer generates: cpu | cuda | auto (docs/configuration.md)

        [serve]                         # where S in the checkpoints view serves (docs/serving.md)
        host = "127.0.0.1"
        port = 8767

        [record]                        # the record screen's goal, auto-stop and take checks (docs/recording.md)
        goal_minutes = 45

        [keys]                          # action id -> key(s), see docs/keys.md
        stop = "x"

    MILO_BASE_MODEL, MILO_CHECKPOINTS, MILO_DATA, MILO_DEVICE, MILO_DEMO_DIR
    --base, --checkpoints, --data, --device, --demo-dir

Each value remembers where it came from, so the dashboard can say why it uses what it uses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from platformdirs import user_data_path

from contract.configfile import APP, ConfigError, config_file, number, read_config, read_table, true_or_false, whole
from contract.scorers import DEFAULT_SCORER_DEVICE, SCORING_KEYS, SCORING_TABLE
from contract.scores import BEST_TABLE, BestRule, best_rule
from contract.serve import DEFAULT_HOST, DEFAULT_PORT, SERVE_TABLE, VOICES_TABLE, serve_settings, voices_table

if TYPE_CHECKING:
    from contract.retention import Policy

__all__ = ["APP", "ConfigError", "Settings", "config_file", "load_settings"]
DEVICES = ("auto", "cpu", "cuda")
ENV = {
    "base_model": "MILO_BASE_MODEL",
    "checkpoints": "MILO_CHECKPOINTS",
    "data": "MILO_DATA",
    "device": "MILO_DEVICE",
    "demo_dir": "MILO_DEMO_DIR",
}
# [ui] table (the defaults are Settings')
UI_KEYS = {
    "ascii": true_or_false(None),
    "restart_on_crash": whole(0, lo=0, hi=100, expected="a whole number from 0 (off) to 100"),
    "restart_backoff": number(5.0, lo=0, hi=3600, expected="seconds from 0 to 3600"),
    "score_checkpoints": true_or_false(True),
}


def default_checkpoints() -> Path:
    """The project's checkpoints/ folder in a source checkout, else the XDG data folder."""
    here = Path(__file__).resolve().parent.parent / "checkpoints"
    return here if here.is_dir() else user_data_path(APP) / "checkpoints"


@dataclass(frozen=True)
class Settings:
    base_model: Path | None = None
    checkpoints: Path = field(default_factory=default_checkpoints)
    data: Path | None = None
    device: str = "auto"
    demo_dir: Path = field(default_factory=lambda: user_data_path(APP) / "demo")
    demo: bool = False
    # [ui] table; ascii None means "decide from the locale"
    ascii: bool | None = None
    restart_on_crash: int = 0
    restart_backoff: float = 5.0
    score_checkpoints: bool = True
    # [best] table: which checkpoint is the voice (contract/scores.py)
    best: BestRule = field(default_factory=BestRule)
    # [scoring] table: where the scorer generates (contract/scores.py, docs/configuration.md)
    score_device: str = DEFAULT_SCORER_DEVICE
    # [retention] table: what the prune key keeps (contract/retention.Policy; None: its defaults, read through
    # retention_policy(), so the policy's module waits until a prune or a launch needs it)
    retention: Policy | None = None
    # [serve] table: where the checkpoints view's S serves a checkpoint (contract/serve.py; milo-serve reads the rest)
    serve_host: str = DEFAULT_HOST
    serve_port: int = DEFAULT_PORT
    # [keys] table: binding id -> key string(s), applied with App.set_keymap
    keys: dict = field(default_factory=dict, compare=False)
    # key -> "default" | "file <path>" | "env NAME" | "flag --x" | "demo workspace"
    sources: dict = field(default_factory=dict, compare=False)

    def retention_policy(self) -> Policy:
        from contract.retention import Policy

        return self.retention or Policy()

    def source(self, key: str) -> str:
        return self.sources.get(key, "default")

    def with_values(self, origin: str, **values) -> "Settings":
        return replace(self, **values, sources={**self.sources, **{k: origin for k in values}})


def _check_device(value: str, origin: str) -> str:
    v = value.strip().lower()
    if v in DEVICES or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise ConfigError(f"device {value!r} from {origin} is not one of auto, cpu, cuda, cuda:N")


def _coerce(key: str, value, origin: str):
    if key == "device":
        if not isinstance(value, str):
            raise ConfigError(f"device from {origin} must be a string such as \"cuda\"")
        return _check_device(value, origin)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} from {origin} must be a non-empty path string")
    return Path(value).expanduser()


def _keys_table(table, path: Path) -> dict:
    """[keys]: action id -> key string (a comma list binds several keys). Unknown ids are reported by the
    dashboard, which knows its actions; here only the shape is checked."""
    if not isinstance(table, dict) or not all(isinstance(v, str) and v.strip() for v in table.values()):
        raise ConfigError(f"{path}: [keys] must map action ids to key names, e.g. stop = \"x\"")
    return {str(k): v.strip() for k, v in table.items()}


def load_settings(flags: dict | None = None, environ: dict | None = None, path: Path | None = None) -> Settings:
    """Resolve settings: defaults < config file < environment < flags (non-None flag values)."""
    environ = os.environ if environ is None else environ
    path = config_file() if path is None else path
    settings = Settings()
    if path.is_file():
        from contract.audit import AUDIT_TABLE, audit_thresholds  # the tables only a config file can hold
        from contract.recording import RECORD_TABLE, record_settings
        from contract.retention import RETENTION_TABLE, policy_from

        data = read_config(path)
        tables = {"keys", "ui", AUDIT_TABLE, BEST_TABLE, RECORD_TABLE, RETENTION_TABLE, SCORING_TABLE,
                  SERVE_TABLE, VOICES_TABLE}
        unknown = sorted(set(data) - set(ENV) - tables)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(ENV)}")
        values = {k: _coerce(k, data[k], f"{path}") for k in ENV if k in data}
        values.update(read_table(data, "ui", UI_KEYS, path, given=True))  # only what the file sets comes from it
        if "keys" in data:
            values["keys"] = _keys_table(data["keys"], path)
        audit_thresholds(data, path)  # [audit] belongs to `milo-train prepare`; a mistake in it is said here too
        record_settings(data, path)   # [record] is read when the record screen opens; said here at the start
        voices_table(data, path)      # milo-serve's [voices]: a config milo-serve reads is one milo-tui opens
        scoring = read_table(data, SCORING_TABLE, SCORING_KEYS, path)  # max_scorers is the scorers'; said here too
        if BEST_TABLE in data:
            values["best"] = best_rule(data, path)
        if SCORING_TABLE in data:
            values["score_device"] = scoring["device"]
        if RETENTION_TABLE in data:
            values["retention"] = policy_from(data, path)
        if SERVE_TABLE in data:  # milo-serve's own table: checked here too, host and port kept
            serve = serve_settings(data, path)
            values.update(serve_host=serve["host"], serve_port=serve["port"])
        settings = settings.with_values(f"file {path}", **values) if values else settings
    for key, name in ENV.items():
        if environ.get(name):
            settings = settings.with_values(f"env {name}", **{key: _coerce(key, environ[name], f"${name}")})
    for key, value in (flags or {}).items():
        if value is not None and key in ENV:
            settings = settings.with_values(f"flag --{key.replace('_', '-')}", **{key: _coerce(key, value, f"--{key}")})
    return settings
