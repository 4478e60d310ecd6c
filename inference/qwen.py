"""The one door to qwen_tts: every module of ours imports it through `import_qwen_tts()`.

Why a door: `import qwen_tts` also imports its 25 Hz speech tokenizer, which imports
`torchaudio.compliance.kaldi` at module level. PyPI's newest torchaudio (2.11) is built for torch 2.11;
next to another torch (the CPU torch 2.13 we install) `import torchaudio` raises
`OSError: Could not load this library: .../_torchaudio.abi3.so`, and qwen_tts with it. The 12 Hz
codec that Qwen3-TTS-12Hz models use never calls torchaudio.

So, before importing qwen_tts, we try the real torchaudio. If it loads, nothing changes (a DGX Spark
with a matching CUDA torch + torchaudio). If it does not, we register a placeholder `torchaudio`
package whose every attribute raises `TorchaudioUnavailable` naming the original error: qwen_tts
imports, the 12 Hz path works, and anything that really needs torchaudio fails with that one line.

Importing this module also turns the hub off (unless the environment says otherwise): every model this
project loads is a local folder, so a lookup that reaches for the network is a mistake, and fails fast.
It is done on import, before transformers can be imported through this door.
"""
from __future__ import annotations

import contextlib
import importlib.machinery
import io
import os
import re
import sys
import types

from contract.errors import one_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_PLACEHOLDER_MODULES = ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")

# qwen_tts's 25 Hz tokenizer prints this four-line notice at import when flash-attn is missing, which on a
# DGX Spark (no flash-attn build for the GB10) is always: we use sdpa, so it says nothing worth reading.
_FLASH_ATTN_NOTICE = re.compile(r"\n?\*{8}\nWarning: flash-attn is not installed\.[^\n]*\n\*{8}\n[ \t]*\n?")

# Why the placeholder was installed (None while the real torchaudio is in use or untried).
torchaudio_problem: str | None = None


class TorchaudioUnavailable(RuntimeError):
    """Raised when code touches torchaudio while the placeholder stands in for it."""


class _Placeholder(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise TorchaudioUnavailable(
            f"torchaudio is unusable here ({torchaudio_problem}); "
            f"{self.__name__}.{name} is needed only by Qwen3-TTS's 25 Hz tokenizer. "
            "Install a torchaudio built for this torch to use it."
        )


def guard_torchaudio() -> str | None:
    """Make `import qwen_tts` possible when torchaudio cannot load. Returns the reason, or None
    when the real torchaudio loaded (or a placeholder is already in place)."""
    global torchaudio_problem
    existing = sys.modules.get("torchaudio")
    if existing is not None:
        return torchaudio_problem if isinstance(existing, _Placeholder) else None
    try:
        import torchaudio  # noqa: F401
        return None
    except (OSError, ImportError) as exc:
        torchaudio_problem = one_line(exc)
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]
    modules = {}
    for name in _PLACEHOLDER_MODULES:
        mod = _Placeholder(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
        mod.__path__ = []
        mod.__milo_placeholder__ = True
        modules[name] = mod
    modules["torchaudio"].compliance = modules["torchaudio.compliance"]
    modules["torchaudio.compliance"].kaldi = modules["torchaudio.compliance.kaldi"]
    sys.modules.update(modules)
    return torchaudio_problem


def import_qwen_tts():
    """Import and return the qwen_tts package (after `guard_torchaudio`)."""
    guard_torchaudio()
    if "qwen_tts" in sys.modules:
        return sys.modules["qwen_tts"]
    # What qwen_tts prints at import is caught (stdout may be a protocol channel, the audition worker's):
    # its flash-attn notice is dropped, anything else goes on to stderr, and an import error still raises.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            import qwen_tts
    finally:
        rest = _FLASH_ATTN_NOTICE.sub("", printed.getvalue())
        if rest.strip():
            sys.stderr.write(rest)
            sys.stderr.flush()
    return qwen_tts
