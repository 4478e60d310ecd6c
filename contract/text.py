"""What an audition may say: one rule set shared by the audition screen, the worker and milo-say.

Torch-free. A text is stripped, refused when empty or longer than `MAX_CHARS`, and split into
sentences that are synthesized one after another (streaming: the first sentence plays while the
next is generated). A sentence longer than `MAX_SENTENCE_CHARS` is cut at a comma, semicolon or
colon, else between words, so no single generation runs away with the whole text.
"""
from __future__ import annotations

import re

MAX_CHARS = 1200           # about 80 s of speech: longer texts are refused with this number
MAX_SENTENCE_CHARS = 300   # one generation; longer sentences are cut at punctuation or spaces

# A sentence ends at . ! ? ... ; (Latin, followed by space) or at CJK full stops (no space needed).
_SENTENCE_END = re.compile(r"(?<=[.!?;\u2026])\s+|(?<=[\u3002\uff01\uff1f\uff1b])")
_SOFT_BREAK = re.compile(r"(?<=[,:\u3001\uff0c\uff1a])\s*")


class TextError(ValueError):
    """The text cannot be auditioned; the message is one line saying why and what the limit is."""


def _cut(sentence: str, limit: int) -> list[str]:
    """Cut a too-long sentence into pieces of at most `limit` characters, preferring commas."""
    pieces: list[str] = []
    current = ""
    for part in (p for p in _SOFT_BREAK.split(sentence) if p):
        candidate = f"{current} {part}".strip() if current else part
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(part) > limit:  # no comma close enough: cut between words (or hard, for CJK runs)
            cut = part.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            pieces.append(part[:cut].strip())
            part = part[cut:].strip()
        current = part
    if current:
        pieces.append(current)
    return pieces


def split_sentences(text: str, max_chars: int = MAX_CHARS, max_sentence_chars: int = MAX_SENTENCE_CHARS,
                    first_chars: int | None = None) -> list[str]:
    """The sentences to synthesize, in order. Raises TextError for empty or too-long text.
    `first_chars`: a first sentence longer than this is cut in two (at a comma where it can), so the
    first generation is short and its audio comes soon (the speech server)."""
    if not isinstance(text, str):
        raise TextError("the text must be a string")
    clean = " ".join(text.split())
    if not clean:
        raise TextError("nothing to say: the text is empty")
    if len(clean) > max_chars:
        raise TextError(f"text too long: {len(clean)} characters, the limit is {max_chars} "
                        f"(split it into several auditions)")
    sentences: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE_END.split(clean)):
        if not sentence:
            continue
        sentences.extend(_cut(sentence, max_sentence_chars) if len(sentence) > max_sentence_chars else [sentence])
    if first_chars and len(sentences[0]) > first_chars:
        head, *rest = _cut(sentences[0], first_chars)
        sentences[:1] = [head, " ".join(rest)] if rest else [head]
    return sentences
