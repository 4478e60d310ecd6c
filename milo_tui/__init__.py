"""milo-tui: the dashboard process. Never imports torch, transformers or qwen_tts (tests/test_imports.py)."""

__version__ = "0.1.0"
