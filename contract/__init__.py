"""What milo-tui's processes must agree on, written once.

The dashboard (`milo_tui`), the trainer (`training`) and the audition engine (`inference`) run as
separate processes and talk only through files and lines. This package holds the names, numbers and
formats they share: the run folder and its statuses (`runfolder`), exit codes (`exits`), run defaults
(`defaults`), audio constants (`audio`), the worker protocol (`protocol`), the samples index
(`samples`), sentence splitting (`text`), what a checkpoint folder holds (`checkpoint`), and the laptop
wire format with its player (`listen`, one self-contained file a laptop can copy).

It imports none of the three, nor torch, transformers, qwen_tts or Textual (the import contracts in
pyproject.toml, checked by tests/foundation/test_layers.py).
"""

__version__ = "0.1.0"
