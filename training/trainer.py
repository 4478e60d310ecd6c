"""`milo-train run`: the training loop, validation, early stopping, checkpoints, resume points and stops.

One code path for one process and for many (training/dist.py): every process trains on its own shard and
gradients are averaged by DistributedDataParallel; only rank 0 writes files, as docs/run-folder.md says,
through contract.runfolder. The settings come from training/hyper.py, a step from training/step.py, what
follows each save from training/after_save.py, and how a failure ends from training/failures.py.
docs/training.md explains the choices.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

import contract
from contract import exits, runfolder as rf
from contract.audio import FRAME_RATE, SAMPLE_RATE
from contract.checkpoint import BaseModelError, check_base_model
from contract.units import fmt_bytes
from training.after_save import quality_stop, queue_scoring, retain
from training.dist import Dist
from training.failures import BadInput, DiskFull, UsageError, failure, is_disk_full
from training.hooks import TestHooks
from training.hyper import resolve, resolve_judging
from training.runlog import RunLog
from training.step import StepTotals, train_step

def _base_dtype(base: Path):
    """The dtype the base model's weights are stored in (checkpoints are saved in it by default)."""
    import torch

    names = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
    with open(base / "model.safetensors", "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    for key, meta in header.items():
        if key != "__metadata__" and meta.get("dtype") in names:
            return names[meta["dtype"]]
    return torch.float32


class Trainer:
    def __init__(self, args, dist: Dist, log: RunLog):
        self.args, self.dist, self.log = args, dist, log
        self.run_dir = Path(args.run).absolute()
        self.stop_requested = False
        self.stop_announced = self.stop_state_written = self.holding_run_lock = False
        self.took_over = False  # state.json is ours to write once we said "running"
        self.hooks = TestHooks.from_env(self.run_dir)
        self.step = 0
        self.saves = 0  # checkpoints written by this process
        self.quality_stop: str | None = None  # why the scores stopped the run (after_save.quality_stop)
        self.last_state_write = 0.0
        self.own_best: dict | None = None  # the run's own [best] rule for run.json (resolve_judging)
        self.score_device = "cpu"          # where its scorer generates (resolve_judging)

    # ---------------------------------------------------------------- setup

    def on_signal(self, signum, frame) -> None:
        """Only sets the flag, and says `stopping` in state.json at once unless the main code holds the run
        folder's lock (a state.json or scoring.json write: the handler runs between its bytecodes, and its own
        update_state would wait forever on that flock): then the loop says it after the step.
        No logging here: a print interrupted by a print raises."""
        self.stop_requested = True
        if self.took_over and not self.holding_run_lock and not self.stop_state_written:
            with contextlib.suppress(Exception):
                self.state(status=rf.STOPPING)
                self.stop_state_written = True

    def resolve(self) -> None:
        """Settle base, data and hyper-parameters, from the command line and (on --resume) run.json."""
        settings = resolve(self.args, self.run_dir, rf.read_json(self.run_dir / rf.RUN_JSON))
        self.base, self.data, self.speaker, self.ref_audio = (settings.base, settings.data, settings.speaker,
                                                              settings.ref_audio)
        self.hyper, self.run_json = settings.hyper, settings.run_json
        self.own_best, self.score_device = resolve_judging(self.args, self.run_json, self.hyper.score)

    def start_state(self) -> None:
        """state.json: running. The supervisor may have written starting + pid; a hand-started run records its own."""
        import psutil

        state = rf.read_json(self.run_dir / rf.STATE_JSON) or {}
        fields = dict(status=rf.RUNNING, started_at=time.time(), host=socket.gethostname(), exit_code=None,
                      error=None, ended_at=None)
        if not state.get("pid"):
            fields.update(pid=os.getpid(), pid_start_time=psutil.Process(os.getpid()).create_time())
        self.state(**fields)
        self.took_over = True

    def load(self) -> None:
        """The data, the model, the speaker embedding and the optimizer. Bad input is found before torch is
        imported: the answer comes in a fraction of a second."""
        from training.data import DataError, read_jsonl, split_indices

        h = self.hyper
        try:  # the one check of a base model (the new-run form and prepare make it too)
            self.base_config = check_base_model(self.base)
        except BaseModelError as exc:
            raise BadInput(str(exc)) from None
        try:
            self.examples = read_jsonl(self.data)
        except DataError as exc:
            raise BadInput(str(exc)) from None
        if self.ref_audio and not Path(self.ref_audio).is_file():
            raise BadInput(f"reference audio not found: {self.ref_audio}")

        import torch

        from training.forward import AlignedForward, text_token_ids

        self.device = self.pick_device()
        self.dist.init(self.device.type)
        ranks = self.dist.rank_hosts()
        if ranks:  # which host each rank is on, for the line that names a lost one (training/launch.py)
            self.state(ranks=ranks)
        self.use_autocast = h.autocast and self.device.type == "cuda"
        self.load_model()
        held = [i for i, ex in enumerate(self.examples) if ex.extra.get("split") == "val"]
        self.train_idx, self.val_idx = split_indices(len(self.examples), h.val_fraction, h.seed, held)
        if not self.train_idx:
            raise BadInput(f"{self.data}: no clips left to train on")
        self.items = [(text_token_ids(self.processor, ex.text), torch.from_numpy(ex.codes.astype(np.int64)))
                      for ex in self.examples]
        self.resume_path = None
        if self.args.resume:
            from training.resume import find_resume_point

            self.resume_path = find_resume_point(self.run_dir)
        if self.resume_path is not None:
            training_state = torch.load(self.resume_path / "training.pt", map_location="cpu", weights_only=False)
            self.speaker_embedding = training_state["speaker_embedding"]
        else:
            self.speaker_embedding = self.compute_speaker_embedding()
        self.forward_module = AlignedForward(self.model, self.speaker_embedding).to(self.device)
        self.build_optimizer()

    def pick_device(self):
        """--device, else this rank's CUDA device where there is one, else the CPU."""
        import torch

        want = self.args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not want.startswith("cuda"):
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise UsageError("--device cuda, but no CUDA device is visible")
        device = torch.device("cuda", self.dist.local_rank if want == "cuda" else torch.device(want).index)
        torch.cuda.set_device(device)
        return device

    def load_model(self) -> None:
        """The base model in fp32 master weights, made ready to train, and its prompt layout."""
        import torch

        from inference.qwen import import_qwen_tts
        from training.forward import Layout

        h = self.hyper
        qwen_tts = import_qwen_tts()
        self.log.info(f"loading {self.base} (fp32 weights, attention {h.attn}) on {self.device}")
        try:
            tts = qwen_tts.Qwen3TTSModel.from_pretrained(str(self.base), dtype=torch.float32,
                                                         attn_implementation=h.attn)
        except (ImportError, ValueError) as exc:
            if h.attn != "sdpa":
                raise UsageError(f"--attn {h.attn}: {str(exc).splitlines()[0]}") from None
            raise
        self.model, self.processor = tts.model.to(self.device), tts.processor
        if self.device.type == "cpu":
            # One thread for a small model: its matrices are too small to share, and OpenMP threads that share
            # cores with other processes spin (docs/training.md).
            small = self.model.config.talker_config.hidden_size <= 256
            torch.set_num_threads(self.args.threads or (1 if small else torch.get_num_threads()))
        self.model.speech_tokenizer = None  # codes are precomputed; the codec is not needed to train
        if self.model.speaker_encoder is not None:
            self.model.speaker_encoder.requires_grad_(False)
        self.lora_modules: list[str] = []
        if h.method == "lora":
            from training.lora import apply_lora

            self.lora_modules = apply_lora(self.model, h.lora_rank, h.lora_alpha, h.lora_targets, h.seed)
            self.log.info(f"LoRA rank {h.lora_rank}, alpha {h.lora_alpha:g} on {len(self.lora_modules)} modules "
                          f"({h.lora_targets}); everything else frozen")
        if h.gradient_checkpointing:
            self.model.talker.gradient_checkpointing_enable()
        try:
            self.layout = Layout.from_model(self.model, self.processor, h.language)
        except ValueError as exc:
            raise UsageError(f"--language: {exc}") from None

    def build_optimizer(self) -> None:
        """AdamW over the trainable weights (not the speaker encoder), the LR schedule, and with several
        processes the DistributedDataParallel wrapper that averages their gradients."""
        import torch

        from training.data import steps_per_epoch

        h = self.hyper
        self.trainable = [p for n, p in self.model.named_parameters()
                          if p.requires_grad and not n.startswith("speaker_encoder.")]
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(self.trainable, lr=h.lr, weight_decay=h.weight_decay, **fused)
        self.steps_per_epoch = steps_per_epoch(len(self.train_idx), h.batch_size, h.grad_accum, self.dist.world)
        self.total_steps = self.steps_per_epoch * h.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.ddp = None
        if self.dist.world > 1:
            import warnings

            from torch.nn.parallel import DistributedDataParallel

            with warnings.catch_warnings():  # newer torch renames broadcast_buffers; the old name works in both
                warnings.simplefilter("ignore", FutureWarning)
                self.ddp = DistributedDataParallel(
                    self.forward_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    broadcast_buffers=False)

    def lr_factor(self, step: int) -> float:
        h = self.hyper
        if h.warmup_steps and step < h.warmup_steps:
            return (step + 1) / h.warmup_steps
        if h.schedule == "cosine":
            span = max(1, self.total_steps - h.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - h.warmup_steps) / span)))
        return 1.0

    def reference_files(self) -> list[Path]:
        if self.ref_audio:
            return [Path(self.ref_audio)]
        return sorted({ex.ref_audio for ex in self.examples})

    def compute_speaker_embedding(self):
        """Once per run: the Base speaker encoder on the reference audio (the mean when the data names
        several reference clips). Training feeds exactly this vector, and each checkpoint stores it in
        row 3000, which generation looks up: both see the same speaker."""
        import torch

        from training.audio import AudioError, load_24k_mono

        vectors = []
        for path in self.reference_files():
            try:
                wav = load_24k_mono(path)
            except AudioError as exc:
                raise BadInput(f"reference audio {path}: {exc}") from None
            if wav.size < SAMPLE_RATE // 4:
                raise BadInput(f"reference audio {path} is shorter than 0.25 s")
            vectors.append(self.model.extract_speaker_embedding(wav, SAMPLE_RATE).float().cpu())
        self.log.info(f"speaker embedding from {len(vectors)} reference clip{'s' * (len(vectors) > 1)}")
        return torch.stack(vectors).mean(0)

    # ---------------------------------------------------------------- steps

    def collate(self, indices):
        from training.forward import collate

        return collate([self.items[i] for i in indices], self.layout).to(self.device)

    def autocast(self):
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_autocast else contextlib.nullcontext()

    def optimizer_step(self, group: list[list[int]]):
        """One optimizer step over the micro-batches in `group` (see `train_step`), then the LR schedule."""
        lr = self.optimizer.param_groups[0]["lr"]
        totals, grad_norm = train_step(self.ddp or self.forward_module, self.optimizer, self.trainable,
                            (self.collate(indices) for indices in group), len(group), self.hyper.sub_talker_weight,
                            self.hyper.clip, self.autocast, no_sync=self.ddp.no_sync if self.ddp else None)
        self.scheduler.step()
        return totals, grad_norm, lr

    def evaluate(self) -> dict | None:
        """Validation objective, layer sum and per-layer losses over the held-out clips (token-weighted)."""
        import torch

        from training.forward import objective

        if not self.val_idx:
            return None
        h = self.hyper
        mine = self.val_idx[self.dist.rank::self.dist.world]
        totals = StepTotals.zero()
        self.model.eval()
        with torch.no_grad(), self.autocast():
            for i in range(0, len(mine), h.batch_size):
                chunk = mine[i:i + h.batch_size]
                out = self.forward_module(self.collate(chunk))
                totals.layer_sums += out.layer_sums.double().cpu()
                totals.layer_counts += out.layer_counts.double().cpu()
                totals.samples += len(chunk)
        self.model.train()
        totals, _ = totals.summed(self.dist)
        layers = totals.layer_losses()
        return dict(objective=float(objective(layers, h.sub_talker_weight)), layer_sum=float(layers.sum()),
                    layers=[float(x) for x in layers], samples=totals.samples)

    def memory_bytes(self) -> int:
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.memory_allocated(self.device))
        import psutil

        return int(psutil.Process().memory_info().rss)

    # ---------------------------------------------------------------- files (rank 0)

    def append(self, *records: dict) -> None:
        if self.dist.is_main:
            rf.append_records(self.run_dir / rf.METRICS, records)

    def event(self, event: str, message: str, **fields) -> None:
        self.append(rf.record("event", event=event, message=message, **fields))

    @contextlib.contextmanager
    def run_lock(self):
        """Around every write this process makes under the run folder's flock (runfolder.locked): while it is
        held, the signal handler leaves state.json alone."""
        self.holding_run_lock = True
        try:
            yield
        finally:
            self.holding_run_lock = False

    def state(self, **fields) -> None:
        if self.dist.is_main:
            with self.run_lock():
                rf.update_state(self.run_dir, **fields)

    def write_run_json(self) -> None:
        if not self.dist.is_main:
            return
        from contract.scores import RUN_BEST

        judging = {"score_device": self.score_device, **({RUN_BEST: self.own_best} if self.own_best else {})}
        if self.run_json is not None:
            now = {**self.run_json, "hyper": asdict(self.hyper), **judging}  # --resume with new --epochs/--patience
            if now != self.run_json:
                self.run_json = now
                rf.write_json_atomic(self.run_dir / rf.RUN_JSON, self.run_json)
            return
        self.run_json = dict(
            base_model=str(self.base), data=str(self.data), speaker=self.speaker, ref_audio=self.ref_audio,
            hyper=asdict(self.hyper), command=sys.argv, created_at=time.time(),
            milo_version=contract.__version__, world_size=self.dist.world,
            device=str(self.device), **judging)
        rf.write_json_atomic(self.run_dir / rf.RUN_JSON, self.run_json)

    def save_checkpoint(self, name: str, evaluation: dict | None, epoch: int) -> None:
        """A custom-voice folder loadable by Qwen3TTSModel.from_pretrained, or with --method lora a voice
        bundle (contract/bundle.py), with eval.json (rank 0)."""
        if not self.dist.is_main:
            return
        started = time.monotonic()
        eval_json = dict(epoch=epoch, step=self.step, speaker=self.speaker, **(evaluation or {}))
        self.saves += 1
        try:
            hook = (lambda tmp, n=self.saves: self.hooks.during_save(n, tmp)) if self.hooks is not None else None
            out = self._write_checkpoint(name, {rf.EVAL_JSON: json.dumps(eval_json, indent=2) + "\n"}, hook)
        except Exception as exc:
            if is_disk_full(exc):
                raise DiskFull(f"disk full while saving {name} in {self.run_dir}: earlier checkpoints are intact; "
                               "free space, then continue with --resume") from None
            raise
        written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.stat().st_nlink == 1)
        seconds = time.monotonic() - started
        self.event("checkpoint", f"saved {name} ({fmt_bytes(written)} in {seconds:.1f} s)",
                   path=name, epoch=epoch, step=self.step, bytes=written, seconds=round(seconds, 3))
        self.log.info(f"checkpoint {name} saved ({fmt_bytes(written)}, {seconds:.1f} s)")
        self.after_save(name)

    def _write_checkpoint(self, name: str, extra_files: dict[str, str], hook):
        import torch

        if self.hyper.method == "lora":
            from training.lora import adapter_state, save_bundle

            return save_bundle(adapter_state(self.model), self.speaker_embedding, self.base, self.run_dir / name,
                               self.speaker, self.bundle_manifest(), extra_files=extra_files, after_weights=hook)
        from training.checkpoint import save_custom_voice

        dtype = _base_dtype(self.base) if self.hyper.save_dtype == "base" else getattr(torch, self.hyper.save_dtype)
        weights = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype)
                   for k, v in self.model.state_dict().items() if not k.startswith("speaker_encoder.")}
        return save_custom_voice(weights, self.base, self.run_dir / name, self.speaker, self.speaker_embedding,
                                 extra_files=extra_files, after_weights=hook)

    def bundle_manifest(self) -> dict:
        """What a voice bundle says of itself (contract/bundle.py): its base (hashed once), the speaker,
        the adapter's settings and modules, the training settings."""
        from contract.bundle import weights_sha256

        if getattr(self, "_base_identity", None) is None:
            weights = self.base / "model.safetensors"
            self._base_identity = dict(path=str(self.base), bytes=weights.stat().st_size, sha256=weights_sha256(weights))
        h = self.hyper
        return dict(method="lora", base=self._base_identity, speaker=self.speaker,
                    lora=dict(rank=h.lora_rank, alpha=h.lora_alpha, targets=h.lora_targets, modules=self.lora_modules),
                    training=asdict(h), milo_version=contract.__version__)

    def after_save(self, name: str) -> None:
        """The run's after-save policy (training/after_save.py): queue the checkpoint for scoring, stop once
        the scores have stopped improving, prune by the run's retention."""
        if self.hyper.score:
            queue_scoring(self.run_dir, name, self.score_device, self.log, self.run_lock)
        if self.hyper.stop_unimproved and not self.stop_requested:
            reason = quality_stop(self.run_dir, self.hyper.stop_unimproved, self.log)
            if reason is not None:
                self.quality_stop, self.stop_requested = reason, True
        retain(self.run_dir, self.hyper, name, self.log, self.append)

    def save_resume_point(self, epoch: int, micro: int) -> None:
        """Every process takes part (RNG states are gathered); rank 0 writes."""
        import torch

        from training.resume import save_resume_point

        rng = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
                   cuda=torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)
        rngs = self.dist.gather_objects(rng)
        if self.dist.is_main:
            info = dict(epoch=epoch, micro=micro, step=self.step, best_epoch=self.best_epoch, best_val=self.best_val,
                        bad_epochs=self.bad_epochs, world_size=self.dist.world, saved_at=time.time())
            weights = {k: v for k, v in self.model.state_dict().items() if not k.startswith("speaker_encoder.")}
            if self.hyper.method == "lora":  # the base never changes: the adapter is the whole trained state
                from training.lora import is_adapter_key

                weights = {k: v for k, v in weights.items() if is_adapter_key(k)}
            try:
                save_resume_point(self.run_dir, weights,
                                  dict(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict()),
                                  dict(speaker_embedding=self.speaker_embedding, rng=rngs), info)
            except Exception as exc:
                if is_disk_full(exc):
                    raise DiskFull(f"disk full while saving the resume point in {self.run_dir}: the previous one "
                                   "and the checkpoints are intact; free space, then continue with --resume") from None
                raise
        self.dist.barrier()

    def restore(self) -> tuple[int, int]:
        """Load the resume point; returns (epoch, next micro-batch)."""
        import torch

        from training.resume import load_resume_point

        weights, opt, training, info = load_resume_point(self.resume_path, self.device)
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.startswith("speaker_encoder.")]
        if self.hyper.method == "lora":  # the resume point holds the adapter alone; the base is loaded as it is
            from training.lora import is_adapter_key

            missing = [k for k in missing if is_adapter_key(k)]
        if missing or unexpected:
            raise BadInput(f"{self.resume_path} does not match the base model (missing {missing[:2]}, unexpected {unexpected[:2]})")
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        rngs = training["rng"]
        if len(rngs) != self.dist.world:
            # The data position counts this many processes' shards.
            raise UsageError(f"--resume: this run was trained by {len(rngs)} process(es); resume it with as many")
        rng = rngs[self.dist.rank]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step = info["step"]
        self.best_epoch, self.best_val, self.bad_epochs = info["best_epoch"], info["best_val"], info["bad_epochs"]
        return info["epoch"], info["micro"]

    # ---------------------------------------------------------------- the loop

    def agree_to_stop(self, totals: StepTotals | None = None) -> tuple[StepTotals, bool]:
        """All processes stop at the same step: the stop flag travels with the step's totals, summed over all."""
        return (totals if totals is not None else StepTotals.zero()).summed(self.dist, self.stop_requested)

    def announce_stop(self) -> None:
        if self.stop_requested and not self.stop_announced:
            self.stop_announced = True
            self.log.info("stop requested: finishing the step, then saving a resume point")
            if not self.stop_state_written:
                self.state(status=rf.STOPPING)
                self.stop_state_written = True

    def train(self) -> int:
        import torch

        from training.data import epoch_order, rank_batches

        h = self.hyper
        self.best_epoch, self.best_val, self.bad_epochs = None, None, 0
        start_epoch, start_micro = 1, 0
        if self.resume_path is not None:
            start_epoch, start_micro = self.restore()
            self.log.info(f"resumed from {self.resume_path.name}: epoch {start_epoch}, step {self.step}")
        elif self.args.resume:
            self.log.info("no resume point in this run folder yet: starting from the beginning")
        if self.resume_path is None:
            random.seed(h.seed)
            np.random.seed(h.seed)
            torch.manual_seed(h.seed)
        self.write_run_json()
        resumed_from = self.step if self.resume_path is not None else None
        longest = max(ex.frames for ex in self.examples) / FRAME_RATE
        self.event("start", f"training {len(self.train_idx)} clips ({len(self.val_idx)} held out) for {h.epochs} "
                   f"epochs of {self.steps_per_epoch} steps" + (f", resumed at step {self.step}" if resumed_from is not None else ""),
                   epochs=h.epochs, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                   train_samples=len(self.train_idx), val_samples=len(self.val_idx), resumed_from_step=resumed_from,
                   world_size=self.dist.world, device=str(self.device))
        self.state(epoch=start_epoch - 1, step=self.step,
                   best_epoch=self.best_epoch, best_val=self.best_val)
        self.log.info(f"{len(self.train_idx)} training clips, {len(self.val_idx)} held out; {self.steps_per_epoch} "
                      f"steps per epoch; longest clip {longest:.1f} s; device {self.device}, {self.dist.world} process(es)")
        if self.dist.world > 1:
            self.log.info(f"process {self.dist.rank} of {self.dist.world} trains its own shard", all_ranks=True)
        if self.best_epoch is not None and self.bad_epochs >= h.patience > 0 and start_micro == 0:
            return self.finish("early stopping had already ended this run")
        self.model.train()
        for epoch in range(start_epoch, h.epochs + 1):
            batches = rank_batches(epoch_order(self.train_idx, h.seed, epoch), h.batch_size, self.dist.rank, self.dist.world)
            micro = start_micro if epoch == start_epoch else 0
            since_resume_point = 0
            while micro < len(batches):
                self.announce_stop()
                if self.stop_requested and since_resume_point == 0 and self.dist.world == 1:
                    return self.stopped(epoch, micro, save=False)  # nothing new since the last resume point
                started = time.perf_counter()
                group = batches[micro:micro + h.grad_accum]
                totals, grad_norm, lr = self.optimizer_step(group)
                micro += len(group)
                self.step += 1
                since_resume_point += 1
                self.announce_stop()
                totals, stop = self.agree_to_stop(totals)
                elapsed = time.perf_counter() - started
                self.record_step(epoch, micro, len(batches), totals, grad_norm, lr, elapsed)
                if self.hooks is not None:
                    self.hooks.after_step(self.step, self.dist.is_main)
                if micro < len(batches):
                    if h.save_every_steps and self.step % h.save_every_steps == 0:
                        evaluation = self.evaluate()
                        if evaluation is not None:
                            self.append(rf.record("validation", epoch=epoch, step=self.step, best=False,
                                                  mid_epoch=True, **evaluation))
                        self.save_checkpoint(rf.step_dir_name(self.step), evaluation, epoch)
                        self.save_resume_point(epoch, micro)
                        since_resume_point = 0
                    elif h.resume_every_steps and self.step % h.resume_every_steps == 0:
                        self.save_resume_point(epoch, micro)
                        since_resume_point = 0
                if stop:
                    return self.stopped(epoch, micro, save=True)
            if self.end_of_epoch(epoch):
                return self.finish(f"early stopping: no better validation for {h.patience} epochs", early=True)
            if epoch < h.epochs and self.agree_to_stop()[1]:
                return self.stopped(epoch + 1, 0, save=False)  # the epoch's end saved a resume point
        return self.finish("all epochs done")

    def record_step(self, epoch, micro, n_micro, totals: StepTotals, grad_norm, lr, elapsed) -> None:
        from training.forward import objective

        h = self.hyper
        layers = totals.layer_losses()
        obj = float(objective(layers, h.sub_talker_weight))
        if not math.isfinite(obj):
            raise RuntimeError(f"the loss is {obj} at step {self.step}: lower --lr")
        epoch_steps = math.ceil(n_micro / h.grad_accum)
        epoch_step = math.ceil(micro / h.grad_accum)
        rec = rf.record("step", epoch=epoch, step=self.step, epoch_step=epoch_step, epoch_steps=epoch_steps,
                        objective=obj, layer_sum=float(layers.sum()), layers=[float(x) for x in layers], lr=lr,
                        grad_norm=grad_norm, samples_per_s=totals.samples / elapsed,
                        tokens_per_s=totals.frames / elapsed, memory_bytes=self.memory_bytes(),
                        samples=totals.samples, tokens=totals.frames, seconds=round(elapsed, 4))
        if not self.dist.is_main:
            return
        self.append(rec)
        self.log.info(f"epoch {epoch} step {epoch_step}/{epoch_steps} (#{self.step}) objective {obj:.4f} layer sum "
                      f"{rec['layer_sum']:.3f} lr {lr:.2e} grad {grad_norm:.3f} {rec['samples_per_s']:.1f} samples/s")
        now = time.monotonic()
        if now - self.last_state_write >= 1.0 or epoch_step == epoch_steps:
            self.last_state_write = now
            self.state(step=self.step, epoch=epoch - 1)

    def end_of_epoch(self, epoch: int) -> bool:
        """Validate, track the best epoch, save the epoch's checkpoint and a resume point. True when
        early stopping ends the run."""
        h = self.hyper
        evaluation = self.evaluate()
        best = False
        if evaluation is not None:
            best = self.best_val is None or evaluation["objective"] < self.best_val
            if best:
                self.best_epoch, self.best_val, self.bad_epochs = epoch, evaluation["objective"], 0
            else:
                self.bad_epochs += 1
            self.append(rf.record("validation", epoch=epoch, step=self.step, best=best, **evaluation))
            self.log.info(f"epoch {epoch} validation objective {evaluation['objective']:.4f} layer sum "
                          f"{evaluation['layer_sum']:.3f}{' (best)' if best else ''}")
        self.save_checkpoint(rf.epoch_dir_name(epoch), evaluation, epoch)
        self.save_resume_point(epoch + 1, 0)
        self.state(epoch=epoch, step=self.step, best_epoch=self.best_epoch, best_val=self.best_val)
        return evaluation is not None and h.patience > 0 and self.bad_epochs >= h.patience and epoch < h.epochs

    def stopped(self, epoch: int, micro: int, save: bool) -> int:
        if save:
            self.save_resume_point(epoch, micro)
        if self.quality_stop:
            self.event("stop", f"stopped at step {self.step}: {self.quality_stop}; continue with --resume",
                       reason="quality", step=self.step)
        else:
            self.event("stop", f"stopped at step {self.step} on a signal; continue with --resume", reason="signal",
                       step=self.step)
        self.state(status=rf.STOPPED, exit_code=exits.OK, ended_at=time.time(), step=self.step,
                   stop_reason=self.quality_stop)
        self.log.info(f"stopped at step {self.step}; resume point saved" if save else f"stopped at step {self.step}")
        return exits.OK

    def finish(self, why: str, early: bool = False) -> int:
        if early:
            self.event("stop", why, reason="early_stopping", step=self.step)
        self.event("finish", f"finished: {why}; best epoch {self.best_epoch}", best_epoch=self.best_epoch,
                   best_val=self.best_val)
        self.state(status=rf.FINISHED, exit_code=exits.OK, ended_at=time.time(), step=self.step, best_epoch=self.best_epoch,
                   best_val=self.best_val)
        self.log.info(f"finished ({why}); best epoch {self.best_epoch} (validation {self.best_val})")
        return exits.OK


