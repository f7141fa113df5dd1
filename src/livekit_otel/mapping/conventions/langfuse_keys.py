"""Langfuse's keys (``langfuse.*``), as its OTLP ingestion reads them.

Langfuse takes an observation's input and output as a pair from the first source that has
either, so both are always written together.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from ...config import Options
from .. import attributes as attr
from ..content import compact_json
from ..facts import Cost, RealtimeUsage, SessionFacts, Usage
from .keys import KIND_SPAN, Attributes, Keys
from .livekit_keys import USAGE_PREFIX, split_usage, usd

CALL_METADATA_PREFIX = attr.LANGFUSE_TRACE_METADATA_PREFIX + "call_"


class LangfuseKeys(Keys):
    """Writes each fact under the key Langfuse reads for it."""

    def __init__(self, options: Options) -> None:
        # one trace per session: every span names it, so a call whose root has not been
        # exported yet (or never will be) is listed under its name; per-turn traces are
        # named by their roots
        self.trace_name = options.trace_name if options.trace_per == "session" else None
        # OpenInference's kinds would type a span Langfuse otherwise types as a plain span
        self.declare_spans = "openinference" in options.conventions
        self.max_length = options.max_attribute_length

    def session(self, values: Attributes, facts: SessionFacts) -> None:
        if self.trace_name is not None:
            values[attr.LANGFUSE_TRACE_NAME] = self.trace_name
        if facts.tags:
            values[attr.LANGFUSE_TRACE_TAGS] = list(facts.tags)

    def trace(self, values: Attributes, name: str, facts: SessionFacts) -> None:
        values[attr.LANGFUSE_TRACE_NAME] = name
        if facts.tags:
            values[attr.LANGFUSE_TRACE_TAGS] = list(facts.tags)
        for key, value in facts.metadata.items():
            values[attr.LANGFUSE_TRACE_METADATA_PREFIX + str(key)] = _scalar(value)

    def kind(self, values: Attributes, kind: str) -> None:
        if kind != KIND_SPAN or self.declare_spans:
            values[attr.LANGFUSE_OBSERVATION_TYPE] = kind

    def realtime_usage(self, values: Attributes, usage: RealtimeUsage) -> None:
        # taken as given, every other usage key then ignored: the splits and the model's
        # total, so Langfuse's input, output and total are the model's
        details = {key.removeprefix(USAGE_PREFIX): count for key, count in split_usage(usage)}
        details["total"] = usage.total_tokens or (usage.input_tokens + usage.output_tokens)
        values[attr.LANGFUSE_USAGE_DETAILS] = compact_json(details)

    def trace_io(self, values: Attributes, first_heard: str | None, said: str | None) -> None:
        # Langfuse keeps, of every span's trace input and output, the latest non-empty
        if first_heard:
            values[attr.LANGFUSE_TRACE_INPUT] = first_heard
        if said:
            values[attr.LANGFUSE_TRACE_OUTPUT] = said

    def model_parameters(self, values: Attributes, parameters: str) -> None:
        values[attr.LANGFUSE_MODEL_PARAMETERS] = parameters

    def cost(self, values: Attributes, cost: Cost) -> None:
        # provided costs are authoritative in Langfuse: it prices nothing of this one itself.
        # The total only: a breakdown by usage key would weigh on every observation's
        # metadata (Langfuse keeps the attribute there too)
        total = {"total": usd(cost.total)}
        values[attr.LANGFUSE_COST_DETAILS] = compact_json(total)

    def speech_usage(self, values: Attributes, usage: Usage) -> None:
        values[attr.LANGFUSE_OBSERVATION_TYPE] = attr.LANGFUSE_TYPE_GENERATION
        if usage.model:
            values[attr.LANGFUSE_MODEL_NAME] = usage.model
        counts = {_key(key): _count(key, amount) for key, amount in usage.amounts.items()}
        values[attr.LANGFUSE_USAGE_DETAILS] = compact_json(counts)

    def call(self, values: Attributes, glance: Attributes) -> None:
        # the costs are left out: Langfuse sums the trace's cost from its observations'
        # cost_details itself
        call = {
            key.removeprefix("lk.call.").replace(".", "_"): value
            for key, value in glance.items()
            if not key.startswith(attr.LK_CALL_COST_PREFIX)
        }
        # one JSON object ({"call": {...}}, which Langfuse merges with the user's
        # langfuse.trace.metadata.<key> attributes) weighs least; a key each when the size
        # limit is smaller than that object
        encoded = compact_json({"call": call})
        if len(encoded) <= self.max_length:
            values[attr.LANGFUSE_TRACE_METADATA] = encoded
            return
        for name, value in call.items():
            values[CALL_METADATA_PREFIX + name] = value

    def transcript(self, values: Attributes, text: str) -> None:
        values[CALL_METADATA_PREFIX + "transcript"] = text

    def tool_io(self, values: Attributes, arguments: str, result: str) -> None:
        values[attr.LANGFUSE_OBSERVATION_INPUT] = arguments
        values[attr.LANGFUSE_OBSERVATION_OUTPUT] = result

    def text_io(
        self,
        values: Attributes,
        input_text: str | None,
        output_text: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        values[attr.LANGFUSE_OBSERVATION_INPUT] = input_text or ""
        values[attr.LANGFUSE_OBSERVATION_OUTPUT] = output_text or ""

    def prompt(self, values: Attributes, messages: str, lk_key: str) -> None:
        values[attr.LANGFUSE_OBSERVATION_INPUT] = messages

    def completion(self, values: Attributes, message: str, lk_key: str) -> None:
        values[attr.LANGFUSE_OBSERVATION_OUTPUT] = message

    def dialogue(
        self,
        values: Attributes,
        heard: str | None,
        said: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        values[attr.LANGFUSE_OBSERVATION_INPUT] = heard or ""
        values[attr.LANGFUSE_OBSERVATION_OUTPUT] = said or ""

    def warning(self, values: Attributes, message: str) -> None:
        values[attr.LANGFUSE_OBSERVATION_LEVEL] = "WARNING"
        values[attr.LANGFUSE_OBSERVATION_STATUS_MESSAGE] = message

    def audio_reference(self, values: Attributes, field: str, shown: str) -> None:
        if field == "input":
            values[attr.LANGFUSE_OBSERVATION_INPUT] = shown
        else:
            values[attr.LANGFUSE_OBSERVATION_OUTPUT] = shown


def _key(key: str) -> str:
    # Langfuse keeps whole numbers only: audio seconds go as milliseconds
    return key.replace("_seconds", "_ms")


def _count(key: str, amount: float) -> int:
    return round(amount * 1000) if key.endswith("_seconds") else round(amount)


def _scalar(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
