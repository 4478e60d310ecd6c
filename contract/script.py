"""The prompts a speaker reads in a recording session, and the training text each one stands for.

Torch-free. A script is a UTF-8 text file, one prompt a line; blank lines and `#` lines are skipped. The
screen shows a prompt as written ("It costs $45."), but a model learns from what was said, so each prompt
also carries its training text with numbers and symbols spelled out ("It costs forty-five dollars.").
A line may give that text itself after a TAB; otherwise `normalize_text` writes it.

normalize_text's readings (American English; one style everywhere so the training text is consistent):
  - numbers: num2words without its commas and "and": 1,250 -> "one thousand two hundred fifty";
    3.14 -> "three point one four"; -5 -> "minus five"; 007 (a leading zero) -> digit by digit
  - years: any bare 4-digit number from 1100 to 2099 written without a comma is a year: 1999 ->
    "nineteen ninety-nine", 2026 -> "twenty twenty-six", 2005 -> "two thousand five" (write a quantity
    with its comma, 1,500, to have it read as a number); 1990s -> "nineteen nineties"
  - money: $45 -> "forty-five dollars", $1 -> "one dollar", $3.50 -> "three dollars and fifty cents",
    $0.99 -> "ninety-nine cents", $2.5 million -> "two point five million dollars"; € euros/cents, £ pounds/pence
  - 15% -> "fifteen percent"; 1st 21st -> "first twenty-first"; 20°C -> "twenty degrees Celsius"
  - dates: "March 3" -> "March third", "3 March" -> "the third of March"
  - times: 3:30 -> "three thirty", 7:05 -> "seven oh five", 10:00 -> "ten o'clock", 10:00 am -> "ten a m",
    7pm / 7 p.m. -> "seven p m"
  - phone-like groups 555-0142 / 555-123-4567 -> digit by digit with "oh" for zero, groups split by commas;
    other ranges 10-15 -> "ten to fifteen"
  - & -> "and"; Mr. Mrs. Ms. -> "Mister" "Missus" "Miz"; Dr. and St. before a capitalized word -> "Doctor",
    "Saint", elsewhere "Drive", "Street"
Everything else (punctuation, case) is kept. Whatever digits no rule read are spelled as numbers, so the
result never holds a digit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from num2words import num2words

MAX_PROMPT_CHARS = 300   # about 20 s read aloud: longer takes are hard to get right in one go


@dataclass(frozen=True)
class Prompt:
    id: str        # p0001, p0002, ... by position among the script's prompts
    display: str   # what the speaker reads on screen
    text: str      # the training text: what was said, numbers and symbols spelled out


class ScriptError(ValueError):
    """The script cannot be used; the message is one line naming the file (and line) and what to do."""


def read_script(path) -> list[Prompt]:
    """The prompts of the UTF-8 text file at `path` (a BOM is fine). Raises ScriptError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read the script ({exc.strerror or exc}): "
                          f"give a text file with one prompt a line") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScriptError(f"{path} line {line}: not UTF-8 text: save the script as UTF-8") from None
    return parse_script(text, str(path))


def parse_script(text: str, origin: str) -> list[Prompt]:
    """The prompts of a script's text; `origin` names it in errors. Raises ScriptError."""
    entries: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):   # a BOM read as text
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        display, _, given = line.partition("\t")
        display, given = display.strip(), " ".join(given.split())
        if len(display) > MAX_PROMPT_CHARS or len(given) > MAX_PROMPT_CHARS:
            size = max(len(display), len(given))
            raise ScriptError(f"{origin} line {number}: the prompt is {size} characters, over the limit of "
                              f"{MAX_PROMPT_CHARS}: split it into shorter prompts")
        if not display:
            raise ScriptError(f"{origin} line {number}: a training text after a TAB but no prompt before it: "
                              f"write the prompt first")
        entries.append((number, display, given or normalize_text(display)))
    if not entries:
        raise ScriptError(f"{origin}: no prompts (only blank and # lines): write one prompt a line")
    seen: dict[str, int] = {}
    for number, _, spoken in entries:
        key = " ".join(spoken.casefold().split())
        if key in seen:
            raise ScriptError(f"{origin} lines {seen[key]} and {number}: the same prompt twice: "
                              f"remove or reword one of them")
        seen[key] = number
    width = max(4, len(str(len(entries))))
    return [Prompt(f"p{i:0{width}d}", display, spoken) for i, (_, display, spoken) in enumerate(entries, 1)]


def starter_path() -> Path:
    """The starter script shipped with the package (contract/scripts/starter.txt)."""
    return Path(__file__).parent / "scripts" / "starter.txt"


def starter_script() -> list[Prompt]:
    return read_script(starter_path())


# ---- normalize_text ---------------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
_MONTH = "(?:" + "|".join(MONTHS) + ")"
_DIGIT_WORDS = ("oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"   # 1,250.5 or 1250.5
_SCALE = r"(?:\s(million|billion|trillion|thousand)\b)?"
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}
_AMPM = r"(?:\s?([AaPp])\.?[Mm]\b(?:\.(?!\s*$))?)"   # am, a.m., PM; a final "." is left to end the sentence
_UNITS = {"C": " Celsius", "F": " Fahrenheit", "": ""}


