"""Training throughput: our trainer's step against the upstream procedure, same data, same device.

    python bench/train_throughput.py                                  # tiny model on the CPU (seconds)
    python bench/train_throughput.py --device cuda --shape 1.7b       # the real 1.7B shape, random weights
    python bench/train_throughput.py --quick                          # 1 step of 1 clip: does it run

Each procedure runs in a child process of its own (clean peak memory), on the same synthetic clips
(random codes, text, one 3 s reference WAV), batch 2 and 4 micro-batches per optimizer step:
  ours      fp32 master weights, bf16 autocast on CUDA, fused AdamW, aligned losses, speaker embedding
            computed once (training/step.py: train_step, the trainer's own step);
  lora      ours with `--method lora` (training/lora.py: rank 16, alpha 32, the talker's attention and MLP,
            everything else frozen): only the adapters in AdamW, a voice bundle per checkpoint;
  upstream  Qwen's sft_12hz.py as training/upstream.py re-implements it: bf16 weights, AdamW on them,
            speaker encoder every step, reference audio reloaded and its mel recomputed per sample.
Reported: samples/s, tokens/s (codec frames), peak memory (CUDA: max allocated; CPU: peak RSS), bytes per
checkpoint (full: every weight in bf16, the 1.7B base's dtype; lora: the bundle's adapter and speaker) and
the ratios ours / upstream and lora / ours. The last thing printed is a short table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contract.audio import SAMPLE_RATE  # noqa: E402  (torch-free; needs the path above)


def synthetic_examples(n: int, frames: int, text_words: int, ref: Path, seed: int = 0):
    import numpy as np

    from contract.synth import SENTENCES
    from training.data import Example

    rng = np.random.default_rng(seed)
    words = " ".join(SENTENCES).split()
    out = []
    for i in range(n):
        T = int(rng.integers(int(frames * 0.75), int(frames * 1.25) + 1))
        start = int(rng.integers(0, len(words) - text_words))
        text = " ".join(words[start:start + text_words])
        out.append(Example(i + 1, text, rng.integers(0, 2048, (T, 16)).astype(np.int32), ref))
    return out


def write_reference(folder: Path) -> Path:
    import numpy as np
    import soundfile as sf

    from contract.synth import synth_clip

    rng = np.random.default_rng(0)
    audio = np.concatenate([synth_clip("a reference clip of the speaker", rng) for _ in range(3)])[: 3 * SAMPLE_RATE]
    path = folder / "reference.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path


class Peak:
    """Peak memory of this process: CUDA max allocated, or the highest RSS seen at each step."""

    def __init__(self, device):
        self.device, self.rss = device, 0

    def sample(self) -> None:
        if self.device.type != "cuda":
            import psutil

            self.rss = max(self.rss, psutil.Process().memory_info().rss)

    def value(self) -> int:
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return self.rss


def measure(procedure: str, args) -> dict:
    import torch

    from training.tiny_model import build_random_model

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    folder = Path(args.workdir)
    ref = folder / "reference.wav"
    examples = synthetic_examples(args.clips, args.frames, args.text_words, ref)
    dtype = torch.bfloat16 if procedure == "upstream" else torch.float32
    started = time.perf_counter()
    tts = build_random_model(shape=args.shape, device=str(device), dtype=dtype, attn_implementation=args.attn)
    model, processor = tts.model, tts.processor
    model.speech_tokenizer = None
    if cuda:
        torch.cuda.synchronize()
    build_s = time.perf_counter() - started
    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    peak = Peak(device)
    order = [i % len(examples) for i in range(args.batch_size * args.grad_accum * (args.warmup + args.steps))]
    micro = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]

    checkpoint_bytes = sum(t.numel() * 2 for n, t in model.state_dict().items() if not n.startswith("speaker_encoder."))
    if procedure in ("ours", "lora"):
        from training.audio import load_24k_mono
        from training.forward import AlignedForward, Layout, collate, text_token_ids
        from training.step import train_step

        speaker = model.extract_speaker_embedding(load_24k_mono(ref), SAMPLE_RATE).float()
        model.speaker_encoder.requires_grad_(False)
        if procedure == "lora":
            from training.lora import adapter_state, apply_lora

            apply_lora(model, 16, 32.0, "talker+mlp", seed=0)
            checkpoint_bytes = sum(t.numel() * t.element_size() for t in adapter_state(model).values()) + speaker.numel() * 4
        forward = AlignedForward(model, speaker).to(device)
        layout = Layout.from_model(model, processor)
        items = [(text_token_ids(processor, ex.text), torch.as_tensor(ex.codes, dtype=torch.long)) for ex in examples]
        params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("speaker_encoder.")]
        optimizer = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01, **({"fused": True} if cuda else {}))
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else None

        def step(groups):
            import contextlib

            batches = (collate([items[i] for i in g], layout).to(device) for g in groups)
            totals, _ = train_step(forward, optimizer, params, batches, len(groups), 0.3, 1.0,
                                   autocast or contextlib.nullcontext)
            return totals.samples, totals.frames
    else:
        from training import upstream

        data = upstream.UpstreamData(examples, processor)
        optimizer = upstream.upstream_optimizer(model, lr=2e-5)

        def step(groups):
            samples = frames = 0
            for g in groups:
                items, mels = data.batch(g)
                _, n = upstream.upstream_micro_step(model, model.config, items, mels, accum=len(groups))
                samples, frames = samples + len(g), frames + n
            upstream.upstream_optimizer_step(model, optimizer)
            return samples, frames

    groups = [micro[i:i + args.grad_accum] for i in range(0, len(micro), args.grad_accum)]
    samples = frames = 0
    timed = 0.0
    for k, g in enumerate(groups):
        t = time.perf_counter()
        s, f = step(g)
        if cuda:
            torch.cuda.synchronize()
        peak.sample()
        if k >= args.warmup:
            timed += time.perf_counter() - t
            samples, frames = samples + s, frames + f
    return dict(procedure=procedure, samples_per_s=samples / timed, tokens_per_s=frames / timed,
                peak_bytes=peak.value(), checkpoint_bytes=checkpoint_bytes, steps=args.steps, seconds=round(timed, 2), build_seconds=round(build_s, 1),
                params=sum(p.numel() for p in model.parameters()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--shape", default="tiny", choices=("tiny", "1.7b"), help="model shape, random weights (default tiny)")
    p.add_argument("--clips", type=int, default=16, help="synthetic clips (default 16)")
    p.add_argument("--frames", type=int, default=160, help="mean codec frames per clip, +-25%% (default 160 = 12.8 s)")
    p.add_argument("--text-words", type=int, default=20, help="words of text per clip (default 20)")
    p.add_argument("--batch-size", type=int, default=2, help="clips per micro-batch, both procedures (default 2)")
    p.add_argument("--grad-accum", type=int, default=4, help="micro-batches per optimizer step (default 4)")
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first (default 1)")
    p.add_argument("--attn", default="sdpa", help="attention implementation (default sdpa)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--procedure", choices=("ours", "lora", "upstream"), help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args()
    if args.quick:  # a child gets --quick too (it is handed sys.argv)
        args.clips, args.frames, args.text_words, args.batch_size, args.grad_accum, args.steps, args.warmup = \
            2, 12, 4, 1, 1, 1, 0

    if args.procedure:  # a child: measure one procedure, print its JSON last
        print(json.dumps(measure(args.procedure, args)))
        return 0

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_reference(Path(tmp))
        for procedure in ("upstream", "ours", "lora"):
            cmd = [sys.executable, __file__, "--procedure", procedure, "--workdir", tmp] + sys.argv[1:]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[procedure] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[procedure]
            print(f"{procedure}: {r['samples_per_s']:.2f} samples/s, {r['tokens_per_s']:.0f} tokens/s, peak "
                  f"{r['peak_bytes'] / 2**30:.2f} GiB ({r['steps']} steps in {r['seconds']} s; model built in "
                  f"{r['build_seconds']} s, {r['params'] / 1e6:.1f} M parameters)", flush=True)
    ours, up, lora = results["ours"], results["upstream"], results["lora"]
    keys = ("samples_per_s", "tokens_per_s", "peak_bytes", "checkpoint_bytes")
    ratio = {k: ours[k] / up[k] for k in keys}
    lora_ratio = {k: lora[k] / ours[k] for k in keys}
    if args.json:
        Path(args.json).write_text(json.dumps(dict(args=vars(args), results=results, ratio=ratio,
                                                   lora_ratio=lora_ratio), indent=2) + "\n")
    device = args.device
    if device.startswith("cuda"):
        import torch

        device = f"{device} ({torch.cuda.get_device_name()})"
    print(f"\ntraining throughput, shape {args.shape}, {device}, batch {args.batch_size} x {args.grad_accum} "
          f"micro-batches, ~{args.frames} frames/clip")
    print(f"{'':14}{'samples/s':>11}{'tokens/s':>11}{'peak GiB':>10}{'ckpt MiB':>10}")
    for name, r in (("upstream", up), ("ours (full)", ours), ("lora", lora)):
        print(f"{name:14}{r['samples_per_s']:>11.2f}{r['tokens_per_s']:>11.0f}{r['peak_bytes'] / 2**30:>10.2f}"
              f"{r['checkpoint_bytes'] / 2**20:>10.2f}")
    for name, q in (("ours/upstream", ratio), ("lora/ours", lora_ratio)):
        print(f"{name:14}{q['samples_per_s']:>10.2f}x{q['tokens_per_s']:>10.2f}x{q['peak_bytes']:>9.2f}x"
              f"{q['checkpoint_bytes']:>9.3f}x")
    print("lora targets at the 1.7B shape: bytes per checkpoint <= 0.03x full, peak memory <= 0.5x, samples/s >= 1x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
