"""Fixtures shared by every test area: an isolated home, the tiny model, the demo workspace.

Each area (tests/foundation, tests/training, tests/dashboard, tests/audition, tests/scoring) keeps its own fixtures
in its own conftest.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEAKER = "milo_demo"

# Nothing in the tests may reach the network: Hugging Face lookups fail fast instead.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def isolated_home(tmp_path_factory) -> Path:
    """XDG folders of the test session, so no test reads or writes the operator's real config."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_STATE_HOME", "state")):  # state: the speech servers' state files (contract/serve.py)
        (home / sub).mkdir()
        os.environ[var] = str(home / sub)
    for var in ("MILO_CONFIG", "MILO_BASE_MODEL", "MILO_CHECKPOINTS", "MILO_DATA", "MILO_DEVICE", "MILO_DEMO_DIR",
                "MILO_SERVE_DIR"):
        os.environ.pop(var, None)
    # The session's own scorer slots (contract/scorers.py): scorers of another test session on this machine do
    # not hold this one's back, nor the operator's.
    os.environ["MILO_SCORER_SLOTS"] = str(home / "scorer-slots")
    return home


@pytest.fixture(autouse=True)
def _isolate(isolated_home):
    yield


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the worker uses for the tiny model (4x faster here), restored after the test:
    the thread count is process-wide, and build_tiny_model's bytes depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def python_env(**extra: str) -> dict:
    """Environment for child Python processes: this checkout first on sys.path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_module(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run `python -m <args>` of this checkout and capture its output."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout,
                          env=kw.pop("env", python_env()), stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random-weight Qwen3-TTS Base model folder (seed 0), built once per test process."""
    from training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-base", seed=0)


@pytest.fixture(scope="session")
def demo_data(tiny_base, demo_clips, tmp_path_factory) -> Path:
    """The demo corpus prepared by `training.prepare` (same code as `milo-train prepare`)."""
    from training.prepare import prepare

    out = tmp_path_factory.mktemp("data") / "train.jsonl"
    prepare(demo_clips[0].parent, tiny_base, out, say=lambda s: None)
    return out


@pytest.fixture(scope="session")
def demo_clips(tmp_path_factory) -> list[Path]:
    """The demo workspace's synthetic corpus (16 WAV + transcript pairs)."""
    from contract.synth import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def tiny_custom_voice(tiny_base, demo_clips, tmp_path_factory) -> Path:
    """The tiny Base model turned into a custom-voice checkpoint (speaker 'milo_demo' in slot 3000),
    its speaker embedding taken from the first demo clip by the Base speaker encoder."""
    import soundfile as sf

    from inference.qwen import import_qwen_tts
    from training.checkpoint import save_custom_voice

    qwen_tts = import_qwen_tts()
    model = qwen_tts.Qwen3TTSModel.from_pretrained(str(tiny_base))
    wav, sr = sf.read(demo_clips[0], dtype="float32")
    embedding = model.model.extract_speaker_embedding(wav, sr)
    out = tmp_path_factory.mktemp("ckpt") / "epoch-0001"
    return save_custom_voice(model.model.state_dict(), tiny_base, out, SPEAKER, embedding)


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory):
    """A complete demo workspace made by the same code as `milo-tui --demo`."""
    from milo_tui.demo import ensure_demo_workspace

    return ensure_demo_workspace(tmp_path_factory.mktemp("demo") / "demo")


def need_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/test.sh, which installs the Debian packages")
    return path


# ---- speech nobody here recorded (docs: ../docs/corpus-audit.md, tests/scoring) ------------------------
def festival(text: str, out: Path, voice: str = "cmu_us_slt_arctic_hts") -> Path:
    """`text` spoken by a festival voice into `out` (a WAV), with the transcript beside it as out.txt.
    SLT (the default, 32 kHz) is an HTS voice trained on a real speaker that pocketsphinx transcribes;
    kal_diphone (16 kHz) is another speaker."""
    need_binary("text2wave")
    txt = out.with_suffix(".txt")
    txt.write_text(text + "\n")
    subprocess.run(["text2wave", "-eval", f"(voice_{voice})", str(txt), "-o", str(out)], check=True,
                   capture_output=True, timeout=60)
    return out


AUDITED_SLT = ("The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
               "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.")
AUDITED_OTHER = "Check the fuse before you touch the wires."


@pytest.fixture(scope="session")
def audited_corpus(tiny_base, tmp_path_factory) -> Path:
    """A small corpus audited by `milo-train prepare` (a child process): four SLT clips, one clip of
    another voice (kal) and one of white noise with a transcript. Returns the training JSONL; the
    corpus report is beside it."""
    import numpy as np
    import soundfile as sf

    root = tmp_path_factory.mktemp("audited")
    corpus = root / "corpus"
    corpus.mkdir()
    for i, text in enumerate(AUDITED_SLT):
        festival(text, corpus / f"slt_{i}.wav")
    festival(AUDITED_OTHER, corpus / "other_voice.wav", voice="kal_diphone")
    rng = np.random.default_rng(0)
    sf.write(corpus / "noise.wav", np.clip(rng.normal(0, 0.3, 3 * 24000), -1, 1).astype(np.float32), 24000)
    (corpus / "noise.txt").write_text("Nothing but noise here at all.\n")
    out = root / "data" / "train.jsonl"
    proc = run_module("training", "prepare", str(corpus), "--base", str(tiny_base), "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return out
