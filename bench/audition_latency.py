"""Audition latency: time to first audio and audio seconds per wall second, ours against stock.

Stock is `Qwen3TTSModel.generate_custom_voice` (talker.generate to the end, then one decode: the first
audio is the whole clip). Ours is `inference.engine.Engine.stream` (the lean frame loop, chunked decode).
Both run on the same model, device, text, sampling settings and seed, in this one process, alternating,
after one untimed warm-up each; the median of --runs is reported. Random weights rarely say end-of-speech
but may, so end-of-speech is disabled for both (`no_end_of_speech`) and every run makes exactly --frames
codec frames (12.5 a second). The codes of the timed runs are compared: same seed, same codes.

    python bench/audition_latency.py                                   # tiny model, CPU, seconds
    python bench/audition_latency.py --shape 1.7b --device cuda        # real 1.7B shape, random weights, bf16

Prints a short table last; docs/benchmarks.md ("Audition") keeps the figures.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEXT = "The quick brown fox jumps over the lazy dog, and the voice goes on."
SPEAKER = "bench"


def build(shape: str, device: str, dtype_name: str | None):
    """A custom-voice model in memory: random weights at `shape`, speaker 'bench' in slot 3000."""
    import torch

    from training.tiny_model import build_random_model

    dtype = getattr(torch, dtype_name) if dtype_name else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    tts = build_random_model(shape=shape, device=device, dtype=dtype)
    cfg = tts.model.config
    cfg.tts_model_type = tts.model.tts_model_type = "custom_voice"
    cfg.talker_config.spk_id = {SPEAKER: 3000}
    cfg.talker_config.spk_is_dialect = {SPEAKER: False}
    tts.model.supported_speakers = cfg.talker_config.spk_id.keys()
    return tts


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_stock(tts, sampling, seed: int, device: str) -> dict:
    from inference.engine import SAMPLE_RATE, stock_generate

    sync(device)
    t0 = time.perf_counter()
    wav, codes = stock_generate(tts, TEXT, SPEAKER, seed, sampling)
    sync(device)
    wall = time.perf_counter() - t0
    return {"first_audio_s": wall, "wall_s": wall, "audio_s": len(wav) / SAMPLE_RATE, "codes": codes.cpu()}


def run_ours(engine, sampling, seed: int, device: str) -> dict:
    import torch

    from inference.engine import Timings

    frames: list = []
    timings = Timings()
    sync(device)
    for _ in engine.stream(TEXT, seed=seed, sampling=sampling, budget=False, timings=timings, on_frame=frames.append):
        pass
    return {"first_audio_s": timings.first_audio_s, "wall_s": timings.wall_s, "audio_s": timings.audio_s,
            "codes": torch.stack(frames).cpu()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=("tiny", "1.7b"), default="tiny")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--frames", type=int, default=100, help="codec frames per run (12.5 per second of audio)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)

    import torch

    from inference.checkpoint import CheckpointInfo
    from inference.engine import Engine, no_end_of_speech

    t0 = time.perf_counter()
    tts = build(args.shape, args.device, args.dtype)
    sync(args.device)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in tts.model.parameters())
    engine = Engine(device=args.device, dtype=str(tts.model.dtype).replace("torch.", ""), tune_threads=True)
    engine.adopt(tts, CheckpointInfo(path=Path(f"/memory/random-{args.shape}"), speakers=(SPEAKER,),
                                     generation=dict(tts.model.generate_config or {})))
    # Same sampling for both, exactly --frames frames (stock keeps max_new_tokens - 1 of them).
    sampling = engine.sampling(max_new_tokens=args.frames + 1)
    warm = engine.sampling(max_new_tokens=9)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"built {args.shape} ({params / 1e6:.1f} M parameters) on {gpu} in {build_s:.1f} s; "
          f"{torch.get_num_threads()} CPU thread(s); torch {torch.__version__}", flush=True)

    stock, ours, same = [], [], []
    with no_end_of_speech(tts):
        run_stock(tts, warm, args.seed, args.device)
        run_ours(engine, warm, args.seed, args.device)
        for i in range(args.runs):
            seed = args.seed + i
            s = run_stock(tts, sampling, seed, args.device)
            o = run_ours(engine, sampling, seed, args.device)
            same.append(torch.equal(s["codes"], o["codes"]))
            for name, r in (("stock", s), ("ours", o)):
                print(f"run {i + 1} {name:5}: first audio {r['first_audio_s']:.3f} s, {r['audio_s']:.2f} s of audio "
                      f"in {r['wall_s']:.2f} s ({r['audio_s'] / r['wall_s']:.2f}x), {len(r['codes'])} frames", flush=True)
            stock.append(s)
            ours.append(o)

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def rtf(rows):
        return statistics.median(r["audio_s"] / r["wall_s"] for r in rows)

    def ms(rows):
        return statistics.median(1000 * r["wall_s"] / len(r["codes"]) for r in rows)

    s_first, o_first = med(stock, "first_audio_s"), med(ours, "first_audio_s")
    print()
    print(f"Audition latency: shape {args.shape}, {args.device} ({gpu}), {engine.dtype_name}, sdpa, {args.frames} frames "
          f"({args.frames / 12.5:.1f} s of audio), median of {args.runs} run(s)")
    print(f"| path | first audio s | audio s / wall s | ms per frame |")
    print(f"|---|---|---|---|")
    print(f"| stock generate_custom_voice | {s_first:.3f} | {rtf(stock):.2f} | {ms(stock):.1f} |")
    print(f"| ours (streaming) | {o_first:.3f} | {rtf(ours):.2f} | {ms(ours):.1f} |")
    print(f"| ratio ours / stock | {s_first / o_first:.0f}x sooner | {rtf(ours) / rtf(stock):.2f}x | "
          f"{ms(stock) / ms(ours):.2f}x less |")
    print(f"same codes as stock (same seed): {'yes' if all(same) else 'NO'} ({sum(same)}/{len(same)} runs)")
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
