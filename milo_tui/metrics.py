"""metrics.jsonl in memory: decoding batches of lines (off the event loop) and the per-run store that the
app's handlers own (on the loop).

A run can log millions of steps; a chart draws about two points per column. So the store keeps at most
`CAP` step points, thinned evenly by step, and a large backlog (a long run opened for the first time) is
not parsed line by line: `sample_span` parses about `CAP / 2` step lines spread evenly over the file, every
validation line (found by a substring search running in C), and the last few step lines.
A live run's new lines are small and parsed whole.
"""
from __future__ import annotations

import bisect
import json
import mmap
import re
from collections import deque
from dataclasses import dataclass, field

from contract.runfolder import NUM_LAYERS, parse_lines

CAP = 4096  # step points kept per run (thinned to CAP/2 when exceeded)
RECENT = 32  # last step records kept for speed and ETA
# Validation lines in a large backlog. The trainer writes compact JSON (`append_records`), so a plain
# substring search finds them (one pass over the file, several times faster than a regular expression
# meeting every line's "kind"); a file written any other way is searched with the regular expression.
# Events of a backlog are not needed: a resume shows as a step number going back (RunMetrics.apply).
_COMPACT_VALIDATION = b'"kind":"validation"'
_VALIDATION = re.compile(rb'"kind"\s*:\s*"validation"')


@dataclass(frozen=True, slots=True)
class StepPoint:
    step: int
    objective: float
    layer_sum: float
    layers: tuple[float, ...] | None  # NUM_LAYERS values, or None when the record had none


@dataclass(frozen=True, slots=True)
class ValPoint:
    epoch: int
    step: int
    objective: float
    layer_sum: float | None
    best: bool


@dataclass
class MetricsBatch:
    """What one read of metrics.jsonl found, in file order."""
    points: list[StepPoint] = field(default_factory=list)
    validations: list[ValPoint] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    recent: list[dict] = field(default_factory=list)  # the last RECENT step records, whole
    bad_lines: int = 0
    reset: bool = False  # the file was truncated or replaced: forget what was read before
    sampled: bool = False

    def __bool__(self) -> bool:
        return bool(self.points or self.validations or self.events or self.recent or self.bad_lines or self.reset)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def step_point(rec: dict) -> StepPoint | None:
    step, objective = rec.get("step"), _num(rec.get("objective"))
    if not isinstance(step, int) or objective is None:
        return None
    layers = rec.get("layers")
    if isinstance(layers, list) and len(layers) == NUM_LAYERS and all(_num(x) is not None for x in layers):
        layers = tuple(float(x) for x in layers)
    else:
        layers = None
    layer_sum = _num(rec.get("layer_sum"))
    if layer_sum is None:
        layer_sum = sum(layers) if layers else float("nan")
    return StepPoint(step, objective, layer_sum, layers)


def val_point(rec: dict) -> ValPoint | None:
    step, objective = rec.get("step"), _num(rec.get("objective"))
    if not isinstance(step, int) or objective is None:
        return None
    epoch = rec.get("epoch") if isinstance(rec.get("epoch"), int) else 0
    return ValPoint(epoch, step, objective, _num(rec.get("layer_sum")), bool(rec.get("best")))


def _add(batch: MetricsBatch, rec: dict, keep_point: bool = True) -> None:
    kind = rec.get("kind")
    if kind == "step":
        if keep_point:
            p = step_point(rec)
            if p is None:
                batch.bad_lines += 1
            else:
                batch.points.append(p)
        batch.recent.append(rec)
    elif kind == "validation":
        v = val_point(rec)
        if v is None:
            batch.bad_lines += 1
        else:
            batch.validations.append(v)
    elif kind == "event":
        batch.events.append(rec)
    # unknown kinds are ignored (docs/run-folder.md)


def decode_lines(buf: bytes, reset: bool = False) -> MetricsBatch:
    """Parse complete lines (as read by a FileTail) into a batch."""
    records, _tail, bad = parse_lines(buf)
    batch = MetricsBatch(bad_lines=bad, reset=reset)
    for rec in records:
        _add(batch, rec)
    batch.recent = batch.recent[-RECENT:]
    return batch


def _line_at(mm, pos: int, end: int) -> tuple[int, int]:
    """Bounds of the line holding byte `pos`."""
    start = mm.rfind(b"\n", 0, pos) + 1
    stop = mm.find(b"\n", pos, end)
    return start, (end if stop < 0 else stop)


