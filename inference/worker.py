"""`python -m inference.worker`: the long-lived audition worker, a child process of the dashboard.

One checkpoint loaded at a time; commands arrive as JSON lines on stdin, events leave as JSON lines on
the protocol channel; audio is played here (Spark speakers, or streamed to milo-listen on the laptop)
and saved under the run's samples/. The protocol is docs/worker-protocol.md.

The protocol channel is the stdout the parent gave us, but only through a private duplicate: at start
fd 1 is pointed at stderr (the worker's log file), so whatever a library prints, from Python or from C
(qwen-tts's notices, PortAudio and ALSA complaints), lands in the log and never in the protocol.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TextIO

from contract.errors import one_line
from contract.protocol import ENGINE_PATHS, OUTPUT_TARGETS, PROTOCOL, QUEUED, Cmd, Event



def protect_stdout() -> TextIO:
    """Return a writer on the original stdout and send everything else written to fd 1 to stderr."""
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8")


class Worker:
    def __init__(self, proto: TextIO, device: str, output: str, audio_device, port: int, path: str | None = None) -> None:
        self.proto = proto
        self._write_lock = threading.Lock()
        self.jobs: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.current: str | None = None
        self.device_arg = device
        self.path_arg = path
        self.engine = None
        self.output = None
        self._output_args = (output, audio_device, port)
        self.rate_hint: dict[str, float] = {}   # checkpoint path -> production rate measured by its last say
        self.in_use = None  # contract.runfolder.InUse on the loaded checkpoint: pruning leaves it alone

    # ---- events --------------------------------------------------------------------------------
    def emit(self, event: Event, **fields) -> None:
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields}, default=str)
        with self._write_lock:
            try:
                self.proto.write(line + "\n")
                self.proto.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the dashboard is gone: nothing left to do

    def error(self, job_id, message: str, lines: list[str] | None = None, **extra) -> None:
        print(f"[worker] error {job_id}: {message}", file=sys.stderr, flush=True)
        self.emit(Event.ERROR, id=job_id, message=message, lines=lines or [message], **extra)

    def _on_playback(self, event: dict) -> None:
        fields = {k: v for k, v in event.items() if k not in ("event", "clip")}
        self.emit(Event.PLAYBACK, id=event.get("clip"), **fields)

    # ---- setup ---------------------------------------------------------------------------------
    def start(self) -> None:
        from inference.engine import Engine

        self.engine = Engine(device=self.device_arg, tune_threads=True, path=self.path_arg)
        self.engine.warm_up()
        target, audio_device, port = self._output_args
        description, problem = self._set_output(target, audio_device, port)
        import torch

        self.emit(Event.READY, pid=os.getpid(), protocol=PROTOCOL, device=self.engine.device, dtype=self.engine.dtype_name,
                  torch=torch.__version__, output=target, output_detail=description, output_problem=problem,
                  path=self.engine.path)

    def _set_output(self, target: str, audio_device, port: int) -> tuple[str, str | None]:
        """The output's description, and why it cannot play (None when it can, as far as is known now)."""
        from contract.listen import AudioDeviceError, parse_device
        from contract.playback import make_output

        if self.output is not None:
            self.output.stop()
            self.output.close()
        self.output = make_output(target, device=parse_device(audio_device), port=int(port), on_event=self._on_playback)
        try:
            return self.output.describe(), None
        except AudioDeviceError as exc:
            return f"{exc} (auditions are still saved)", str(exc)

    # ---- command intake (main thread) -----------------------------------------------------------
    def serve(self, stdin: TextIO) -> int:
        threading.Thread(target=self._job_loop, name="audition-jobs", daemon=True).start()
        for raw in stdin:
            raw = raw.strip()
            if not raw:
                continue
            try:
                cmd = json.loads(raw)
                if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
                    raise ValueError("not an object with a string 'cmd'")
            except ValueError as exc:
                self.error(None, f"bad command line ({exc}): {raw[:80]}")
                continue
            name = cmd["cmd"]
            if name == Cmd.PING:
                self.emit(Event.PONG, id=cmd.get("id"))
            elif name == Cmd.STOP:
                self.stop_all()
                self.emit(Event.STOPPED, id=cmd.get("id"))
            elif name == Cmd.QUIT:
                break
            elif name in QUEUED:
                self.jobs.put(cmd)
            else:
                self.error(cmd.get("id"), f"unknown command {name!r}")
        self.stop_all()
        if self.output is not None:
            self.output.wait_idle(2.0)
            self.output.close()
        return 0

    def stop_all(self) -> None:
        """Cancel the running job, drop queued ones, silence playback."""
        self.cancel.set()
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            self.emit(Event.CANCELLED, id=job.get("id"), cmd=job.get("cmd"))
        if self.output is not None:
            self.output.stop()

    # ---- jobs (one thread, one at a time) -------------------------------------------------------
    def _job_loop(self) -> None:
        while True:
            cmd = self.jobs.get()
            self.cancel.clear()
            self.current = cmd.get("id")
            try:
                getattr(self, f"_do_{cmd['cmd']}")(cmd)
            except Exception as exc:  # one job failing never ends the worker
                traceback.print_exc(file=sys.stderr)
                self.error(cmd.get("id"), f"{cmd['cmd']} failed: {one_line(exc)}")
            finally:
                self.current = None

    def _load(self, job_id, checkpoint: str) -> tuple[bool, float]:
        """Load `checkpoint` unless it is loaded already. Returns (ok, seconds spent loading)."""
        from contract.checkpoint import CheckpointError
        from inference.engine import EngineError

        path = Path(checkpoint).expanduser().absolute()
        loaded = self.engine.loaded
        if loaded is not None and loaded.info.path == path:
            return True, 0.0
        self.emit(Event.LOADING, id=job_id, checkpoint=str(path), previous=str(loaded.info.path) if loaded else None)
        self._hold(None)
        try:
            self._hold(path)
            info = self.engine.load(path)
        except CheckpointError as exc:
            self._hold(None)
            self.error(job_id, f"cannot load {path.name}: {exc.problems[0]}" + (
                f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""), lines=exc.problems,
                checkpoint=str(path))
            return False, 0.0
        except EngineError as exc:
            self._hold(None)
            self.error(job_id, str(exc), checkpoint=str(path))
            return False, 0.0
        print(f"[worker] loaded {path} in {info.load_s:.2f} s ({info.describe()})", file=sys.stderr, flush=True)
        self.emit(Event.LOADED, id=job_id, checkpoint=str(path), name=path.name, speakers=list(info.info.speakers),
                  load_s=round(info.load_s, 3), device=info.device, dtype=info.dtype, base_loads=self.engine.base_loads,
                  voice_switches=self.engine.voice_switches, **info.describe())
        return True, info.load_s

    def _do_load(self, cmd: dict) -> None:
        if not cmd.get("checkpoint"):
            self.error(cmd.get("id"), "load needs a checkpoint path")
            return
        self._load(cmd.get("id"), cmd["checkpoint"])

    def _hold(self, path: Path | None) -> None:
        """Hold the loaded checkpoint's folder as in use (a shared flock), or let go of it."""
        from contract.runfolder import InUse

        if self.in_use is not None:
            self.in_use.release()
            self.in_use = None
        if path is not None:
            try:
                self.in_use = InUse(path)
            except OSError:
                pass  # no such folder: the load that follows says so in its own words

    def _do_unload(self, cmd: dict) -> None:
        self._hold(None)
        self.engine.unload()
        self.emit(Event.UNLOADED, id=cmd.get("id"))

    def _do_output(self, cmd: dict) -> None:
        from contract.audio import DEFAULT_PORT

        target = cmd.get("target", "local")
        if target not in OUTPUT_TARGETS:
            self.error(cmd.get("id"), f"unknown output {target!r}: one of {', '.join(OUTPUT_TARGETS)}")
            return
        detail, problem = self._set_output(target, cmd.get("device"), cmd.get("port") or DEFAULT_PORT)
        self.emit(Event.OUTPUT, id=cmd.get("id"), target=target, detail=detail, problem=problem)

    def _do_say(self, cmd: dict) -> None:
        from contract.text import TextError, split_sentences
        from inference.engine import Cancelled, EngineError
        from inference.pipeline import Audition

        job_id = cmd.get("id")
        text = cmd.get("text", "")
        try:
            split_sentences(text)  # bad text is refused before a checkpoint loads
        except TextError as exc:
            self.error(job_id, str(exc))
            return
        load_s = 0.0
        if cmd.get("checkpoint"):
            ok, load_s = self._load(job_id, cmd["checkpoint"])
            if not ok:
                return
        try:
            audition = Audition(self.engine, text, seed=cmd.get("seed"), sampling=cmd.get("sampling"),
                                speaker=cmd.get("speaker"), language=cmd.get("language", "auto"),
                                budget=cmd.get("budget", True), source=cmd.get("source", "audition"), load_s=load_s)
        except (EngineError, TextError) as exc:
            self.error(job_id, str(exc))
            return
        play = bool(cmd.get("play", True))
        name, key = audition.loaded.info.name, str(audition.loaded.info.path)
        self.emit(Event.STARTED, id=job_id, checkpoint=name, seed=audition.seed, sentences=len(audition.sentences),
                  speaker=audition.speaker, sampling=audition.sampling.as_dict())
        if play:
            self.output.start(job_id, {"checkpoint": cmd.get("label") or name, "text": text,
                                       "expected_s": audition.expected_s, "rate_hint": self.rate_hint.get(key)})

        def on_sentence(i: int, n: int, sentence: str) -> None:
            self.emit(Event.SENTENCE, id=job_id, index=i, count=n, text=sentence)

        def sink(chunk) -> None:
            if len(audition.chunks) == 1:
                self.emit(Event.FIRST_AUDIO, id=job_id, first_audio_s=round(audition.timings.first_audio_s, 4))
            if play:
                self.output.feed(chunk)

        try:
            audition.run(sink, cancel=self.cancel, on_sentence=on_sentence)
        except Cancelled:
            if play:
                self.output.stop()
            self.emit(Event.CANCELLED, id=job_id, cmd=Cmd.SAY)
            return
        except (EngineError, TextError) as exc:
            if play:
                self.output.stop()
            self.error(job_id, str(exc))
            return
        except Exception as exc:
            if play:
                self.output.stop()
            if exc.__class__.__name__ == "OutOfMemoryError":
                self.error(job_id, "out of GPU memory while speaking (is a trainer using the GPU?)")
                return
            raise
        if play:
            self.output.end()
        rate = audition.steady_rate()
        if rate is not None:
            self.rate_hint[key] = rate
        result = audition.record()
        run_dir = cmd.get("run_dir")
        if run_dir and cmd.get("save", True):
            rec, wav = audition.save_sample(run_dir, ab_group=cmd.get("ab_group"), ab_label=cmd.get("ab_label"),
                                            blind=bool(cmd.get("blind", False)))
            result = {**rec, "wav_path": str(wav)}
        print(f"[worker] said {job_id}: {audition.summary()} ({audition.timings.frames} frames)", file=sys.stderr,
              flush=True)
        self.emit(Event.DONE, id=job_id, sample=result)

    def _do_play(self, cmd: dict) -> None:
        import numpy as np
        import soundfile as sf

        from contract.audio import SAMPLE_RATE

        job_id = cmd.get("id")
        wavs = cmd.get("wavs") or ([cmd["wav"]] if cmd.get("wav") else [])
        if not wavs:
            self.error(job_id, "play needs a wav path")
            return
        parts = []
        gap = np.zeros(int(float(cmd.get("gap_s", 0.6)) * SAMPLE_RATE), dtype=np.float32)
        for i, path in enumerate(wavs):
            try:
                audio, rate = sf.read(path, dtype="float32", always_2d=True)
            except (OSError, RuntimeError) as exc:
                self.error(job_id, f"cannot read {Path(path).name}: {one_line(exc)}")
                return
            mono = audio.mean(axis=1)
            if rate != SAMPLE_RATE:  # a corpus clip as recorded (the corpus view plays them)
                import soxr

                mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
            parts += ([gap] if i else []) + [mono]
        self.emit(Event.REPLAYING, id=job_id, wavs=[str(w) for w in wavs])
        self.output.start(job_id, {"checkpoint": cmd.get("label") or "replay", "text": cmd.get("text", ""),
                                   "expected_s": round(sum(len(p) for p in parts) / SAMPLE_RATE, 3)})
        for part in parts:
            self.output.feed(part)
        self.output.end()


