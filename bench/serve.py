"""Speech-server load test on loopback: first audio, speed per stream and underruns at 1, 4 and 8 clients.

Starts the real `milo-serve` (a child process) twice on the same checkpoint: shared (up to 8 streams
interleaved on the one model) and one-at-a-time (--max-active 1: each request served whole before the
next, what most TTS servers do). Each client thread streams `pcm` requests one after another over its
own connection and records when every chunk arrives:

  first audio   request sent -> first bytes of audio received (p50/p95 over all requests of the arm)
  speed         audio seconds received / wall seconds of the request, per stream (median)
  underruns     chunks that arrived after the audio before them would have finished playing, had
                playback started at the first chunk (what a listener hears as a gap)
  failed        requests that did not end with 200 and audio

The baseline, measured in the same run: `milo-say`'s own first audio for the same text (the engine alone,
no HTTP), and its speed (audio s per wall s: the engine's total rate, which the clients share).
Bounded: --requests per client and --seconds per arm. Prints a table and writes JSON with --json.

    python bench/serve.py                      # tiny model, CPU, about 2 minutes here
    python bench/serve.py --quick              # 1 request per client, clients 1 and 2: does it run
    python bench/serve.py --checkpoint RUN/epoch-0004 --device cuda   # a real checkpoint (bench/gpu_serve.sh)
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXT = "The voice assistant answers at once. It keeps talking while the rest is made."
RATE = 24000


def tiny_checkpoint(folder: Path) -> Path:
    """The tiny random-weight custom voice (as the tests build it)."""
    import numpy as np

    from inference.qwen import import_qwen_tts
    from training.checkpoint import save_custom_voice
    from training.tiny_model import build_tiny_model

    base = build_tiny_model(folder / "tiny-base", seed=0)
    model = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(base))
    t = np.arange(RATE * 2) / RATE
    embedding = model.model.extract_speaker_embedding((0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), RATE)
    (folder / "run").mkdir(parents=True, exist_ok=True)
    return save_custom_voice(model.model.state_dict(), base, folder / "run" / "epoch-0001", "bench", embedding)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def milo_say(checkpoint: Path, device: str, out: Path) -> dict:
    """The engine's own first audio and speed for TEXT (milo-say's summary line), no HTTP."""
    said = subprocess.run([sys.executable, "-m", "inference.say", str(checkpoint), TEXT, "--seed", "1", "-o", str(out),
                           "--device", device], capture_output=True, text=True, timeout=600, cwd=ROOT)
    m = re.search(r"([\d.]+) s of audio in ([\d.]+) s .*first audio after ([\d.]+) s", said.stderr)
    if said.returncode != 0 or m is None:
        raise SystemExit(f"milo-say failed: {said.stderr[-500:]}")
    audio_s, wall_s, first_s = (float(x) for x in m.groups())
    return {"first_audio_ms": first_s * 1000, "audio_s": audio_s, "rate": audio_s / wall_s}


class Server:
    def __init__(self, checkpoint: Path, device: str, max_active: int, state: Path) -> None:
        self.port = free_port()
        self.log = state / f"serve-{self.port}.log"
        env = {**__import__("os").environ, "MILO_SERVE_DIR": str(state), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "inference.serve", str(checkpoint), "--port", str(self.port),
                                      "--device", device, "--max-active", str(max_active), "--queue", "64"],
                                     stdin=subprocess.DEVNULL, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     env=env, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"milo-serve exited: {self.log.read_text()[-1000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("milo-serve was not ready in time")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def one_request(url: str, seed: int) -> dict:
    import httpx

    t0 = time.perf_counter()
    arrivals: list[tuple[float, int]] = []
    try:
        with httpx.stream("POST", url + "/v1/audio/speech", timeout=600,
                          json={"model": "bench", "voice": "default", "input": TEXT, "response_format": "pcm",
                                "seed": seed}) as r:
            status = r.status_code
            for part in r.iter_raw():
                arrivals.append((time.perf_counter() - t0, len(part)))
    except httpx.HTTPError as exc:
        return {"ok": False, "error": str(exc)}
    if status != 200 or not arrivals:
        return {"ok": False, "error": f"status {status}"}
    first = arrivals[0][0]
    underruns, played = 0, 0.0
    for at, n in arrivals:
        if at > first + played + 1e-3:   # this chunk came after the audio before it ran out
            underruns += 1
        played += n / 2 / RATE
    wall = arrivals[-1][0]
    return {"ok": True, "first_ms": first * 1000, "audio_s": played, "speed": played / wall, "underruns": underruns}


def arm(url: str, clients: int, requests: int, seconds: float) -> dict:
    results: list[dict] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(c: int) -> None:
        for i in range(requests):
            if time.monotonic() > stop_at:
                return
            r = one_request(url, seed=1000 * c + i)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["ok"]]
    firsts = sorted(r["first_ms"] for r in ok)

    def pct(q: float) -> float | None:
        return firsts[min(len(firsts) - 1, int(round(q * (len(firsts) - 1))))] if firsts else None

    return {"clients": clients, "requests": len(results), "failed": len(results) - len(ok),
            "first_p50_ms": pct(0.5), "first_p95_ms": pct(0.95),
            "speed_median": statistics.median(r["speed"] for r in ok) if ok else None,
            "underruns": sum(r["underruns"] for r in ok), "audio_s": sum(r["audio_s"] for r in ok), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a custom-voice checkpoint (default: the tiny random-weight one, built here)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--clients", default="1,4,8", help="comma-separated client counts")
    p.add_argument("--requests", type=int, default=2, help="requests per client per arm")
    p.add_argument("--seconds", type=float, default=90, help="no new request after this many seconds of an arm")
    p.add_argument("--quick", action="store_true", help="clients 1 and 2, one request each")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.requests = "1,2", 1
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="milo-bench-serve-") as tmp:
        tmp = Path(tmp)
        checkpoint = Path(args.checkpoint) if args.checkpoint else tiny_checkpoint(tmp / "model")
        baseline = milo_say(checkpoint, args.device, tmp / "say.wav")
        rows = []
        for label, max_active in (("shared", max(counts)), ("one-at-a-time", 1)):
            server = Server(checkpoint, args.device, max_active, tmp)
            try:
                server.wait_ready()
                one_request(server.url, seed=1)   # untimed: the first request after warm-up
                for n in counts:
                    if label == "one-at-a-time" and n == 1:
                        continue   # the same as shared at one client
                    rows.append({"arm": label, **arm(server.url, n, args.requests, args.seconds)})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            finally:
                server.stop()
    report = {"baseline": baseline, "rows": rows, "text": TEXT, "device": args.device,
              "checkpoint": str(args.checkpoint or "tiny (random weights)")}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nmilo-say (engine alone): first audio {baseline['first_audio_ms']:.0f} ms, "
          f"{baseline['rate']:.2f} audio s per wall s, {baseline['audio_s']:.1f} s of audio")
    print(f"{'arm':<14} {'clients':>7} {'requests':>8} {'first p50':>10} {'first p95':>10} {'speed/stream':>12} "
          f"{'underruns':>9} {'failed':>6}")
    for r in rows:
        f50 = f"{r['first_p50_ms']:.0f} ms" if r["first_p50_ms"] is not None else "-"
        f95 = f"{r['first_p95_ms']:.0f} ms" if r["first_p95_ms"] is not None else "-"
        speed = f"{r['speed_median']:.2f}x" if r["speed_median"] is not None else "-"
        print(f"{r['arm']:<14} {r['clients']:>7} {r['requests']:>8} {f50:>10} {f95:>10} {speed:>12} "
              f"{r['underruns']:>9} {r['failed']:>6}")
    one = next((r for r in rows if r["arm"] == "shared" and r["clients"] == 1), None)
    four = next((r for r in rows if r["arm"] == "shared" and r["clients"] == 4), None)
    failed = sum(r["failed"] for r in rows)
    if one and one["first_p50_ms"] is not None:
        print(f"1 client: first audio {one['first_p50_ms'] - baseline['first_audio_ms']:+.0f} ms against the engine's own "
              f"(target within 50 ms)")
    if one and four and one["first_p50_ms"] and four["first_p95_ms"] is not None:
        print(f"4 clients: p95 first audio {four['first_p95_ms'] / one['first_p50_ms']:.2f}x the 1-client figure "
              f"(target within 2x)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
