"""Options checked by type and value: one clear error naming the option, what was given and
what is accepted; strings parsed as the environment variables are; unknown variables named."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from livekit_otel_dev.scripted import UserTurn

from livekit_otel import config
from livekit_otel.config import InvalidOptionError, resolve_options
from support.tracing import Tracing, trace_session


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LIVEKIT_OTEL_* option variable from the outside, and no warning given yet."""
    for name in config.KNOWN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "_warned_environment", set())


# -- strings, as a config file or the environment gives them ----------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false", False),
        ("0", False),
        ("no", False),
        ("Off", False),
        ("true", True),
        ("1", True),
        ("YES", True),
        (" on ", True),
    ],
)
def test_capture_content_as_text_is_parsed(text: str, expected: bool) -> None:
    assert resolve_options(capture_content=text).capture_content is expected


@pytest.mark.parametrize(("text", "expected"), [("no", False), ("1", True)])
def test_capture_content_variable_is_parsed(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("LIVEKIT_OTEL_CAPTURE_CONTENT", text)

    assert resolve_options().capture_content is expected


def test_max_attribute_length_as_text_is_a_number() -> None:
    assert resolve_options(max_attribute_length="5000").max_attribute_length == 5000


def test_trace_per_ignores_case() -> None:
    assert resolve_options(trace_per=" Turn ").trace_per == "turn"


# -- wrong types and values: one error that says what to fix ----------------------------------
WRONG = [
    pytest.param({"capture_content": "maybe"}, "capture_content", "'maybe' (str)", "true or false"),
    pytest.param({"capture_content": 2}, "capture_content", "2 (int)", "true or false"),
    pytest.param(
        {"max_attribute_length": "5k"}, "max_attribute_length", "'5k' (str)", "whole number"
    ),
    pytest.param({"max_attribute_length": 0}, "max_attribute_length", "0 (int)", "at least 1"),
    pytest.param({"prompt_window": True}, "prompt_window", "True (bool)", "whole number"),
    pytest.param({"tags": "support"}, "tags", "'support' (str)", "tags=['support']"),
    pytest.param({"tags": ["ok", 3]}, "tags", "a list", "list of strings"),
    pytest.param({"metadata": "plan=pro"}, "metadata", "'plan=pro' (str)", "dict"),
    pytest.param({"trace_per": "call"}, "trace_per", "'call' (str)", "'session', 'turn'"),
    pytest.param(
        {"builtin_telemetry": False}, "builtin_telemetry", "False (bool)", "'auto', 'off', 'keep'"
    ),
    pytest.param({"conventions": 5}, "conventions", "5 (int)", "langfuse, openinference, genai"),
    pytest.param({"redact": "pii"}, "redact", "'pii' (str)", "function"),
    pytest.param({"user_id": 42}, "user_id", "42 (int)", "string"),
    pytest.param({"environment": ["prod"]}, "environment", "a list", "string"),
]


@pytest.mark.parametrize(("options", "name", "given", "accepted"), WRONG)
def test_a_wrong_option_is_one_error_naming_it_what_was_given_and_what_is_accepted(
    options: dict[str, Any], name: str, given: str, accepted: str
) -> None:
    with pytest.raises(InvalidOptionError) as error:
        resolve_options(**options)

    message = str(error.value)
    assert name in message
    assert given in message
    assert accepted in message


def test_a_wrong_option_is_both_a_value_error_and_a_type_error() -> None:
    with pytest.raises(ValueError):
        resolve_options(capture_content="maybe")
    with pytest.raises(TypeError):
        resolve_options(capture_contnet=False)


def test_an_unknown_option_names_the_nearest_one() -> None:
    with pytest.raises(InvalidOptionError, match=r"capture_contnet \(did you mean capture_content"):
        resolve_options(capture_contnet=False)


def test_a_wrong_variable_is_named_with_what_it_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_OTEL_MAX_ATTRIBUTE_LENGTH", "lots")

    with pytest.raises(InvalidOptionError, match=r"LIVEKIT_OTEL_MAX_ATTRIBUTE_LENGTH .*'lots'"):
        resolve_options()


def test_tags_given_as_one_string_fail_at_instrument(
    instrument: Callable[..., Tracing],
) -> None:
    with pytest.raises(InvalidOptionError, match=r"tags=\['support'\]"):
        instrument(tags="support")


async def test_max_attribute_length_as_text_traces_a_session_without_a_hook_error(
    instrument: Callable[..., Tracing], caplog: pytest.LogCaptureFixture
) -> None:
    tracing = instrument(max_attribute_length="40")

    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        traced = await trace_session(tracing, [UserTurn("tell me a long story " * 5)])

    assert [record.getMessage() for record in caplog.records] == []
    (user_turn,) = traced.tree.named("user_turn")
    texts = [v for v in (user_turn.attributes or {}).values() if isinstance(v, str)]
    assert texts and max(len(text) for text in texts) <= 40 + len("…[truncated 9999 chars]")


# -- variables that do not exist --------------------------------------------------------------
def test_an_unknown_livekit_otel_variable_is_one_warning_naming_the_nearest(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LIVEKIT_OTEL_CAPTURE_CONTNET", "false")

    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        resolve_options()
        resolve_options()

    (record,) = caplog.records
    assert "LIVEKIT_OTEL_CAPTURE_CONTNET" in record.getMessage()
    assert "did you mean LIVEKIT_OTEL_CAPTURE_CONTENT?" in record.getMessage()


def test_known_variables_give_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LIVEKIT_OTEL_CONSOLE", "1")
    monkeypatch.setenv("LIVEKIT_OTEL_TRACE_PER", "turn")

    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        resolve_options()

    assert caplog.records == []


def test_every_variable_the_project_reads_is_known() -> None:
    root = Path(__file__).resolve().parents[1]
    sources = [
        *root.joinpath("src").rglob("*.py"),
        *root.joinpath("devkit").rglob("*.py"),
        *root.joinpath("scripts").glob("*"),
        *root.joinpath("examples").glob("*.py"),
        *root.joinpath("docs").glob("*.md"),
        root / "README.md",
        root / "Makefile",
    ]
    named = {
        name
        for path in sources
        if path.is_file()
        for name in re.findall(r"LIVEKIT_OTEL_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="ignore"))
    }

    # a new variable must be added to config.KNOWN_ENVIRONMENT, or users setting it are warned
    assert named - config.KNOWN_ENVIRONMENT == set()
