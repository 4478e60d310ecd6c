"""The audition worker's protocol (docs/worker-protocol.md): the commands the dashboard and milo-say's
peers send, the events the worker answers with, and the playback states, as typed names.

Commands and events travel as one JSON object per line: {"cmd": Cmd, "id": ..., ...} on the worker's
stdin, {"event": Event, "time": ..., ...} on its protocol channel. Both enums are `str` subclasses, so a
member compares equal to the string read back from JSON and is written as that string.
"""
from __future__ import annotations

import random
from enum import Enum

PROTOCOL = 1  # the worker protocol's version, sent in `ready`


class _Wire(str, Enum):
    """A name on the wire: compares equal to, and prints as, the string JSON carries."""

    def __str__(self) -> str:
        return self.value


class Cmd(_Wire):
    LOAD = "load"
    UNLOAD = "unload"
    SAY = "say"
    PLAY = "play"
    OUTPUT = "output"
    STOP = "stop"
    PING = "ping"
    QUIT = "quit"


# Run one at a time, in order, on the worker's job thread; the others are answered at once.
QUEUED = frozenset({Cmd.LOAD, Cmd.UNLOAD, Cmd.SAY, Cmd.PLAY, Cmd.OUTPUT})
# Kept by the client until they finish, so a crash can report them lost.
TRACKED = frozenset({Cmd.LOAD, Cmd.SAY, Cmd.PLAY})


class Event(_Wire):
    # from the worker
    READY = "ready"
    FATAL = "fatal"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADED = "unloaded"
    STARTED = "started"
    SENTENCE = "sentence"
    FIRST_AUDIO = "first_audio"
    DONE = "done"
    REPLAYING = "replaying"
    PLAYBACK = "playback"
    OUTPUT = "output"
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    PONG = "pong"
    ERROR = "error"
    # from the client, about the worker process
    CRASHED = "crashed"
    RESTARTED = "restarted"
    GAVE_UP = "gave_up"


# Events that end a tracked command (a `play` ends for the client once it is replaying).
FINISHING = frozenset({Event.DONE, Event.CANCELLED, Event.ERROR, Event.LOADED, Event.REPLAYING})


class Playback(_Wire):
    """`playback` event states, from the worker's output or milo-listen's player."""
    STARTED = "started"
    PLAYING = "playing"
    FINISHED = "finished"
    STOPPED = "stopped"
    DEVICE_LOST = "device_lost"
    NO_DEVICE = "no_device"


# Where a worker's audio goes: this machine's speakers, the laptop through the SSH tunnel, or nowhere.
OUTPUT_TARGETS = ("local", "laptop", "none")

# The audition engine's frame loops (docs/audition.md): the worker's and milo-say's `--path`, and `path`
# in the `ready` event. A loaded model runs FAST or LEAN (the `loaded` event, the samples index); AUTO
# lets the engine choose.
PATH_AUTO, PATH_FAST, PATH_LEAN = "auto", "fast", "lean"
ENGINE_PATHS = (PATH_AUTO, PATH_FAST, PATH_LEAN)


def new_seed() -> int:
    """A seed for a say command that gives none: 31 bits, which every torch generator and numpy accept."""
    return random.randrange(2**31)
