"""What the dashboard knows about each run folder, read from disk: a RunSummary per run (runs table) and a
CheckpointRow per checkpoint (checkpoints view). Plain functions, run off the event loop by RunWatcher."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from milo_tui.metrics import RECENT, speed
from contract.runfolder import (
    CHECKPOINT_RE, EVAL_JSON, EXTERNAL, LIVE_STATUSES, METRICS, RESUME_DIR, RUN_JSON, STATE_JSON, TRAIN_LOG,
    checkpoint_epoch, is_official_output, list_checkpoints,
    read_json,
)
from milo_tui.tail import last_lines
from milo_tui.telemetry.remote import host_entries

if TYPE_CHECKING:
    from contract.scores import BestRule
    from milo_tui.telemetry.remote import HostEntry

UNREADABLE = "unreadable"  # shown as the status of a run whose state.json is not a JSON object


@dataclass(frozen=True)
class RunSummary:
    name: str
    path: Path
    status: str
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    best_val: float | None = None
    best_epoch: int | None = None
    error: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    pid_start_time: float | None = None
    restarts: int = 0
    restart_limit: int = 0
    restart_at: float | None = None  # a crashed run its keeper will restart at this time
    has_resume: bool = False
    has_run_json: bool = False
    updated_at: float | None = None
    stop_reason: str | None = None   # why the trainer stopped itself (quality-aware stopping)
    voice: "Voice | None" = None     # the best checkpoint by the [best] rule (RunWatcher adds it)
    adopted: bool = False            # an official-script folder adopted (run.json adopted: docs/adopt.md)
    data: str | None = None          # run.json's data: the corpus its scores compare with
    best_rule: "BestRule | None" = None  # the run's own [best] rule (run.json best), None: the configuration's
    best_note: str = ""              # why it has its own (the trainer's --best-note)
    score_device: str | None = None  # where its scorer generates (run.json score_device), None: not recorded
    method: str = "full"             # "lora": its checkpoints are voice bundles (contract/bundle.py)
    lora_rank: int | None = None     # a LoRA run's rank
    hosts: tuple[str, ...] = ()      # a run across hosts: the home host (which keeps the run folder) first
    remote: tuple["HostEntry", ...] = ()  # its other hosts' sides (state.json hosts): what the dashboard looks at

    @property
    def hosts_text(self) -> str:
        """"on spark1 + spark2" for a run across hosts, "" for a run on one."""
        return f"on {' + '.join(self.hosts)}" if self.hosts else ""

    @property
    def method_text(self) -> str:
        """The runs table's method cell: "full", or "lora r16"."""
        return f"lora r{self.lora_rank}" if self.method == "lora" and self.lora_rank else self.method

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def recent_steps(run_dir: Path) -> list[dict]:
    """The last step records of a run's metrics.jsonl (read from the end of the file), of its current attempt
    only: the steps before a start event (a resume or a restart) and the pause before it say nothing about
    the speed now."""
    out = []
    for line in last_lines(Path(run_dir) / METRICS, RECENT * 2):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("kind") == "step":
            out.append(rec)
        elif rec.get("kind") == "event" and rec.get("event") == "start":
            out.clear()
    return out[-RECENT:]


def run_method(hyper: dict, state: dict) -> tuple[str, int | None]:
    """(method, LoRA rank or None) from run.json's hyper; before the trainer has written run.json (a corpus
    being prepared) from the launch command in state.json; neither: "full" (older runs, adopted folders)."""
    from contract.defaults import RUN_DEFAULTS

    method = hyper.get("method")
    if method in ("full", "lora"):
        return method, _int(hyper.get("lora_rank")) if method == "lora" else None
    command = state.get("launch_command")
    if isinstance(command, list) and "--method" in command[:-1] and command[command.index("--method") + 1] == "lora":
        rank = command[command.index("--rank") + 1] if "--rank" in command[:-1] else None
        return "lora", int(rank) if isinstance(rank, str) and rank.isdigit() else RUN_DEFAULTS["lora_rank"]
    return "full", None


