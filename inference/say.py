"""`milo-say CHECKPOINT "text" [-o out.wav] [--play] [--seed N]`: one audition from a script.

Writes a 24 kHz mono 16-bit WAV: to `-o` when given; otherwise into the run's samples/ with an index
line (source "milo-say") when the checkpoint sits in a run folder, else ./milo-say-<checkpoint>-<seed>.wav.
With --play the audio plays here while it is generated; with --laptop it streams to milo-listen. Timings go to stderr, the WAV path to stdout.

Ctrl+C (SIGINT) stops the audition and saves the audio made so far in the same place, the same way.

Exit codes: 0 done; 1 unexpected error; 2 bad command line; 3 bad input (checkpoint, text, speaker,
sampling option); 6 the WAV is saved but could not be played (no or lost audio device); 130 interrupted.
The table is contract/exits.py.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path

from contract import exits
from contract.protocol import ENGINE_PATHS, Playback


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="milo-say", description="Speak a sentence with a custom-voice checkpoint.")
    p.add_argument("checkpoint", help="checkpoint folder (e.g. checkpoints/run/epoch-0004), or RUN/best: the run's "
                                      "best checkpoint by the [best] rule (docs/scoring.md)")
    p.add_argument("text", help="what to say (long texts are split into sentences; limit in docs/audition.md)")
    p.add_argument("-o", "--output", metavar="WAV", help="where to write the WAV")
    p.add_argument("--play", action="store_true", help="play it on this machine while it is generated")
    p.add_argument("--audio-device", metavar="DEV", help="output device for --play (name or index)")
    p.add_argument("--laptop", action="store_true",
                   help="stream it to milo-listen through the SSH tunnel (README: Listening on your laptop)")
    p.add_argument("--port", type=int, default=None, help="milo-listen's tunnel port (default 8768)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same audio); default: random")
    p.add_argument("--speaker", help="speaker name (default: the checkpoint's own)")
    p.add_argument("--language", default="auto", help="language tag (default auto)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--path", choices=ENGINE_PATHS, default=None,
                   help="frame loop: fast (static caches, CUDA graph on CUDA) or lean (the reference); same "
                        "codes either way (default auto: fast, or $MILO_AUDITION_PATH)")
    p.add_argument("--greedy", action="store_true", help="no sampling (talker and sub-talker)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--max-new-tokens", type=int, help="codec frames per sentence at most (12.5 a second)")
    p.add_argument("--no-budget", action="store_true",
                   help="no per-sentence length budget (stock behaviour: up to --max-new-tokens)")
    return p


def _run_dir_of(checkpoint: Path) -> Path | None:
    from contract.runfolder import RUN_JSON, STATE_JSON

    parent = checkpoint.parent
    return parent if (parent / RUN_JSON).is_file() or (parent / STATE_JSON).is_file() else None


def _unwritable(path: Path) -> str | None:
    """Why a WAV cannot be written at `path` (checked before the model loads), or None."""
    folder = path.parent
    if path.is_dir():
        return "it is a folder (name a .wav file)"
    if not folder.is_dir():
        return f"the folder {folder} does not exist (create it, or pick another -o)"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


def _say(line: str) -> None:
    print(f"milo-say: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    # Ctrl+C is how the operator stops an audition: take it even when started with SIGINT ignored (a
    # background job of a script, nohup), where Python would leave it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while the model loads (once audio flows, _speak keeps it)
        _say("interrupted before any audio was made: nothing saved")
        return exits.INTERRUPTED


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    info = _checked(args)
    return exits.BAD_INPUT if info is None else _speak(args, info)


def _checked(args):
    """The checkpoint to speak with (contract.checkpoint.CheckpointInfo), once the text, the output and the
    checkpoint are known good, before any model loads; None after saying what is wrong."""
    from contract.checkpoint import CheckpointError, validate_checkpoint
    from contract.configfile import ConfigError
    from contract.scores import NoBest, resolve_checkpoint
    from contract.text import TextError, split_sentences

    try:
        split_sentences(args.text)
    except TextError as exc:
        _say(str(exc))
        return None
    if args.output:
        problem = _unwritable(Path(args.output))
        if problem:
            _say(f"cannot write {args.output}: {problem}")
            return None
    try:
        checkpoint, note = resolve_checkpoint(args.checkpoint)
    except (NoBest, ConfigError) as exc:
        _say(str(exc))
        return None
    if note:
        _say(note)
    try:
        return validate_checkpoint(checkpoint)
    except CheckpointError as exc:
        _say(f"{exc.path} cannot be auditioned:")
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def _speak(args, info) -> int:
    """Load, speak (playing as it comes with --play/--laptop), save, sum up; Ctrl+C keeps what was made."""
    from contract.audio import SAMPLE_RATE
    from contract.checkpoint import CheckpointError
    from contract.text import TextError
    from inference.engine import Engine, EngineError
    from inference.pipeline import Audition

    try:
        engine = Engine(device=args.device, tune_threads=True, path=args.path)
        loaded = engine.load(info.path)
        audition = Audition(engine, args.text, seed=args.seed, sampling=_sampling(args), speaker=args.speaker,
                            language=args.language, budget=not args.no_budget, source="milo-say", load_s=loaded.load_s)
    except (CheckpointError, EngineError, TextError) as exc:
        _say(str(exc))
        return exits.BAD_INPUT

    output, playback = None, {}
    if args.play or args.laptop:
        from contract.audio import DEFAULT_PORT
        from contract.listen import parse_device
        from contract.playback import make_output

        output = make_output("laptop" if args.laptop else "local", device=parse_device(args.audio_device),
                             port=args.port or DEFAULT_PORT, on_event=lambda e: playback.update({e["state"]: e}))
        output.start("milo-say", {"checkpoint": loaded.info.name, "text": args.text, "expected_s": audition.expected_s})

    run_dir = None if args.output else _run_dir_of(loaded.info.path)

    def save(**tags) -> Path:
        """Write the WAV where it belongs (each path written atomically: temporary name, then rename)."""
        if args.output:
            return audition.save_wav(args.output)
        if run_dir is not None:
            return audition.save_sample(run_dir, **tags)[1]
        return audition.save_wav(f"milo-say-{loaded.info.name}-{audition.seed}.wav")

    def sink(chunk) -> None:
        if len(audition.chunks) == 1:
            _say(f"first audio after {audition.timings.first_audio_s or 0:.2f} s; ctrl+c now stops and keeps what is made")
        if output is not None:
            output.feed(chunk)

    try:
        audition.run(sink)
    except (TextError, EngineError) as exc:
        _say(str(exc))
        return exits.BAD_INPUT
    except KeyboardInterrupt:
        # Ctrl+C keeps the audio made so far: saved like a whole take, the index line marked interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if output is not None:
            output.close()
        if not audition.chunks:
            _say("interrupted before any audio was made: nothing saved")
            return exits.INTERRUPTED
        try:
            out = save(interrupted=True)
        except OSError as exc:
            _say(f"interrupted; cannot save the WAV: {exc.strerror or exc} ({exc.filename or args.output or run_dir})")
            return exits.INTERRUPTED
        _say(f"interrupted: the {len(audition.audio()) / SAMPLE_RATE:.2f} s of audio made so far is saved in {out}")
        print(out)
        return exits.INTERRUPTED

    try:
        out = save()
    except OSError as exc:
        _say(f"cannot save the WAV: {exc.strerror or exc} ({exc.filename or args.output or run_dir})")
        return exits.DISK_FULL if exc.errno == errno.ENOSPC else exits.ERROR
    _say(audition.summary())
    print(out)
    return exits.OK if output is None else _played(output, playback, out)


def _sampling(args) -> dict:
    """The sampling overrides the flags ask for (None: the checkpoint's own setting)."""
    greedy = {"do_sample": False, "subtalker_dosample": False} if args.greedy else {}
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_new_tokens,
                subtalker_temperature=args.temperature, subtalker_top_k=args.top_k, subtalker_top_p=args.top_p,
                **greedy)


def _played(output, playback: dict, out: Path) -> int:
    """Wait for the playback of a saved audition to finish; its exit code."""
    try:
        output.end()
        output.wait_idle()
    except KeyboardInterrupt:
        _say(f"interrupted: playback stopped; the WAV is saved: {out}")
        return exits.INTERRUPTED
    finally:
        output.close()
    problem = playback.get(Playback.NO_DEVICE) or playback.get(Playback.DEVICE_LOST)
    if problem:
        _say(f"not played: {problem.get('message')}; the WAV is saved: {out}")
        return exits.NOT_PLAYED
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
