"""OpenInference's keys, as Arize Phoenix reads them."""

from __future__ import annotations

from ...config import Options
from .. import attributes as attr
from .. import content
from ..facts import RealtimeUsage, SessionFacts, ToolCall
from .keys import KIND_AGENT, KIND_GENERATION, KIND_SPAN, KIND_TOOL, Attributes, Keys

_SPAN_KINDS = {
    KIND_AGENT: attr.KIND_AGENT,
    KIND_SPAN: attr.KIND_CHAIN,
    KIND_GENERATION: attr.KIND_LLM,
    KIND_TOOL: attr.KIND_TOOL,
}


class OpenInferenceKeys(Keys):
    """Writes each fact under the key OpenInference defines for it."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def session(self, values: Attributes, facts: SessionFacts) -> None:
        if facts.tags:
            values[attr.TAG_TAGS] = list(facts.tags)

    def metadata(self, values: Attributes, facts: SessionFacts) -> None:
        if facts.metadata:
            values[attr.METADATA] = content.to_json(facts.metadata, self.options)

    def kind(self, values: Attributes, kind: str) -> None:
        values[attr.OPENINFERENCE_SPAN_KIND] = _SPAN_KINDS[kind]

    def model(self, values: Attributes, model: str | None, provider: str | None) -> None:
        if model:
            values[attr.LLM_MODEL_NAME] = model
        if provider:
            values[attr.LLM_PROVIDER] = provider

    def usage(
        self, values: Attributes, input_tokens: int, output_tokens: int, cached: int | None
    ) -> None:
        values[attr.LLM_TOKEN_COUNT_PROMPT] = input_tokens
        values[attr.LLM_TOKEN_COUNT_COMPLETION] = output_tokens
        values[attr.LLM_TOKEN_COUNT_TOTAL] = input_tokens + output_tokens
        if cached:
            values[attr.LLM_TOKEN_COUNT_CACHE_READ] = cached

    def realtime_usage(self, values: Attributes, usage: RealtimeUsage) -> None:
        if usage.input_audio_tokens:
            values[attr.LLM_TOKEN_COUNT_PROMPT_AUDIO] = usage.input_audio_tokens
        if usage.output_audio_tokens:
            values[attr.LLM_TOKEN_COUNT_COMPLETION_AUDIO] = usage.output_audio_tokens
        if usage.input_cached_tokens:
            values[attr.LLM_TOKEN_COUNT_CACHE_READ] = usage.input_cached_tokens

    def tool(self, values: Attributes, call: ToolCall) -> None:
        values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_TOOL
        values[attr.TOOL_NAME] = call.name
        values[attr.TOOL_CALL_ID] = call.call_id

    def tool_io(self, values: Attributes, arguments: str, result: str) -> None:
        values[attr.TOOL_PARAMETERS] = arguments
        _io(values, arguments, result, attr.MIME_TEXT)

    def text_io(
        self,
        values: Attributes,
        input_text: str | None,
        output_text: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        _io(values, input_text, output_text, attr.MIME_TEXT)

    def prompt(self, values: Attributes, messages: str, lk_key: str) -> None:
        _io(values, messages, None, attr.MIME_JSON)

    def completion(self, values: Attributes, message: str, lk_key: str) -> None:
        _io(values, None, message, attr.MIME_JSON)

    def dialogue(
        self,
        values: Attributes,
        heard: str | None,
        said: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        _io(values, heard, said, attr.MIME_TEXT)


def _io(values: Attributes, input_value: str | None, output_value: str | None, mime: str) -> None:
    if input_value is not None:
        values[attr.INPUT_VALUE] = input_value
        values[attr.INPUT_MIME_TYPE] = mime
    if output_value is not None:
        values[attr.OUTPUT_VALUE] = output_value
        values[attr.OUTPUT_MIME_TYPE] = mime
