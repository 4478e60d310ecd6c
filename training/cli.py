"""`milo-train`: the trainer's command line.

    milo-train prepare CORPUS --base BASE --out DATA.jsonl [--ref REF.wav] [--whisper MODEL]
    milo-train run --base BASE --data DATA.jsonl --run RUN_DIR [hyper-parameters] [--resume]
    milo-train tiny-model OUT_DIR [--seed N]     a tiny random-weight Base model for tests and the demo
    milo-train demo-assets WORKSPACE             tiny model + prepared data of a demo workspace
    milo-train prune RUN [--dry-run] [--keep-best K] [--keep-last N] [--budget SIZE]
    milo-train adopt DIR [--data JSONL] [--base BASE]   an official-script output folder as a run
    milo-train hosts check --hosts H[,H] --base BASE --data DATA.jsonl --master-addr ADDR   the multi-host preflight

Exit codes of `run` (and `prepare`): docs/run-folder.md (0 ok or clean stop, 1 unexpected error, 2 bad
command line, 3 bad input, 4 out of memory, 5 disk full).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from contract import exits


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from contract.units import fmt_bytes
    from training.tiny_model import build_tiny_model

    started = time.monotonic()
    out = build_tiny_model(args.out_dir, seed=args.seed)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"tiny Qwen3-TTS Base model written to {out} ({fmt_bytes(size)}, {time.monotonic() - started:.1f} s)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from contract.units import fmt_bytes
    from training.export import ExportError, export

    started = time.monotonic()
    try:
        out = export(Path(args.bundle), Path(args.out))
    except ExportError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return exits.BAD_INPUT
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.stat().st_nlink == 1)
    print(f"{out}: {args.bundle} merged into its base, official layout ({fmt_bytes(size)} written, "
          f"{time.monotonic() - started:.1f} s)")
    return 0


def _cmd_demo_assets(args: argparse.Namespace) -> int:
    """The demo workspace's engine-made parts in one process (one torch + qwen_tts import, not two). Each
    step starts with a line "[i/4] what" (milo-tui shows them while the operator waits)."""
    from pathlib import Path

    def step(i: int, what: str) -> None:
        print(f"[{i}/4] {what}", flush=True)

    root = Path(args.workspace)
    step(1, "starting the engine: torch and Qwen3-TTS")
    from inference.qwen import import_qwen_tts
    from training.prepare import PrepareError, prepare

    import_qwen_tts()
    step(2, "tiny random-weight Qwen3-TTS Base model")
    if _cmd_tiny_model(argparse.Namespace(out_dir=str(root / "base"), seed=args.seed)) != 0:
        return 1

    def said(line: str) -> None:  # prepare's own lines: the two that start its phases become steps
        if line.startswith("auditing"):
            step(3, "auditing the corpus: speech recognition, speaker, loudness")
        elif line.startswith("encoding"):
            step(4, "encoding the corpus as training data")

    try:
        prepare(root / "corpus", root / "base", root / "data" / "train.jsonl", device="cpu", relative_paths=True,
                say=said)
    except PrepareError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 3
    print(f"training data written to {root / 'data' / 'train.jsonl'}")
    return 0


def _not_a_folder(path) -> str | None:
    """The one-line error for a folder argument that is missing or a file, or None when it is a folder."""
    if path.is_dir():
        return None
    if path.exists():
        return f"milo-train: error: {path} is not a folder"
    return f"milo-train: error: {path} does not exist (check the path)"


def _cmd_prune(args: argparse.Namespace) -> int:
    """Plan by the run's one policy (its own from run.json, else the config's [retention]; flags over either),
    print it and where it came from, and delete unless --dry-run."""
    import dataclasses
    from pathlib import Path

    from contract import retention, scores
    from contract.configfile import ConfigError, config_file, read_config
    from contract.runfolder import list_checkpoints
    from contract.units import parse_size

    run = Path(args.run).absolute()
    problem = _not_a_folder(run)
    if problem:
        print(problem, file=sys.stderr)
        return 3
    if not list_checkpoints(run):
        print(f"milo-train: error: {run} holds no checkpoints", file=sys.stderr)
        return 3
    for flag, value in (("--keep-best", args.keep_best), ("--keep-last", args.keep_last)):
        if value is not None and value < 0:
            print(f"milo-train: error: {flag} {value}: give 0 or more checkpoints to keep", file=sys.stderr)
            return 3
    try:
        config = read_config()
        configured, rule = retention.policy_from(config), scores.best_rule(config)
        budget = parse_size(args.budget) if args.budget else None
    except (ConfigError, ValueError) as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 3
    policy, source = retention.policy_for(run, configured, _config_source(config, config_file()))
    given = {field: (flag, value) for field, flag, value in (
        ("keep_best", f"--keep-best {args.keep_best}", args.keep_best),
        ("keep_last", f"--keep-last {args.keep_last}", args.keep_last),
        ("budget_bytes", f"--budget {args.budget}", budget)) if value is not None}
    if given:
        policy = dataclasses.replace(policy, **{field: value for field, (_flag, value) in given.items()})
        source = f"{', '.join(flag for flag, _v in given.values())} given here, over {source}" + (
            "; the run's trainer and scorer keep applying its own after each save"
            if source == retention.RUN_POLICY_SOURCE else "")
    with retention.pruning(run):
        return _prune(run, policy, rule, source, args)


def _config_source(config: dict, path) -> str:
    from contract.retention import RETENTION_TABLE

    return (f"[retention] of {path}" if RETENTION_TABLE in config
            else f"the defaults (no [retention] in {path})")


def _prune(run: Path, policy, rule, source: str, args) -> int:
    from contract import retention
    from contract.units import fmt_bytes

    plan = retention.plan(run, policy, rule, protect=retention.waiting_for_scores(run))
    print(f"{run.name}: {policy.describe(rule)}")
    print(f"  policy: {source}")
    for name, why in plan.keep.items():
        print(f"  keep   {name}: {why}")
    for name in plan.delete:
        print(f"  delete {name}")
    if plan.over_budget:
        print(f"  the checkpoints that must stay already take {fmt_bytes(plan.kept_bytes)}: over the budget")
    if args.dry_run or not plan.delete:
        print(f"{plan.describe()}" + (" (dry run: nothing deleted)" if args.dry_run and plan.delete else ""))
        return 0
    done = retention.apply(run, plan.delete)
    for name, why in done.skipped.items():
        print(f"  kept {name}: {why}")
    print(f"deleted {len(done.deleted)} checkpoint(s), freed {fmt_bytes(done.freed_bytes)}")
    for name, why in done.left.items():
        print(f"  NOT REMOVED {name}: {why}; remove it by hand to free its space", file=sys.stderr)
    return 0


def _cmd_adopt(args: argparse.Namespace) -> int:
    from pathlib import Path

    from contract.adopt import AdoptError, adopt

    problem = _not_a_folder(Path(args.dir).absolute())
    if problem:
        print(problem, file=sys.stderr)
        return 3
    try:
        result = adopt(Path(args.dir), data=Path(args.data) if args.data else None,
                       base=Path(args.base) if args.base else None)
    except (AdoptError, OSError) as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 3
    print(result.headline(str(Path(args.dir).absolute())))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if args.hosts:  # across hosts: this process launches and watches (training/launch.py)
        from training.launch import launch

        return launch(args, args.argv[1:])
    from training.trainer import run

    return run(args)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from training.prepare import main

    return main(args)


def _cmd_hosts_check(args: argparse.Namespace) -> int:
    from training.hosts import PROJECT, iface_names, preflight

    hosts = [h for h in args.hosts.split(",") if h]
    if not hosts:
        print("milo-train: error: --hosts names no host: give the other hosts' SSH names", file=sys.stderr)
        return exits.USAGE
    problems = preflight(hosts, base=Path(args.base), data=Path(args.data), master_addr=args.master_addr,
                         port=args.rdzv_port, iface=args.iface, python=args.remote_python or sys.executable,
                         sync=args.sync)
    for line in problems:
        print(line)
    if problems:
        return exits.BAD_INPUT
    print(f"ready: this host (master {args.master_addr}:{args.rdzv_port}, interface {','.join(iface_names(args.iface))}) "
          f"and {', '.join(hosts)}: the same {PROJECT} and torch, base model and data")
    return 0


def _host_facts(rest: list[str]) -> int:
    """`milo-train host-facts PATH... --json`: this host's side of the preflight, run over SSH by another host's
    `hosts check` (hidden: not a command for people)."""
    import json

    from training.hosts import host_facts

    p = argparse.ArgumentParser(prog="milo-train host-facts")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--json", action="store_true", required=True)
    print(json.dumps(host_facts(p.parse_args(rest).paths)))
    return 0


def rdzv_port() -> int:
    """The rendezvous port when --rdzv-port is not given: MILO_RDZV_PORT, else torchrun's own 29500."""
    value = os.environ.get("MILO_RDZV_PORT", "")
    return int(value) if value.isdigit() else 29500


