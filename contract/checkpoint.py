"""Is this folder a custom-voice checkpoint we can audition, or a Base model we can fine-tune? Checked
before any loading.

Torch-free and quick (JSON files and safetensors headers only), so a half-written or foreign folder is
refused in milliseconds with one line per problem instead of a traceback 30 s into a load. What a
checkpoint needs is what `Qwen3TTSModel.from_pretrained(<absolute path>)` reads (docs/upstream.md):
config.json (qwen3_tts, tts_model_type custom_voice, a speaker in talker_config.spk_id),
model.safetensors (or a sharded index), generation_config.json, the text tokenizer files and
speech_tokenizer/ (config.json, model.safetensors, preprocessor_config.json). A Base model to fine-tune
needs the same files with tts_model_type base and no speaker, and its weights in one model.safetensors
(the trainer reads their dtype from it and each checkpoint is written beside its copy or link).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from contract.audio import NUM_CODEBOOKS
from contract.errors import one_line

TEXT_TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")
SPEECH_TOKENIZER_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class CheckpointError(ValueError):
    """The folder cannot be auditioned. `problems` holds one line per problem; str() joins them."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path                       # absolute
    speakers: tuple[str, ...]        # as in talker_config.spk_id (generate() lower-cases lookups)
    model_size: str | None = None    # tts_model_size, e.g. "1b7"
    generation: dict = field(default_factory=dict, compare=False)  # generation_config.json
    bundle: dict | None = field(default=None, compare=False)  # a voice bundle's voice.json (contract/bundle.py)
    base: Path | None = None         # the base model a bundle is applied to

    @property
    def speaker(self) -> str:
        return self.speakers[0]

    @property
    def name(self) -> str:
        return self.path.name


def _read_json(path: Path, problems: list[str], what: str) -> dict | None:
    if not path.is_file():
        problems.append(f"{what} is missing")
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{what} is unreadable ({path.name}: {one_line(exc)})")
        return None
    except ValueError as exc:
        problems.append(f"{what} is not valid JSON ({path.name}: {exc}); the folder may be half-written")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{what} is not a JSON object ({path.name})")
        return None
    return obj