def _parse(mm, start: int, stop: int) -> dict | None:
    try:
        obj = json.loads(mm[start:stop])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _validations(mm, start: int, end: int):
    """Offsets of the validation records in mm[start:end]."""
    first = mm[start:mm.find(b"\n", start, end)]
    if b'"kind":"' not in first:
        yield from (m.start() for m in _VALIDATION.finditer(mm, start, end))
        return
    pos = mm.find(_COMPACT_VALIDATION, start, end)
    while pos >= 0:
        yield pos
        pos = mm.find(_COMPACT_VALIDATION, pos + 1, end)


def sample_span(mm: mmap.mmap | bytes, start: int, end: int, reset: bool = False, points: int = CAP // 2) -> MetricsBatch:
    """A batch for the complete lines in mm[start:end] without parsing every line (see module doc)."""
    batch = MetricsBatch(reset=reset, sampled=True)
    others: dict[int, dict] = {}
    for hit in _validations(mm, start, end):
        a, b = _line_at(mm, hit, end)
        if a not in others:
            rec = _parse(mm, a, b)
            if rec is not None:
                others[a] = rec
    steps: dict[int, dict] = {}
    span = end - start
    for i in range(points):
        a, b = _line_at(mm, start + span * i // points, end)
        if a in steps or a in others or b <= a:
            continue
        rec = _parse(mm, a, b)
        if rec is not None and rec.get("kind") == "step":
            steps[a] = rec
    # the last RECENT lines, for the latest step, speed and ETA
    pos, tail = end, []
    while pos > start and len(tail) < RECENT:
        a, b = _line_at(mm, pos - 1, end)
        if a not in others:
            rec = _parse(mm, a, b)
            if rec is not None and rec.get("kind") == "step":
                tail.append(rec)
                steps.setdefault(a, rec)
        pos = a
    for _pos, rec in sorted({**steps, **others}.items()):
        _add(batch, rec)
    batch.recent = tail[::-1]
    return batch


class RunMetrics:
    """Everything the dashboard shows about one run's metrics. Owned by the app (on the event loop)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.points: list[StepPoint] = []
        self.validations: list[ValPoint] = []
        self.recent: deque[dict] = deque(maxlen=RECENT)
        self.start_event: dict | None = None
        self.last_event: dict | None = None
        self.bad_lines = 0
        self.version = 0  # bumped on every change, so views redraw only when something changed

    @property
    def latest(self) -> dict | None:
        return self.recent[-1] if self.recent else None

    def _rewind(self, step: int) -> None:
        """Forget points at or after `step`: the run went back there (resumed from an earlier point)."""
        i = bisect.bisect_left(self.points, step, key=lambda p: p.step)
        del self.points[i:]
        self.validations = [v for v in self.validations if v.step < step]

    def apply(self, batch: MetricsBatch) -> None:
        if batch.reset:
            self.clear()
        for ev in batch.events:
            self.last_event = ev
            if ev.get("event") == "start":
                self.start_event = ev
                resumed = ev.get("resumed_from_step")
                if isinstance(resumed, int):
                    self._rewind(resumed + 1)
        for p in batch.points:
            if self.points and p.step <= self.points[-1].step:
                self._rewind(p.step)
            self.points.append(p)
        for v in batch.validations:
            if self.validations and v.step <= self.validations[-1].step:
                self.validations = [x for x in self.validations if x.step < v.step]
            self.validations.append(v)
        self.recent.extend(batch.recent)
        self.bad_lines += batch.bad_lines
        if len(self.points) > CAP:
            self.points = thin(self.points, CAP // 2)
        if batch:
            self.version += 1


def thin(points: list[StepPoint], target: int) -> list[StepPoint]:
    """Keep about `target` points evenly spaced by step; the first and the last always stay."""
    if len(points) <= target:
        return points
    spacing = max(1, (points[-1].step - points[0].step) // target)
    kept = [points[0]]
    for p in points[1:-1]:
        if p.step - kept[-1].step >= spacing:
            kept.append(p)
    kept.append(points[-1])
    return kept


def speed(recent) -> float | None:
    """Optimizer steps per second over the recent step records (None with too few or no time)."""
    recs = [r for r in recent if isinstance(r.get("time"), (int, float)) and isinstance(r.get("step"), int)]
    if len(recs) < 2:
        return None
    dt, ds = recs[-1]["time"] - recs[0]["time"], recs[-1]["step"] - recs[0]["step"]
    return ds / dt if dt > 0 and ds > 0 else None