def _add_hosts(sub) -> None:
    p = sub.add_parser("hosts", help="several hosts as one run: the preflight (docs/multi-node.md)")
    check = p.add_subparsers(dest="hosts_command", required=True, metavar="SUBCOMMAND").add_parser(
        "check", help="check every host is ready for one run over all of them",
        description="Before a run over several hosts: each host reachable over SSH without a password, the same "
                    "milo-tui and torch versions, the base model and the data at the same paths with the same sizes "
                    "and sha256, the rendezvous port free here (the master), the network interface present. Prints "
                    "\"ready: ...\" or one line per problem naming the host and the fix (exit 3).")
    check.add_argument("--hosts", metavar="HOST[,HOST]", required=True, help="the other hosts, by their SSH names")
    check.add_argument("--base", metavar="DIR", required=True, help="the Base model folder (the same path on every host)")
    check.add_argument("--data", metavar="JSONL", required=True, help="the training JSONL (the same path on every host)")
    check.add_argument("--master-addr", metavar="ADDR", required=True,
                       help="this host's address on the link between the hosts (the rendezvous listens there)")
    check.add_argument("--rdzv-port", type=int, default=rdzv_port(), metavar="PORT",
                       help="the rendezvous port (default $MILO_RDZV_PORT, else 29500)")
    check.add_argument("--iface", metavar="IF",
                       help="the network interface of the link (default: GLOO_SOCKET_IFNAME, else NCCL_SOCKET_IFNAME)")
    check.add_argument("--sync", action="store_true",
                       help="copy data that is missing or different on a host there first (rsync over SSH; never the "
                            "base model)")
    check.add_argument("--remote-python", metavar="PATH",
                       help="the python that runs milo-tui on the other hosts (default: this one's path)")
    check.set_defaults(func=_cmd_hosts_check)


