"""A speech request checked field by field, before anything is queued (docs/serving.md, "Requests").

OpenAI's fields, so OpenAI clients work unchanged; every wrong value is a `BadRequest` with one line that
says what is wrong and what is allowed, in OpenAI's error shape. No field is ever a path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from contract.serve import DEFAULT_VOICE, FORMATS, MAX_INPUT_CHARS, STREAM_FORMATS

# OpenAI's fields, then ours (extensions an OpenAI client sends through extra_body).
OPENAI_FIELDS = ("model", "input", "voice", "response_format", "speed", "stream_format", "instructions")
OUR_FIELDS = ("seed",)


class BadRequest(Exception):
    """A 4xx: `status`, OpenAI's error `code` and `param`, and the one-line message."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param

    def body(self) -> dict:
        return error_body(str(self), self.code, param=self.param)


def error_body(message: str, code: str, *, kind: str = "invalid_request_error", param: str | None = None) -> dict:
    """An error in OpenAI's shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    input: str
    voice: str            # as the client named it
    speaker: str          # the checkpoint's speaker it maps to
    response_format: str
    stream_format: str
    seed: int | None


def parse_body(raw: bytes, content_type: str | None) -> dict:
    """The JSON object of a request body (BadRequest for the wrong type or JSON; the size is the reader's)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest(f"the body must be JSON (Content-Type: application/json), not {kind or 'unstated'}",
                         status=415, code="unsupported_media_type")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with model, input and voice", code="invalid_json")
    return body


def speech_request(body: dict, voices: dict[str, str]) -> SpeechRequest:
    """Check every field of a /v1/audio/speech body. `voices`: lower-case voice name -> speaker."""
    unknown = sorted(set(body) - set(OPENAI_FIELDS) - set(OUR_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; the fields are "
                         f"{', '.join(OPENAI_FIELDS + OUR_FIELDS)}", param=unknown[0])
    model = body.get("model", "milo")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model must be a non-empty string (any name: this server has one voice model)", param="model")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("input must be a non-empty string: the text to speak", param="input")
    if len(text) > MAX_INPUT_CHARS:
        raise BadRequest(f"input is {len(text)} characters; the limit is {MAX_INPUT_CHARS}", param="input")
    voice = body.get("voice", DEFAULT_VOICE)
    if not isinstance(voice, str) or voice.lower() not in voices:
        raise BadRequest(f"unknown voice {voice!r}: this server has {', '.join(sorted(voices))}", param="voice",
                         code="unknown_voice")
    fmt = body.get("response_format", "wav")
    if fmt not in FORMATS:
        raise BadRequest(f"response_format {fmt!r} is not supported: one of {', '.join(FORMATS)}",
                         param="response_format")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or speed != 1.0:
        raise BadRequest(f"speed {speed!r} is not supported: this server speaks at the voice's own pace (1.0)",
                         param="speed")
    stream_format = body.get("stream_format", "audio")
    if stream_format not in STREAM_FORMATS:
        raise BadRequest(f"stream_format {stream_format!r} is not supported: one of {', '.join(STREAM_FORMATS)}",
                         param="stream_format")
    if body.get("instructions"):
        raise BadRequest("instructions are not supported: a fine-tuned voice speaks one way", param="instructions")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63):
        raise BadRequest(f"seed {seed!r} must be a whole number from 0 to 2^63-1", param="seed")
    return SpeechRequest(model=model, input=text, voice=voice, speaker=voices[voice.lower()],
                         response_format=fmt, stream_format=stream_format, seed=seed)
