"""An audition session, apart from any screen: the checkpoints A and B, the jobs sent to the worker, the A/B
pairs being made, blind mode, and what the operator should read after each step.

Textual-free, so the A/B and blind logic is tested directly (tests/audition/test_session.py). Commands go
out through `send` (WorkerClient.send: a command and its fields, returns its id); the worker's events
come back through `on_event`, which returns the `Status` to show. The screen (milo_tui.audition.screen)
holds one session, turns keys into its methods and draws what they return.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from contract.configfile import ConfigError
from contract.protocol import OUTPUT_TARGETS as TARGETS, Cmd, Event, Playback, new_seed
from contract.runfolder import list_checkpoints
from contract.samples import Sample, append_preference, append_rating, fold, read_samples
from contract.scores import BEST, NoBest, best_checkpoint, resolve_checkpoint
from contract.text import TextError, split_sentences

OUTPUT_NAMES = {"local": "spark speakers", "laptop": "laptop (milo-listen)", "none": "none (save only)"}
AB_GAP_S = 0.8

Send = Callable[..., str]  # WorkerClient.send(cmd, **fields) -> the command's id


@dataclass
class Job:
    kind: Cmd                       # SAY, PLAY or LOAD
    checkpoint: str | None = None   # folder name
    text: str = ""
    ab_group: str | None = None
    ab_label: str | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass
class ABPair:
    group: str
    text: str
    blind: bool
    jobs: dict = field(default_factory=dict)    # job id -> label
    wavs: dict = field(default_factory=dict)    # label -> wav path
    names: dict = field(default_factory=dict)   # label -> checkpoint name


@dataclass(frozen=True)
class Status:
    """What the screen shows after a step: one line (an error in the error colour), and the history rows
    the step added or changed (drawn in place, by sample id)."""
    text: str
    error: bool = False
    rows: tuple[Sample, ...] = ()


class AuditionSession:
    def __init__(self, run_dir: str | Path, send: Send, *, output: str = "local", audio_device: str | None = None,
                 listen_port: int | None = None, sampling: dict | None = None) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.send = send
        self.checkpoint_a: Path | None = None
        self.checkpoint_b: Path | None = None
        self.ab_mode = False
        self.blind = False
        self.output, self.audio_device, self.listen_port = output, audio_device, listen_port
        self.sampling = dict(sampling or {})
        self.fixed_seed: int | None = None
        self.last_seed: int | None = None
        self.jobs: dict[str, Job] = {}
        self.pairs: dict[str, ABPair] = {}
        self.samples: dict[int, Sample] = {}
        self.loaded: str | None = None
        self.playing: str | None = None
        self.worker_state = "starting"
        self.worker_detail = ""
        self.unheard: dict[str, str] = {}    # job id -> why its audio did not play (no device, lost)
        self.output_problem: str | None = None  # the last clip found no output device: said in the header
        self.status = Status("starting the audition worker...")

    def say(self, text: str, error: bool = False, rows: tuple[Sample, ...] = ()) -> Status:
        """Put `text` on the status line (and `rows` to draw again)."""
        self.status = Status(text, error, tuple(rows))
        return self.status

    def _unchanged(self) -> Status:
        """The line shown stays; no rows to draw again."""
        self.status = replace(self.status, rows=())
        return self.status

    # ---- the run and its checkpoints -------------------------------------------------------------
    def read_history(self) -> list[Sample]:
        """Every audition of the run, oldest first (the history the screen shows)."""
        self.samples = {s.id: s for s in read_samples(self.run_dir)}
        return list(self.samples.values())

    def switch_run(self, run_dir: str | Path) -> bool:
        """Follow another run: True when it is another one (its history replaces this one's, A/B ends)."""
        run_dir = Path(run_dir).absolute()
        if run_dir == self.run_dir:
            return False
        self.run_dir = run_dir
        self.read_history()
        self.checkpoint_b, self.ab_mode = None, False
        return True

    def resolve(self, checkpoint: str | Path, rule=None) -> Path | None:
        """A checkpoint as given, or for `best` (or RUN/best) the run's best by the [best] `rule`."""
        if str(checkpoint) == BEST:
            checkpoint = self.run_dir / BEST
        try:
            path, note = resolve_checkpoint(checkpoint, rule)
        except (NoBest, ConfigError) as exc:
            self.say(str(exc), error=True)
            return None
        if note:
            self.say(note)
        return path.absolute()

    def audition(self, checkpoint: str | Path, rule=None) -> Status:
        """Make `checkpoint` (or `best`) A and load it."""
        self._unchanged()
        self.checkpoint_a = self.resolve(checkpoint, rule)
        if self.checkpoint_a is not None:
            self.load(self.checkpoint_a)
        return self.status

    def load(self, checkpoint: Path) -> None:
        job_id = self.send(Cmd.LOAD, checkpoint=str(checkpoint))
        self.jobs[job_id] = Job(kind=Cmd.LOAD, checkpoint=checkpoint.name)

    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.run_dir)

    def best(self, rule=None) -> tuple[Path | None, str]:
        """The run's best checkpoint by the [best] `rule`, or None and why."""
        try:
            return best_checkpoint(self.run_dir, rule)
        except ConfigError as exc:
            return None, str(exc)

    def choose_a(self, path: Path | None) -> Status:
        if path is not None:
            self.checkpoint_a = path
            self.load(path)
        return self._unchanged()

    def b_start(self, rule=None) -> Path | None:
        """Where the B picker starts: B if chosen, else the run's best if that is not A, else the newest
        checkpoint that is not A."""
        if self.checkpoint_b is not None:
            return self.checkpoint_b
        a = self.checkpoint_a.resolve() if self.checkpoint_a is not None else None
        best, _why = self.best(rule)
        if best is not None and best.resolve() != a:
            return best
        others = [p for p in self.checkpoints() if p.resolve() != a]
        return others[-1] if others else None

    def choose_b(self, path: Path | None) -> Status:
        """A/B on against `path`; B = A is refused (every pair would be 'no difference')."""
        if path is not None and self.checkpoint_a is not None and path.resolve() == self.checkpoint_a.resolve():
            return self.say(f"B is A ({path.name}): the pair would always be 'no difference'; x, then "
                             "choose another checkpoint", error=True)
        if path is not None:
            self.checkpoint_b, self.ab_mode = path, True
            return self.say(f"A/B on: {_name(self.checkpoint_a)} vs {path.name}; Enter speaks on both")
        return self._unchanged()

    def ab_off(self) -> Status:
        self.ab_mode = False
        return self.say("A/B off")

    def toggle_blind(self) -> Status:
        self.blind = not self.blind
        return self.say("blind A/B: which is which stays hidden until you judge the pair" if self.blind
                         else "blind off")

    def cycle_output(self) -> Status:
        self.output = TARGETS[(TARGETS.index(self.output) + 1) % len(TARGETS)]
        self.send(Cmd.OUTPUT, target=self.output, device=self.audio_device, port=self.listen_port)
        return self.say(f"output: {OUTPUT_NAMES[self.output]}...")

    def toggle_fixed_seed(self) -> None:
        self.fixed_seed = None if self.fixed_seed is not None else (self.last_seed or new_seed())

    # ---- what the screen draws -------------------------------------------------------------------
    def info(self) -> str:
        """The two header lines: run, checkpoint, mode; output, seed, worker."""
        # In blind mode which checkpoint is loaded would tell which one spoke last, so A from B: never shown.
        blind_busy = self.blind or any(p.blind for p in self.pairs.values())
        loaded = not blind_busy and self.checkpoint_a is not None and self.loaded == str(self.checkpoint_a)
        a = _name(self.checkpoint_a) + (" (loaded)" if loaded else "")
        mode = f"A/B with {_name(self.checkpoint_b)}" + (", blind" if self.blind else "") if self.ab_mode else "single"
        seed = f"seed {self.fixed_seed} (fixed)" if self.fixed_seed is not None else "seed random"
        output = OUTPUT_NAMES.get(self.output, self.output)
        if self.output_problem:
            output += " [b](not playing: no device)[/]"
        return (f"run {self.run_dir.name}   checkpoint {a}   {mode}\n"
                f"output {output}   {seed}   worker {self.worker_state}")

    def revealed(self, sample: Sample) -> bool:
        """A blind pair's checkpoints show once it is judged: a preference, or both halves rated."""
        if not sample.blind or sample.ab_group is None:
            return True
        pair = [s for s in self.samples.values() if s.ab_group == sample.ab_group]
        return any(s.decided for s in pair) or (len(pair) > 1 and all(s.rating for s in pair))

    def cells(self, s: Sample) -> dict:
        """One history row, by column key."""
        if s.ab_group is not None:
            mark = {True: " +", False: "", None: ""}[s.preferred] if s.decided else ""
            who = s.checkpoint if self.revealed(s) else "?"
            checkpoint = f"{s.ab_label}:{who}{mark}"
        else:
            checkpoint = s.checkpoint
        first, rtf = s.get("first_audio_s"), s.get("rtf")
        return {"id": f"{s.id:04d}", "checkpoint": checkpoint[:16], "text": s.text[:28],
                "first": f"{first:.2f}" if isinstance(first, (int, float)) else "-",
                "rtf": f"{rtf:.1f}" if isinstance(rtf, (int, float)) else "-",
                "rating": "*" * s.rating if s.rating else ""}

    def busy(self) -> bool:
        """Something to stop: a clip playing or an audition queued or speaking."""
        return bool(self.playing or any(j.kind == Cmd.SAY for j in self.jobs.values()))

    # ---- speaking, replaying, judging ------------------------------------------------------------
    def _seed(self) -> int:
        return self.fixed_seed if self.fixed_seed is not None else new_seed()

    def speak(self, text: str) -> Status:
        try:
            split_sentences(text)
        except TextError as exc:
            return self.say(str(exc), error=True)
        if self.checkpoint_a is None:
            return self.say("choose a checkpoint first (c)", error=True)
        if self.ab_mode and self.checkpoint_b is not None:
            return self._speak_ab(text)
        job_id = self.send(Cmd.SAY, text=text, checkpoint=str(self.checkpoint_a), run_dir=str(self.run_dir),
                           seed=self._seed(), sampling=self.sampling, play=True)
        self.jobs[job_id] = Job(kind=Cmd.SAY, checkpoint=self.checkpoint_a.name, text=text)
        return self.say(f"{self.checkpoint_a.name}: queued...")

    def _speak_ab(self, text: str) -> Status:
        """Both checkpoints say `text` with one seed, saved but not played; both done, A then B play."""
        group = f"ab-{int(time.time())}-{random.randrange(16**4):04x}"
        order = [self.checkpoint_a, self.checkpoint_b]
        if self.blind:
            random.shuffle(order)
        pair = ABPair(group=group, text=text, blind=self.blind)
        seed = self._seed()
        for label, checkpoint in zip("AB", order):
            job_id = self.send(Cmd.SAY, text=text, checkpoint=str(checkpoint), run_dir=str(self.run_dir), seed=seed,
                               sampling=self.sampling, play=False, ab_group=group, ab_label=label,
                               blind=self.blind, label=label)
            pair.jobs[job_id] = label
            self.jobs[job_id] = Job(kind=Cmd.SAY, checkpoint=checkpoint.name, text=text, ab_group=group, ab_label=label)
        self.pairs[group] = pair
        return self.say(f"A/B: generating both (seed {seed}), then playing A then B...")

    def stop(self) -> Status:
        self.send(Cmd.STOP)
        self.jobs = {k: j for k, j in self.jobs.items() if j.kind == Cmd.LOAD}
        self.pairs.clear()
        self.playing = None
        return self.say("stopping...")

    def replay(self, s: Sample) -> Status:
        label = s.ab_label if not self.revealed(s) else s.checkpoint
        job_id = self.send(Cmd.PLAY, wavs=[str(s.wav)], label=label, text=s.text)
        self.jobs[job_id] = Job(kind=Cmd.PLAY, text=s.text)
        return self.say(f"replaying #{s.id:04d} ({label})")

    def rate(self, s: Sample, stars: int) -> Status:
        """Record the rating in the samples index; both rows of a pair are drawn again (it may reveal it)."""
        append_rating(self.run_dir, s.id, stars)
        pair = [x.id for x in self.samples.values() if s.ab_group and x.ab_group == s.ab_group] or [s.id]
        return self.say(f"#{s.id:04d} rated {stars}/5", rows=self._refold(pair))

    def prefer(self, s: Sample, which: str) -> Status:
        """Record the A/B verdict (`A`, `B` or `=`) for `s`'s pair, and reveal which checkpoint was which."""
        if s.ab_group is None:
            return self._unchanged()
        pair = {x.ab_label: x for x in self.samples.values() if x.ab_group == s.ab_group}
        chosen = pair.get(which)
        append_preference(self.run_dir, s.ab_group, chosen.id if chosen else None)
        rows = self._refold([x.id for x in pair.values()])
        names = ", ".join(f"{label} was {x.checkpoint}" for label, x in sorted(pair.items()))
        verdict = "no difference" if chosen is None else f"{which} preferred"
        return self.say(f"A/B: {verdict}; {names}", rows=rows)

    def _refold(self, ids: list[int]) -> tuple[Sample, ...]:
        """Re-read the index (ratings were appended): the given samples as they are now."""
        fresh = {s.id: s for s in read_samples(self.run_dir)}
        self.samples.update({sid: fresh[sid] for sid in ids if sid in fresh})
        return tuple(fresh[sid] for sid in ids if sid in fresh)

    # ---- worker events ---------------------------------------------------------------------------
    def on_event(self, e: dict) -> Status:
        """Take one worker event; returns what to show now (rows: the history rows it added)."""
        self._unchanged()
        handler = self._HANDLERS.get(e.get("event"))
        if handler is not None:
            job_id = e.get("id")
            handler(self, e, job_id, self.jobs.get(job_id) if job_id else None)
        return self.status

    def _ready(self, e: dict, job_id, job: Job | None) -> None:
        self.worker_state = f"ready ({e.get('device')}, {e.get('dtype')})"
        self.worker_detail = e.get("output_detail", "")
        self.output_problem = e.get("output_problem")
        if not self.jobs and not self.status.error:
            self.say(f"worker ready; output: {self.worker_detail}")

    def _fatal(self, e: dict, job_id, job: Job | None) -> None:
        self.worker_state = "failed"
        self.say(e.get("message", "the audition worker cannot start"), error=True)

    def _loading(self, e: dict, job_id, job: Job | None) -> None:
        self.loaded = None
        what = f"the checkpoint for {job.ab_label}" if self._blind_job(job) else Path(e["checkpoint"]).name
        self.say(f"loading {what}...")

    def _loaded(self, e: dict, job_id, job: Job | None) -> None:
        self.loaded = e.get("checkpoint")
        if job is not None and job.kind == Cmd.LOAD:
            self.jobs.pop(job_id, None)
        if job is None or job.kind == Cmd.LOAD:
            self.say(f"{e.get('name')} loaded in {e.get('load_s', 0):.1f} s on {e.get('device')}")

    def _started(self, e: dict, job_id, job: Job | None) -> None:
        if job is None:
            return
        who = "?" if self._blind_job(job) else e.get("checkpoint")
        label = f"{job.ab_label} ({who})" if job.ab_label else who
        self.last_seed = e.get("seed")
        self.say(f"{label}: speaking, seed {e.get('seed')}, {e.get('sentences')} sentence(s)...")

    def _sentence(self, e: dict, job_id, job: Job | None) -> None:
        if job is not None and e.get("count", 1) > 1:
            self.say(f"{self.status.text.split(':')[0]}: sentence {e['index'] + 1}/{e['count']}...")

    def _first_audio(self, e: dict, job_id, job: Job | None) -> None:
        if job is not None and not job.ab_group:
            self.say(f"{job.checkpoint}: first audio after {e.get('first_audio_s', 0):.2f} s, speaking...")

    def _done(self, e: dict, job_id, job: Job | None) -> None:
        rec = e.get("sample") or {}
        self.jobs.pop(job_id, None)
        unheard = self.unheard.pop(job_id, None)
        if "id" not in rec:  # not saved (no run folder)
            self.say(f"{rec.get('checkpoint')}: {rec.get('audio_s', 0):.1f} s of audio (not saved)"
                      + (f"; NOT PLAYED: {unheard}" if unheard else ""), error=unheard is not None)
            return
        sample = fold([rec], self.run_dir)[0]
        self.samples[sample.id] = sample
        if job is not None and job.ab_group in self.pairs:
            pair = self.pairs[job.ab_group]
            pair.wavs[job.ab_label] = rec.get("wav_path") or str(sample.wav)
            pair.names[job.ab_label] = sample.checkpoint
            if len(pair.wavs) == 2:
                self._play_pair(pair, sample)
            else:
                self.say(f"A/B: {job.ab_label} ready, generating the other...", rows=(sample,))
            return
        if unheard is not None:  # the success line must not hide that nothing played
            self.say(f"{sample.checkpoint}: {rec.get('audio_s', 0):.1f} s of audio, saved #{sample.id:04d}; "
                      f"NOT PLAYED: {unheard}", error=True, rows=(sample,))
            return
        tail = f" (load {rec['load_s']:.1f} s)" if rec.get("load_s") else ""
        self.say(f"{sample.checkpoint}: {rec.get('audio_s', 0):.1f} s of audio in {rec.get('wall_s', 0):.1f} s "
                  f"({rec.get('rtf', 0):.1f}x real time), first audio {rec.get('first_audio_s') or 0:.2f} s"
                  f"{tail}; saved #{sample.id:04d}", rows=(sample,))

    def _play_pair(self, pair: ABPair, sample: Sample) -> None:
        job_id = self.send(Cmd.PLAY, wavs=[str(pair.wavs["A"]), str(pair.wavs["B"])], gap_s=AB_GAP_S,
                           label="A then B", text=pair.text)
        self.jobs[job_id] = Job(kind=Cmd.PLAY, text=pair.text)
        names = "" if pair.blind else f" (A {pair.names['A']}, B {pair.names['B']})"
        self.say(f"A/B: playing A then B{names}; rate with a / b / = (or 1-5)", rows=(sample,))
        self.pairs.pop(pair.group, None)

    def _cancelled(self, e: dict, job_id, job: Job | None) -> None:
        self.jobs.pop(job_id, None)
        self._forget_pair(job)
        self.say("stopped")

    def _stopped(self, e: dict, job_id, job: Job | None) -> None:
        self.playing = None
        self.say("stopped")

    def _playback(self, e: dict, job_id, job: Job | None) -> None:
        state = e.get("state")
        if state == Playback.STARTED:
            self.playing = job_id
            self.output_problem = None
        elif state in (Playback.FINISHED, Playback.STOPPED):
            if self.playing == job_id:
                self.playing = None
        elif state in (Playback.DEVICE_LOST, Playback.NO_DEVICE):
            self.playing = None
            what = "audio device lost mid-play" if state == Playback.DEVICE_LOST else "not played"
            if state == Playback.NO_DEVICE:
                self.output_problem = e.get("message") or "no output device"
            if job is not None and job.kind == Cmd.SAY:
                self.unheard[job_id] = f"{e.get('message')}; o switches to the laptop"
            self.say(f"{what}: {e.get('message')}; o switches to the laptop; the audition is still saved", error=True)

    def _output(self, e: dict, job_id, job: Job | None) -> None:
        self.worker_detail = e.get("detail", "")
        self.output_problem = e.get("problem")
        self.say(f"output: {self.worker_detail}")

    def _error(self, e: dict, job_id, job: Job | None) -> None:
        self.jobs.pop(job_id, None)
        self._forget_pair(job)
        lines = e.get("lines") or []
        extra = f" ({'; '.join(lines[1:3])})" if len(lines) > 1 else ""
        self.say(f"{e.get('message')}{extra}", error=True)

    def _crashed(self, e: dict, job_id, job: Job | None) -> None:
        for lost in e.get("lost", []):
            self._forget_pair(self.jobs.pop(lost, None))
        self.worker_state, self.loaded, self.playing = "restarting", None, None
        self.say(f"{e.get('message')}; restarting it (log: {e.get('log')})", error=True)

    def _restarted(self, e: dict, job_id, job: Job | None) -> None:
        self.worker_state = "restarted"

    def _gave_up(self, e: dict, job_id, job: Job | None) -> None:
        self.worker_state = "stopped"
        self.say(e.get("message", "the audition worker keeps crashing"), error=True)

    _HANDLERS = {Event.READY: _ready, Event.FATAL: _fatal, Event.LOADING: _loading, Event.LOADED: _loaded,
                 Event.STARTED: _started, Event.SENTENCE: _sentence, Event.FIRST_AUDIO: _first_audio,
                 Event.DONE: _done, Event.CANCELLED: _cancelled, Event.STOPPED: _stopped,
                 Event.PLAYBACK: _playback, Event.OUTPUT: _output, Event.ERROR: _error, Event.CRASHED: _crashed,
                 Event.RESTARTED: _restarted, Event.GAVE_UP: _gave_up}

    def _blind_job(self, job: Job | None) -> bool:
        pair = self.pairs.get(job.ab_group) if job is not None and job.ab_group else None
        return pair is not None and pair.blind

    def _forget_pair(self, job: Job | None) -> None:
        if job is not None and job.ab_group:
            self.pairs.pop(job.ab_group, None)


def _name(path: Path | None) -> str:
    return path.name if path else "-"
