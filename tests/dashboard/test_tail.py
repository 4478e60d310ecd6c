"""Byte-offset tailing: torn last lines, truncation, replacement, the sampled first read of a large file."""
from __future__ import annotations

import json
import os

from milo_tui.metrics import RunMetrics
from contract.runfolder import append_records
from milo_tui.tail import SAMPLE_ABOVE, FileTail, LogReader, MetricsReader, last_lines, split_log
from tests.dashboard.conftest import step_records, validation_record


def test_torn_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = FileTail(path)
    assert tail.read() == (b"", False)  # no file yet
    path.write_bytes(b'{"a": 1}\n{"b": ')
    assert tail.read() == (b'{"a": 1}\n', False)
    assert tail.read() == (b"", False)
    with open(path, "ab") as f:
        f.write(b'2}\n')
    assert tail.read() == (b'{"b": 2}\n', False)


def test_truncation_and_replacement_start_over(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"one\ntwo\n")
    tail = FileTail(path)
    assert tail.read()[0] == b"one\ntwo\n"
    path.write_bytes(b"x\n")  # truncated (shorter than what was read)
    assert tail.read() == (b"x\n", True)
    replacement = tmp_path / "new.log"
    replacement.write_bytes(b"fresh file, longer than the old one\n")
    os.replace(replacement, path)  # replaced: a new inode
    assert tail.read() == (b"fresh file, longer than the old one\n", True)
    with open(path, "ab") as f:
        f.write(b"more\n")
    assert tail.read() == (b"more\n", False)


def test_metrics_reader_parses_appended_lines_and_skips_garbage(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_records(path, step_records(1, 5))
    reader = MetricsReader(path)
    first = reader.read()
    assert first.reset and not first.sampled and [p.step for p in first.points] == [1, 2, 3, 4, 5]
    with open(path, "ab") as f:
        f.write(b"not json\n[1, 2]\n")
    append_records(path, step_records(6, 6) + [validation_record(1, 6, 3.0, True, 0.0)])
    batch = reader.read()
    assert not batch.reset and batch.bad_lines == 2
    assert [p.step for p in batch.points] == [6] and batch.validations[0].objective == 3.0
    assert reader.read() is None


def test_a_large_backlog_is_sampled_with_every_validation_and_the_newest_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    n = 12_000
    records = []
    for epoch, start in enumerate(range(1, n + 1, 1000), 1):
        records += step_records(start, start + 999, per_epoch=1000)
        records.append(validation_record(epoch, start + 999, 5.0 - epoch / 10, True, 0.0))
    append_records(path, records)
    assert path.stat().st_size > SAMPLE_ABOVE, "the file must be large enough to take the sampled path"
    batch = MetricsReader(path).read()
    assert batch.sampled and batch.reset
    assert [v.epoch for v in batch.validations] == list(range(1, 13))
    steps = [p.step for p in batch.points]
    assert steps == sorted(steps) and steps[-1] == n and len(steps) < n // 2
    assert steps[0] < 100 and max(b - a for a, b in zip(steps, steps[1:])) < 50  # spread over the whole run
    assert [r["step"] for r in batch.recent][-3:] == [n - 2, n - 1, n]
    metrics = RunMetrics()
    metrics.apply(batch)
    assert metrics.latest["step"] == n and len(metrics.points) <= 4096


def test_sampled_read_then_live_lines_continue_from_the_offset(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_records(path, step_records(1, 12_000))
    reader = MetricsReader(path)
    assert reader.read().sampled
    append_records(path, step_records(12_001, 12_003))
    batch = reader.read()
    assert not batch.sampled and [p.step for p in batch.points] == [12_001, 12_002, 12_003]


def test_log_reader_opens_at_the_tail_and_handles_carriage_returns(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(20_000)) + b"progress 10%\rprogress 90%\n")
    lines, reset = LogReader(path).read()
    assert reset and lines[-1] == "progress 90%" and lines[-2] == "line 19999"
    assert lines[0].startswith("line ") and len(lines) < 20_000
    assert split_log(b"caf\xc3\xa9 \xff\n") == ["café \ufffd"]


def test_last_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(5000)) + '{"torn"')
    lines = last_lines(path, 3)
    assert [json.loads(x)["i"] for x in lines] == [4997, 4998, 4999]


def test_a_large_backlog_not_in_compact_json_is_sampled_too(tmp_path):
    """Files written by other tools (json.dumps with spaces) go through the regular-expression search."""
    path = tmp_path / "metrics.jsonl"
    records = step_records(1, 9000) + [validation_record(9, 9000, 2.5, True, 0.0)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert path.stat().st_size > SAMPLE_ABOVE
    batch = MetricsReader(path).read()
    assert batch.sampled and [v.step for v in batch.validations] == [9000] and batch.points[-1].step == 9000