def run(args) -> int:
    """`milo-train run`. Returns the exit code (docs/run-folder.md)."""
    dist = Dist.from_env()
    run_dir = Path(args.run).absolute()
    if args.resume and not run_dir.is_dir():  # checked before the folder (and its train.log) is made
        print(f"milo-train: error: --resume: {run_dir} does not exist (check the path; without --resume, "
              f"--base and --data start a new run there)", file=sys.stderr)
        return exits.USAGE
    if dist.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"milo-train: error: cannot create {run_dir}: {exc.strerror}", file=sys.stderr)
            return exits.USAGE
    # Other ranks say little (their shard at the start, and errors) on their own console.
    log = RunLog(run_dir / rf.TRAIN_LOG if dist.is_main else None, prefix="" if dist.is_main else f"[rank {dist.rank}] ",
                 quiet=not dist.is_main)
    trainer = Trainer(args, dist, log)
    previous = {s: signal.signal(s, trainer.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    code, message, trace = exits.OK, None, None
    try:
        trainer.resolve()
        if dist.is_main:
            from training.resume import remove_leftovers

            remove_leftovers(run_dir)
            trainer.start_state()
        trainer.load()
        code = trainer.train()
    except Exception as exc:  # noqa: BLE001 - every failure ends as one line + exit code
        longest = max((ex.frames for ex in getattr(trainer, "examples", [])), default=0) / FRAME_RATE
        hyper = getattr(trainer, "hyper", None)
        code, message, trace = failure(exc, hyper.batch_size if hyper else None, longest, trainer.step)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if message is not None:
        log.error(message, trace)
        # The run's files tell of this failure when this process had taken the run over, or when a supervisor
        # launched it (status "starting"); a mistyped command against someone else's run leaves it as it was.
        launched = (rf.read_json(run_dir / rf.STATE_JSON) or {}).get("status") == rf.STARTING
        if dist.is_main and (trainer.took_over or launched):
            with contextlib.suppress(OSError):
                trainer.event("error", message)
            with contextlib.suppress(OSError):
                rf.update_state(run_dir, status=rf.CRASHED, exit_code=code, error=message, ended_at=time.time())
    log.close()
    dist.close(clean=code == exits.OK)
    return dist.leave(code)
