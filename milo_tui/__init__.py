"""milo-tui: the dashboard process. Never imports torch, transformers or qwen_tts (tests/foundation/test_imports.py)."""

from contract import __version__

__all__ = ["__version__"]
