"""Audition latency: time to first audio and audio seconds per wall second, ours against stock.

Stock is `Qwen3TTSModel.generate_custom_voice` (talker.generate to the end, then one decode: the first
audio is the whole clip). Ours is `inference.engine.Engine.stream` (chunked decode) with each frame loop:
lean (qwen-tts's layers through HF, the reference) and fast (static caches, layers written out, the code
predictor replayed as a CUDA graph on CUDA); on CUDA also "fast, no graph", to tell the graph's share.
All run on the same model, device, text, sampling settings and seed, in this one process, alternating,
after one untimed warm-up each; the median of --runs is reported. Random weights rarely say end-of-speech
but may, so end-of-speech is disabled (`no_end_of_speech`) and every run makes exactly --frames codec
frames (12.5 a second). The fast path is prepared (graph captured) once when its engine adopts the model;
that time is printed apart. The codes of every timed run are compared with stock's: same seed, same codes.

Exit status: 0 all codes equal stock's; 1 some differ; 3 all equal but on CUDA the graph fell back to the
eager path (the reason is printed).

    python bench/audition_latency.py                                   # tiny model, CPU, seconds
    python bench/audition_latency.py --quick                           # 4 frames, 1 run: does it run
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
    from contract.audio import SAMPLE_RATE
    from inference.stock import stock_generate

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=("tiny", "1.7b"), default="tiny")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--frames", type=int, default=100, help="codec frames per run (12.5 per second of audio)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--no-eager-row", action="store_true",
                   help="on CUDA, skip the diagnostic row 'fast, no graph' (the fast path with its graph off)")
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.runs = 4, 1
    return args


def build_engines(args: argparse.Namespace) -> tuple[object, dict, dict, str]:
    """(the model, one engine per path on it, what each engine's preparation says, the device's name)."""
    import torch

    from contract.checkpoint import CheckpointInfo
    from inference.engine import Engine

    t0 = time.perf_counter()
    tts = build(args.shape, args.device, args.dtype)
    sync(args.device)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in tts.model.parameters())
    info = CheckpointInfo(path=Path(f"/memory/random-{args.shape}"), speakers=(SPEAKER,),
                          generation=dict(tts.model.generate_config or {}))
    dtype = str(tts.model.dtype).replace("torch.", "")
    cuda = args.device.startswith("cuda")
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"built {args.shape} ({params / 1e6:.1f} M parameters) on {gpu} in {build_s:.1f} s; torch {torch.__version__}",
          flush=True)

    # One engine per path on the same model. The fast engine captures its graph (CUDA) when it adopts the
    # model, once, for the checkpoint's sampling settings: timed here, apart from the runs.
    engines = {"lean": Engine(device=args.device, dtype=dtype, tune_threads=True, path="lean")}
    engines["fast"] = Engine(device=args.device, dtype=dtype, tune_threads=True, path="fast")
    if cuda and not args.no_eager_row:
        engines["fast, no graph"] = Engine(device=args.device, dtype=dtype, tune_threads=True, path="fast", graphs=False)
    prepared = {}
    for name, engine in engines.items():
        loaded = engine.adopt(tts, info)
        prepared[name] = loaded.describe()
        print(f"{name}: {loaded.path} path ({loaded.path_reason}), prepared in {loaded.prepare_s:.2f} s"
              + (f"; graph {loaded.describe()['graph']}" if loaded.fast is not None else ""), flush=True)
    print(f"{torch.get_num_threads()} CPU thread(s)", flush=True)
    return tts, engines, prepared, gpu


def measure(tts, engines: dict, args: argparse.Namespace) -> tuple[dict, dict]:
    """(each path's timed runs, whether each run's codes equal stock's), after one untimed warm-up each."""
    import torch

    from inference.stock import no_end_of_speech

    lean = engines["lean"]
    # Same sampling for all, exactly --frames frames (stock keeps max_new_tokens - 1 of them).
    sampling = lean.sampling(max_new_tokens=args.frames + 1)
    warm = lean.sampling(max_new_tokens=9)
    rows = {"stock": [], **{name: [] for name in engines}}
    same = {name: [] for name in engines}
    with no_end_of_speech(tts):
        run_stock(tts, warm, args.seed, args.device)
        for engine in engines.values():
            run_ours(engine, warm, args.seed, args.device)
        for i in range(args.runs):
            seed = args.seed + i
            results = {"stock": run_stock(tts, sampling, seed, args.device)}
            for name, engine in engines.items():
                results[name] = run_ours(engine, sampling, seed, args.device)
                same[name].append(torch.equal(results["stock"]["codes"], results[name]["codes"]))
            for name, r in results.items():
                rows[name].append(r)
                print(f"run {i + 1} {name:14}: first audio {r['first_audio_s']:.3f} s, {r['audio_s']:.2f} s of audio "
                      f"in {r['wall_s']:.2f} s ({r['audio_s'] / r['wall_s']:.2f}x), {len(r['codes'])} frames"
                      + ("" if name == "stock" else f", codes {'equal to' if same[name][-1] else 'DIFFERENT from'} stock"),
                      flush=True)
    return rows, same


def print_table(args: argparse.Namespace, gpu: str, dtype_name: str, rows: dict, same: dict, prepared: dict) -> int:
    """The table of medians and the codes check; the exit status (see the module's docstring)."""
    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    def rtf(rs):
        return statistics.median(r["audio_s"] / r["wall_s"] for r in rs)

    def ms(rs):
        return statistics.median(1000 * r["wall_s"] / len(r["codes"]) for r in rs)

    cuda = args.device.startswith("cuda")
    fast_graph = prepared["fast"].get("graph") or {}
    fell_back = cuda and (fast_graph.get("fallback") or not fast_graph.get("captured"))
    labels = {"stock": "stock generate_custom_voice", "lean": "lean (HF layers, streaming)",
              "fast": "fast (static caches" + (", CUDA graph)" if cuda and not fell_back else ")"),
              "fast, no graph": "fast, no graph (diagnostic)"}
    print()
    print(f"Audition latency: shape {args.shape}, {args.device} ({gpu}), {dtype_name}, sdpa, {args.frames} frames "
          f"({args.frames / 12.5:.1f} s of audio), median of {args.runs} run(s)")
    print("| path | first audio s | audio s / wall s | ms per frame | x stock speed | codes = stock |")
    print("|---|---|---|---|---|---|")
    for name, rs in rows.items():
        equal = "-" if name == "stock" else f"{sum(same[name])}/{len(same[name])}"
        print(f"| {labels[name]} | {med(rs, 'first_audio_s'):.3f} | {rtf(rs):.2f} | {ms(rs):.1f} | "
              f"{rtf(rs) / rtf(rows['stock']):.2f}x | {equal} |")
    print(f"fast path prepared once per model in {prepared['fast']['prepare_s']:.2f} s"
          + (f", of which CUDA graph capture {fast_graph.get('capture_s', 0):.2f} s" if cuda else " (no graph on CPU)")
          + (f"; GRAPH FELL BACK: {fast_graph.get('fallback')}" if fell_back else ""))
    all_same = all(all(v) for v in same.values())
    print(f"same codes as stock (same seed): {'yes' if all_same else 'NO'} "
          f"({', '.join(f'{n} {sum(v)}/{len(v)}' for n, v in same.items())})")
    if not all_same:
        return 1
    return 3 if fell_back else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tts, engines, prepared, gpu = build_engines(args)
    rows, same = measure(tts, engines, args)
    return print_table(args, gpu, engines["lean"].dtype_name, rows, same, prepared)


if __name__ == "__main__":
    sys.exit(main())
