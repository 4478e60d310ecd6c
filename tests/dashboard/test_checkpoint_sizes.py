"""Checkpoint sizes as the disk counts them: the trainer hard-links the base model's unchanged files into
every checkpoint (training/checkpoint.py), so a file's blocks count once. A row's size is what only that
checkpoint holds (what deleting it frees); the footer's total is what `du` says of the checkpoints together,
and it falls by exactly what a prune frees."""
from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from contract import retention
from contract.runfolder import list_checkpoints, write_json_atomic
from contract.units import fmt_bytes
from tests.dashboard.conftest import make_app, screen_text, wait_for, write_run
from tests.dashboard.test_scores_view import cells, open_checkpoints
from training.checkpoint import UNCHANGED_DIRS, link_or_copy


def _base(root: Path) -> Path:
    """A base model folder whose unchanged files (tokenizers, the speech tokenizer) outweigh the weights."""
    base = root / "base"
    (base / UNCHANGED_DIRS[0]).mkdir(parents=True)
    (base / "vocab.json").write_bytes(os.urandom(96 * 1024))
    (base / "merges.txt").write_bytes(os.urandom(32 * 1024))
    (base / UNCHANGED_DIRS[0] / "model.safetensors").write_bytes(os.urandom(160 * 1024))
    return base


def _checkpoint(ck: Path, base: Path, epoch: int) -> None:
    """Laid out as save_custom_voice leaves it: its own weights, config and eval.json; the rest linked."""
    (ck / UNCHANGED_DIRS[0]).mkdir(parents=True)
    (ck / "model.safetensors").write_bytes(os.urandom(64 * 1024))
    (ck / "config.json").write_text('{"tts_model_type": "custom_voice"}\n')
    write_json_atomic(ck / "eval.json", {"epoch": epoch, "objective": 5.0 - epoch / 10})
    for name in ("vocab.json", "merges.txt", f"{UNCHANGED_DIRS[0]}/model.safetensors"):
        assert link_or_copy(base / name, ck / name) == "link"


def _du(folders: list[Path]) -> int:
    """What `du` says the folders take together (it counts a hard-linked file once)."""
    out = subprocess.run(["du", "-s", "-c", "-B1", *map(str, folders)], capture_output=True, text=True, check=True)
    return int(out.stdout.splitlines()[-1].split()[0])


def test_sizes_count_hard_linked_files_once(runs_root, tmp_path):
    base = _base(tmp_path)
    run = write_run(runs_root, "voice", 400, status="finished", epochs=4, checkpoints=False)
    for epoch in range(1, 5):
        _checkpoint(run / f"epoch-{epoch:04d}", base, epoch)
    own = {ck.name: sum(os.lstat(p).st_blocks * 512 for p in [ck, ck / UNCHANGED_DIRS[0], ck / "model.safetensors",
                                                               ck / "config.json", ck / "eval.json"])
           for ck in list_checkpoints(run)}

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(140, 40)) as pilot:
            app.select_run(run)
            screen = await open_checkpoints(pilot)
            table = screen.query_one("#checkpoints")
            await wait_for(pilot, lambda: table.row_count == 2 + 4, what="four checkpoint rows")
            for ck in list_checkpoints(run):
                assert fmt_bytes(own[ck.name]) in cells(table, str(ck)), (ck.name, cells(table, str(ck)))
            before = _du(list_checkpoints(run))
            assert before > sum(own.values())  # the linked files are there once
            await wait_for(pilot, lambda: f" {fmt_bytes(before)} in checkpoints" in screen_text(app),
                           what=f"the footer to say du's {fmt_bytes(before)}")
            with retention.pruning(run):
                done = retention.apply(run, ["epoch-0001"])
            after = _du(list_checkpoints(run))
            assert done.freed_bytes == own["epoch-0001"] == before - after
            await wait_for(pilot, lambda: f" {fmt_bytes(after)} in checkpoints" in screen_text(app),
                           what=f"the footer to fall to du's {fmt_bytes(after)}")

    asyncio.run(go())


def test_a_file_shared_by_checkpoints_alone_becomes_the_last_ones_own(tmp_path):
    """Adopted copies linked to each other (not to a base): each holds nothing alone while both are there;
    once one is deleted the other holds it all, and the total stays du's."""
    a, b = tmp_path / "run" / "checkpoint-epoch-0", tmp_path / "run" / "checkpoint-epoch-1"
    a.mkdir(parents=True)
    b.mkdir()
    (a / "vocab.json").write_bytes(os.urandom(64 * 1024))
    os.link(a / "vocab.json", b / "vocab.json")
    shared = os.lstat(a / "vocab.json").st_blocks * 512
    both = retention.disk_bytes([a, b])
    assert both.used == _du([a, b]) and both.own[a] == _du([a]) - shared and both.freed == both.used
    os.unlink(a / "vocab.json")
    assert retention.disk_bytes([b]).own[b] == _du([b])
