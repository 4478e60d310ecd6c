"""`milo-serve [CHECKPOINT | RUN/best] [--host H] [--port P] [--api-key-file F]`: the chosen voice as an
OpenAI-compatible streaming speech server (docs/serving.md).

Everything the operator can get wrong is checked before the model loads, each in one line: the
checkpoint, the [serve] table, the port, and the key (binding beyond loopback needs one). Then the
server listens at once (/health answers, /ready says 503 until the model is loaded and warmed up), and
SIGTERM or Ctrl+C stops it after the streams in flight (at most --grace seconds).

Exit codes (contract/exits.py): 0 stopped; 2 bad command line; 3 bad input (checkpoint, config, key,
port in use, a non-loopback address without a key); 1 the model could not be loaded (the log says why).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from contract import exits
from contract.protocol import ENGINE_PATHS


SWITCH_INTERVAL_S = 0.0005


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="milo-serve", description="Serve a fine-tuned voice: OpenAI-compatible "
                                "streaming speech on /v1/audio/speech.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder, or RUN/best (the run's best by the [best] rule); "
                                                 "default: [serve] checkpoint in the config")
    p.add_argument("--host", help="address to listen on (default [serve] host, else 127.0.0.1); "
                                  "any non-loopback address needs an API key")
    p.add_argument("--port", type=int, help="port (default [serve] port, else 8767)")
    p.add_argument("--api-key-file", metavar="F", help="a file holding the API key clients must send as "
                                                        "'Authorization: Bearer KEY' (mode 600)")
    p.add_argument("--max-active", type=int, help="streams speaking at once (default [serve] max_active, else 4)")
    p.add_argument("--queue", type=int, help="requests waiting behind them (default [serve] queue, else 8)")
    p.add_argument("--voice", action="append", default=[], metavar="NAME=BUNDLE",
                   help="another voice: a LoRA voice bundle (or RUN/best) on the same base, served as NAME "
                        "(repeatable; also the [voices] table)")
    p.add_argument("--runs", metavar="DIR", help="serve each run's best bundle in DIR (on the same base) as a voice "
                                                 "named after its speaker (default [serve] runs)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--path", choices=ENGINE_PATHS, default=None, help="frame loop (as milo-say's --path)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds streams in flight get to finish on stop")
    return p


def _say(line: str) -> None:
    print(f"milo-serve: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as milo-say: Ctrl+C works even under nohup
    try:
        return _main(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        _say("interrupted while starting: nothing served")
        return exits.INTERRUPTED


def settings(args) -> dict:
    """The server's settings: flags over the [serve] table over defaults. ConfigError (one line) when wrong."""
    from contract.configfile import ConfigError, config_file, read_config
    from contract.serve import KEY_HINT, SERVE_KEYS, is_loopback, read_api_key, serve_settings, voices_table

    origin = config_file()
    config = read_config(origin)
    s = serve_settings(config, origin)
    for name in ("host", "port", "max_active", "queue"):
        value = getattr(args, name)
        if value is None:
            continue
        try:
            s[name] = SERVE_KEYS[name].check(value)
        except ValueError as exc:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: must be {SERVE_KEYS[name].expected or exc}") from None
    if args.api_key_file:
        s["api_key_file"] = Path(args.api_key_file).expanduser()
    s["api_key"] = read_api_key(s["api_key_file"]) if s["api_key_file"] else None
    if s["api_key"] is None and not is_loopback(s["host"]):
        raise ConfigError(f"listening on {s['host']} would let anyone on the network use the voice: give an API key "
                          f"(--api-key-file F or [serve] api_key_file); make one with: {KEY_HINT}")
    checkpoint = args.checkpoint or s["checkpoint"]
    if not checkpoint:
        raise ConfigError("which voice? give a checkpoint folder or RUN/best (or set [serve] checkpoint)")
    s["checkpoint"] = checkpoint
    s["voices"] = voices_table(config, origin)
    for given in args.voice:
        name, sep, where = given.partition("=")
        if not sep or not name.strip() or not where.strip():
            raise ConfigError(f"--voice {given}: give NAME=BUNDLE (a voice bundle folder or RUN/best)")
        s["voices"][name.strip()] = where.strip()
    if args.runs:
        s["runs"] = Path(args.runs).expanduser()
    return s


