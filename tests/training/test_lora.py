"""LoRA runs (`milo-train run --method lora`, training/lora.py) with real peft on the tiny model: the loss
falls, only the adapter changes, each checkpoint is a small voice bundle naming its base by hash, and a
stopped run resumes to the same adapter as the run uninterrupted."""
from __future__ import annotations

import json
import os
import signal

import pytest

from contract.bundle import ADAPTER, MANIFEST, SPEAKER, bundle_bytes, weights_sha256
from tests.training.conftest import metrics, run_training, start_run, state, steps, wait_for

pytestmark = pytest.mark.slow
COMMON = ("--epochs", "3", "--lr", "3e-3", "--batch-size", "2", "--grad-accum", "1", "--val-fraction", "0.2",
          "--speaker", "milo", "--seed", "7", "--method", "lora", "--rank", "4", "--alpha", "8")


def _args(tiny_base, demo_data, run, *extra):
    return ("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), *COMMON, *extra)


@pytest.fixture(scope="module")
def lora_trainer(tiny_base, demo_data, tmp_path_factory):
    """A LoRA run trained in this process by the real Trainer (as `run` drives it), kept for inspection."""
    from training.cli import build_parser
    from training.dist import Dist
    from training.runlog import RunLog
    from training.trainer import Trainer

    run = tmp_path_factory.mktemp("lora") / "voice"
    run.mkdir()
    args = build_parser().parse_args(["run", *_args(tiny_base, demo_data, run), "--no-score"])
    log = RunLog(run / "train.log")
    trainer = Trainer(args, Dist.from_env(), log)
    trainer.resolve()
    trainer.start_state()
    trainer.load()
    assert trainer.train() == 0
    log.close()
    return trainer


def test_a_lora_run_trains_and_its_loss_falls(lora_trainer):
    run = lora_trainer.run_dir
    val = [r["objective"] for r in metrics(run) if r["kind"] == "validation"]
    assert len(val) == 3 and val[-1] < val[0], val
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["hyper"]["method"] == "lora" and run_json["hyper"]["lora_rank"] == 4
    assert "LoRA rank 4, alpha 8 on 14 modules (talker+mlp)" in (run / "train.log").read_text()


def test_only_the_adapter_changes_the_base_stays_bit_identical(lora_trainer, tiny_base):
    import torch
    from safetensors.torch import load_file

    base = load_file(str(tiny_base / "model.safetensors"))
    trained = lora_trainer.model.state_dict()
    adapters = {k: v for k, v in trained.items() if ".lora_" in k}
    assert len(adapters) == 28 and any(k.endswith("lora_B.default.weight") for k in adapters)
    # lora_B starts at zero: after training it is not, so the adapter learned something
    assert all(v.abs().sum() > 0 for k, v in adapters.items() if ".lora_B." in k)
    compared = 0
    for name, value in trained.items():
        if ".lora_" in name or name.startswith("speaker_encoder."):
            continue
        original = base[name.replace(".base_layer.", ".")]
        assert torch.equal(value.cpu(), original.to(value.dtype)), name
        compared += 1
    assert compared >= 70  # every weight of the tiny model but the adapters and the speaker encoder


def test_each_checkpoint_is_a_small_bundle_naming_its_base(lora_trainer, tiny_base):
    run = lora_trainer.run_dir
    bundle = run / "epoch-0003"
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [ADAPTER, SPEAKER, MANIFEST, "config.json", "eval.json"])
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["base"]["path"] == str(tiny_base)
    assert manifest["base"]["sha256"] == weights_sha256(tiny_base / "model.safetensors")
    assert manifest["speaker"] == "milo" and manifest["slot"] == 3000
    assert manifest["lora"]["rank"] == 4 and len(manifest["lora"]["modules"]) == 14
    config = json.loads((bundle / "config.json").read_text())
    assert config["tts_model_type"] == "custom_voice" and config["talker_config"]["spk_id"] == {"milo": 3000}
    full = (tiny_base / "model.safetensors").stat().st_size
    ratio = bundle_bytes(bundle) / full
    print(f"bundle {bundle_bytes(bundle)} bytes = {ratio:.1%} of a full checkpoint's weights ({full} bytes)")
    assert ratio < 0.15
    assert json.loads((bundle / "eval.json").read_text())["epoch"] == 3
    # the resume point holds the adapter alone
    from safetensors import safe_open

    with safe_open(str(run / "resume" / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == {k for k in lora_trainer.model.state_dict() if ".lora_" in k}


def test_a_stopped_lora_run_resumes_to_the_same_adapter(lora_trainer, tiny_base, demo_data, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "stopped"
    proc = start_run(*_args(tiny_base, demo_data, run), hooks="step_delay=0.3")
    wait_for(lambda: len(steps(run)) >= 4, what="step 4", proc=proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stopped_at = steps(run)[-1]["step"]
    proc = run_training("--run", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr
    reference = lora_trainer.run_dir
    ours = {r["step"]: r for r in steps(run)}
    ref = {r["step"]: r for r in steps(reference)}
    assert sorted(ours) == sorted(ref) and stopped_at < max(ref)
    for step in ref:
        assert ours[step]["objective"] == pytest.approx(ref[step]["objective"], rel=1e-5, abs=1e-6), step
    a, b = load_file(str(run / "epoch-0003" / ADAPTER)), load_file(str(reference / "epoch-0003" / ADAPTER))
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-5, worst
    assert state(run)["status"] == "finished"


def test_lora_settings_are_checked_in_one_line(tiny_base, demo_data, tmp_path):
    from tests.training.conftest import train_in_process

    proc = train_in_process(*_args(tiny_base, demo_data, tmp_path / "bad", "--rank", "0"))
    assert proc.returncode == 2 and "--rank 0: LoRA rank must be from 1 to 512" in proc.stderr


TEXT = "hello world, this is milo."


def _greedy_codes(engine):
    import torch

    sampling = engine.sampling(do_sample=False, subtalker_dosample=False, max_new_tokens=40)
    return torch.stack(list(engine.frames(TEXT, sampling=sampling))).cpu()


def test_a_bundle_speaks_and_its_export_is_an_official_checkpoint_with_the_same_codes(lora_trainer, tiny_base,
                                                                                       tmp_path):
    """The engine loads a bundle (base + merged adapter); `milo-train export` writes a folder stock qwen-tts
    loads, whose greedy codes with stock generate_custom_voice equal the bundle's."""
    import torch
    from safetensors.torch import load_file

    from contract.checkpoint import validate_checkpoint
    from inference.engine import Engine, Sampling
    from inference.qwen import import_qwen_tts
    from inference.stock import stock_generate
    from tests.conftest import run_module

    bundle = lora_trainer.run_dir / "epoch-0003"
    info = validate_checkpoint(bundle)
    assert info.bundle is not None and info.speakers == ("milo",) and info.base == tiny_base
    engine = Engine(device="cpu")
    engine.load(bundle)
    ours = _greedy_codes(engine)
    assert ours.shape[0] >= 5
    engine.unload()

    out = tmp_path / "exported"
    proc = run_module("training", "export", str(bundle), str(out))
    assert proc.returncode == 0 and "official layout" in proc.stdout, proc.stderr
    exported, base = load_file(str(out / "model.safetensors")), load_file(str(tiny_base / "model.safetensors"))
    q = "talker.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(exported[q], base[q])  # the adapter is in the weights
    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(out), dtype=torch.float32)
    greedy = Sampling.from_config({}, do_sample=False, subtalker_dosample=False, max_new_tokens=40)
    _, stock = stock_generate(tts, TEXT, "milo", seed=0, sampling=greedy)
    assert torch.equal(stock.cpu(), ours)

    again = run_module("training", "export", str(bundle), str(out))
    assert again.returncode == 3 and f"{out} exists: give a new folder" in again.stderr


def test_a_bundle_whose_base_is_gone_or_changed_is_refused_in_one_line(lora_trainer, tiny_base, tmp_path):
    import shutil

    from tests.conftest import run_module

    bundle = tmp_path / "epoch-0003"
    shutil.copytree(lora_trainer.run_dir / "epoch-0003", bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    moved = tmp_path / "base-elsewhere"
    shutil.copytree(tiny_base, moved)
    (bundle / MANIFEST).write_text(json.dumps({**manifest, "base": {**manifest["base"], "path": str(tmp_path / "gone")}}))
    said = run_module("inference.say", str(bundle), "Hello.", "-o", str(tmp_path / "x.wav"), "--device", "cpu")
    assert said.returncode == 3 and "needs its base model" in said.stderr and "Traceback" not in said.stderr
    # the same path, other weights: refused by the hash
    other = moved / "model.safetensors"
    data = bytearray(other.read_bytes())
    data[-1] ^= 0xFF
    other.write_bytes(bytes(data))
    (bundle / MANIFEST).write_text(json.dumps({**manifest, "base": {**manifest["base"], "path": str(moved)}}))
    said = run_module("inference.say", str(bundle), "Hello.", "-o", str(tmp_path / "x.wav"), "--device", "cpu")
    assert said.returncode == 3 and "was trained on other weights than" in said.stderr
    assert len([l for l in said.stderr.splitlines() if l.strip()]) <= 2


def test_milo_say_speaks_a_bundle(lora_trainer, tmp_path):
    import soundfile as sf

    from tests.conftest import run_module

    said = run_module("inference.say", str(lora_trainer.run_dir / "epoch-0003"), "Hello from a bundle.", "--seed", "3",
                      "-o", str(tmp_path / "b.wav"), "--device", "cpu", "--max-new-tokens", "30")
    assert said.returncode == 0, said.stderr
    audio, rate = sf.read(tmp_path / "b.wav")
    assert rate == 24000 and len(audio) > 0


@pytest.fixture(scope="module")
def second_voice(tiny_base, demo_data, tmp_path_factory):
    """A second LoRA run on the same base (speaker cindy, another seed): its one bundle."""
    from tests.training.conftest import train_in_process

    other = tmp_path_factory.mktemp("second") / "second-voice"
    proc = train_in_process("--base", str(tiny_base), "--data", str(demo_data), "--run", str(other), "--epochs", "1",
                            "--lr", "3e-3", "--batch-size", "2", "--grad-accum", "1", "--val-fraction", "0.2",
                            "--speaker", "cindy", "--seed", "8", "--method", "lora", "--rank", "4", "--alpha", "8")
    assert proc.returncode == 0, proc.stderr
    return other / "epoch-0001"


def test_the_worker_speaks_two_runs_bundles_on_one_base(lora_trainer, second_voice, tmp_path):
    """Two LoRA runs on one base: the audition worker loads the base once and switches the adapters in place
    (its own counters say so); back on the first voice, the same seed gives the same audio as before."""
    import numpy as np
    import soundfile as sf

    from tests.audition.conftest import QUICK, start_client
    from tests.conftest import python_env

    first, second = lora_trainer.run_dir / "epoch-0003", second_voice
    client, events = start_client(python_env(), tmp_path, output="none")
    try:
        def say(bundle, speaker):
            job = client.say("Hello there.", checkpoint=str(bundle), run_dir=str(bundle.parent), seed=4, sampling=QUICK)
            done = events.wait_for("done", job)["sample"]
            assert done["speaker"] == speaker
            return events.wait_for("loaded", job), sf.read(done["wav_path"])[0]

        loaded_a, audio_a = say(first, "milo")
        loaded_b, audio_b = say(second, "cindy")
        loaded_a2, audio_a2 = say(first, "milo")
    finally:
        client.close()
    assert (loaded_a["base_loads"], loaded_a["voice_switches"]) == (1, 0)
    assert (loaded_b["base_loads"], loaded_b["voice_switches"]) == (1, 1)
    assert (loaded_a2["base_loads"], loaded_a2["voice_switches"]) == (1, 2)
    assert loaded_b["load_s"] < loaded_a["load_s"]   # a switch, not a load
    assert np.array_equal(audio_a, audio_a2)
    assert not np.array_equal(audio_a[:len(audio_b)], audio_b[:len(audio_a)])


def test_scoring_and_retention_take_a_lora_run(lora_trainer, demo_clips, tmp_path):
    """`milo-train eval` scores a bundle as it scores a full checkpoint, and `milo-train prune` keeps a LoRA
    run's bundles by the same policy."""
    import shutil
    import subprocess
    import sys

    from contract import scores as sc
    from contract.runfolder import list_checkpoints, read_json
    from tests.conftest import python_env, run_module

    run = tmp_path / "voice"
    shutil.copytree(lora_trainer.run_dir, run)
    (tmp_path / "prompts.txt").write_text("21\tHello from a bundle.\n")
    proc = subprocess.run([sys.executable, "-m", "training", "eval", str(run / "epoch-0003"), "--reference",
                           str(demo_clips[0].parent), "--prompts", str(tmp_path / "prompts.txt")],
                          capture_output=True, text=True, timeout=600, env=python_env())
    assert proc.returncode == 0, proc.stderr
    scores = read_json(run / "epoch-0003" / "eval.json")[sc.SCORES]
    assert [c["text"] for c in scores["clips"]] == ["Hello from a bundle."] and set(scores["means"]) == set(sc.MEASURES)
    assert -1 <= scores["clips"][0]["similarity"] <= 1

    pruned = run_module("training", "prune", str(run), "--keep-best", "0", "--keep-last", "1")
    assert pruned.returncode == 0, pruned.stderr
    left = [p.name for p in list_checkpoints(run)]
    assert "epoch-0003" in left and len(left) < 3 and (run / "resume" / "model.safetensors").is_file()


def test_the_server_serves_two_bundles_of_one_base_by_voice(lora_trainer, second_voice, tiny_custom_voice, tmp_path):
    import httpx

    from tests.conftest import run_module
    from tests.serving.conftest import start_server

    first = lora_trainer.run_dir / "epoch-0003"
    server = start_server(first, tmp_path, "--voice", f"cindy={second_voice}", "--max-active", "2")
    try:
        server.wait_ready()
        voices = {v["id"]: v for v in server.get("/v1/audio/voices")[1]["voices"]}
        assert {"default", "milo", "cindy"} <= set(voices) and voices["cindy"]["checkpoint"] == str(second_voice)

        def speak(voice, seed=5):
            r = httpx.post(server.url + "/v1/audio/speech", timeout=120, json={
                "model": "m", "voice": voice, "input": "Hello there.", "response_format": "pcm", "seed": seed})
            assert r.status_code == 200, r.text
            return r

        milo = speak("milo")
        cindy = speak("cindy")
        assert (milo.headers["x-milo-speaker"], cindy.headers["x-milo-speaker"]) == ("milo", "cindy")
        assert cindy.headers["x-milo-checkpoint"] == second_voice.name and milo.content != cindy.content
        assert speak("milo").content == milo.content   # back on the first voice: the same audio
        import threading

        both = {}
        threads = [threading.Thread(target=lambda v=v: both.update({v: speak(v).content})) for v in ("milo", "cindy")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert both == {"milo": milo.content, "cindy": cindy.content}  # interleaved, unmixed
        assert server.state()["voice_switches"] >= 3
    finally:
        server.stop()
    said = run_module("inference.serve", str(first), "--voice", f"full={tiny_custom_voice}", "--port", "1")
    assert said.returncode == 3 and "voice full: epoch-0001 is not a voice bundle on the served checkpoint's base" in said.stderr