def _add_run(sub) -> None:
    from contract.defaults import ATTENTION, RUN_DEFAULTS as D

    p = sub.add_parser(
        "run", help="fine-tune a Base model into a custom voice, writing a run folder",
        description="Fine-tune Qwen3-TTS-12Hz Base into a custom-voice model. Writes RUN_DIR as docs/run-folder.md "
                    "describes (run.json, state.json, metrics.jsonl, train.log, epoch-NNNN/, resume/). SIGTERM or "
                    "SIGINT: finish the step, save a resume point, exit 0. Works the same under torchrun or "
                    "accelerate launch (only rank 0 writes).",
    )
    p.add_argument("--base", metavar="DIR", help="the Base model folder (local path)")
    p.add_argument("--data", metavar="JSONL", help="training JSONL (milo-train prepare's, or the official format)")
    p.add_argument("--run", "--run-dir", dest="run", metavar="RUN_DIR", required=True,
                   help="run folder to create (or continue, with --resume); under torchrun spell it --run-dir "
                        "(torchrun takes --run for its own --run-path)")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue RUN_DIR from its resume point (base, data and settings come from its run.json)")
    p.add_argument("--speaker", metavar="NAME", help="speaker name in the checkpoints (lower-cased; default: the run folder's name)")
    p.add_argument("--ref", metavar="WAV", help="reference clip for the speaker embedding (default: the data's ref_audio)")
    g = p.add_argument_group("hyper-parameters (defaults in brackets)")
    g.add_argument("--epochs", type=int, help=f"epochs [{D['epochs']}]")
    g.add_argument("--lr", type=float, help=f"peak learning rate [{D['lr']}]")
    g.add_argument("--batch-size", type=int, help=f"clips per micro-batch and process [{D['batch_size']}]")
    g.add_argument("--grad-accum", type=int, help=f"micro-batches per optimizer step [{D['grad_accum']}]")
    g.add_argument("--val-fraction", type=float, help=f"share of clips held out for validation [{D['val_fraction']}]")
    g.add_argument("--patience", type=int, help=f"stop after this many epochs without a better validation; 0: never [{D['patience']}]")
    g.add_argument("--sub-talker-weight", type=float, help=f"w in objective = layer 0 + w * mean(layers 1-15) [{D['sub_talker_weight']}]")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay [{D['weight_decay']}]")
    g.add_argument("--warmup-steps", type=int, help=f"linear learning-rate warm-up [{D['warmup_steps']}]")
    g.add_argument("--schedule", choices=("constant", "cosine"), help=f"learning rate after warm-up [{D['schedule']}]")
    g.add_argument("--clip", type=float, help=f"gradient-norm clipping; 0: none [{D['clip']}]")
    g.add_argument("--seed", type=int, help=f"seed of split, order and RNGs [{D['seed']}]")
    g.add_argument("--attn", choices=ATTENTION, help=f"attention kernel [{D['attn']}]")
    g.add_argument("--language", help=f"language tag of the prompt, as generation will use it [{D['language']}]")
    g.add_argument("--no-autocast", dest="autocast", action="store_const", const=False,
                   help="on CUDA, compute in fp32 instead of bf16 autocast (weights are fp32 either way)")
    g.add_argument("--gradient-checkpointing", action="store_const", const=True, help="trade compute for memory")
    g.add_argument("--no-score", dest="score", action="store_const", const=False,
                   help="do not score each checkpoint after it is saved (docs/scoring.md) [scored]")
    g.add_argument("--keep-best", type=int, metavar="K",
                   help="after each save, keep the best K checkpoints (by the [best] rule, then validation loss) ... "
                        "[off]")
    g.add_argument("--keep-last", type=int, metavar="N", help="... and the newest N; the rest are deleted [off]")
    g.add_argument("--disk-budget", metavar="SIZE",
                   help="... within this much disk, e.g. 50G; alone, it deletes only to get under it [none]")
    g.add_argument("--stop-unimproved", type=int, metavar="N",
                   help="stop (with a resume point) when the best score has not improved for N scored checkpoints "
                        "[0: off]")
    g.add_argument("--best-max-runaway", type=int, metavar="N",
                   help="this run's own rule for its best checkpoint: the configuration's [best] rule, but allowing N "
                        "runaway prompts (kept in run.json; every reader of the run's best uses it) [the [best] rule]")
    g.add_argument("--best-note", metavar="TEXT", help="why the run has its own rule, shown with its verdict")
    g.add_argument("--score-device", choices=("cpu", "cuda", "auto"),
                   help="where the run's scorer generates (kept in run.json) [[scoring] device, else cpu]")
    g.add_argument("--save-dtype", choices=("base", "float32", "bfloat16", "float16"),
                   help=f"dtype of checkpoint weights; base: as the base model stores them [{D['save_dtype']}]")
    g.add_argument("--save-every-steps", type=int, help="also save a checkpoint (step-NNNNNNNN/) and resume point every N steps")
    g.add_argument("--resume-every-steps", type=int, help="save a resume point every N steps (always at each epoch's end)")
    g = p.add_argument_group("LoRA: voice bundles instead of full checkpoints (docs/training.md)")
    g.add_argument("--method", choices=("full", "lora"), help=f"train every weight, or LoRA adapters [{D['method']}]")
    g.add_argument("--rank", dest="lora_rank", type=int, help=f"LoRA rank [{D['lora_rank']}]")
    g.add_argument("--alpha", dest="lora_alpha", type=float, help=f"LoRA alpha (scale = alpha / rank) [{D['lora_alpha']:g}]")
    g.add_argument("--targets", dest="lora_targets", choices=("talker", "talker+mlp", "talker+predictor"),
                   help=f"layers that get adapters: the talker's attention, + its MLP, + the code predictor's [{D['lora_targets']}]")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    g = p.add_argument_group("across hosts: one run on this host and others (docs/multi-node.md)")
    g.add_argument("--hosts", metavar="HOST[,HOST]", help="the other hosts by SSH name; this host keeps the run folder")
    g.add_argument("--master-addr", metavar="ADDR", help="this host's address the others reach (the rendezvous)")
    g.add_argument("--rdzv-port", type=int, default=rdzv_port(),
                   help="the rendezvous port on --master-addr [$MILO_RDZV_PORT, else 29500]")
    g.add_argument("--iface", metavar="IF", help="the network interface between the hosts (sets NCCL_SOCKET_IFNAME and "
                                                  "GLOO_SOCKET_IFNAME) [as the environment has them]")
    g.add_argument("--nproc-per-node", type=int, default=1, help="processes per host: one per GPU [1]")
    g.add_argument("--sync", action="store_true", help="copy the data to the other hosts (rsync) when it differs there")
    g.add_argument("--remote-python", metavar="PATH", help="the Python on the other hosts [this one's path]")
    p.add_argument("--threads", type=int, help="CPU threads (default: 1 for a small model, else torch's default)")
    p.set_defaults(func=_cmd_run)


