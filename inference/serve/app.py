"""The speech server's HTTP side: FastAPI routes over one `Service` (docs/serving.md).

`Service` loads the checkpoint once (in a thread, so /health answers while it loads), warms it up, and
owns the scheduler (inference/serve/streams.py), the request statistics, the access log and the state
file the dashboard reads (contract/serve.py). The routes check a request completely before queueing it,
wait for its first chunk (so a request that makes no audio is an error, not an empty clip), then stream.
Every error is OpenAI's shape with one line; no request can stop the server.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import hmac
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from contract.audio import SAMPLE_RATE
from contract.checkpoint import CheckpointInfo
from contract.errors import one_line
from contract.runfolder import RUN_JSON, STATE_JSON, checkpoint_epoch, read_json
from contract.scores import scores_of
from contract.serve import (
    DEFAULT_VOICE, FAILED, FIRST_SEGMENT_CHARS, LOADING, MAX_BODY_BYTES, MAX_INPUT_CHARS, READY, STATE_PERIOD_S,
    STOPPED, STOPPING, write_state,
)
from contract.protocol import new_seed
from contract.text import TextError, split_sentences
from inference.serve.formats import CONTENT_TYPES, Encoder
from inference.serve.requests import BadRequest, SpeechRequest, error_body, parse_body, speech_request
from inference.serve.streams import Busy, Item, Scheduler, Stream

WARM_UP_TEXT = "Ready."
FIRST_AUDIO_WINDOW = 500     # requests the p50/p95 first-audio figures cover


def log(line: str) -> None:
    print(f"[milo-serve] {line}", file=sys.stderr, flush=True)


def percentile(values, q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Service:
    """One checkpoint, one engine, one scheduler; the counters the dashboard shows."""

    def __init__(self, info: CheckpointInfo, *, device: str = "auto", path: str | None = None, host: str, port: int,
                 max_active: int, queue: int, api_key: str | None, aliases: dict[str, str] | None = None,
                 retry_after_s: float = 2.0, extra: dict[str, CheckpointInfo] | None = None) -> None:
        """`extra`: more voices, name -> a voice bundle on the same base as `info` (checked by the CLI)."""
        self.info, self.device_arg, self.path_arg = info, device, path
        self.extra = dict(extra or {})
        self.voice_paths: dict[str, Path | None] = {}   # voice name -> the bundle it speaks with (None: `info`)
        self.host, self.port = host, port
        self.max_active, self.queue = max_active, queue
        self.api_key = api_key
        self.retry_after_s = retry_after_s
        self.voices = self._voices(aliases or {})
        self.status, self.message = LOADING, f"loading {info.path}"
        self.engine = None
        self.scheduler: Scheduler | None = None
        self.started = time.time()
        import psutil

        self.process_started = psutil.Process().create_time()   # the dashboard checks the pid with it
        self.ids = itertools.count(1)
        self.requests = self.errors = self.cancelled = self.refused = 0
        self.first_audio_ms: collections.deque = collections.deque(maxlen=FIRST_AUDIO_WINDOW)
        self.on_failure = None    # set by the CLI: stop the process when loading fails
        self._state_lock = threading.Lock()
        self._checkpoint: tuple | None = None   # (eval.json's mtime, checkpoint())

    # ---- what is served ------------------------------------------------------------------------
    def _voices(self, aliases: dict[str, str]) -> dict[str, str]:
        """Lower-case voice name -> the checkpoint's speaker: its speakers, `default`, and the aliases."""
        speakers = {s.lower(): s for s in self.info.speakers}
        voices = dict(speakers)
        voices[DEFAULT_VOICE] = self.info.speaker
        self.voice_paths = {name: None for name in voices}
        for name, info in self.extra.items():
            for key in dict.fromkeys([name.lower(), info.speaker.lower()]):
                if key in voices:
                    raise ValueError(f"voice {key!r} is named twice ({info.path} and "
                                     f"{self.voice_paths[key] or self.info.path}): give one of them another name")
                voices[key], self.voice_paths[key] = info.speaker, info.path
        for alias, target in aliases.items():
            if target.lower() not in voices:
                raise ValueError(f"[serve] aliases: {alias} = {target!r} names no voice of this server "
                                 f"(it has {', '.join(sorted(voices))})")
            voices[alias.lower()] = voices[target.lower()]
            self.voice_paths[alias.lower()] = self.voice_paths[target.lower()]
        return voices

    def checkpoint(self) -> dict:
        """What is served, for every endpoint and the state file: read again only when its eval.json changes
        (the run's scorer may add scores while it is served), not on every probe."""
        path = self.info.path
        try:
            stamp = (path / "eval.json").stat().st_mtime_ns
        except OSError:
            stamp = None
        if self._checkpoint is None or self._checkpoint[0] != stamp:
            run = path.parent if (path.parent / RUN_JSON).is_file() or (path.parent / STATE_JSON).is_file() else None
            evaluation = read_json(path / "eval.json")
            self._checkpoint = stamp, {
                "path": str(path), "name": path.name, "run": run.name if run else None,
                "epoch": (evaluation or {}).get("epoch") or checkpoint_epoch(path.name),
                "scores": scores_of(evaluation), "speaker": self.info.speaker, "speakers": list(self.info.speakers),
                "sample_rate": SAMPLE_RATE}
        return self._checkpoint[1]

    def state(self) -> dict:
        active, waiting = self.scheduler.depth() if self.scheduler else (0, 0)
        loaded = self.engine.loaded if self.engine is not None else None
        return {
            "pid": os.getpid(), "started": self.started, "process_started": self.process_started, "updated": round(time.time(), 3),
            "host": self.host, "port": self.port, "url": f"http://{self.host}:{self.port}",
            "status": self.status, "message": self.message, "checkpoint": self.checkpoint(),
            "device": loaded.device if loaded else None, "engine_path": loaded.path if loaded else None,
            "requests": self.requests, "errors": self.errors, "cancelled": self.cancelled, "refused": self.refused,
            "active": active, "queued": waiting, "max_active": self.max_active, "queue": self.queue,
            "first_audio_ms": {"p50": percentile(self.first_audio_ms, 0.5), "p95": percentile(self.first_audio_ms, 0.95),
                               "n": len(self.first_audio_ms)},
            "auth": self.api_key is not None,
            "voices": sorted(self.voices), "voice_switches": self.scheduler.voice_switches if self.scheduler else 0,
        }

    def write_state(self) -> None:
        with self._state_lock:
            try:
                write_state(self.port, self.state())
            except OSError as exc:
                log(f"cannot write the state file: {one_line(exc)}")

    # ---- life ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Load, warm up, report ready (in a thread); on failure the status says why and on_failure runs."""
        from inference.engine import Engine
        from inference.pipeline import Audition

        try:
            t0 = time.perf_counter()
            self.engine = Engine(device=self.device_arg, tune_threads=True, path=self.path_arg)
            self.engine.load(self.info.path)
            load_s = time.perf_counter() - t0
            self.scheduler = Scheduler(self.engine, max_active=self.max_active, queue=self.queue,
                                       on_change=self.write_state)
            t1 = time.perf_counter()
            warm = Audition(self.engine, WARM_UP_TEXT, seed=0, sampling={"max_new_tokens": 24})
            self.scheduler.run_alone(warm)
            loaded = self.engine.loaded
            self.status = READY
            self.message = (f"ready: {self.info.name} ({self.info.speaker}) on {loaded.device}, {loaded.path} path; "
                            f"loaded in {load_s:.1f} s, warmed up in {time.perf_counter() - t1:.1f} s")
            log(self.message)
        except Exception as exc:  # noqa: BLE001 - the operator reads why in the log and the dashboard
            self.status, self.message = FAILED, f"cannot serve {self.info.name}: {one_line(exc)}"
            log(self.message)
            self.write_state()
            if self.on_failure is not None:
                self.on_failure()
            return
        self.write_state()

    def stop(self) -> None:
        if self.status != FAILED:
            self.status, self.message = STOPPING, "stopping"
        if self.scheduler is not None:
            self.scheduler.close()
        if self.status != FAILED:
            self.status, self.message = STOPPED, "stopped"
        self.write_state()

    # ---- one request ---------------------------------------------------------------------------
    def authorised(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    def stream(self, req: SpeechRequest, deliver) -> tuple[Stream, int]:
        """The request's stream and its seed. Its audition is made on the engine thread once the request's
        voice is loaded (another bundle of the base is switched in first); the text is checked here."""
        from inference.pipeline import Audition

        split_sentences(req.input, MAX_INPUT_CHARS, first_chars=FIRST_SEGMENT_CHARS)  # TextError before queueing
        seed = req.seed if req.seed is not None else new_seed()
        voice = self.voice_paths.get(req.voice.lower())

        def make():
            return Audition(self.engine, req.input, seed=seed, speaker=req.speaker, source="milo-serve",
                            max_chars=MAX_INPUT_CHARS, first_chars=FIRST_SEGMENT_CHARS)

        return Stream(None, deliver, voice=voice or (self.info.path if self.extra else None), make=make), seed


def error(status: int, message: str, code: str, *, kind: str = "invalid_request_error", headers: dict | None = None,
          param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, code, kind=kind, param=param), status_code=status, headers=headers)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="milo-serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """The API key (all but /health), and the body's size before it is read."""
        if request.url.path != "/health" and not service.authorised(request):
            return error(401, "missing or wrong API key: send Authorization: Bearer <key> (docs/serving.md)",
                         "invalid_api_key")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error(413, f"the body is {length} bytes; the limit is {MAX_BODY_BYTES}", "body_too_large")
        return await call_next(request)

    @app.exception_handler(404)
    async def not_found(request: Request, exc):
        return error(404, f"no such endpoint: {request.method} {request.url.path} (see docs/serving.md)", "not_found")

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc):
        return error(405, f"{request.method} is not allowed on {request.url.path}", "method_not_allowed")

    @app.get("/health")
    async def health():
        return {"status": "alive", "state": service.status, "checkpoint": service.checkpoint()}

    @app.get("/ready")
    async def ready():
        body = {"status": service.status, "message": service.message, "checkpoint": service.checkpoint()}
        if service.status != READY:
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        return body

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": service.info.name, "object": "model", "created": int(service.started),
                                            "owned_by": "milo-tui", "checkpoint": service.checkpoint()}]}

    @app.get("/v1/audio/voices")
    async def voices():
        named = sorted(service.voices.items())
        return {"object": "list", "default": service.info.speaker, "checkpoint": service.checkpoint(),
                "voices": [{"id": name, "speaker": speaker, "checkpoint": str(service.voice_paths.get(name) or service.info.path)}
                           for name, speaker in named]}

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        return await _speech(service, request)

    return app


