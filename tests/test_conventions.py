"""Each convention family writes its own keys for the same facts, on a real session.

A scripted audio call is traced under one family at a time; the keys a family owns appear
only when it is in force, and the facts every backend needs (the session's tags here) are
on every span under the key of each family in force.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from livekit_otel_dev.scripted import ToolCall, UserTurn

from livekit_otel.config import resolve_options
from livekit_otel.mapping.conventions import families
from support.tracing import Tracing, attributes, trace_session

SCRIPT = (
    UserTurn("hello there"),
    UserTurn(
        "what is the weather in Paris?", reply=ToolCall("lookup_weather", {"location": "Paris"})
    ),
)
# keys only the family named writes
OWN_PREFIXES = {
    "langfuse": ("langfuse.observation.input", "langfuse.trace.", "langfuse.observation.level"),
    "openinference": ("openinference.", "input.value", "llm.", "tool.", "tag."),
    "genai": ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.agent.name"),
}


@pytest.mark.parametrize("chosen", ["langfuse", "openinference", "genai"])
async def test_a_family_writes_its_keys_only_when_it_is_in_force(
    instrument: Callable[..., Tracing], chosen: str
) -> None:
    traced = await trace_session(instrument(conventions=chosen), SCRIPT, mode="audio")

    written = {key for span in traced.tree.spans for key in attributes(span)}
    for family, prefixes in OWN_PREFIXES.items():
        owned = {key for key in written if key.startswith(prefixes)}
        assert bool(owned) == (family == chosen), (family, sorted(owned))


@pytest.mark.parametrize(
    ("chosen", "key"), [("openinference", "tag.tags"), ("langfuse", "langfuse.trace.tags")]
)
async def test_every_span_carries_the_sessions_tags_under_each_family_in_force(
    instrument: Callable[..., Tracing], chosen: str, key: str
) -> None:
    traced = await trace_session(
        instrument(conventions=chosen, tags=["voice", "beta"]), SCRIPT, mode="audio"
    )

    assert traced.tree.spans
    assert {(span.name, tuple(attributes(span).get(key) or ())) for span in traced.tree.spans} == {
        (span.name, ("voice", "beta")) for span in traced.tree.spans
    }


def test_the_families_are_chosen_once_from_the_options() -> None:
    chosen = families(resolve_options(conventions="genai,openinference"))

    assert [type(family).__name__ for family in chosen] == [
        "LiveKitKeys",
        "OpenInferenceKeys",
        "GenAiKeys",
    ]