def _clean(words: str) -> str:
    """num2words' British commas and "and" dropped: "one thousand two hundred fifty"."""
    return " ".join(words.replace(",", "").replace(" and ", " ").split())


def _cardinal(number: str) -> str:
    number = number.replace(",", "")
    if "." in number:
        whole, _, fraction = number.partition(".")
        digits = " ".join("zero" if d == "0" else _DIGIT_WORDS[int(d)] for d in fraction)
        return f"{_cardinal(whole or '0')} point {digits}"
    if len(number) > 1 and number.startswith("0"):
        return " ".join(_DIGIT_WORDS[int(d)] for d in number)
    return _clean(num2words(int(number)))


def _ordinal(number: str) -> str:
    return _clean(num2words(int(number.replace(",", "")), to="ordinal"))


def _year(number: str) -> str:
    return _clean(num2words(int(number), to="year"))


def _plural(words: str) -> str:
    """The last word in the plural: "nineteen ninety" -> "nineteen nineties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _money(match: re.Match) -> str:
    one, many, cent, cents = _CURRENCIES[match[1]]
    amount, scale = match[2].replace(",", ""), match[3]
    if scale:
        return f"{_cardinal(amount)} {scale} {many}"
    whole, _, fraction = amount.partition(".")
    if len(fraction) not in (0, 2):
        return f"{_cardinal(amount)} {many}"
    units, hundredths = int(whole or 0), int(fraction or 0)
    parts = []
    if units or not hundredths:
        parts.append(f"{_cardinal(str(units))} {one if units == 1 else many}")
    if hundredths:
        parts.append(f"{_cardinal(str(hundredths))} {cent if hundredths == 1 else cents}")
    return " and ".join(parts)


def _time(match: re.Match) -> str:
    hour, minute, ampm = int(match[1]), int(match[2]), match[3]
    words = _cardinal(str(hour))
    if minute == 0:
        words += "" if ampm else " o'clock"
    elif minute < 10:
        words += f" oh {_cardinal(str(minute))}"
    else:
        words += f" {_cardinal(str(minute))}"
    return words + (f" {ampm.lower()} m" if ampm else "")


def _digits(match: re.Match) -> str:
    return ", ".join(" ".join(_DIGIT_WORDS[int(d)] for d in group) for group in match[0].split("-"))


_RULES: list[tuple[re.Pattern, object]] = [   # in this order: earlier readings win
    (re.compile(r"\s?&\s?"), " and "),
    (re.compile(r"\bMr\.(?=\s)"), "Mister"),
    (re.compile(r"\bMrs\.(?=\s)"), "Missus"),
    (re.compile(r"\bMs\.(?=\s)"), "Miz"),
    (re.compile(r"\bDr\.(?=\s+[A-Z])"), "Doctor"),
    (re.compile(r"\bSt\.(?=\s+[A-Z])"), "Saint"),
    (re.compile(r"\bDr\.(?=\s*$)"), "Drive."),
    (re.compile(r"\bSt\.(?=\s*$)"), "Street."),
    (re.compile(r"\bDr\."), "Drive"),
    (re.compile(r"\bSt\."), "Street"),
    (re.compile(r"(?<![\d-])(?:\d{3}-)?\d{3}-\d{4}(?![\d-])"), _digits),
    (re.compile(r"(?<=\d)\s?[-\u2013]\s?(?=[$\u20ac\u00a3]?\d)"), " to "),
    (re.compile(r"(?<![\w.])-(?=\d)"), "minus "),
    (re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b" + _AMPM + "?"), _time),
    (re.compile(r"\b(1[0-2]|0?[1-9])" + _AMPM), lambda m: f"{_cardinal(m[1])} {m[2].lower()} m"),
    (re.compile(r"([$\u20ac\u00a3])(" + _NUMBER + ")" + _SCALE), _money),
    (re.compile(r"(" + _NUMBER + r")\s?%"), lambda m: f"{_cardinal(m[1])} percent"),
    (re.compile(r"(" + _NUMBER + r")\s?\u00b0\s?([CF]?)(?![A-Za-z])"),
     lambda m: f"{_cardinal(m[1])} degrees{_UNITS[m[2]]}"),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), lambda m: _ordinal(m[1])),
    (re.compile(r"\b(" + _MONTH + r")\s(\d{1,2})\b(?![,.:]\d)"), lambda m: f"{m[1]} {_ordinal(m[2])}"),
    (re.compile(r"\b(\d{1,2})\s(" + _MONTH + r")\b"), lambda m: f"the {_ordinal(m[1])} of {m[2]}"),
    (re.compile(r"\b(1[1-9]\d\d|20\d\d)s\b"), lambda m: _plural(_year(m[1]))),
    (re.compile(r"(?<![\d,.])\b(1[1-9]\d\d|20\d\d)\b(?![,.]\d)"), lambda m: _year(m[1])),
    (re.compile(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)"), " "),   # 5km -> 5 km
    (re.compile(_NUMBER), lambda m: _cardinal(m[0])),
]


def normalize_text(display: str) -> str:
    """`display` as a speaker says it: numbers and symbols spelled out (the readings are listed at the top
    of this module), all other text kept as it is. The result holds no digit."""
    text = display
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
