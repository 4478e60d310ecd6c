"""How long an audition may run and how long it is expected to be, from its text alone (no torch: the
tests, the worker and milo-say read it before any model loads)."""
from __future__ import annotations

from contract.audio import SAMPLE_RATE, SAMPLES_PER_FRAME as FRAME_SAMPLES

SENTENCE_GAP_S = 0.2          # silence between sentences of one audition
# Frame budget per sentence: a checkpoint that never says end-of-speech (an early epoch, random
# weights) stops after about 3 s + 0.25 s per character instead of stock's 2048 frames (164 s).
BUDGET_BASE_S, BUDGET_PER_CHAR_S = 3.0, 0.25
# Expected length of speech for the player's start policy: English read aloud runs at about 14-15
# characters a second (150 words a minute); a lower figure errs towards a longer clip, i.e. a later, safer
# start.
SPEECH_CHARS_PER_S, SPEECH_LEAD_S = 13.0, 0.4


def frame_budget(text: str, max_new_tokens: int) -> int:
    """Most talker tokens one sentence may take (see BUDGET_*); never more than `max_new_tokens`."""
    seconds = BUDGET_BASE_S + BUDGET_PER_CHAR_S * len(text)
    return max(2, min(int(max_new_tokens), int(seconds * SAMPLE_RATE / FRAME_SAMPLES) + 1))


def sentence_limit(text: str, max_new_tokens: int, budget: bool = True) -> int:
    """The talker tokens one sentence gets: its budget, or `max_new_tokens` with the budget off."""
    return frame_budget(text, max_new_tokens) if budget else max(1, int(max_new_tokens))


def expected_audio_s(sentences: list[str], max_new_tokens: int, budget: bool = True) -> float:
    """A guess at an audition's length from its text, for the player's start policy: speech at
    SPEECH_CHARS_PER_S plus a short lead per sentence, never more than the frames allowed (the sentence
    budget or max_new_tokens), plus the pauses between sentences. A guess: the policy also copes with a
    wrong one (docs/audition.md, "Playback")."""
    total = 0.0
    for i, sentence in enumerate(sentences):
        cap = sentence_limit(sentence, max_new_tokens, budget) * FRAME_SAMPLES / SAMPLE_RATE
        total += min(SPEECH_LEAD_S + len(sentence) / SPEECH_CHARS_PER_S, cap) + (SENTENCE_GAP_S if i else 0.0)
    return round(total, 3)
