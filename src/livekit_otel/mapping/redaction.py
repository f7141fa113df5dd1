"""A ready-made redaction hook for captured text: ``redact_pii``.

It runs on every captured text (transcripts, prompts, tool arguments), so every pattern is
compiled once at import and each pass is a single regular-expression scan.

What is masked:

- e-mail addresses → ``[email]``;
- payment card numbers, 13 to 19 digits, optionally grouped by spaces or dashes → ``[card]``;
- phone numbers, 7 to 15 digits (the E.164 maximum) grouped by spaces, dots, dashes or
  parentheses, with an optional ``+`` → ``[phone]``;
- the same numbers written out in words, as speech-to-text often writes them ("five five
  five one two three four", "double five", "oh" for zero, or words mixed with digit
  groups such as "555 one two three four"): a run of at least three digit words and seven
  digits in all → ``[phone]`` (``[card]`` from 13 digits).

What is left alone: dates (``2024-05-06``, ``12/05/2024``, ``05.12.2024``), IPv4
addresses (``192.168.1.20``), and numbers too short to be a phone number.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

# --- numbers written with digits ---------------------------------------------------------

# a run of digits and the characters that group them, starting and ending with a digit,
# not glued to a word; it is then split around the dates and addresses it contains
_DIGIT_RUN = re.compile(r"(?=[+(\d])(?<![\w+])(?:\+\s?)?\(?\d[\d ()./-]*\d(?!\w)")
_ANY_DIGIT = re.compile(r"\d")
_DATE = (
    r"\d{4}([-/.])\d{1,2}\1\d{1,2}"  # 2024-05-06, 2024/05/06, 2024.05.06
    r"|\d{1,2}([-/.])\d{1,2}\2\d{2}(?:\d{2})?"  # 12/05/2024, 05.12.2024, 6-5-24
)
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_NOT_A_PHONE = re.compile(rf"(?<![\d.])(?:{_DATE}|{_IPV4})(?![\d]|\.\d)")
_CARD_SHAPE = re.compile(r"\d(?:[ -]?\d){12,18}")
_PHONE_EDGES = re.compile(r"^[\s./-]*(.*?)[\s./-]*$", re.DOTALL)

_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15


def _mask_digit_run(match: re.Match[str]) -> str:
    """Mask the phone or card numbers in one run, keeping the dates and addresses in it."""
    run = match.group()
    if sum(ch.isdigit() for ch in run) < _MIN_PHONE_DIGITS:
        return run
    pieces: list[str] = []
    start = 0
    for kept in _NOT_A_PHONE.finditer(run):
        pieces.append(_mask_number(run[start : kept.start()]))
        pieces.append(kept.group())
        start = kept.end()
    pieces.append(_mask_number(run[start:]))
    return "".join(pieces)


def _mask_number(piece: str) -> str:
    """``piece`` with its number masked when it has the digits of a card or a phone."""
    edges = _PHONE_EDGES.match(piece)
    assert edges is not None  # the pattern matches any string
    core = edges.group(1)
    digits = sum(ch.isdigit() for ch in core)
    if _CARD_SHAPE.fullmatch(core):
        label = "[card]"
    elif _MIN_PHONE_DIGITS <= digits <= _MAX_PHONE_DIGITS:
        label = "[phone]"
    else:
        return piece
    return piece[: edges.start(1)] + label + piece[edges.end(1) :]


# --- numbers written out in words ---------------------------------------------------------

_DIGIT_WORD = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_WORD_TOKEN = rf"\b(?:(?:double|triple)[ -])?{_DIGIT_WORD}\b"
_TOKEN = rf"(?:{_WORD_TOKEN}|(?<![\w+])\d{{1,4}}(?!\w))"
_SEPARATOR = r"(?:\s*[,-]\s*|\s+)"
# the lookahead lets the scan skip, cheaply, every position no token can start at
_SPOKEN_RUN = re.compile(rf"(?=[zotfsend\d]){_TOKEN}(?:{_SEPARATOR}{_TOKEN}){{2,}}", re.IGNORECASE)
_SPOKEN_WORD = re.compile(_WORD_TOKEN, re.IGNORECASE)
_DIGIT_WORDS = (
    "zero",
    "oh",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
_REPEATS = {"double": 2, "triple": 3}
_MIN_SPOKEN_WORDS = 3
_MIN_CARD_DIGITS = 13


def _mask_spoken_run(match: re.Match[str]) -> str:
    """Mask a run of spelled-out digits (maybe mixed with digit groups) long enough to be
    a phone or card number."""
    run = match.group()
    words = _SPOKEN_WORD.findall(run)
    if len(words) < _MIN_SPOKEN_WORDS:
        return run
    digits = sum(ch.isdigit() for ch in run)
    for word in words:
        digits += _REPEATS.get(word.split()[0].split("-")[0].lower(), 1)
    if digits < _MIN_PHONE_DIGITS:
        return run
    return "[card]" if digits >= _MIN_CARD_DIGITS else "[phone]"


def _may_spell_digits(text: str) -> bool:
    """A cheap first look: could ``text`` hold three spelled-out digits?"""
    lowered = text.lower()
    return sum(lowered.count(word) for word in _DIGIT_WORDS) >= _MIN_SPOKEN_WORDS


def redact_pii(text: str) -> str:
    """Replace e-mail addresses, payment card numbers and phone numbers in ``text``.

    Numbers written out in words ("five five five one two three four") are masked too;
    dates and IPv4 addresses are not. A ready redaction hook:
    ``LiveKitAgentsInstrumentor().instrument(redact=redact_pii)``.
    """
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if _may_spell_digits(text):
        text = _SPOKEN_RUN.sub(_mask_spoken_run, text)
    if _ANY_DIGIT.search(text):
        text = _DIGIT_RUN.sub(_mask_digit_run, text)
    return text