def extra_voices(s: dict, info) -> dict:
    """name -> CheckpointInfo of each further voice: the [voices] table and --voice, and with --runs each run's
    best bundle (named after its speaker). Each must be a voice bundle on the served checkpoint's base.
    ConfigError, one line, otherwise."""
    from contract.bundle import is_bundle
    from contract.checkpoint import CheckpointError, validate_checkpoint
    from contract.configfile import ConfigError
    from contract.runfolder import list_runs
    from contract.scores import NoBest, best_checkpoint, resolve_checkpoint

    wanted = dict(s["voices"])
    if s.get("runs"):
        for run in list_runs(s["runs"]):
            best, _ = best_checkpoint(run)
            if best is not None and best != info.path and is_bundle(best):
                wanted.setdefault(f"run:{run.name}", str(best))
    out = {}
    for name, where in wanted.items():
        try:
            path, _ = resolve_checkpoint(where)
            voice = validate_checkpoint(path)
        except CheckpointError as exc:
            raise ConfigError(f"voice {name}: {exc.path} cannot be served: {'; '.join(exc.problems)}") from None
        except (NoBest, ValueError) as exc:
            raise ConfigError(f"voice {name}: {exc}") from None
        if voice.bundle is None or info.bundle is None or voice.base != info.base:
            raise ConfigError(f"voice {name}: {voice.path.name} is not a voice bundle on the served checkpoint's base "
                              f"({info.base or info.path}): several voices share one base (serve a bundle of it)")
        if voice.path == info.path:
            continue
        out[voice.speaker if name.startswith("run:") else name] = voice
    return out


def _main(args) -> int:
    from contract.checkpoint import CheckpointError, validate_checkpoint
    from contract.configfile import ConfigError
    from contract.scores import NoBest, resolve_checkpoint
    from contract.serve import log_path, port_free

    try:
        s = settings(args)
        path, note = resolve_checkpoint(s["checkpoint"])
        info = validate_checkpoint(path)
        s["extra"] = extra_voices(s, info)
    except CheckpointError as exc:
        _say(f"{exc.path} cannot be served: {'; '.join(exc.problems)}")
        return exits.BAD_INPUT
    except (ConfigError, NoBest, ValueError) as exc:
        _say(str(exc))
        return exits.BAD_INPUT
    if note:
        _say(note)
    if not port_free(s["host"], s["port"]):
        _say(f"port {s['port']} on {s['host']} is in use (another milo-serve? its log: {log_path(s['port'])}); "
             f"stop it or pick another --port")
        return exits.BAD_INPUT
    return serve(args, s, info)


def serve(args, s: dict, info) -> int:
    import asyncio
    import contextlib
    import threading

    import uvicorn

    from contract.serve import FAILED
    from inference.serve.app import Service, create_app, write_state_periodically

    try:
        service = Service(info, device=args.device, path=args.path, host=s["host"], port=s["port"],
                          max_active=s["max_active"], queue=s["queue"], api_key=s["api_key"], aliases=s["aliases"],
                          retry_after_s=s["retry_after_s"], extra=s["extra"])
    except ValueError as exc:
        _say(str(exc))
        return exits.BAD_INPUT
    app = create_app(service)
    # The engine thread holds the GIL between torch calls; a short switch interval lets the event loop send
    # each chunk as soon as it is made rather than up to 5 ms (CPython's default) per hand-over later.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    config = uvicorn.Config(app, host=s["host"], port=s["port"], log_level="warning", access_log=False,
                            timeout_graceful_shutdown=args.grace, lifespan="on")
    server = uvicorn.Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        service.on_failure = lambda: setattr(server, "should_exit", True)
        threading.Thread(target=service.load, name="load", daemon=True).start()
        ticker = asyncio.create_task(write_state_periodically(service))
        _say(f"listening on http://{s['host']}:{s['port']} (loading {info.path}; /ready says when it can speak)")
        try:
            yield
        finally:
            ticker.cancel()
            await asyncio.to_thread(service.stop)

    app.router.lifespan_context = lifespan
    service.write_state()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if service.status == FAILED:
        _say(service.message)
        return exits.ERROR
    _say("stopped")
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
