"""samples/: numbered WAVs claimed exclusively, an append-only index folded by readers."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import soundfile as sf

from contract.samples import (INDEX, append_preference, append_rating, append_sample, read_samples,
                                       samples_dir, save_sample)

AUDIO = np.zeros(2400, dtype=np.float32)


def _writer(run_dir: str, checkpoint: str, seed: int, start, out) -> None:
    start.wait()
    out.put([save_sample(Path(run_dir), checkpoint, seed + i, AUDIO, 24000)[0] for i in range(10)])


def test_numbers_are_unique_across_processes_with_different_checkpoints_and_seeds(tmp_path):
    # What the worker and milo-say do: each writer its own checkpoint and seed, so no two ever race for
    # the same file name; only the number may collide.
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), f"epoch-000{w}", 100 * w, start, out)) for w in range(4)]
    for p in procs:
        p.start()
    start.set()
    got = sorted(i for _ in procs for i in out.get(timeout=60))
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert got == list(range(1, 41)), [i for i in set(got) if got.count(i) > 1]
    names = sorted(p.name for p in samples_dir(tmp_path).iterdir())
    assert len(names) == 40 and all(sf.info(samples_dir(tmp_path) / n).frames == len(AUDIO) for n in names)
    sid, path = save_sample(tmp_path, "epoch 4/../x", 9, AUDIO, 24000)
    assert path.parent == samples_dir(tmp_path) and path.name == "0041-epoch_4_.._x-9.wav"
    assert sf.info(path).samplerate == 24000
    assert not [p for p in samples_dir(tmp_path).iterdir() if p.name.startswith(".")]  # no temporary left


def test_index_folds_ratings_and_preferences_and_tolerates_a_torn_line(tmp_path):
    for sid, label in ((1, None), (2, "A"), (3, "B")):
        append_sample(tmp_path, id=sid, wav=f"{sid:04d}-x-1.wav", checkpoint=f"epoch-000{sid}", text="t", seed=1,
                      ab_group="g1" if label else None, ab_label=label, blind=bool(label))
    append_rating(tmp_path, 1, 2)
    append_rating(tmp_path, 1, 5)  # the latest wins
    folded = {s.id: s for s in read_samples(tmp_path)}
    assert folded[1].rating == 5 and not folded[2].revealed and folded[2].preferred is None
    append_preference(tmp_path, "g1", 3)
    with open(samples_dir(tmp_path) / INDEX, "a") as f:
        f.write('{"v":1,"kind":"rating","sample":2,"rat')  # a writer mid-line
    folded = {s.id: s for s in read_samples(tmp_path)}
    assert folded[3].preferred is True and folded[2].preferred is False and folded[2].revealed
    assert folded[2].rating is None
    lines = (samples_dir(tmp_path) / INDEX).read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines[:-1]] == ["sample"] * 3 + ["rating"] * 2 + ["preference"]