def main(argv: list[str] | None = None) -> int:
    proto = protect_stdout()
    p = argparse.ArgumentParser(prog="python -m inference.worker", description="milo-tui's audition worker "
                                "(JSON lines on stdin, events on stdout; see docs/worker-protocol.md)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--output", default="local", help="local | laptop | none")
    p.add_argument("--audio-device", default=None, help="sounddevice output device (name or index)")
    p.add_argument("--port", type=int, default=None, help="milo-listen tunnel port on 127.0.0.1")
    p.add_argument("--path", choices=ENGINE_PATHS, default=None,
                   help="engine frame loop (default auto, or $MILO_AUDITION_PATH); docs/audition.md")
    args = p.parse_args(argv)
    from contract.audio import DEFAULT_PORT

    worker = Worker(proto, args.device, args.output, args.audio_device, args.port or DEFAULT_PORT, path=args.path)
    try:
        worker.start()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        worker.emit(Event.FATAL, message=f"the audition worker cannot start: {one_line(exc)}")
        return 1
    return worker.serve(sys.stdin)


if __name__ == "__main__":
    status = main()
    # Everything is on disk and the audio stream closed by now; the interpreter's teardown of torch and
    # PortAudio would add about 1.3 s to every dashboard quit that waits for this process (measured here:
    # 1.3-1.4 s against 0.07 s from "quit" to exit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
