"""redact_pii: what it must mask and what it must leave alone, as tables."""

from __future__ import annotations

import time

import pytest

from livekit_otel import redact_pii

MASKED = [
    # e-mail
    ("write to jane.doe+calls@example.co.uk today", "write to [email] today"),
    # payment cards
    ("card 4111 1111 1111 1111 please", "card [card] please"),
    ("card 4111-1111-1111-1111", "card [card]"),
    ("card 4111111111111111.", "card [card]."),
    ("amex 378282246310005", "amex [card]"),
    # phones written with digits
    ("call 555-123-4567 now", "call [phone] now"),
    ("call (555) 123-4567", "call [phone]"),
    ("call +44 20 7946 0958", "call [phone]"),
    ("call +33 1 23 45 67 89.", "call [phone]."),
    ("call 555.123.4567", "call [phone]"),
    ("call 5551234567", "call [phone]"),
    ("it is 555 1234", "it is [phone]"),
    # phones and cards written out in words, as speech-to-text writes them
    (
        "my number is five five five one two three four five six seven",
        "my number is [phone]",
    ),
    ("Five, five, five, one, two, three, four.", "[phone]."),
    ("call five-five-five one-two-three-four", "call [phone]"),
    ("it's oh two oh seven nine four six oh nine five eight", "it's [phone]"),
    ("double five, triple one, two three", "[phone]"),
    ("555 one two three four", "[phone]"),
    ("call 555 123 four five six seven", "call [phone]"),
    (
        "card four one one one one one one one one one one one one one one one",
        "card [card]",
    ),
    # several in one text
    (
        "mail a@b.io or call 555-123-4567 on 2024-05-06",
        "mail [email] or call [phone] on 2024-05-06",
    ),
    ("on 12/05/2024 call 555 123 4567", "on 12/05/2024 call [phone]"),
]

KEPT = [
    # dates
    "the meeting is on 2024-05-06",
    "born 12/05/2024",
    "due 05.12.2024.",
    "from 2024/05/06 to 2024/06/07",
    "on 6-5-24",
    "at 2024-05-06 10:30",
    "between 01.02.2023 and 03.04.2024",
    # IPv4 addresses
    "the server is 192.168.100.200",
    "connect to 10.0.0.1:8080",
    "ping 8.8.8.8 and 255.255.255.0",
    # short numbers and ordinary words
    "I need 3 tickets for 2 adults at 10 30",
    "order 123456 shipped",
    "room 1204, floor 12",
    "one two three, let's go",
    "someone said nine to five",
    "version 1.2.3",
    "it costs 1,250,000 euros",
    "ID A1234567B",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masks(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_leaves_alone(text: str) -> None:
    assert redact_pii(text) == text


def test_a_long_transcript_is_redacted_quickly() -> None:
    text = (
        "On 2024-05-06 I called 555-123-4567 from 192.168.1.20 and said five five five "
        "one two three four; write to me at someone@example.com. "
    ) * 100  # about 14,000 characters, near the default attribute limit

    started = time.thread_time()  # CPU time: a busy machine's other work does not count
    for _ in range(10):
        redacted = redact_pii(text)
    per_call = (time.thread_time() - started) / 10

    assert redacted.count("[phone]") == 200
    assert redacted.count("[email]") == 100
    assert redacted.count("2024-05-06") == 100
    assert per_call < 0.02


@pytest.mark.parametrize("unit", ["1 ", "1-", "1.", "12/", "(1", "five ", "five, ", "oh "])
def test_long_runs_of_number_like_text_take_linear_time(unit: str) -> None:
    text = unit * 4000

    started = time.thread_time()  # CPU time: a busy machine's other work does not count
    redact_pii(text)

    assert time.thread_time() - started < 0.2
