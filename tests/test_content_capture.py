"""Captured content: prompts, transcripts, tool arguments and results, spoken text.

On by default; off with ``capture_content=False`` or ``LIVEKIT_OTEL_CAPTURE_CONTENT=false``
(then no user or model text appears anywhere in the trace); passed through the ``redact``
hook and the ``max_attribute_length`` limit; and bounded per ``llm_node``, so a long call
does not record its whole history again on every generation.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from livekit_otel_dev.scripted import ToolCall, UserTurn
from livekit_otel_dev.scripted.tools import DEFAULT_INSTRUCTIONS
from opentelemetry.sdk.trace import ReadableSpan

from livekit_otel import redact_pii
from support.tracing import (
    SpanTree,
    TracedRun,
    Tracing,
    attributes,
    find_texts,
    input_of,
    instrumented,
    output_of,
    texts_of,
    trace_session,
)

WEATHER = ToolCall("lookup_weather", {"location": "Paris"})
BOOKING = ToolCall("book_table", {"restaurant": "Chez Panisse", "people": 4})
TURNS = [
    UserTurn("hello there"),
    UserTurn("what is the weather in Paris", reply=WEATHER),
    UserTurn("book a table at Chez Panisse", reply=BOOKING),
]
TRUNCATED = re.compile(r"…\[truncated \d+ chars\]$")


def history_texts(run_history: list[dict[str, Any]]) -> list[str]:
    """Every user and model text of a session, from LiveKit's own chat history."""
    texts: list[str] = []
    for item in run_history:
        if item["type"] == "message":
            texts.extend(part for part in item["content"] if isinstance(part, str))
        elif item["type"] == "function_call":
            texts.append(item["arguments"])
            texts.extend(v for v in json.loads(item["arguments"]).values() if isinstance(v, str))
        elif item["type"] == "function_call_output":
            texts.append(item["output"])
    return texts


def script_texts(traced: TracedRun) -> list[str]:
    """What no span may carry when content capture is off."""
    return [
        *(turn.text for turn in TURNS),
        *history_texts(traced.run.history),
        *traced.run.agent_text,
        DEFAULT_INSTRUCTIONS,
        "no table for 4 available at Chez Panisse",
    ]


def messages(value: Any) -> Any:
    return json.loads(str(value))


@pytest.fixture(scope="module")
def captured() -> TracedRun:
    """A traced audio session with default options (content capture on)."""

    async def session(tracing: Tracing) -> TracedRun:
        return await trace_session(tracing, TURNS, mode="audio")

    with instrumented() as tracing:
        return asyncio.run(session(tracing))


def items_of(traced: TracedRun, kind: str) -> list[dict[str, Any]]:
    return [item for item in traced.run.history if item["type"] == kind]


def assistant_texts(traced: TracedRun) -> list[str]:
    return [
        " ".join(item["content"])
        for item in items_of(traced, "message")
        if item["role"] == "assistant"
    ]


def agent_turn_of(tree: SpanTree, index: int) -> ReadableSpan:
    return tree.named("agent_turn")[index]


# -- on by default ---------------------------------------------------------------------------
def test_llm_node_input_is_the_prompt_as_chat_messages(captured: TracedRun) -> None:
    first = captured.tree.named("llm_node")[0]
    assert messages(attributes(first)["langfuse.observation.input"]) == [
        {"role": "system", "content": DEFAULT_INSTRUCTIONS},
        {"role": "user", "content": "hello there"},
    ]


def test_llm_node_output_is_the_generated_text(captured: TracedRun) -> None:
    first = captured.tree.named("llm_node")[0]
    assert messages(attributes(first)["langfuse.observation.output"]) == {
        "role": "assistant",
        "content": assistant_texts(captured)[0],
    }