async def _read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY_BYTES even without a Content-Length (chunked uploads)."""
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_BODY_BYTES:
            raise BadRequest(f"the body is over {MAX_BODY_BYTES} bytes, the limit", status=413, code="body_too_large")
    return bytes(data)


async def _speech(service: Service, request: Request) -> Response:
    rid = f"r{next(service.ids)}"
    t0 = time.perf_counter()
    try:
        body = parse_body(await _read_body(request), request.headers.get("content-type"))
        req = speech_request(body, service.voices)
        if service.status != READY:
            service.refused += 1
            return error(503, f"not ready: {service.message}", "not_ready", kind="server_error",
                         headers={"Retry-After": "5"})
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Item] = asyncio.Queue()
        stream, seed = service.stream(req, lambda item: loop.call_soon_threadsafe(items.put_nowait, item))
    except BadRequest as exc:
        service.errors += 1
        _access(service, rid, exc.status, note=str(exc))
        return JSONResponse(exc.body(), status_code=exc.status)
    except TextError as exc:
        service.errors += 1
        _access(service, rid, 400, note=str(exc))
        return error(400, str(exc), "invalid_input", param="input")

    try:
        service.scheduler.submit(stream)
    except Busy as exc:
        service.refused += 1
        _access(service, rid, 503, chars=len(req.input), note=str(exc))
        return error(503, f"{exc}; try again shortly", "busy", kind="server_error",
                     headers={"Retry-After": f"{max(1, round(service.retry_after_s))}"})
    service.write_state()
    watcher = asyncio.create_task(_watch_disconnect(request, service, stream))
    try:
        first = await items.get()
    except asyncio.CancelledError:
        service.scheduler.cancel(stream)
        watcher.cancel()
        raise
    if first.audio is None:  # ended before any audio: an error, or end-of-speech at once
        watcher.cancel()
        if first.cancelled:
            service.cancelled += 1
            _access(service, rid, 499, chars=len(req.input), note="client went away while queued")
            return error(499, "cancelled", "cancelled")
        service.errors += 1
        message = first.error or ("the voice ended the speech before any audio (end-of-speech at the first frame); "
                                  "try again, or another seed")
        _access(service, rid, 500, chars=len(req.input), note=message)
        return error(500, message, "no_audio" if first.error is None else "synthesis_failed", kind="server_error")
    first_ms = (stream.first_audio - t0) * 1000 if stream.first_audio else (time.perf_counter() - t0) * 1000
    service.first_audio_ms.append(first_ms)
    headers = {"X-Request-Id": rid, "X-Milo-Checkpoint": (stream.voice or service.info.path).name,
               "X-Milo-Speaker": req.speaker, "X-Milo-Seed": str(seed), "X-Milo-Model": req.model, "Cache-Control": "no-store"}
    media = "text/event-stream" if req.stream_format == "sse" else CONTENT_TYPES[req.response_format]
    body = _body(service, req, rid, t0, first, items, stream, watcher, first_ms)
    return StreamingResponse(body, media_type=media, headers=headers)


async def _watch_disconnect(request: Request, service: Service, stream: Stream) -> None:
    """Cancel the stream as soon as the client hangs up (the body is read: what comes now is the end)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            if stream.ended is None:
                service.scheduler.cancel(stream)
            return