def run_hosts(state: dict) -> tuple[str, ...]:
    """The hosts of a run across hosts, the home host first: state.json's home_host and hosts (the launcher
    writes them once every host is started); before that, the --hosts of its launch command. () : one host."""
    hosts = state.get("hosts")
    others = [h.get("host") for h in hosts if isinstance(h, dict)] if isinstance(hosts, list) else []
    command = state.get("launch_command")
    if not others and isinstance(command, list) and "--hosts" in command[:-1]:
        others = str(command[command.index("--hosts") + 1]).split(",")
    others = [h for h in others if isinstance(h, str) and h]
    if not others:
        return ()
    home = state.get("home_host")
    return (home if isinstance(home, str) and home else "this host", *others)


def summarize(run_dir: Path, state: dict | None, run_json: dict | None, recent: list[dict]) -> RunSummary:
    """One run's row: state.json first, the newest step records for what state.json lacks (speed, ETA)."""
    run_dir = Path(run_dir)
    state_ok = state is not None or not (run_dir / STATE_JSON).exists()
    st = state or {}
    status = st.get("status") if isinstance(st.get("status"), str) else None
    if status is None and ((run_json or {}).get("adopted") or is_official_output(run_dir)):
        status = EXTERNAL  # the official script's output: read-only (audition, score, prune, adopt)
    if status is None:
        status = UNREADABLE if not state_ok else "unknown"
    last = recent[-1] if recent else {}
    hyper = (run_json or {}).get("hyper") if isinstance((run_json or {}).get("hyper"), dict) else {}
    epochs = _int(hyper.get("epochs"))
    epoch = next((v for v in (_int(last.get("epoch")), _int(st.get("epoch"))) if v is not None), None)  # 0 is an epoch
    step = next((v for v in (_int(last.get("step")), _int(st.get("step"))) if v is not None), None)
    epoch_steps, epoch_step = _int(last.get("epoch_steps")), _int(last.get("epoch_step"))
    total = epochs * epoch_steps if epochs and epoch_steps else None
    eta = None
    rate = speed(recent)
    if status in LIVE_STATUSES and rate and epochs and epoch_steps and epoch and epoch_step is not None:
        remaining = (epochs - epoch) * epoch_steps + max(0, epoch_steps - epoch_step)
        eta = remaining / rate
    from contract.scores import run_rule  # here: the dashboard's first frame does not wait for it

    own = run_rule(run_json)
    score_device = (run_json or {}).get("score_device")
    error = st.get("error") if isinstance(st.get("error"), str) else None
    method, lora_rank = run_method(hyper, st)
    if status == UNREADABLE:
        error = "state.json is not readable JSON"
    return RunSummary(
        name=run_dir.name, path=run_dir, status=status, epoch=epoch, epochs=epochs, step=step, total_steps=total,
        samples_per_s=_float(last.get("samples_per_s")), eta_s=eta,
        best_val=_float(st.get("best_val")), best_epoch=_int(st.get("best_epoch")),
        error=error, exit_code=_int(st.get("exit_code")), pid=_int(st.get("pid")),
        pid_start_time=_float(st.get("pid_start_time")), restarts=_int(st.get("restarts")) or 0,
        restart_limit=_int(st.get("restart_limit")) or 0, restart_at=_float(st.get("restart_at")), has_resume=(run_dir / RESUME_DIR).is_dir(),
        has_run_json=run_json is not None, updated_at=_float(st.get("updated_at")),
        stop_reason=st.get("stop_reason") if isinstance(st.get("stop_reason"), str) else None,
        adopted=(run_json or {}).get("adopted") is True,
        data=(run_json or {}).get("data") if isinstance((run_json or {}).get("data"), str) and run_json["data"] else None,
        best_rule=own[0] if own else None, best_note=own[1] if own else "",
        score_device=score_device if isinstance(score_device, str) else None, method=method, lora_rank=lora_rank,
        hosts=run_hosts(st), remote=host_entries(run_dir, st),
    )


def read_summary(run_dir: Path) -> RunSummary:
    return summarize(run_dir, read_json(Path(run_dir) / STATE_JSON), read_json(Path(run_dir) / RUN_JSON),
                     recent_steps(run_dir))


