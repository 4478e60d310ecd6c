"""The demo workspace is created once, completely, and reused after."""
from __future__ import annotations

import soundfile as sf

from contract.synth import SENTENCES
from milo_tui.demo import ensure_demo_workspace


def test_demo_workspace_contents(demo_workspace):
    ws = demo_workspace
    assert (ws.base / "config.json").is_file()
    clips = sorted(ws.corpus.glob("*.wav"))
    assert len(clips) >= 12 and len(clips) == len(SENTENCES)
    for wav in clips:
        info = sf.info(wav)
        assert info.samplerate == 24000 and info.channels == 1
        assert 1.0 <= info.duration <= 3.0, (wav.name, info.duration)
        assert wav.with_suffix(".txt").read_text().strip()
    assert ws.checkpoints.is_dir()
    # The training data, prepared from the corpus with paths that survived the rename into place.
    from training.data import read_jsonl

    examples = read_jsonl(ws.train_jsonl)
    assert len(examples) == len(SENTENCES) and all(e.ref_audio.is_file() for e in examples)
    assert (ws.data / "corpus-report.txt").is_file() and (ws.data / "corpus-report.json").is_file()
    assert not [p for p in ws.root.parent.iterdir() if ".tmp-" in p.name]


def test_second_start_reuses_the_workspace(demo_workspace):
    before = (demo_workspace.base / "model.safetensors").stat().st_mtime_ns
    said = []
    again = ensure_demo_workspace(demo_workspace.root, progress=said.append)
    assert again == demo_workspace and said == []
    assert (demo_workspace.base / "model.safetensors").stat().st_mtime_ns == before


def test_a_half_made_workspace_is_rebuilt(tmp_path, demo_workspace):
    broken = tmp_path / "demo"
    (broken / "base").mkdir(parents=True)  # as if a previous start was killed mid-way
    said = []
    ws = ensure_demo_workspace(broken, progress=said.append)
    assert (ws.base / "config.json").is_file() and said and "Creating" in said[0]
    # Each step as it starts, numbered (the operator waits about a minute), then the total.
    steps = [line for line in said if line.startswith("  step")]
    assert [line.split(":")[0] for line in steps] == [f"  step {i} of 5" for i in range(1, 6)], said
    assert said[-1].startswith("  done in ")