def _add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare", help="turn a folder of clips + transcripts into a training JSONL with codec codes",
        description="Read every audio file under CORPUS (any sample rate, channels or bit depth; converted to 24 kHz "
                    "mono; a file longer than --max-seconds is cut at pauses into clips), take its transcript from a "
                    ".txt/.lab file beside it or from metadata.csv (else the recognizer transcribes it), audit every "
                    "clip (loudness, clipping, SNR, speech ratio, silences, voice, transcript, duplicates; thresholds "
                    "in the [audit] table of the config file), encode it with the base model's speech tokenizer and "
                    "write one JSONL line per clip. Clips that cannot be used are skipped with a reason; flagged clips "
                    "are kept and marked unless --drop-flagged. corpus-report.json and corpus-report.txt are written "
                    "beside the JSONL; the summary is printed.")
    p.add_argument("corpus", metavar="CORPUS", help="folder of audio clips")
    p.add_argument("--base", metavar="DIR", required=True, help="the Base model folder (its speech tokenizer encodes the clips)")
    p.add_argument("--out", metavar="JSONL", required=True, help="training JSONL to write")
    p.add_argument("--ref", metavar="WAV", help="reference clip for the speaker (default: the longest clip kept)")
    p.add_argument("--whisper", metavar="DIR",
                   help="a local Whisper model folder: transcribes clips without a transcript and checks the others "
                        "(default: pocketsphinx, English only)")
    p.add_argument("--language", help="language given to Whisper (default: detected); with pocketsphinx, a language "
                                      "other than English turns the transcript check off")
    p.add_argument("--min-seconds", type=float, default=0.5, help="skip shorter clips (default 0.5)")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="a longer file is a raw recording, cut at pauses into 3-15 s clips (default 20)")
    p.add_argument("--drop-flagged", action="store_true",
                   help="leave clips the audit flags out of the JSONL (default: keep them, marked)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--relative-paths", action="store_true",
                   help="write audio paths relative to the JSONL's folder (so corpus and JSONL move together)")
    p.set_defaults(func=_cmd_prepare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milo-train", description="Fine-tune Qwen3-TTS-12Hz voices.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_prepare(sub)
    _add_run(sub)
    _add_hosts(sub)
    p = sub.add_parser("tiny-model", help="write a tiny random-weight Qwen3-TTS Base model folder",
                       description="Write a tiny random-weight Qwen3-TTS Base model (real qwen_tts classes) "
                                   "that Qwen3TTSModel.from_pretrained loads with no network. Same seed, same weights.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    p.set_defaults(func=_cmd_tiny_model)
    p = sub.add_parser("prune", help="delete checkpoints by the retention policy (docs/retention.md)",
                       description="Keep the best K checkpoints (by the [best] rule, then validation loss), the newest "
                                   "N, within a disk budget; never the best, a checkpoint in use (loaded for audition, "
                                   "being scored) or the resume point. The run's own policy (run.json: the trainer's "
                                   "--keep-best/--keep-last/--disk-budget) where it has one, else the config's "
                                   "[retention]; flags override either, and the output says which applied.")
    p.add_argument("run", metavar="RUN", help="the run folder (or an official-script output folder)")
    p.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    p.add_argument("--keep-best", type=int, metavar="K", help="the best K stay [the run's own policy, else [retention], else 3]")
    p.add_argument("--keep-last", type=int, metavar="N", help="the newest N stay [the run's own policy, else [retention], else 2]")
    p.add_argument("--budget", metavar="SIZE", help="keep at most this much, e.g. 50G [the run's own policy, else [retention], else none]")
    p.set_defaults(func=_cmd_prune)
    p = sub.add_parser("adopt", help="make an official-script output folder a milo run (docs/adopt.md)",
                       description="Hard-link the files identical across its checkpoint-epoch-N folders (and say how "
                                   "much that frees), read the loss lines of a *.log beside them, and write run.json.")
    p.add_argument("dir", metavar="DIR", help="the official script's output folder")
    p.add_argument("--data", metavar="JSONL", help="its training JSONL: the scorer's reference voice")
    p.add_argument("--base", metavar="BASE", help="the Base model it was trained from: the scorer's baseline row")
    p.set_defaults(func=_cmd_adopt)
    p = sub.add_parser("export", help="a LoRA voice bundle as a full checkpoint in the official layout",
                       description="Merge a voice bundle's adapter into its base and write a custom-voice checkpoint "
                                   "that stock Qwen3TTSModel.from_pretrained loads (docs/training.md, LoRA).")
    p.add_argument("bundle", metavar="BUNDLE", help="the bundle (a LoRA run's epoch-NNNN)")
    p.add_argument("out", metavar="OUT", help="the folder to write (must not exist)")
    p.set_defaults(func=_cmd_export)
    sub.add_parser("eval", help="score checkpoints or audio files with real offline models (docs/scoring.md; "
                   "`milo-train eval --help`)", add_help=False)
    p = sub.add_parser("demo-assets", help="tiny model + prepared data of a demo workspace (used by milo-tui --demo)",
                       description="In WORKSPACE (which holds corpus/), write base/ (the tiny model) and "
                                   "data/train.jsonl (corpus/ prepared with it, paths relative to data/).")
    p.add_argument("workspace", metavar="WORKSPACE")
    p.add_argument("--seed", type=int, default=0, help="random seed for the tiny model's weights (default 0)")
    p.set_defaults(func=_cmd_demo_assets)
    return parser


def _eval(rest: list[str]) -> int:
    """`milo-train eval ...` is the scorer's own command line (inference/scoring, docs/scoring.md), run in a
    process of its own: the trainer's package does not import the audition engine."""
    import os

    os.execv(sys.executable, [sys.executable, "-m", "inference.scoring", "eval", *rest])
    return 1  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["host-facts"]:
        return _host_facts(argv[1:])
    if argv[:1] == ["eval"]:
        return _eval(argv[1:])
    args = build_parser().parse_args(argv)
    args.argv = argv   # the launcher across hosts hands the same `run` arguments to every host
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("milo-train: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 1
