"""Exit codes of every milo process, in one table: the trainer (`milo-train run`), its keeper, the
preparation step (`milo-train prepare`), the scorer (`milo-train eval` and a run's
`python -m inference.scoring queue`; docs/scoring.md) and `milo-say`. A code means the same thing whichever process
returns it, so state.json's `exit_code` and a shell script's `$?` read alike (docs/run-folder.md).
"""
from __future__ import annotations

OK = 0            # finished, or stopped cleanly on SIGTERM/SIGINT (a resume point saved)
ERROR = 1         # unexpected error: the traceback is in the log, its last line in state.json
USAGE = 2         # bad command line
BAD_INPUT = 3     # bad base model, data, audio, checkpoint or text: the message names the file and line
OOM = 4           # out of (GPU) memory: the message says what to lower
DISK_FULL = 5     # no space left while saving: earlier checkpoints intact
NOT_PLAYED = 6    # milo-say: the WAV was written but could not be played (no device, no listener)
CANNOT_START = 127  # the keeper: the trainer's command cannot be run at all (as a shell says it)
INTERRUPTED = 130   # ctrl+c outside the trainer's own handler (128 + SIGINT, as a shell says it)

# What a restart cannot cure: the same command would fail the same way.
NO_RESTART = frozenset({USAGE, BAD_INPUT, OOM, DISK_FULL})


def describe(code: int) -> str:
    """A process's end in a few words: "exit 3", or "killed by SIGTERM" for a negative status (as
    subprocess reports a signal)."""
    if code >= 0:
        return f"exit {code}"
    import signal

    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
