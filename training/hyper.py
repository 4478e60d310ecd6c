"""A run's settings: `Hyper`, and `resolve`, which settles them from the command line and, on --resume, the
run's run.json (what a resume may change, what it keeps). Torch-free and without side effects: the flags and
run.json go in, the settings or a UsageError come out.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from contract.defaults import RUN_DEFAULTS as DEFAULTS
from training.failures import UsageError

# What a resume may change: the run can be extended, and its stopping rule relaxed or tightened.
CHANGEABLE_ON_RESUME = ("epochs", "patience", "score", "keep_best", "keep_last", "disk_budget", "stop_unimproved")
_FLAGS = {"score": "--no-score", "lora_rank": "--rank", "lora_alpha": "--alpha", "lora_targets": "--targets"}  # flag is not --NAME


@dataclass
class Hyper:
    epochs: int
    lr: float
    batch_size: int
    grad_accum: int
    val_fraction: float
    patience: int
    sub_talker_weight: float
    attn: str
    seed: int
    save_every_steps: int
    resume_every_steps: int
    weight_decay: float
    warmup_steps: int
    schedule: str
    clip: float
    autocast: bool
    save_dtype: str
    language: str
    gradient_checkpointing: bool
    score: bool                 # score each checkpoint after it is saved, in a low-priority process
    keep_best: int              # retention after each save (contract/retention.py); all 0 / "": off
    keep_last: int
    disk_budget: str
    stop_unimproved: int        # stop when the best score has not improved for this many scored checkpoints
    method: str                 # "full" or "lora" (voice bundles, training/lora.py)
    lora_rank: int
    lora_alpha: float
    lora_targets: str
    dtype: str = "float32"  # master weights, always


@dataclass(frozen=True)
class Settings:
    base: Path
    data: Path
    speaker: str
    ref_audio: str | None
    hyper: Hyper
    run_json: dict | None  # the run's run.json on --resume, else None (a new run)


def resolve(args, run_dir: Path, run_json: dict | None) -> Settings:
    """The settings of the run in `run_dir` from the flags in `args` (None: not typed) and its `run_json`."""
    typed = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    if run_json and not args.resume:
        raise UsageError(f"{run_dir} already holds a run: add --resume to continue it, or give another --run")
    if args.resume and run_json:
        settings = _resumed(args, typed, run_json)
    else:
        if not args.base or not args.data:
            raise UsageError("--base and --data are needed to start a run")
        chosen = {**DEFAULTS, **typed}
        if chosen["method"] == "lora" and "lr" not in typed:
            from contract.defaults import LORA_LR

            chosen["lr"] = LORA_LR
        hyper = Hyper(**{k: chosen[k] for k in DEFAULTS})
        settings = Settings(Path(args.base).absolute(), Path(args.data).absolute(),
                            (args.speaker or run_dir.name).strip().lower(),
                            str(Path(args.ref).absolute()) if args.ref else None, hyper, None)
    _check(settings)
    return settings


def _resumed(args, typed: dict, run_json: dict) -> Settings:
    for key, given in (("base_model", args.base), ("data", args.data)):
        if given and str(Path(given).absolute()) != run_json[key]:
            raise UsageError(f"--resume: this run was started with {key} {run_json[key]}, not {Path(given).absolute()}")
    if args.speaker and args.speaker.strip().lower() != run_json["speaker"]:
        raise UsageError(f"--resume: this run's speaker is {run_json['speaker']!r}")
    hyper = {**DEFAULTS, **run_json["hyper"]}  # a setting newer than the run takes its default
    for k, v in typed.items():
        if k not in CHANGEABLE_ON_RESUME and v != hyper.get(k):
            raise UsageError(f"--resume: --{_FLAGS.get(k, k.replace('_', '-')).lstrip('-')} cannot change (the run has {hyper.get(k)!r}); "
                             f"only {', '.join(_FLAGS.get(c, '--' + c.replace('_', '-')) for c in CHANGEABLE_ON_RESUME)} can")
        hyper[k] = v
    return Settings(Path(run_json["base_model"]), Path(run_json["data"]), run_json["speaker"],
                    run_json.get("ref_audio"), Hyper(**{k: hyper[k] for k in DEFAULTS}), run_json)


def _check(settings: Settings) -> None:
    h = settings.hyper
    from contract.defaults import RUN_LIMITS, run_limit_problem

    for key in RUN_LIMITS:  # the same ranges the new-run form checks
        if key != "restart_limit" and (problem := run_limit_problem(key, getattr(h, key))):
            raise UsageError(f"--{_FLAGS.get(key, key.replace('_', '-')).lstrip('-')} {getattr(h, key)}: {problem}")
    from contract.bundle import METHODS, TARGETS

    if h.method not in METHODS:
        raise UsageError(f"--method {h.method}: one of {', '.join(METHODS)}")
    if h.lora_targets not in TARGETS:
        raise UsageError(f"--targets {h.lora_targets}: one of {', '.join(TARGETS)}")
    if not 0 <= h.val_fraction < 1:
        raise UsageError("--val-fraction must be in [0, 1)")
    if not settings.speaker or any(c.isspace() for c in settings.speaker):
        raise UsageError("--speaker must be one word (generate_custom_voice looks it up by name)")
    if h.disk_budget:
        from contract.units import parse_size

        try:
            parse_size(h.disk_budget)
        except ValueError as exc:
            raise UsageError(f"--disk-budget: {exc}") from None


def resolve_judging(args, run_json: dict | None, score: bool, read_config=None) -> tuple[dict | None, str]:
    """The run's own [best] rule (--best-max-runaway, with --best-note saying why) and where its scorer
    generates (--score-device, else the configuration's [scoring] device): kept in run.json, so every reader
    of the run's best and every scorer of it use the same. A resume keeps them unless given again.
    `read_config` reads the configuration file, only when it is needed (contract.configfile's by default)."""
    from contract import scores
    from contract.configfile import ConfigError

    if read_config is None:
        from contract.configfile import read_config
    kept = run_json or {}
    runaway, note = getattr(args, "best_max_runaway", None), getattr(args, "best_note", None)
    own_best = kept.get(scores.RUN_BEST)
    if note and runaway is None:
        raise UsageError("--best-note says why a run has its own rule: give it with --best-max-runaway")
    try:
        if runaway is not None:
            if runaway < 0:
                raise UsageError("--best-max-runaway must be 0 or more")
            rule = replace(scores.best_rule(read_config()), max_runaway=runaway)
            own_best = scores.rule_block(rule, note or "")
        device = getattr(args, "score_device", None) or kept.get("score_device") or (
            scores.scorer_device(read_config()) if score else scores.DEFAULT_SCORER_DEVICE)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return own_best, device