@dataclass(frozen=True)
class CheckpointRow:
    name: str
    path: Path
    epoch: int | None
    step: int | None
    bytes: int                       # what only it holds (deleting it frees this); shared files are in the run's total
    val_loss: float | None
    created: float
    scores: dict | None = None       # the score means from eval.json (contract/scores.py), once scored
    eval_mtime: float | None = None  # eval.json is rewritten when the scores land: re-read when this changes
    bundle_bytes: int | None = None  # a voice bundle's own bytes (contract.bundle.bundle_bytes); None: a full checkpoint

    @property
    def shown_bytes(self) -> int:
        """The size column: a bundle's own bytes, a full checkpoint's `bytes`."""
        return self.bytes if self.bundle_bytes is None else self.bundle_bytes


@dataclass(frozen=True)
class RunJudgement:
    """What a run's checkpoints were judged against, and by whom: the baseline and ceiling rows, the scoring
    state of each checkpoint (scoring.json) and the ratings from the audition screen."""
    baseline: dict | None = None     # {"means": ...} or {"error": "not scored: ..."}; None: not made yet
    ceiling: dict | None = None
    states: dict = field(default_factory=dict)   # checkpoint name -> its scoring.json entry
    rows: dict = field(default_factory=dict)     # "baseline" / "ceiling" -> their scoring.json entry
    ratings: dict = field(default_factory=dict)  # checkpoint name -> contract.samples.Ratings


def judgement_files(run_dir: Path) -> list[Path]:
    """The files a RunJudgement is read from: when none of them changed, neither did it."""
    from contract import scores
    from contract.samples import INDEX, samples_dir

    return [run_dir / scores.SCORING_JSON, run_dir / scores.BASELINE_JSON, run_dir / scores.CEILING_JSON,
            samples_dir(run_dir) / INDEX]


def read_judgement(run_dir: Path) -> RunJudgement:
    from contract import scores
    from contract.samples import ratings_by_checkpoint, read_samples

    return RunJudgement(scores.read_row(run_dir, "baseline"), scores.read_row(run_dir, "ceiling"),
                        scores.states(run_dir), scores.states(run_dir, "rows"),
                        ratings_by_checkpoint(read_samples(run_dir)))


@dataclass(frozen=True)
class Voice:
    """A run's answer to "which checkpoint is the voice": the best by the [best] rule (contract.scores.pick_best,
    the same as the checkpoints view's mark), for the runs table."""
    name: str | None      # None: no scored checkpoint meets the rule yet
    value: float | None   # the best one's value of the rule's metric
    metric: str
    scored: int           # checkpoints with scores
    beats_zero_shot: bool | None = None   # contract.scores.against_baseline: None when it cannot be told yet


def voice_stamp_files(run_dir: Path) -> list[Path]:
    """The files a Voice is read from: each checkpoint's eval.json (scores, validation loss), scoring.json and
    the baseline row. The list itself changes when a checkpoint comes or goes."""
    from contract import scores

    return [ck / EVAL_JSON for ck in list_checkpoints(run_dir)] + [run_dir / scores.SCORING_JSON,
                                                                   run_dir / scores.BASELINE_JSON,
                                                                   run_dir / RUN_JSON]  # the run's own rule


def read_voice(run_dir: Path, rule) -> Voice:
    """By the run's own rule where it has one (contract.scores.rule_for), else `rule` (the configuration's)."""
    from contract import scores

    rule, _source = scores.rule_for(run_dir, rule)
    rows = scores.checkpoint_rows(run_dir)
    baseline = scores.read_row(run_dir, "baseline")
    name, _why = scores.pick_best(rows, (baseline or {}).get("means"), rule)
    value = next((val_loss if rule.metric == "val_loss" else (means or {}).get(rule.metric)
                  for row_name, means, val_loss in rows if row_name == name), None)
    beats, _figures = scores.against_baseline(rows, name, (baseline or {}).get("means"), rule)
    return Voice(name, value if scores.is_score(value) else None, rule.metric,
                 sum(1 for _n, means, _v in rows if means is not None), beats if name is not None else None)


