"""milo-serve as its clients see it: the real server (a child process on a free loopback port, serving the
tiny custom voice), called by the official `openai` client, raw httpx streams and SSE; its errors, its
queue limit, a client hanging up, and milo-say's own audio for the same seed."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_module
from tests.serving.conftest import start_server

pytestmark = pytest.mark.slow
LONG = " ".join(f"Sentence number {i} of a rather long answer." for i in range(14))


def speech(server, timeout: float = 120, **body) -> httpx.Response:
    body = {"model": "tts-1", "voice": "default", "input": "Hello there.", **body}
    return httpx.post(server.url + "/v1/audio/speech", json=body, timeout=timeout)


def test_the_openai_client_streams_a_valid_wav(served):
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="unused")
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="default", input="Hello there, this is the served voice.", response_format="wav") as r:
        parts = list(r.iter_bytes())
        assert r.headers["content-type"] == "audio/wav" and r.headers["x-milo-checkpoint"] == "epoch-0001"
    data = b"".join(parts)
    assert data[:4] == b"RIFF" and data[4:8] == b"\xff\xff\xff\xff" and data[40:44] == b"\xff\xff\xff\xff"
    audio, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == 24000 and len(audio) == (len(data) - 44) // 2 > 24000 and np.abs(audio).max() > 100
    models = client.models.list()
    assert [m.id for m in models.data] == ["epoch-0001"]


def test_the_first_chunk_leaves_before_the_generation_has_finished(served):
    t0 = time.perf_counter()
    arrivals = []
    with httpx.stream("POST", served.url + "/v1/audio/speech", timeout=120,
                      json={"model": "m", "voice": "milo_demo", "input": LONG[:400], "response_format": "pcm"}) as r:
        assert r.status_code == 200
        for part in r.iter_raw():
            arrivals.append((time.perf_counter() - t0, len(part)))
    first, last = arrivals[0][0], arrivals[-1][0]
    audio_s = sum(n for _, n in arrivals) / 2 / 24000
    assert first < 0.25 * last, (first, last)   # the first bytes went while most of it was still to make
    assert audio_s > 10 and len(arrivals) > 5


def test_sse_streams_deltas_then_done_and_carries_the_same_audio(served):
    body = {"input": "Hello there, server.", "response_format": "pcm", "seed": 7}
    plain = speech(served, **body)
    events = []
    with httpx.stream("POST", served.url + "/v1/audio/speech", timeout=120,
                      json={"model": "m", "voice": "default", "stream_format": "sse", **body}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and set(kinds[:-1]) == {"speech.audio.delta"} and len(kinds) > 2
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert pcm == plain.content and events[-1]["audio_seconds"] == pytest.approx(len(pcm) / 2 / 24000, abs=1e-3)


def test_the_served_audio_for_a_seed_is_milo_says(served, tiny_custom_voice, tmp_path):
    text = "The same words, the same seed."
    served_wav = speech(served, input=text, seed=1234, response_format="wav").content
    out = tmp_path / "say.wav"
    said = run_module("inference.say", str(tiny_custom_voice), text, "--seed", "1234", "-o", str(out), "--device", "cpu")
    assert said.returncode == 0, said.stderr
    ours = sf.read(io.BytesIO(served_wav), dtype="int16")[0]
    theirs = sf.read(out, dtype="int16")[0]
    assert len(ours) == len(theirs) > 0 and np.array_equal(ours, theirs)
    # and another seed gives other audio (the seed is really used)
    other = sf.read(io.BytesIO(speech(served, input=text, seed=99).content), dtype="int16")[0]
    assert not np.array_equal(other[:len(ours)], ours[:len(other)])


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_compressed_formats_decode_to_the_same_length(served, fmt, tmp_path):
    pcm = speech(served, input="Compressed, please.", seed=5, response_format="pcm").content
    r = speech(served, input="Compressed, please.", seed=5, response_format=fmt)
    assert r.status_code == 200 and r.headers["content-type"] == {"flac": "audio/flac", "mp3": "audio/mpeg"}[fmt]
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(r.content)
    if fmt == "flac":  # streamed FLAC says "length unknown": sox (libFLAC) reads it
        import subprocess

        wav = tmp_path / "flac.wav"
        subprocess.run(["sox", str(path), str(wav)], check=True, capture_output=True)
        audio = sf.read(wav, dtype="int16")[0]
        assert np.array_equal(audio, np.frombuffer(pcm, dtype="<i2"))  # lossless
    else:
        audio = sf.read(path, dtype="int16")[0]
        assert abs(len(audio) - len(pcm) // 2) < 2 * 1152 + 2000  # MP3's encoder delay and padding


BAD = [
    ({"input": ""}, 400, "input must be a non-empty string"),
    ({"input": "x" * 4097}, 400, "input is 4097 characters; the limit is 4096"),
    ({"voice": "alloy"}, 400, "unknown voice 'alloy': this server has default, milo_demo"),
    ({"response_format": "ogg"}, 400, "response_format 'ogg' is not supported: one of wav, pcm, flac, mp3"),
    ({"speed": 1.5}, 400, "speed 1.5 is not supported"),
    ({"stream_format": "chunks"}, 400, "stream_format 'chunks' is not supported"),
    ({"file": "/etc/passwd"}, 400, "unknown field(s): file"),
    ({"seed": "seven"}, 400, "seed 'seven' must be a whole number"),
    ({"instructions": "whisper"}, 400, "instructions are not supported"),
]


@pytest.mark.parametrize("body, status, message", BAD, ids=[next(iter(b)) for b, _, _ in BAD])
def test_a_bad_field_is_a_4xx_in_openais_shape_and_the_next_request_is_served(served, body, status, message):
    r = speech(served, **body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["message"].startswith(message) and "\n" not in error["message"] and error["type"] and error["code"]
    assert speech(served, input="Still here.").status_code == 200


def test_bad_bodies_are_refused_and_the_server_keeps_serving(served):
    url = served.url + "/v1/audio/speech"
    cases = [
        (httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400, "invalid_json"),
        (httpx.post(url, content=b"[1, 2]", headers={"content-type": "application/json"}), 400, "invalid_json"),
        (httpx.post(url, content=b"input=hi", headers={"content-type": "application/x-www-form-urlencoded"}), 415,
         "unsupported_media_type"),
        (httpx.post(url, json={"model": "m", "voice": "default", "input": "y" * 70_000}), 413, "body_too_large"),
        (httpx.post(url, content=iter([b'{"input": "', b"z" * 70_000, b'"}']),
                    headers={"content-type": "application/json"}), 413, "body_too_large"),  # chunked, no length
        (httpx.get(url), 405, "method_not_allowed"),
        (httpx.get(served.url + "/v1/nothing"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert speech(served).status_code == 200
    assert "Traceback" not in served.log_text()


def test_past_the_queue_a_request_gets_503_with_retry_after(served):
    """One stream speaking, one waiting (the fixture's limits): a third is refused at once."""
    results = {}

    def long(name):
        results[name] = speech(served, input=LONG).status_code

    threads = [threading.Thread(target=long, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
        time.sleep(0.3)
    deadline = time.monotonic() + 30
    while served.state()["active"] + served.state()["queued"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = speech(served, input="Me too.")
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "busy"
    for t in threads:
        t.join(120)
    assert results == {"a": 200, "b": 200}


def test_a_client_hanging_up_mid_stream_frees_the_model_within_a_chunk(served):
    arrivals = []
    with httpx.stream("POST", served.url + "/v1/audio/speech", timeout=120,
                      json={"model": "m", "voice": "default", "input": LONG, "response_format": "pcm"}) as r:
        for part in r.iter_raw():
            arrivals.append(time.perf_counter())
            if len(arrivals) == 4:
                break
    hung_up = time.perf_counter()
    # The model is free when the next request's first audio comes: with one stream at a time, only then.
    t0 = time.perf_counter()
    with httpx.stream("POST", served.url + "/v1/audio/speech", timeout=120,
                      json={"model": "m", "voice": "default", "input": "Next.", "response_format": "pcm"}) as r:
        next(r.iter_raw())
        first_next = time.perf_counter()
    chunk_s = max(b - a for a, b in zip(arrivals, arrivals[1:]))
    freed_s = first_next - hung_up
    assert freed_s < chunk_s + 0.5, (freed_s, chunk_s)
    assert first_next - t0 < chunk_s + 0.5
    deadline = time.monotonic() + 10
    while served.state()["cancelled"] < 1 and time.monotonic() < deadline:  # the log line, then the state
        time.sleep(0.05)
    assert served.state()["cancelled"] >= 1
    line = next(l for l in served.log_text().splitlines() if "status=499" in l)
    assert re.search(r"chars=\d+ .*first_audio_ms=\d+ audio_s=[\d.]+", line)


def test_health_ready_voices_and_models_say_what_is_served(served, tiny_custom_voice):
    for path in ("/health", "/ready", "/v1/audio/voices", "/v1/models"):
        status, body = served.get(path)
        assert status == 200, (path, body)
        checkpoint = body.get("checkpoint") or body["data"][0]["checkpoint"]
        assert checkpoint["path"] == str(tiny_custom_voice) and checkpoint["speaker"] == "milo_demo"
        assert checkpoint["sample_rate"] == 24000 and checkpoint["epoch"] == 1
    voices = served.get("/v1/audio/voices")[1]["voices"]
    assert {v["id"]: v["speaker"] for v in voices} == {"default": "milo_demo", "milo_demo": "milo_demo"}


def test_an_api_key_is_enforced_when_set(tiny_custom_voice, tmp_path):
    key = tmp_path / "serve.key"
    key.write_text("k" * 32 + "\n")
    key.chmod(0o600)
    server = start_server(tiny_custom_voice, tmp_path, "--api-key-file", str(key))
    try:
        server.wait_ready(headers={"Authorization": "Bearer " + "k" * 32})
        assert server.get("/v1/models")[0] == 401
        assert server.get("/v1/models", {"Authorization": "Bearer wrong"})[0] == 401
        status, body = server.get("/v1/models", {"Authorization": "Bearer " + "k" * 32})
        assert status == 200 and body["data"][0]["id"] == "epoch-0001"
        assert server.get("/health")[0] == 200   # the liveness probe needs no key
        assert server.state()["auth"] is True
    finally:
        server.stop()


def test_a_non_loopback_bind_without_a_key_refuses_to_start(tiny_custom_voice, tmp_path):
    said = run_module("inference.serve", str(tiny_custom_voice), "--host", "0.0.0.0", "--port", "0", timeout=60)
    assert said.returncode == 3 and "--port 0: must be a port number from 1 to 65535" in said.stderr
    said = run_module("inference.serve", str(tiny_custom_voice), "--host", "0.0.0.0", timeout=60)
    assert said.returncode == 3
    assert "listening on 0.0.0.0 would let anyone on the network use the voice: give an API key" in said.stderr
    assert "Traceback" not in said.stderr and len(said.stderr.strip().splitlines()) == 1
    key = tmp_path / "open.key"
    key.write_text("k" * 32)
    key.chmod(0o644)
    said = run_module("inference.serve", str(tiny_custom_voice), "--host", "0.0.0.0", "--api-key-file", str(key))
    assert said.returncode == 3 and f"chmod 600 {key}" in said.stderr


def test_a_port_in_use_and_a_bad_checkpoint_are_one_line_each(served, tmp_path):
    said = run_module("inference.serve", str(served.state()["checkpoint"]["path"]), "--port", str(served.port),
                      env={**os.environ, "PYTHONPATH": os.getcwd(), "MILO_SERVE_DIR": str(served.state_dir)})
    assert said.returncode == 3 and f"port {served.port} on 127.0.0.1 is in use" in said.stderr
    said = run_module("inference.serve", str(tmp_path / "nothing"))
    assert said.returncode == 3 and "cannot be served" in said.stderr and "Traceback" not in said.stderr
    said = run_module("inference.serve")
    assert said.returncode == 3 and "which voice?" in said.stderr


def test_a_voice_that_ends_before_any_audio_is_an_error_not_an_empty_clip(tiny_custom_voice, tmp_path):
    """A checkpoint allowed one token per sentence makes no frame at all: the request is a 500 that says so,
    and the server serves on (its warm-up asks for more tokens, so it became ready)."""
    import shutil

    checkpoint = tmp_path / "epoch-0001"
    shutil.copytree(tiny_custom_voice, checkpoint)
    config = json.loads((checkpoint / "generation_config.json").read_text())
    (checkpoint / "generation_config.json").write_text(json.dumps({**config, "max_new_tokens": 1}))
    server = start_server(checkpoint, tmp_path)
    try:
        server.wait_ready()
        r = speech(server, input="Nothing will come of this.")
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert error["code"] == "no_audio" and error["message"].startswith("the voice ended the speech before any audio")
        assert server.get("/health")[0] == 200 and server.state()["errors"] == 1
    finally:
        server.stop()
