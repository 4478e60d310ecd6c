"""Recording scripts (contract/script.py, contract/diphones.py): reading a script, spelling numbers out for
the training text, diphone coverage, and the starter script shipped with the package."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from contract.diphones import Coverage, all_diphones, diphones, order_for_coverage, phones, words
from contract.script import MONTHS, Prompt, ScriptError, normalize_text, parse_script, read_script, starter_script

DOCS = Path(__file__).resolve().parents[2] / "docs" / "recording.md"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Sundays", "Saturdays")


def _prompts(*texts: str) -> list[Prompt]:
    return [Prompt(f"p{i:04d}", t, t) for i, t in enumerate(texts, 1)]


# ---- reading a script -------------------------------------------------------------------------------

def test_read_script_skips_comments_and_blanks_and_takes_the_text_after_a_tab(tmp_path):
    path = tmp_path / "my script.txt"
    path.write_bytes("\ufeff# a comment\n\nIt costs $45.\r\n   \n  # indented comment\n"
                     "Call 555-0142.\tCall five five five, oh one four two.\nGood night!\n".encode())
    assert read_script(path) == [
        Prompt("p0001", "It costs $45.", "It costs forty-five dollars."),
        Prompt("p0002", "Call 555-0142.", "Call five five five, oh one four two."),
        Prompt("p0003", "Good night!", "Good night!"),
    ]


def test_a_bom_read_as_text_is_no_part_of_the_first_prompt():
    assert parse_script("\ufeffHello there.\n", "copy.txt")[0].display == "Hello there."


def test_ids_grow_a_digit_past_9999():
    prompts = parse_script("".join(f"say {i}\tsay number {i}\n" for i in range(10000)), "big.txt")
    assert (prompts[0].id, prompts[-1].id) == ("p00001", "p10000")


@pytest.mark.parametrize("content, expected", [
    (b"# only a comment\n\n", r"empty\.txt: no prompts"),
    (b"fine line\n" + b"x" * 301 + b"\n", r"empty\.txt line 2: the prompt is 301 characters, over the limit of 300"),
    (b"Hello there.\nsecond\n\nhello   there.\n", r"empty\.txt lines 1 and 4: the same prompt twice"),
    (b"one line\nbad \xff byte\n", r"empty\.txt line 2: not UTF-8 text"),
])
def test_a_bad_script_says_where_and_what_to_do_in_one_line(tmp_path, content, expected):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(ScriptError, match=expected) as caught:
        read_script(path)
    assert "\n" not in str(caught.value) and str(caught.value).count(": ") >= 2   # where: what: what to do


def test_a_missing_script_is_named(tmp_path):
    with pytest.raises(ScriptError, match=r"nowhere\.txt: cannot read the script"):
        read_script(tmp_path / "nowhere.txt")


# ---- normalize_text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("display, text", [
    ("I have 3 cats.", "I have three cats."),
    ("1,250 people came.", "one thousand two hundred fifty people came."),
    ("About 2,400,000 people.", "About two million four hundred thousand people."),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("It costs $45.", "It costs forty-five dollars."),
    ("Just $1 each.", "Just one dollar each."),
    ("That is $3.50.", "That is three dollars and fifty cents."),
    ("Only $0.99!", "Only ninety-nine cents!"),
    ("It sold for $2.5 million.", "It sold for two point five million dollars."),
    ("€20 or £5 or £2.50", "twenty euros or five pounds or two pounds and fifty pence"),
    ("Save 15% today.", "Save fifteen percent today."),
    ("1st 2nd 3rd 21st", "first second third twenty-first"),
    ("In 1999 and in 2026.", "In nineteen ninety-nine and in twenty twenty-six."),
    ("Since 2000, not 2005.", "Since two thousand, not two thousand five."),
    ("Built in 1150, rebuilt in 1905.", "Built in eleven fifty, rebuilt in nineteen oh-five."),
    ("The 1990s", "The nineteen nineties"),
    ("March 3, 2026", "March third, twenty twenty-six"),
    ("On 3 March we go.", "On the third of March we go."),
    ("At 3:30 or 7:05.", "At three thirty or seven oh five."),
    ("It opens at 10:00.", "It opens at ten o'clock."),
    ("At 10:00 am and 7:45 PM.", "At ten a m and seven forty-five p m."),
    ("Leave at 7 p.m.", "Leave at seven p m."),
    ("At 7 a.m. tomorrow", "At seven a m tomorrow"),
    ("Salt & pepper", "Salt and pepper"),
    ("Dr. Lee lives on Elm Dr.", "Doctor Lee lives on Elm Drive."),
    ("St. Paul is near Main St. and Oak St.", "Saint Paul is near Main Street and Oak Street."),
    ("Mr. and Mrs. Park met Ms. Diaz.", "Mister and Missus Park met Miz Diaz."),
    ("Call 555-0142 or 555-203-4871.",
     "Call five five five, oh one four two or five five five, two oh three, four eight seven one."),
    ("Wait 10-15 minutes.", "Wait ten to fifteen minutes."),
    ("It is -5°C, or 23°F, and 20° inside.",
     "It is minus five degrees Celsius, or twenty-three degrees Fahrenheit, and twenty degrees inside."),
    ("Agent 007 ran 5km.", "Agent oh oh seven ran five km."),
    ("Keep \"this\", (and this); OK?", "Keep \"this\", (and this); OK?"),
])
def test_normalize_text_spells_numbers_and_symbols_out(display, text):
    assert normalize_text(display) == text


def test_no_starter_prompt_keeps_a_digit_in_its_training_text():
    assert [p.display for p in starter_script() if re.search(r"\d", p.text)] == []


# ---- diphones ---------------------------------------------------------------------------------------

def test_the_diphones_of_a_word_run_from_silence_to_silence():
    assert diphones("voice") == ({"sil-V", "V-OY", "OY-S", "S-sil"}, [])
    assert words("Don't panic, forty-five!") == ["don't", "panic", "forty", "five"]
    assert phones("I see zorblax") == (["sil", "AY", "S", "IY", "sil"], ["zorblax"])


def test_order_for_coverage_is_greedy_and_deterministic():
    # "see me" adds 5; then "me" and "seem" add 1 each (same words: original order); "see", "sea" add nothing.
    prompts = _prompts("see", "see me", "me", "sea", "seem")
    assert [p.display for p in order_for_coverage(prompts)] == ["see me", "me", "seem", "see", "sea"]
    # A tie on new diphones goes to the prompt with fewer words: "steam" (5) before "see me" (5).
    assert [p.display for p in order_for_coverage(_prompts("see me", "steam"))] == ["steam", "see me"]


def test_coverage_counts_the_distinct_diphones_of_kept_prompts():
    coverage = Coverage(_prompts("see", "me", "see zorblax"))
    assert coverage.total == 5   # sil-S S-IY IY-sil sil-M M-IY
    assert coverage.covered([]) == 0
    assert coverage.covered(["p0001"]) == 3
    assert coverage.covered(["p0001", "p0002", "p0003", "p9999"]) == 5
    assert coverage.unknown_words == ["zorblax"]


def test_all_diphones_hold_those_of_cmudict_words():
    found = all_diphones()
    assert {"sil-V", "V-OY", "OY-S", "S-sil"} <= found
    assert 1000 < len(found) < 41 * 41


# ---- the starter script -----------------------------------------------------------------------------

def _has_name(display: str) -> bool:
    """A capitalized word after the first that is neither "I" nor a month or weekday: a person or place."""
    later = re.findall(r"\b[A-Z][a-z]+\b", display.split(" ", 1)[-1])
    return any(w not in MONTHS and w not in WEEKDAYS for w in later)


def test_the_starter_script_is_long_and_varied():
    prompts = starter_script()
    counts = [len(words(p.text)) for p in prompts]
    assert len(prompts) >= 420
    assert [p.display for p, n in zip(prompts, counts) if not 4 <= n <= 20] == []
    assert sum(p.display.endswith("?") for p in prompts) >= 30
    assert sum(p.display.endswith("!") for p in prompts) >= 15
    assert sum(bool(re.search(r"[\d$€£]", p.display)) for p in prompts) >= 30
    assert sum(_has_name(p.display) for p in prompts) >= 20
    assert sum(n <= 6 for n in counts) >= 30   # short phrases
    unknown = sum(len(diphones(p.text)[1]) for p in prompts)
    assert unknown / sum(counts) < 0.02, Coverage(prompts).unknown_words


def test_the_starter_script_is_stored_in_coverage_order():
    prompts = starter_script()
    assert [p.id for p in order_for_coverage(prompts)] == [p.id for p in prompts]


def test_docs_give_the_starter_scripts_measured_coverage():
    prompts = starter_script()
    coverage = Coverage(prompts)
    ids = [p.id for p in prompts]
    held = set().union(*(diphones(p.text)[0] for p in prompts))
    in_cmudict = len(held & all_diphones())
    to_90 = next(n for n in range(1, len(ids) + 1) if coverage.covered(ids[:n]) >= 0.9 * coverage.total)
    n_words = sum(len(words(p.text)) for p in prompts)
    figures = {
        "prompts": f"{len(prompts)} prompts",
        "words": f"{n_words:,} words",
        "minutes": f"about {round(n_words / 2.5 / 60)} minutes",
        "diphones": f"{coverage.total:,} distinct diphones",
        "of cmudict": f"{in_cmudict:,} of the {len(all_diphones()):,} diphones in cmudict "
                      f"({in_cmudict / len(all_diphones()):.0%})",
        "90 %": f"first {to_90} prompts",
    }
    print(figures)
    text = DOCS.read_text(encoding="utf-8")
    assert {k: v for k, v in figures.items() if v not in text} == {}
