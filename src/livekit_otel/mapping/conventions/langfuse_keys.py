"""Langfuse's keys (``langfuse.*``), as its OTLP ingestion reads them.

Langfuse takes an observation's input and output as a pair from the first source that has
either, so both are always written together.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from .. import attributes as attr
from ..facts import SessionFacts
from .keys import Attributes, Keys


class LangfuseKeys(Keys):
    """Writes each fact under the key Langfuse reads for it."""

    def session(self, values: Attributes, facts: SessionFacts) -> None:
        if facts.user_id:
            values[attr.LANGFUSE_USER_ID] = facts.user_id

    def trace(self, values: Attributes, name: str, facts: SessionFacts) -> None:
        values[attr.LANGFUSE_TRACE_NAME] = name
        if facts.tags:
            values[attr.LANGFUSE_TRACE_TAGS] = list(facts.tags)
        for key, value in facts.metadata.items():
            values[attr.LANGFUSE_TRACE_METADATA_PREFIX + str(key)] = _scalar(value)

    def kind(self, values: Attributes, kind: str) -> None:
        values[attr.LANGFUSE_OBSERVATION_TYPE] = kind

    def model_parameters(self, values: Attributes, parameters: str) -> None:
        values[attr.LANGFUSE_MODEL_PARAMETERS] = parameters

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


def _scalar(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
