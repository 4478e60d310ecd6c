"""`python -m inference.recording`: the take checker's process (docs/recording.md, "The checker").

Reads one JSON request per line on stdin, answers one JSON line per request on stdout, in order:
    -> {"id": TAKE, "audio": ORIGINAL.wav, "text": training text, "room": session room tone or null,
        "peers": {"embeddings": [...], "paces": [...]}, "limits": {[record] thresholds}, "pad": s, "out": TRIMMED.wav}
    <- {"type": "checked", "id": TAKE, "result": {measures, flags, embedding, pace, trim, models, check_s}}
    <- {"type": "error", "id": TAKE, "message": one line}
The first line it writes is {"type": "ready", "models": {...}, "load_s": s} once the models are warm.
EOF closes it. Bad input for one take is an error line for that take; the process goes on.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    import soundfile as sf

    from contract.errors import one_line
    from inference.recording.checks import Checker

    checker = Checker()
    load_s = checker.warm()
    _say({"type": "ready", "models": checker.models(), "load_s": round(load_s, 2)})
    for line in sys.stdin:
        if not line.strip():
            continue
        take = None
        try:
            req = json.loads(line)
            take = req["id"]
            audio, rate = sf.read(req["audio"], dtype="float32", always_2d=True)
            result = checker.check(audio.mean(axis=1), rate, req["text"], room=req.get("room"),
                                   peers=req.get("peers") or {}, limits=req["limits"], pad=float(req["pad"]),
                                   out=Path(req["out"]) if req.get("out") else None)
            _say({"type": "checked", "id": take, "result": result})
        except Exception as exc:  # noqa: BLE001 - one take's failure is its error line; the next take is checked
            _say({"type": "error", "id": take, "message": one_line(exc)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
