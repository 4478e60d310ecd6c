"""A run's two reference rows, each made once per run by its scorer: the ceiling (held-out real clips of the
corpus: the best a voice can score) and the baseline (the base model zero-shot on the same prompts: what a
fine-tune must beat). A row that cannot be made holds its `not scored: <why>` in the file; nothing is raised."""
from __future__ import annotations

import os
from pathlib import Path

from contract import scores as sc
from contract.errors import one_line
from contract.runfolder import write_json_atomic
from inference.scoring.scorer import log, score_baseline, score_ceiling


def ceiling_row(run_dir: Path, scorer, reference) -> None:
    """The run's ceiling row, once per run (a failure is recorded in the file, not raised)."""
    ceiling = run_dir / sc.CEILING_JSON
    if ceiling.exists():
        return
    sc.set_state(run_dir, "ceiling", sc.RUNNING, section="rows", pid=os.getpid())
    try:
        write_json_atomic(ceiling, score_ceiling(scorer, reference) if reference.held_out else
              {"v": sc.SCORES_VERSION, "row": "ceiling", "error": sc.not_scored("too few corpus clips to hold some out")})
        sc.set_state(run_dir, "ceiling", sc.DONE, section="rows")
    except Exception as exc:  # noqa: BLE001
        write_json_atomic(ceiling, {"v": sc.SCORES_VERSION, "row": "ceiling", "error": sc.not_scored(str(exc))})
        sc.set_state(run_dir, "ceiling", sc.FAILED, section="rows", error=str(exc))


def baseline_row(run_dir: Path, run_json: dict, scorer, reference, *, device: str, prompts) -> bool:
    """The run's baseline row, once per run; whether it was made now."""
    baseline = run_dir / sc.BASELINE_JSON
    if baseline.exists():
        return False
    base = run_json.get("base_model")
    ref_audio = run_json.get("ref_audio") or (str(reference.held_out[0].audio) if reference.held_out else None)
    if not base or not ref_audio:
        why = "run.json names no base model or reference audio"
        write_json_atomic(baseline, {"v": sc.SCORES_VERSION, "row": "baseline", "error": sc.not_scored(why)})
        sc.set_state(run_dir, "baseline", sc.FAILED, section="rows", error=why)
        return True
    sc.set_state(run_dir, "baseline", sc.RUNNING, section="rows", pid=os.getpid())
    try:
        write_json_atomic(baseline, score_baseline(Path(base), Path(ref_audio), scorer, reference, device=device,
                                                   prompts=prompts, say=log))
        sc.set_state(run_dir, "baseline", sc.DONE, section="rows")
    except Exception as exc:  # noqa: BLE001
        why = one_line(exc)[:200]
        log(f"baseline: {why}")
        write_json_atomic(baseline, {"v": sc.SCORES_VERSION, "row": "baseline", "error": sc.not_scored(why)})
        sc.set_state(run_dir, "baseline", sc.FAILED, section="rows", error=why)
    return True