def eval_loss(ev: dict | None) -> float | None:
    """The validation objective from a checkpoint's eval.json (tolerant of where the trainer puts it)."""
    if not ev:
        return None
    for key in ("objective", "val_objective", "val_loss", "loss"):
        if _float(ev.get(key)) is not None:
            return _float(ev[key])
    nested = ev.get("validation")
    return eval_loss(nested) if isinstance(nested, dict) else None


class CheckpointScanner:
    """Checkpoint folders are complete once renamed into place and never change after: eval.json is read
    once per folder (and again when it changes). Sizes count each file's blocks once however many hard links
    share it (contract.retention.disk_bytes): a checkpoint's own size is what only it holds (what deleting it
    frees), the run's total what `du` says of its checkpoints. Deleting one checkpoint can make another the
    only holder of a shared file, and adoption turns copies into links, so sizes are counted again whenever
    the set of checkpoints changes, and every SIZES_EVERY seconds."""

    SIZES_EVERY = 10.0

    def __init__(self, disk_usage=shutil.disk_usage, clock=time.monotonic) -> None:
        self._cache: dict[Path, CheckpointRow] = {}
        self._disk_usage = disk_usage
        self._clock = clock
        self._sizes: tuple = (None, 0.0, None)  # (checkpoint paths, when counted, DiskBytes)

    def _disk_bytes(self, paths: list[Path]):
        from contract.retention import disk_bytes

        key, counted, sizes = self._sizes
        now = self._clock()
        if key != tuple(paths) or now - counted > self.SIZES_EVERY:
            sizes = disk_bytes(paths)
            self._sizes = (tuple(paths), now, sizes)
        return sizes

    def scan(self, run_dir: Path) -> tuple[list[CheckpointRow], int | None, int]:
        """(the checkpoints in save order, oldest first (contract.runfolder.save_order: not the files' times, which a
        copied run folder changes), free bytes on the disk, bytes all the checkpoints take together)."""
        from contract.bundle import bundle_bytes, is_bundle
        from contract.scores import scores_of

        paths = list_checkpoints(run_dir)
        sizes = self._disk_bytes(paths)
        found = []
        for path in paths:
            info = self._cache.get(path)
            try:
                eval_mtime = (path / EVAL_JSON).stat().st_mtime
            except OSError:
                eval_mtime = None
            if info is None or info.eval_mtime != eval_mtime:
                m = CHECKPOINT_RE.match(path.name)
                ev = read_json(path / EVAL_JSON)
                epoch = checkpoint_epoch(path.name)
                epoch = epoch if epoch is not None else _int((ev or {}).get("epoch"))
                step = int(m["step"]) if m["step"] else _int((ev or {}).get("step"))
                try:  # the folder's mtime moves when the scores land in eval.json; its weights' does not
                    created = info.created if info else min(
                        [path.stat().st_mtime] + [f.stat().st_mtime for f in path.glob("*.safetensors")])
                    bundle = bundle_bytes(path) if is_bundle(path) else None  # eval.json counts: read again with it
                except OSError:
                    continue
                info = CheckpointRow(path.name, path, epoch, step, 0, eval_loss(ev), created, scores_of(ev),
                                     eval_mtime, bundle)
                self._cache[path] = info
            own = sizes.own.get(path, 0)
            found.append(info if info.bytes == own else replace(info, bytes=own))
        try:
            free = self._disk_usage(str(run_dir)).free
        except Exception:
            free = None
        return found, free, sizes.used  # list_checkpoints' save order: a tie in the [best] rule goes to the first


def log_error_line(run_dir: Path) -> str | None:
    """The last line of train.log that reads like an error (else its last non-empty line)."""
    lines = [l.decode("utf-8", "replace").strip() for l in last_lines(Path(run_dir) / TRAIN_LOG, 60)]
    lines = [l for l in lines if l]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line or line.lower().startswith("error"):
            return line[:300]
    return lines[-1][:300] if lines else None
