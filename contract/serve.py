"""The speech server's contract (docs/serving.md): its [serve] config table, the request limits, and the
state file through which a dashboard finds, shows and stops a server it did not start.

Torch-free and FastAPI-free: the dashboard reads it, milo-serve writes it.

State: one JSON file per port in the serve folder ($MILO_SERVE_DIR, else the user's state folder,
e.g. ~/.local/state/milo-tui/serve/8767.json), rewritten atomically by the server as its state changes
and every few seconds; a dashboard started later reads it, checks the pid with its start time (PID reuse),
and stops the server with SIGTERM.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path

from contract.configfile import APP, ConfigError, number, parsed, read_table, whole
from contract.runfolder import write_json_atomic

SERVE_TABLE = "serve"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8767
MAX_INPUT_CHARS = 4096          # OpenAI's limit on `input`
FIRST_SEGMENT_CHARS = 80        # a longer first sentence is cut (at a comma where it can): first audio soon
MAX_BODY_BYTES = 64 * 1024      # a request body larger than this is refused before it is parsed
FORMATS = ("wav", "pcm", "flac", "mp3")
STREAM_FORMATS = ("audio", "sse")
DEFAULT_VOICE = "default"
SERVE_DIR_ENV = "MILO_SERVE_DIR"
STATE_PERIOD_S = 2.0            # the server rewrites its state at least this often while it serves

# Server status values in the state file
LOADING, READY, STOPPING, STOPPED, FAILED = "loading", "ready", "stopping", "stopped", "failed"
LIVE = (LOADING, READY, STOPPING)


def _aliases(value) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("must be a table of alias = \"speaker\" strings, e.g. aliases = { alloy = \"milo\" }")
    return {k.lower(): v for k, v in value.items()}


def _optional_path(value) -> Path | None:
    if not isinstance(value, str):
        raise ValueError("must be a path in quotes")
    return Path(value).expanduser() if value else None


SERVE_KEYS = {
    "host": parsed(DEFAULT_HOST, lambda v: _host(v)),
    "port": whole(DEFAULT_PORT, lo=1, hi=65535, expected="a port number from 1 to 65535"),
    "max_active": whole(4, lo=1, hi=64, expected="a whole number of streams from 1 to 64"),
    "queue": whole(8, lo=0, hi=1024, expected="a whole number of waiting requests from 0 to 1024"),
    "api_key_file": parsed(None, _optional_path),
    "checkpoint": parsed(None, _optional_path),
    "aliases": parsed({}, _aliases),
    "retry_after_s": number(2.0, lo=0, hi=600, expected="seconds from 0 to 600"),
    "runs": parsed(None, _optional_path),
}
VOICES_TABLE = "voices"     # [voices] name = "a voice bundle or RUN/best": more voices on the served base


def _host(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an address in quotes, e.g. \"127.0.0.1\" or \"0.0.0.0\"")
    return value.strip()


def serve_settings(config: dict | None, origin: str | Path = "the configuration file") -> dict:
    """The [serve] table checked, with defaults (ConfigError, one line, when it is wrong)."""
    return read_table(config, SERVE_TABLE, SERVE_KEYS, origin)


def voices_table(config: dict | None, origin: str | Path = "the configuration file") -> dict[str, str]:
    """The [voices] table: voice name -> a checkpoint (a voice bundle) or RUN/best."""
    table = (config or {}).get(VOICES_TABLE, {})
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in table.items()):
        raise ConfigError(f"{origin}: [{VOICES_TABLE}] must hold name = \"path of a voice bundle or RUN/best\" lines")
    return dict(table)


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(path: Path) -> str:
    """The API key in `path` (first line, stripped). ConfigError, one line, when it cannot be used: missing,
    empty, or readable by others (it is a password)."""
    try:
        mode = path.stat().st_mode
        key = path.read_text(encoding="utf-8").strip().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"the API key file {path} does not exist (create it: {KEY_HINT})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not key or len(key[0].strip()) < 16:
        raise ConfigError(f"the API key file {path} must hold a key of at least 16 characters ({KEY_HINT})")
    if mode & 0o077:
        raise ConfigError(f"the API key file {path} can be read by other users: chmod 600 {path}")
    return key[0].strip()


KEY_HINT = "umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > ~/.config/milo-tui/serve.key"


def serve_dir() -> Path:
    explicit = os.environ.get(SERVE_DIR_ENV)
    if explicit:
        return Path(explicit)
    from platformdirs import user_state_path

    return user_state_path(APP) / "serve"


def state_path(port: int) -> Path:
    return serve_dir() / f"{int(port)}.json"


def log_path(port: int) -> Path:
    return serve_dir() / f"{int(port)}.log"


def write_state(port: int, state: dict) -> None:
    """Rewrite the state file of the server on `port` (atomically)."""
    path = state_path(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, state)


def read_states() -> list[dict]:
    """Every server state file that can be read, newest first (a broken one is skipped)."""
    folder = serve_dir()
    out = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and isinstance(state.get("port"), int):
            out.append(state)
    return sorted(out, key=lambda s: -float(s.get("started") or 0))


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind (host, port) now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


__all__ = ["ConfigError", "DEFAULT_HOST", "DEFAULT_PORT", "FORMATS", "LIVE", "SERVE_KEYS", "STREAM_FORMATS",
           "is_loopback", "read_api_key", "read_states", "serve_settings", "state_path", "write_state"]