def _sse(kind: str, **fields) -> bytes:
    return f"data: {json.dumps({'type': kind, **fields})}\n\n".encode()


async def _body(service: Service, req: SpeechRequest, rid: str, t0: float, first: Item, items: asyncio.Queue,
                stream: Stream, watcher: asyncio.Task, first_ms: float):
    encoder = Encoder(req.response_format)
    sse = req.stream_format == "sse"
    item, end, status = first, None, 200
    try:
        while True:
            if item.audio is not None:
                data = encoder.feed(item.audio)
                if data:
                    yield _sse("speech.audio.delta", audio=base64.b64encode(data).decode()) if sse else data
            if item.done:
                end = item
                break
            item = await items.get()
        tail = encoder.close()
        if tail:
            yield _sse("speech.audio.delta", audio=base64.b64encode(tail).decode()) if sse else tail
        if sse:
            usage = {"input_tokens": len(req.input), "output_tokens": 0, "total_tokens": len(req.input)}
            done = {"usage": usage, "audio_seconds": round(stream.audio_s, 3)}
            if end.error:
                done["error"] = {"message": end.error, "type": "server_error", "code": "synthesis_failed"}
            yield _sse("speech.audio.done", **done)
        if end.error:
            service.errors += 1
            status = 500
    finally:
        watcher.cancel()
        if end is None:   # the client went away (or the server stops): the engine stops at the next frame
            service.scheduler.cancel(stream)
            service.cancelled += 1
            status = 499
        else:
            service.requests += 1
        _access(service, rid, status, chars=len(req.input), first_ms=first_ms, audio_s=stream.audio_s,
                wall_s=time.perf_counter() - t0, fmt=f"{req.response_format}/{req.stream_format}", voice=req.voice,
                note=(end.error if end is not None else "client went away") or "")


def _access(service: Service, rid: str, status: int, *, chars: int | None = None, first_ms: float | None = None,
            audio_s: float | None = None, wall_s: float | None = None, fmt: str = "", voice: str = "",
            note: str = "") -> None:
    """One access-log line per request, and the state file rewritten with the counts it changed."""
    parts = [f"id={rid}", f"status={status}"]
    if chars is not None:
        parts.append(f"chars={chars}")
    if voice:
        parts.append(f"voice={voice}")
    if fmt:
        parts.append(f"format={fmt}")
    if first_ms is not None:
        parts.append(f"first_audio_ms={first_ms:.0f}")
    if audio_s is not None:
        parts.append(f"audio_s={audio_s:.2f}")
    if wall_s is not None:
        parts.append(f"wall_s={wall_s:.2f}")
    line = " ".join(parts) + (f" | {note}" if note else "")
    log(f"access {line}")
    service.write_state()


async def write_state_periodically(service: Service) -> None:
    while service.status not in (STOPPED, FAILED):
        service.write_state()
        await asyncio.sleep(STATE_PERIOD_S)


__all__ = ["Service", "create_app", "write_state_periodically"]