def safetensors_problem(path: Path) -> str | None:
    """None when `path` is a complete safetensors file: a readable header whose tensors end exactly
    at the end of the file. A truncated (half-copied) file fails this without reading the weights."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return f"{path.name} is empty or truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", raw)
            if n > min(_MAX_HEADER, size - 8):
                return f"{path.name} is not a safetensors file or is truncated (header of {n} bytes in a {size}-byte file)"
            header = json.loads(f.read(n))
    except PermissionError:
        return f"{path.name} is not readable (permission denied)"
    except OSError as exc:
        return f"{path.name} is unreadable ({one_line(exc)})"
    except ValueError:
        return f"{path.name} has a corrupt header (not a safetensors file?)"
    if not isinstance(header, dict):
        return f"{path.name} has a corrupt header"
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)]
    if not ends:
        return f"{path.name} holds no tensors"
    expected = 8 + n + max(ends)
    if size < expected:
        return f"{path.name} is truncated: {size} bytes of {expected} (still being written, or a copy was cut short)"
    return None


def _check_weights(root: Path, problems: list[str]) -> None:
    single, index = root / "model.safetensors", root / "model.safetensors.index.json"
    if single.is_file():
        problem = safetensors_problem(single)
        if problem:
            problems.append(problem)
        return
    if index.is_file():
        idx = _read_json(index, problems, "the weights index")
        shards = sorted(set((idx or {}).get("weight_map", {}).values()))
        if idx is not None and not shards:
            problems.append(f"{index.name} lists no weight files")
        for shard in shards:
            if not (root / shard).is_file():
                problems.append(f"weight shard {shard} is missing")
            elif problem := safetensors_problem(root / shard):
                problems.append(problem)
        return
    problems.append("model weights are missing (no model.safetensors)")


def validate_checkpoint(path: str | Path) -> CheckpointInfo:
    """Check a checkpoint folder; return what the engine needs or raise CheckpointError listing every
    problem found (one line each)."""
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise CheckpointError(root, ["no such folder"])
    if not root.is_dir():
        raise CheckpointError(root, ["not a folder (give the checkpoint folder, e.g. .../epoch-0004)"])
    problems: list[str] = []
    if root.name.startswith(".") and ".tmp-" in root.name:
        problems.append("a half-written checkpoint (hidden temporary folder of a save in progress or interrupted)")
    from contract.bundle import is_bundle

    if is_bundle(root):
        return _validate_bundle(root, problems)

    if not (root / "config.json").is_file():
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()
                      and not p.name.startswith("."))
        if subs:
            shown = ", ".join(subs[:4]) + (" ..." if len(subs) > 4 else "")
            raise CheckpointError(root, [f"a folder of checkpoints, not a checkpoint: choose one of {shown}"])
        raise CheckpointError(root, problems + ["not a checkpoint folder: config.json is missing"])
    cfg = _read_json(root / "config.json", problems, "config.json")
    speakers: tuple[str, ...] = ()
    model_size = None
    if cfg is not None:
        if cfg.get("model_type") != "qwen3_tts":
            problems.append(f"not a Qwen3-TTS checkpoint (config.json model_type is {cfg.get('model_type')!r})")
        else:
            kind = cfg.get("tts_model_type")
            if kind != "custom_voice":
                hint = " (a Base model: fine-tune it first; its epochs are custom-voice checkpoints)" if kind == "base" else ""
                problems.append(f"not a custom-voice checkpoint: tts_model_type is {kind!r}{hint}")
            if cfg.get("tokenizer_type", "qwen3_tts_tokenizer_12hz") != "qwen3_tts_tokenizer_12hz":
                problems.append(f"unsupported speech tokenizer {cfg.get('tokenizer_type')!r} (only the 12 Hz codec)")
            talker = cfg.get("talker_config") if isinstance(cfg.get("talker_config"), dict) else {}
            spk = talker.get("spk_id")
            if not isinstance(spk, dict) or not spk:
                problems.append("no speaker: talker_config.spk_id is empty")
            else:
                speakers = tuple(str(k) for k in spk)
            model_size = cfg.get("tts_model_size")

    _check_weights(root, problems)
    generation = _read_json(root / "generation_config.json", problems, "generation_config.json") or {}
    missing = [n for n in TEXT_TOKENIZER_FILES if not (root / n).is_file()]
    if missing:
        problems.append(f"text tokenizer files missing: {', '.join(missing)}")
    st = root / "speech_tokenizer"
    if not st.is_dir():
        problems.append("speech_tokenizer/ is missing (the 12 Hz codec that turns codes into audio)")
    else:
        missing = [n for n in SPEECH_TOKENIZER_FILES if not (st / n).is_file()]
        if missing:
            problems.append(f"speech_tokenizer/ lacks {', '.join(missing)}")
        elif problem := safetensors_problem(st / "model.safetensors"):
            problems.append(f"speech_tokenizer/{problem}")
    if problems:
        raise CheckpointError(root, problems)
    return CheckpointInfo(path=root, speakers=speakers, model_size=model_size, generation=generation)


def _validate_bundle(root: Path, problems: list[str]) -> CheckpointInfo:
    """A voice bundle (contract/bundle.py): its own files complete, and its base there with the same weights."""
    from contract.bundle import ADAPTER, SPEAKER, BundleError, base_of, read_manifest

    try:
        manifest = read_manifest(root)
    except BundleError as exc:
        raise CheckpointError(root, problems + [str(exc)]) from None
    for name in (ADAPTER, SPEAKER):
        if not (root / name).is_file():
            problems.append(f"{name} is missing (a voice bundle holds its adapter and speaker)")
        elif problem := safetensors_problem(root / name):
            problems.append(problem)
    cfg = _read_json(root / "config.json", problems, "config.json") or {}
    spk = (cfg.get("talker_config") or {}).get("spk_id") if isinstance(cfg.get("talker_config"), dict) else None
    if not isinstance(spk, dict) or not spk:
        problems.append("no speaker: config.json talker_config.spk_id is empty")
    if problems:
        raise CheckpointError(root, problems)
    try:
        base = base_of(root, manifest)
        check_base_model(base)
    except (BundleError, BaseModelError) as exc:
        raise CheckpointError(root, [str(exc)]) from None
    generation = _read_json(base / "generation_config.json", problems, "the base's generation_config.json") or {}
    return CheckpointInfo(path=root, speakers=tuple(str(k) for k in spk), model_size=cfg.get("tts_model_size"),
                          generation=generation, bundle=manifest, base=base)


class BaseModelError(ValueError):
    """The folder is not a Base model to fine-tune from; str() is one line naming the folder and every problem."""


def check_base_model(path: str | Path) -> dict:
    """The Base model folder's config.json, or BaseModelError: the one check of a base model, made by the
    new-run form, `milo-train prepare` and the trainer before anything loads. Torch-free, milliseconds (JSON
    files and safetensors headers). Everything the trainer and prepare read from it must be there: config.json
    of a Qwen3-TTS Base model with the 12 Hz codec's 16 codebooks, complete weights in model.safetensors, the
    text tokenizer files and the speech tokenizer (prepare encodes the corpus with it)."""
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        raise BaseModelError(f"{root} is not a folder: give the Base model folder (e.g. Qwen3-TTS-12Hz-1.7B-Base)")
    problems: list[str] = []
    cfg = _read_json(root / "config.json", problems, "config.json")
    if cfg is None:
        raise BaseModelError(f"{root} has no readable config.json: not a Qwen3-TTS model folder ({problems[0]})")
    if cfg.get("model_type") != "qwen3_tts":
        raise BaseModelError(f"{root.name} is not a Qwen3-TTS model (config.json model_type is {cfg.get('model_type')!r})")
    if cfg.get("tts_model_type") != "base":
        raise BaseModelError(f"{root.name} is a {cfg.get('tts_model_type') or 'non-Qwen3-TTS'} model; fine-tuning starts "
                             "from a Base model (Qwen3-TTS-12Hz-1.7B-Base: only a Base model has the speaker encoder)")
    talker = cfg.get("talker_config") if isinstance(cfg.get("talker_config"), dict) else {}
    groups = talker.get("num_code_groups", NUM_CODEBOOKS)
    if groups != NUM_CODEBOOKS:
        problems.append(f"it predicts {groups} codebooks per frame; fine-tuning handles the {NUM_CODEBOOKS} of the 12 Hz codec")
    weights = root / "model.safetensors"
    if weights.is_file():
        if problem := safetensors_problem(weights):
            problems.append(problem)
    elif (root / "model.safetensors.index.json").is_file():
        problems.append("its weights are sharded (model.safetensors.index.json); fine-tuning reads one model.safetensors")
    else:
        problems.append("model weights are missing (no model.safetensors)")
    missing = [n for n in TEXT_TOKENIZER_FILES if not (root / n).is_file()]
    if missing:
        problems.append(f"text tokenizer files missing: {', '.join(missing)}")
    st = root / "speech_tokenizer"
    missing = [n for n in SPEECH_TOKENIZER_FILES if not (st / n).is_file()]
    if not st.is_dir():
        problems.append("speech_tokenizer/ is missing (the 12 Hz codec that turns audio into codes)")
    elif missing:
        problems.append(f"speech_tokenizer/ lacks {', '.join(missing)}")
    if problems:
        raise BaseModelError(f"{root}: " + "; ".join(problems))
    return cfg