def test_llm_node_output_carries_the_tool_calls_it_generated(captured: TracedRun) -> None:
    weather_turn = agent_turn_of(captured.tree, 1)
    first = captured.tree.children_of(weather_turn, "llm_node")[0]
    (call,) = [c for c in items_of(captured, "function_call") if c["name"] == WEATHER.name]
    output = messages(attributes(first)["langfuse.observation.output"])
    assert output["tool_calls"] == [
        {
            "id": call["call_id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
    ]


def test_function_tool_carries_its_arguments_and_result(captured: TracedRun) -> None:
    tool = captured.tree.with_attribute("gen_ai.tool.name", WEATHER.name, "function_tool")[0]
    (call,) = [c for c in items_of(captured, "function_call") if c["name"] == WEATHER.name]
    (result,) = [
        r for r in items_of(captured, "function_call_output") if r["call_id"] == call["call_id"]
    ]
    assert json.loads(input_of(tool)) == WEATHER.arguments
    assert output_of(tool) == result["output"]


def test_agent_turn_carries_user_text_in_and_agent_text_out(captured: TracedRun) -> None:
    turn = agent_turn_of(captured.tree, 0)
    assert input_of(turn) == "hello there"
    assert output_of(turn) == assistant_texts(captured)[0]


@pytest.mark.parametrize("key", ["lk.turn.user_text", "lk.turn.agent_text", "lk.user.transcript"])
def test_no_lk_key_repeats_text_a_convention_key_carries(captured: TracedRun, key: str) -> None:
    assert [span.name for span in captured.tree.spans if key in attributes(span)] == []


def test_user_turn_carries_the_transcript(captured: TracedRun) -> None:
    transcripts = {output_of(s) for s in captured.tree.named("user_turn")}
    assert transcripts == {turn.text for turn in TURNS}


def test_tts_node_carries_the_spoken_text(captured: TracedRun) -> None:
    (node,) = captured.tree.children_of(agent_turn_of(captured.tree, 0), "tts_node")
    assert input_of(node) == assistant_texts(captured)[0]


@pytest.mark.parametrize(
    "text", ["hello there", "Paris", "It is sunny and 21 degrees in Paris", DEFAULT_INSTRUCTIONS]
)
def test_with_capture_on_the_scan_finds_script_text(captured: TracedRun, text: str) -> None:
    assert text in script_texts(captured)
    assert find_texts(captured.tree, [text])


# -- off -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["audio", "text"])
@pytest.mark.parametrize("switch", ["option", "option as text", "environment"])
async def test_with_capture_off_no_user_or_model_text_is_in_any_span(
    switch: str, mode: str, instrument: Callable[..., Tracing], monkeypatch: pytest.MonkeyPatch
) -> None:
    if switch == "option":
        tracing = instrument(capture_content=False)
    elif switch == "option as text":  # as read from a config file: the string "false"
        tracing = instrument(capture_content="false")
    else:
        monkeypatch.setenv("LIVEKIT_OTEL_CAPTURE_CONTENT", "false")
        tracing = instrument()
    traced = await trace_session(tracing, TURNS, mode=mode)
    assert traced.tree.names["function_tool"] == 2
    assert find_texts(traced.tree, script_texts(traced)) == []


async def test_with_capture_off_a_failing_tool_still_reports_its_error_type(
    instrument: Callable[..., Tracing],
) -> None:
    tracing = instrument(capture_content=False)
    traced = await trace_session(tracing, [TURNS[2]], mode="text")
    tool = traced.tree.one("function_tool")
    assert tool.status.description == "RuntimeError"
    assert [dict(e.attributes or {}) for e in tool.events] == [{"exception.type": "RuntimeError"}]


# -- redaction -------------------------------------------------------------------------------
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0100"
CARD = "4111 1111 1111 1111"
PII_TEXT = f"mail me at {EMAIL} or call {PHONE}, my card is {CARD}"


@pytest.fixture
async def redacted(instrument: Callable[..., Tracing]) -> TracedRun:
    tracing = instrument(redact=redact_pii)
    return await trace_session(tracing, [UserTurn(PII_TEXT), "thanks"], mode="text")


async def test_redact_hook_cleans_the_user_turn(redacted: TracedRun) -> None:
    transcript = output_of(redacted.tree.named("user_turn")[0])
    assert transcript == "mail me at [email] or call [phone], my card is [card]"


async def test_redact_hook_cleans_the_prompt_and_the_reply(redacted: TracedRun) -> None:
    nodes = redacted.tree.named("llm_node") + redacted.tree.named("tts_node")
    nodes += redacted.tree.named("agent_turn") + redacted.tree.named("user_turn")
    assert find_texts(nodes, [EMAIL, PHONE, CARD]) == []
    second_prompt = attributes(redacted.tree.named("llm_node")[1])["langfuse.observation.input"]
    assert "[email]" in str(second_prompt)


async def test_redact_hook_removes_pii_from_every_span(redacted: TracedRun) -> None:
    assert find_texts(redacted.tree, [EMAIL, PHONE, CARD]) == []


# -- size limit ----------------------------------------------------------------------------
LIMIT = 40
LONG_TEXT = "word " * 100


def within_limit(text: str) -> bool:
    marker = TRUNCATED.search(text)
    return len(text) <= LIMIT or (marker is not None and marker.start() == LIMIT)


@pytest.fixture
async def limited(instrument: Callable[..., Tracing]) -> TracedRun:
    tracing = instrument(max_attribute_length=LIMIT)
    return await trace_session(tracing, [UserTurn(LONG_TEXT)], mode="text")


async def test_long_transcript_is_cut_at_the_limit_with_a_truncation_marker(
    limited: TracedRun,
) -> None:
    transcript = output_of(limited.tree.one("user_turn"))
    dropped = len(LONG_TEXT) - LIMIT
    assert transcript == LONG_TEXT[:LIMIT] + f"…[truncated {dropped} chars]"


async def test_long_reply_is_cut_on_the_turn_and_the_tts_node(limited: TracedRun) -> None:
    turn = limited.tree.one("agent_turn")
    tts = limited.tree.one("tts_node")
    for value in (output_of(turn), input_of(tts)):
        assert TRUNCATED.search(value)
        assert within_limit(value)


async def test_no_text_attribute_of_any_span_exceeds_the_limit(limited: TracedRun) -> None:
    # a component's label (its class path) names code, it is not captured text
    too_long = [
        where
        for where, text in texts_of(limited.tree)
        if not within_limit(text) and not where.endswith(".label")
    ]
    assert too_long == []


# -- prompt capture stays bounded -------------------------------------------------------------
@pytest.fixture(scope="module")
def long_call() -> TracedRun:
    """A 30-turn text session with default options."""
    turns = [UserTurn(f"question number {n}") for n in range(1, 31)]

    async def session(tracing: Tracing) -> TracedRun:
        return await trace_session(tracing, turns, mode="text")

    with instrumented() as tracing:
        return asyncio.run(session(tracing))


def prompt_of(node: ReadableSpan) -> list[dict[str, Any]]:
    return list(messages(input_of(node)))


def as_message(item: dict[str, Any]) -> dict[str, Any]:
    return {"role": item["role"], "content": " ".join(item["content"])}


def test_every_llm_node_prompt_starts_with_the_system_instructions(long_call: TracedRun) -> None:
    nodes = long_call.tree.named("llm_node")
    assert len(nodes) == 30
    for node in nodes:
        assert prompt_of(node)[0] == {"role": "system", "content": DEFAULT_INSTRUCTIONS}


def test_last_prompt_holds_the_most_recent_items_of_the_window(long_call: TracedRun) -> None:
    window = 16  # the documented default of prompt_window
    said_before_last_reply = [as_message(m) for m in items_of(long_call, "message")][:-1]
    last = prompt_of(long_call.tree.named("llm_node")[-1])
    assert last[1:] == said_before_last_reply[-window:]


def test_prompt_records_the_whole_context_size_beside_the_window(long_call: TracedRun) -> None:
    values = attributes(long_call.tree.named("llm_node")[-1])
    # instructions, 29 exchanges and the question (and, on some releases, a handoff item)
    assert values["lk.llm.prompt.items"] >= 1 + 2 * 29 + 1
    assert values["lk.llm.prompt.captured_items"] == 1 + 16


async def test_a_window_of_two_holds_the_instructions_and_two_items_on_every_generation(
    instrument: Callable[..., Tracing],
) -> None:
    tracing = instrument(prompt_window=2)
    turns = [UserTurn(f"question number {n}") for n in range(1, 6)]
    traced = await trace_session(tracing, turns, mode="text")
    replies = assistant_texts(traced)
    for index, node in enumerate(traced.tree.named("llm_node")[1:], start=1):
        assert prompt_of(node) == [
            {"role": "system", "content": DEFAULT_INSTRUCTIONS},
            {"role": "assistant", "content": replies[index - 1]},
            {"role": "user", "content": f"question number {index + 1}"},
        ]


def test_llm_node_offers_the_agents_tools_as_definitions(captured: TracedRun) -> None:
    first = captured.tree.named("llm_node")[0]
    definitions = json.loads(attributes(first)["gen_ai.tool.definitions"])
    names = sorted(tool["name"] for tool in definitions)
    assert names == sorted([WEATHER.name, BOOKING.name])
    assert all(tool["type"] == "function" and "parameters" in tool for tool in definitions)


def test_each_tool_is_described_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call of an agent offers the same tools; LiveKit's schema builder (a new
    pydantic model per call) runs for the first call only, and every call still carries
    the definition, for a tool defined on the agent's class without its ``self``."""
    from livekit.agents import function_tool
    from livekit.agents.llm import utils
    from livekit_otel_dev.scripted import ScriptedAgent

    class ConciergeAgent(ScriptedAgent):
        @function_tool
        async def opening_hours(self, restaurant: str) -> str:
            """When a restaurant is open.

            Args:
                restaurant: the restaurant's name
            """
            return "noon to midnight"

    built: list[str] = []
    builder = utils.build_legacy_openai_schema

    def counting_builder(tool: Any, **options: Any) -> dict[str, Any]:
        built.append(tool.__name__)
        return builder(tool, **options)

    monkeypatch.setattr(utils, "build_legacy_openai_schema", counting_builder)

    async def calls(tracing: Tracing) -> list[TracedRun]:
        return [
            await trace_session(tracing, ["hello there"], mode="text", agent=ConciergeAgent())
            for _ in range(2)
        ]

    with instrumented() as tracing:
        runs = asyncio.run(calls(tracing))
    for traced in runs:
        (node,) = traced.tree.named("llm_node")
        offered = json.loads(attributes(node)["gen_ai.tool.definitions"])
        (hours,) = [tool for tool in offered if tool["name"] == "opening_hours"]
        assert hours["description"].strip() == "When a restaurant is open."
        assert list(hours["parameters"]["properties"]) == ["restaurant"]
    assert built.count("opening_hours") == 1


def test_a_raw_schema_tool_is_described_by_its_own_schema() -> None:
    from livekit.agents import function_tool
    from livekit_otel_dev.scripted import ScriptedAgent

    async def find_parking(raw_arguments: dict[str, object]) -> str:
        return "two spaces free"

    parking = function_tool(
        find_parking,
        raw_schema={
            "name": "find_parking",
            "description": "Free parking spaces near an address.",
            "parameters": {
                "type": "object",
                "properties": {"address": {"type": "string"}},
                "required": ["address"],
            },
        },
    )

    async def call(tracing: Tracing) -> TracedRun:
        agent = ScriptedAgent(tools=[parking])
        return await trace_session(tracing, ["hello there"], mode="text", agent=agent)

    with instrumented() as tracing:
        traced = asyncio.run(call(tracing))
    (node,) = traced.tree.named("llm_node")
    (offered,) = json.loads(attributes(node)["gen_ai.tool.definitions"])
    assert offered["name"] == "find_parking"
    assert offered["description"] == "Free parking spaces near an address."
    assert offered["parameters"]["properties"]["address"] == {"type": "string"}
