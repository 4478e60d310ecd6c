"""What a scorer reads before any model: the prompt set (score-prompts.txt or --prompts) and the run's
reference voice (its training data, named in run.json)."""
from __future__ import annotations

from pathlib import Path

from contract import scores as sc
from contract.runfolder import RUN_JSON, read_json


def read_prompts(path: str | None) -> tuple[tuple[str, int], ...]:
    """A prompt set file's (sentence, seed) pairs; ValueError (one line naming the file and what to do) for a
    file that is not UTF-8 or holds no sentence, OSError for one that cannot be read."""
    if not path:
        return sc.DEFAULT_PROMPTS
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start + 1}): save it as UTF-8, one sentence "
                         "a line") from None
    prompts = []
    for i, line in enumerate(text.splitlines()):
        seed, tab, text = line.partition("\t")
        if tab and seed.strip().isdigit():
            prompts.append((text.strip(), int(seed)))
        elif line.strip():
            prompts.append((line.strip(), 11 + i))
    if not prompts:
        raise ValueError(f"{path} holds no sentence: write one sentence a line (optionally SEED<TAB>sentence)")
    return tuple(prompts)


def run_reference(run_dir: Path | None) -> tuple[Path | None, dict]:
    """The run's training data (its reference voice) and run.json."""
    run_json = read_json(run_dir / RUN_JSON) if run_dir else None
    data = run_json.get("data") if run_json else None
    return (Path(data) if data else None), (run_json or {})
