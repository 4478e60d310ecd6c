"""A recording session's folder, its settings and checks, and the corpus it writes (docs/recording.md).

Torch-free: the record screen (milo_tui/recording/) owns a session through this module; the take checker
(inference/recording/) measures takes in its own process and returns what `Session.checked` stores.

    SESSION/session.json            the script's fingerprint, the room tone, the position, every prompt's
                                    state and every take's status (replaced atomically after each change)
    SESSION/script.txt              the script as it was when the session started (its copy: the session
                                    never depends on the original file staying where it was)
    SESSION/originals/TAKE.wav      every take as captured, at the microphone's own rate (16-bit); the room
                                    tone is originals/room-tone.wav. Never deleted by the session.
    SESSION/takes/TAKE.wav          a checked take: 24 kHz mono 16-bit, trimmed to `trim_pad_s` of silence
    SESSION/checks/TAKE.json        a take's measures, flags and voice embedding
    SESSION/record-report.json      the checks as a corpus report (contract/audit.py's shape: the corpus view)
    SESSION/corpus/                 what `milo-train prepare` takes unchanged:
        wavs/PROMPT.wav + .txt      the kept take of each prompt (a hard link to takes/TAKE.wav) and its
                                    training text
        metadata.csv                LJSpeech `PROMPT|display text|training text`, script order
        heldout.txt                 the prompts held out from training (prepare marks them "split": "val")

A take is named PROMPT-N (p0007-2: the second take of prompt p0007). Writes go file by file, each atomic,
audio first and session.json last, so a session killed at any instant reopens at the same prompt with
every kept take intact; a take whose checks had not come back is checked again on reopening.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import audit as ca
from contract.audit import Threshold, flag
from contract.configfile import number, read_table, whole
from contract.listen import dbfs
from contract.runfolder import read_json, write_atomic, write_json_atomic

SESSION_VERSION = 1
SESSION_FILE, SCRIPT_COPY, REPORT = "session.json", "script.txt", "record-report.json"
ORIGINALS, TAKES, CHECKS, CORPUS = "originals", "takes", "checks", "corpus"
ROOM_TONE = "room-tone"
METADATA, HELDOUT = "metadata.csv", "heldout.txt"
RECORD_TABLE = "record"

# A prompt's state: not yet recorded (absent), being checked, kept, flagged (a check failed, no decision
# yet: not in the corpus), skipped (with the operator's reason).
CHECKING, KEPT, FLAGGED, SKIPPED = "checking", "kept", "flagged", "skipped"
# A take's status besides those: discarded by the operator, or replaced by a later take of its prompt.
DISCARDED, REPLACED = "discarded", "replaced"

# The session's settings ([record] in the configuration file), beside the thresholds below.
SETTINGS = {
    "goal_minutes": number(45.0, 1.0, 600.0),
    "room_tone_s": number(5.0, 1.0, 30.0),
    "auto_stop_s": number(0.7, 0.3, 5.0),
    "trim_pad_s": number(0.15, 0.1, 0.2),
    "heldout_every": whole(20, 0, 1000, "a whole number from 0 (hold nothing out) to 1000"),
}

# The checks on each take. Where a check is the corpus audit's too, its default is the audit's.
THRESHOLDS: dict[str, Threshold] = {
    "peak_min_dbfs": Threshold(-30.0, "min", "peak", "the loudest sample; below it the take is too quiet "
                               "(aim for -6 to -3 dBFS)"),
    "peak_max_dbfs": Threshold(-1.0, "max", "peak", "the loudest sample; above it there is no headroom"),
    "clipping_max": Threshold(0.001, "max", "clipping", "fraction of the captured samples at full scale"),
    "snr_min_db": Threshold(35.0, "min", "snr", "speech power over the noise: the room tone's, or the take's own "
                            "floor where that is louder"),
    "leading_silence_max_s": Threshold(2.0, "max", "leading_silence", "seconds before the first speech"),
    "trailing_silence_max_s": Threshold(2.0, "max", "trailing_silence", "seconds after the last speech"),
    "edge_min_s": Threshold(0.05, "min", "cut_off", "speech this close to the take's start or end was "
                            "probably cut off"),
    "length_min_s": Threshold(0.3, "min", "length", "seconds of the trimmed take"),
    "length_max_s": Threshold(15.0, "max", "length", "seconds of the trimmed take"),
    "pace_ratio_max": Threshold(1.4, "max", "pace", "characters per second of speech against the session's "
                                "running median, either way (needs 5 kept takes)"),
    "cer_max": Threshold(0.6, "max", "misread", "character error rate of what the recognizer heard against "
                         "the prompt (both spelled out)"),
    "speaker_similarity_min": Threshold(0.75, "min", "voice", "cosine of the take's voice to the session's voice "
                                        "(needs 3 kept takes)"),
}
PACE_MIN_TAKES, VOICE_MIN_TAKES = 5, 3
# Which measure each threshold reads, and how its value is said in the one line under the take.
MEASURE_OF = {"peak_min_dbfs": "peak_dbfs", "peak_max_dbfs": "peak_dbfs", "clipping_max": "clipping",
              "snr_min_db": "snr_db", "leading_silence_max_s": "leading_silence_s",
              "trailing_silence_max_s": "trailing_silence_s", "edge_min_s": "edge_s", "length_min_s": "length_s",
              "length_max_s": "length_s", "pace_ratio_max": "pace_ratio", "cer_max": "cer",
              "speaker_similarity_min": "speaker_similarity"}
SAID = {"peak_dbfs": "peak {:.1f} dBFS", "clipping": "{:.2%} of the samples at full scale", "snr_db": "SNR {:.1f} dB",
        "leading_silence_s": "{:.2f} s of silence before the speech",
        "trailing_silence_s": "{:.2f} s of silence after the speech", "edge_s": "speech {:.2f} s from the take's edge",
        "length_s": "{:.2f} s long", "pace_ratio": "pace {:.2f}x the session's", "cer": "CER {:.2f}",
        "speaker_similarity": "voice similarity {:.2f}"}


class SessionError(Exception):
    """A session folder that cannot be opened or written as asked; the message is one line with the fix."""


def record_settings(config: dict | None = None, origin="the configuration file") -> dict:
    """[record]: the settings and the thresholds, defaults filled in; ConfigError names a wrong key or value."""
    keys = {**SETTINGS, **{k: number(t.default) for k, t in THRESHOLDS.items()}}
    return read_table(config, RECORD_TABLE, keys, origin)


def judge(measures: dict, limits: dict) -> list[dict]:
    """The flags of one take's measures: each names its check, the value, the threshold and one line."""
    flags = []
    for key, threshold in THRESHOLDS.items():
        measure = MEASURE_OF[key]
        value, limit = measures.get(measure), limits[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key == "pace_ratio_max":
            crossed, word = not (1 / limit <= value <= limit), f"outside 1/{limit:g} to {limit:g}"
        elif threshold.bound == "min":
            crossed, word = value < limit, f"below {limit:g}"
        else:
            crossed, word = value > limit, f"above {limit:g}"
        if crossed:
            flags.append(flag(threshold.check, value, limit, f"{threshold.check}: {SAID[measure].format(value)}, {word}"))
    if measures.get("speech") is False:
        flags.append(flag("no_speech", None, None, "no_speech: the recognizer's voice detector heard no speech"))
    return flags


# ---- files --------------------------------------------------------------------------------------------
def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV, atomically."""
    import soundfile as sf

    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), lambda tmp: sf.write(str(tmp), samples, int(rate), subtype="PCM_16", format="WAV"))


def write_text(path: Path, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def is_heldout(index: int, every: int) -> bool:
    """Held out from training: every `every`-th prompt of the script, starting at the tenth of each block of
    `every` (prompt 10, 30, 50 ... at 20), so the split is fixed from the first take on and spread over the
    whole session, and the coverage-rich first prompts are trained on."""
    return every > 0 and index % every == (every - 1) // 2


@dataclass
class Check:
    """What the checker returned for a take (checks/TAKE.json)."""
    measures: dict
    flags: list
    embedding: list | None
    pace: float | None


class Session:
    """One recording session folder (module docstring). Methods that change it save it before returning."""

    def __init__(self, folder: Path, data: dict, prompts: list) -> None:
        self.folder, self.data, self.prompts = Path(folder), data, prompts
        self.index = {p.id: i for i, p in enumerate(prompts)}
        self._checks: dict[str, Check] = {}

    # ---- opening --------------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, script: Path | None = None, heldout_every: int = 20) -> Session:
        """The session in `folder`, created from `script` (default: the starter script) when it holds none.
        SessionError when the folder holds another script's session, or cannot be written."""
        from contract.script import ScriptError, parse_script, read_script, starter_path

        folder = Path(folder).expanduser().resolve()
        data = read_json(folder / SESSION_FILE)
        try:
            if data is not None:
                if data.get("version") != SESSION_VERSION:
                    raise SessionError(f"{folder}: session version {data.get('version')} is not {SESSION_VERSION}; "
                                       f"record into a new folder")
                copy = folder / SCRIPT_COPY
                if script is not None and _sha256(Path(script)) != data["script"]["sha256"]:
                    raise SessionError(f"{folder} was recorded from another script ({data['script']['source']}); "
                                       f"give no --script to go on with it, or record into a new folder")
                prompts = parse_script(copy.read_text(encoding="utf-8"), str(copy))
                return cls(folder, data, prompts)
            if folder.exists() and not folder.is_dir():
                raise SessionError(f"{folder} is a file: give a folder for the session")
            if folder.is_dir() and any(p for p in folder.iterdir() if not p.name.startswith(".")):
                raise SessionError(f"{folder} holds other files and no session: give an empty or new folder")
            source = Path(script).expanduser().resolve() if script is not None else starter_path()
            prompts = read_script(source)
            folder.mkdir(parents=True, exist_ok=True)
            text = source.read_bytes()
            write_atomic(folder / SCRIPT_COPY, lambda tmp: tmp.write_bytes(text))
        except ScriptError as exc:
            raise SessionError(str(exc)) from None
        except OSError as exc:
            raise SessionError(f"{folder}: {exc.strerror or exc}; check the path and its permissions") from None
        data = dict(version=SESSION_VERSION, created_at=time.time(), position=0, room_tone=None, mic=None,
                    heldout_every=heldout_every,
                    script=dict(source=str(source), sha256=hashlib.sha256(text).hexdigest(), prompts=len(prompts)),
                    prompts={}, takes={})
        session = cls(folder, data, prompts)
        session.save()
        return session

    def save(self) -> None:
        try:
            write_json_atomic(self.folder / SESSION_FILE, self.data)
        except OSError as exc:
            raise SessionError(f"cannot save {self.folder / SESSION_FILE}: {exc.strerror or exc}") from None

    # ---- reading ---------------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        return min(max(int(self.data.get("position", 0)), 0), len(self.prompts) - 1)

    @property
    def current(self):
        return self.prompts[self.position]

    def state(self, prompt_id: str) -> dict:
        return self.data["prompts"].get(prompt_id, {})

    def take(self, name: str) -> dict:
        return self.data["takes"][name]

    def original(self, take: str) -> Path:
        return self.folder / ORIGINALS / f"{take}.wav"

    def trimmed(self, take: str) -> Path:
        return self.folder / TAKES / f"{take}.wav"

    def check(self, take: str) -> Check | None:
        if take not in self._checks:
            got = read_json(self.folder / CHECKS / f"{take}.json")
            if got is None:
                return None
            self._checks[take] = Check(got.get("measures", {}), got.get("flags", []), got.get("embedding"),
                                       got.get("pace"))
        return self._checks[take]

    def kept(self) -> list[tuple[object, str]]:
        """(prompt, take) of every kept prompt, in script order."""
        return [(p, self.state(p.id)["take"]) for p in self.prompts if self.state(p.id).get("status") == KEPT]

    def kept_seconds(self) -> float:
        return sum(self.take(t).get("trimmed_s") or 0.0 for _, t in self.kept())

    def pending(self) -> list[str]:
        """Takes recorded whose checks have not come back (a session killed meanwhile): to check again."""
        return [t for t, info in self.data["takes"].items() if info.get("status") == CHECKING]

    def peers(self, leave_out: str | None = None) -> dict:
        """What a new take is compared with: the kept takes' voice embeddings and paces."""
        embeddings, paces = [], []
        for _, take in self.kept():
            c = self.check(take) if take != leave_out else None
            if c is not None:
                if c.embedding:
                    embeddings.append(c.embedding)
                if c.pace:
                    paces.append(c.pace)
        return dict(embeddings=embeddings, paces=paces)

    def counts(self) -> dict:
        states = [self.state(p.id).get("status") for p in self.prompts]
        return {s: states.count(s) for s in (KEPT, FLAGGED, SKIPPED, CHECKING)} | {"todo": states.count(None),
                                                                                 "prompts": len(self.prompts)}

    # ---- changing ---------------------------------------------------------------------------------------
    def go(self, index: int) -> None:
        self.data["position"] = min(max(index, 0), len(self.prompts) - 1)
        self.save()

    def set_room_tone(self, audio: np.ndarray, rate: int, mic: str) -> dict:
        """Store the room tone (the quiet the checks and the auto-stop are calibrated from)."""
        path = self.folder / ORIGINALS / f"{ROOM_TONE}.wav"
        write_wav(path, audio, rate)
        x = np.asarray(audio, dtype=np.float64)
        rms = float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0
        room = dict(file=os.path.relpath(path, self.folder), rate=int(rate), seconds=round(len(x) / rate, 2),
                    rms_dbfs=round(dbfs(rms), 1), peak_dbfs=round(dbfs(float(np.max(np.abs(x))) if len(x) else 0.0), 1),
                    mic=mic, recorded_at=time.time())
        self.data["room_tone"], self.data["mic"] = room, mic
        self.save()
        return room

    def add_take(self, prompt_id: str, audio: np.ndarray, rate: int, mic: str) -> str:
        """Store a new take of a prompt (the original first, then the session): it is checked next."""
        n = 1 + sum(1 for info in self.data["takes"].values() if info["prompt"] == prompt_id)
        name = f"{prompt_id}-{n}"
        write_wav(self.original(name), audio, rate)
        self.data["takes"][name] = dict(prompt=prompt_id, status=CHECKING, rate=int(rate), mic=mic,
                                        seconds=round(len(audio) / rate, 3), recorded_at=time.time())
        state = self.data["prompts"].setdefault(prompt_id, {})
        previous = state.get("take")
        state.update(status=CHECKING, take=name, reason=None, kept_anyway=False)
        self.data["mic"] = mic
        if previous and self.data["takes"][previous]["status"] in (KEPT, FLAGGED, CHECKING):
            self.data["takes"][previous]["status"] = REPLACED
            self._unpublish(prompt_id)
        self.save()
        return name

    def checked(self, take: str, result: dict) -> None:
        """The checker's result for a take: stored, and the take kept (into the corpus) or flagged."""
        (self.folder / CHECKS).mkdir(exist_ok=True)
        write_json_atomic(self.folder / CHECKS / f"{take}.json", result)
        self._checks.pop(take, None)
        info = self.data["takes"].get(take)
        if info is None or info["status"] != CHECKING:
            return  # replaced or discarded meanwhile: the check is kept, the decision was made
        info["trimmed_s"] = result["measures"].get("length_s")
        status = FLAGGED if result["flags"] else KEPT
        info["status"] = status
        self.data["prompts"][info["prompt"]]["status"] = status
        if status == KEPT:
            self._publish(info["prompt"], take)
        self.save()
        self.write_report()

    def keep_anyway(self, prompt_id: str) -> None:
        state = self.state(prompt_id)
        if state.get("status") != FLAGGED:
            return
        state.update(status=KEPT, kept_anyway=True)
        self.take(state["take"])["status"] = KEPT
        self._publish(prompt_id, state["take"])
        self.save()
        self.write_report()

    def discard(self, prompt_id: str) -> None:
        """The prompt's take is set aside (its files stay in originals/ and takes/); the prompt is to record."""
        state = self.data["prompts"].pop(prompt_id, None)
        if state and state.get("take"):
            self.take(state["take"])["status"] = DISCARDED
            self._unpublish(prompt_id)
        self.save()
        self.write_report()

    def skip(self, prompt_id: str, reason: str) -> None:
        state = self.data["prompts"].setdefault(prompt_id, {})
        take = state.get("take")
        state.update(status=SKIPPED, reason=reason, take=None, kept_anyway=False)
        if take:
            self.take(take)["status"] = DISCARDED
            self._unpublish(prompt_id)
        self.save()
        self.write_report()

    # ---- the corpus --------------------------------------------------------------------------------------
    def _publish(self, prompt_id: str, take: str) -> None:
        """Put the kept take in corpus/ (a hard link: no second copy), then the tables that list it."""
        prompt = self.prompts[self.index[prompt_id]]
        wavs = self.folder / CORPUS / "wavs"
        wavs.mkdir(parents=True, exist_ok=True)
        link = wavs / f"{prompt_id}.wav"
        tmp = wavs / f".{prompt_id}.wav.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(self.trimmed(take), tmp)
        except OSError:  # a file system without hard links: a copy
            import shutil

            shutil.copyfile(self.trimmed(take), tmp)
        os.replace(tmp, link)
        write_text(wavs / f"{prompt_id}.txt", prompt.text + "\n")
        self._write_tables()

    def _unpublish(self, prompt_id: str) -> None:
        """Take the prompt out of corpus/: only the link and its text go; takes/ and originals/ keep the audio."""
        wavs = self.folder / CORPUS / "wavs"
        (wavs / f"{prompt_id}.wav").unlink(missing_ok=True)
        (wavs / f"{prompt_id}.txt").unlink(missing_ok=True)
        self._write_tables()

    def _write_tables(self) -> None:
        every = int(self.data["heldout_every"])
        rows, held = [], []
        for prompt, _ in self.kept():
            rows.append(f"{prompt.id}|{_cell(prompt.display)}|{_cell(prompt.text)}")
            if is_heldout(self.index[prompt.id], every):
                held.append(prompt.id)
        corpus = self.folder / CORPUS
        write_text(corpus / METADATA, "".join(r + "\n" for r in rows))
        write_text(corpus / HELDOUT, "".join(h + "\n" for h in held))

    def write_report(self) -> None:
        """record-report.json: every take of the current state as a corpus-report row (the corpus view)."""
        clips = []
        for prompt in self.prompts:
            state = self.state(prompt.id)
            take = state.get("take")
            if state.get("status") == SKIPPED:
                clips.append(dict(clip=prompt.id, path="", status=ca.SKIPPED, reason=state.get("reason"), flags=[],
                                  text=prompt.text, text_source="script", measures={}))
            if not take or state.get("status") not in (KEPT, FLAGGED):
                continue
            c = self.check(take)
            flags = c.flags if c else []
            clips.append(dict(clip=take, path=os.path.relpath(self.trimmed(take), self.folder),
                              status=ca.FLAGGED if flags else ca.KEPT, reason=None, flags=flags, text=prompt.text,
                              text_source="script", measures=c.measures if c else {},
                              kept_anyway=bool(state.get("kept_anyway")),
                              duration_s=self.take(take).get("trimmed_s"),
                              source_sample_rate=self.take(take)["rate"]))
        counts = self.counts()
        write_json_atomic(self.folder / REPORT, dict(
            version=1, data=CORPUS, kind="recording", counts=dict(
                files=len(clips), clips=len(clips), kept=counts[KEPT], flagged=counts[FLAGGED], dropped=0,
                skipped=counts[SKIPPED]),
            total_duration_s=round(self.kept_seconds(), 2), clips=clips))


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "/").split())
