"""Facts to attributes: the one place that knows which conventions are in force.

The trace contract's attributes are always written; ``langfuse``, ``openinference`` and
``genai`` each add their family. Each ``set_*`` function writes one fact under every
key in force, so a backend-specific key is never written in two places. This module is
the only reader of the ``conventions`` and ``capture_content`` options: when content
capture is off, no user or model text leaves it.

Content goes under an ``lk.*`` key only when no convention in force carries it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ..config import Options
from . import attributes as attr
from . import content
from .facts import (
    AgentTurnFacts,
    Latency,
    LlmRequest,
    LlmResponse,
    RealtimeResponseFacts,
    SessionEnd,
    SessionFacts,
    SessionStart,
    ToolCall,
    ToolResult,
    TtsRequest,
    TtsResult,
    UserTurnFacts,
)

Attributes = dict[str, AttributeValue]

# host (or a part of it) a provider reports -> OpenTelemetry's gen_ai.provider.name value
_REGISTRY_BY_HOST = (
    ("openai.azure.com", "azure.ai.openai"),
    ("models.inference.ai.azure.com", "azure.ai.inference"),
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("bedrock", "aws.bedrock"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere", "cohere"),
    ("watsonx", "ibm.watsonx.ai"),
)
# names plugins report instead of a host
_REGISTRY_BY_NAME = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gen_ai",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
}

INTERRUPTED_MESSAGE = "interrupted before it finished"
CLOSED_MESSAGE = "cut off: the session closed before the reply finished"


def provider_name(provider: str) -> str:
    """OpenTelemetry's registry value for a known provider; an unknown one as reported."""
    lowered = provider.lower()
    known = _REGISTRY_BY_NAME.get("".join(char for char in lowered if char.isalnum()))
    if known is not None:
        return known
    for host, name in _REGISTRY_BY_HOST:
        if host in lowered:
            return name
    return provider


class Conventions:
    """Writes facts as attributes, for the conventions and content options chosen."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.capture = options.capture_content
        self.langfuse = "langfuse" in options.conventions
        self.openinference = "openinference" in options.conventions
        self.genai = "genai" in options.conventions
        # whether some convention in force carries a span's input and output
        self._io_carried = self.langfuse or self.openinference

    # -- what every span carries --------------------------------------------------------
    def common(self, facts: SessionFacts) -> Attributes:
        """Session, user, environment and release: on every span of the session."""
        values: Attributes = {
            attr.SESSION_ID: facts.session_id,
            attr.LANGFUSE_SESSION_ID: facts.session_id,
        }
        if facts.user_id:
            values[attr.USER_ID] = facts.user_id
            if self.langfuse:
                values[attr.LANGFUSE_USER_ID] = facts.user_id
        # like the session id, under Langfuse's keys whatever the conventions: no other
        # convention has a per-span key for them
        if facts.environment:
            values[attr.LANGFUSE_ENVIRONMENT] = facts.environment
            values[attr.DEPLOYMENT_ENVIRONMENT_NAME] = facts.environment
        if facts.release:
            values[attr.LANGFUSE_RELEASE] = facts.release
        return values

    def trace_root(self, name: str, facts: SessionFacts) -> Attributes:
        """What a backend reads at trace level, set on the root span of each trace."""
        if not self.langfuse:
            return {}
        values: Attributes = {attr.LANGFUSE_TRACE_NAME: name}
        if facts.tags:
            values[attr.LANGFUSE_TRACE_TAGS] = list(facts.tags)
        for key, value in facts.metadata.items():
            values[attr.LANGFUSE_TRACE_METADATA_PREFIX + str(key)] = _scalar(value)
        return values

    def metadata(self, facts: SessionFacts) -> Attributes:
        """The session's metadata as OpenInference's one JSON object."""
        if not (self.openinference and facts.metadata):
            return {}
        return {attr.METADATA: content.to_json(facts.metadata, self.options)}

    # -- session ------------------------------------------------------------------------
    def session_start(self, start: SessionStart, facts: SessionFacts) -> Attributes:
        """The ``agent_session`` root span as it opens."""
        values: Attributes = {
            attr.LK_AGENT_NAME: start.agent_name,
            attr.GEN_AI_CONVERSATION_ID: facts.session_id,
        }
        if start.room_name:
            values[attr.LK_ROOM_NAME] = start.room_name
        if start.job_id:
            values[attr.LK_JOB_ID] = start.job_id
        if self.genai:
            values[attr.GEN_AI_AGENT_NAME] = start.agent_name
        self._set_kind(values, attr.LANGFUSE_TYPE_AGENT, attr.KIND_AGENT)
        return values

    def session_end(self, end: SessionEnd) -> Attributes:
        """Usage totals and the call's first and last words, at close."""
        values: Attributes = {
            key: round(value, 6) if isinstance(value, float) else value
            for key, value in end.usage.items()
        }
        values[attr.LK_SESSION_TURNS] = end.agent_turns
        if end.vad is not None and end.vad.requests:
            values.update(end.vad.attributes())
        if end.connection is not None and end.connection.requests:
            values.update(end.connection.attributes())
        self._set_dialogue(values, end.first_user_text, end.last_agent_text)
        return values

    # -- user turns ---------------------------------------------------------------------
    def user_turn(self, facts: UserTurnFacts) -> Attributes:
        """A ``user_turn``: how the user spoke, the STT metrics and the transcript."""
        values: Attributes = {
            attr.LK_USER_INPUT_MODE: facts.input_mode,
            attr.LK_USER_TURN_COMMITTED: facts.committed,
        }
        if facts.stt is not None:
            values.update(facts.stt.attributes())
        if facts.stt_model:
            values[attr.LK_STT_MODEL] = facts.stt_model
        if facts.stt_provider:
            values[attr.LK_STT_PROVIDER] = facts.stt_provider
        if facts.speech_id:
            values[attr.LK_SPEECH_ID] = facts.speech_id
        self._set_kind(values, attr.LANGFUSE_TYPE_SPAN, attr.KIND_CHAIN)
        if self.capture and facts.transcript:
            text = content.limit(facts.transcript, self.options)
            heard = "[audio]" if facts.input_mode == "audio" else text
            self._set_io(values, heard, text, lk_output=attr.LK_USER_TRANSCRIPT)
        return values

    def end_of_turn(self, eou: Attributes, speech_id: str | None) -> Attributes:
        """An ``end_of_turn``: LiveKit's end-of-utterance metrics."""
        values = dict(eou)
        if speech_id:
            values[attr.LK_SPEECH_ID] = speech_id
        self._set_kind(values, attr.LANGFUSE_TYPE_SPAN, attr.KIND_CHAIN)
        return values

    # -- agent turns --------------------------------------------------------------------
    def agent_turn_start(self, facts: AgentTurnFacts) -> Attributes:
        """An ``agent_turn`` as its speech handle is created."""
        values: Attributes = {attr.LK_SPEECH_ID: facts.speech_id, attr.LK_TURN_SOURCE: facts.source}
        if facts.agent_name:
            values[attr.LK_AGENT_NAME] = facts.agent_name
            if self.genai:
                values[attr.GEN_AI_AGENT_NAME] = facts.agent_name
        if self.genai:
            values[attr.GEN_AI_OPERATION_NAME] = attr.GEN_AI_OPERATION_INVOKE_AGENT
        self._set_kind(values, attr.LANGFUSE_TYPE_AGENT, attr.KIND_AGENT)
        return values

    def agent_turn_end(self, facts: AgentTurnFacts) -> Attributes:
        """An ``agent_turn`` as it ends: interruption, LiveKit's latency formula, the words."""
        values: Attributes = {attr.LK_TURN_INTERRUPTED: facts.interrupted}
        if facts.discarded:
            values[attr.LK_TURN_DISCARDED] = True
        for key, value in (
            (attr.LK_TURN_EOU_DELAY, facts.eou_delay),
            (attr.LK_TURN_LLM_TTFT, facts.llm_ttft),
            (attr.LK_TURN_TTS_TTFB, facts.tts_ttfb),
        ):
            if value is not None:
                values[key] = value
        if (
            facts.eou_delay is not None
            and facts.llm_ttft is not None
            and facts.tts_ttfb is not None
        ):
            values[attr.LK_TURN_TOTAL_LATENCY] = facts.eou_delay + facts.llm_ttft + facts.tts_ttfb
        if facts.latency is not None:
            self._set_latency(values, facts.latency)
        if facts.played_duration is not None:
            values[attr.LK_TURN_PLAYED_DURATION] = round(facts.played_duration, 6)
        if facts.interrupted:
            self._set_warning(values, _interruption(facts))
        self._set_dialogue(
            values,
            facts.user_text,
            facts.spoken_text,
            lk_input=attr.LK_TURN_USER_TEXT,
            lk_output=attr.LK_TURN_AGENT_TEXT,
        )
        return values

    # -- LLM ----------------------------------------------------------------------------
    def llm_start(
        self, request: LlmRequest, prompt: tuple[str, int] | None, items: int | None
    ) -> Attributes:
        """An ``llm_node`` as it opens: model, provider, tools and the prompt (JSON, count)."""
        values: Attributes = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_CHAT,
            attr.LANGFUSE_OBSERVATION_TYPE: attr.LANGFUSE_TYPE_GENERATION,
        }
        if self.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_LLM
        self._set_model(values, request.model, request.provider)
        if request.parameters and self.langfuse:
            values[attr.LANGFUSE_MODEL_PARAMETERS] = content.to_json(
                request.parameters, self.options
            )
        if request.tool_definitions is not None:
            values[attr.GEN_AI_TOOL_DEFINITIONS] = request.tool_definitions
        if items is not None:
            values[attr.LK_LLM_PROMPT_ITEMS] = items
        if self.capture and prompt is not None:
            values[attr.LK_LLM_PROMPT_CAPTURED_ITEMS] = prompt[1]
            self._set_input(values, prompt[0], json_value=True, lk_key=attr.LK_LLM_INPUT_MESSAGES)
        return values

    def captures_content(self) -> bool:
        """Whether user and model text is recorded at all."""
        return self.capture

    def llm_end(self, response: LlmResponse, metrics: Attributes) -> Attributes:
        """An ``llm_node`` as it ends: LiveKit's metrics, usage, first token, the output."""
        values = dict(metrics)
        self._set_usage(
            values, response.input_tokens, response.output_tokens, response.cached_input_tokens
        )
        if response.completion_start_time is not None:
            first = datetime.fromtimestamp(response.completion_start_time, tz=timezone.utc)
            values[attr.LANGFUSE_COMPLETION_START_TIME] = first.isoformat()
        if self.genai:
            values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = [response.finish_reason]
        if response.interrupted:
            self._set_warning(values, INTERRUPTED_MESSAGE)
        if self.capture:
            message: dict[str, Any] = {"role": "assistant", "content": response.text}
            if response.tool_calls:
                message["tool_calls"] = content.tool_call_messages(response.tool_calls)
            self._set_output(
                values,
                content.to_json(message, self.options),
                json_value=True,
                lk_key=attr.LK_LLM_OUTPUT_MESSAGES,
            )
        return values

    # -- realtime responses -------------------------------------------------------------------
    def realtime_start(
        self, model: str | None, provider: str | None, response_id: str
    ) -> Attributes:
        """A ``realtime_response`` as the model starts it: a generation, like ``llm_node``."""
        values: Attributes = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_CHAT,
            attr.LANGFUSE_OBSERVATION_TYPE: attr.LANGFUSE_TYPE_GENERATION,
        }
        if response_id:
            values[attr.GEN_AI_RESPONSE_ID] = response_id
        if self.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_LLM
        self._set_model(values, model, provider)
        return values

    def realtime_end(self, facts: RealtimeResponseFacts, metrics: Attributes) -> Attributes:
        """A ``realtime_response`` once its metrics came: usage by modality, first token, words."""
        values = dict(metrics)
        usage = facts.usage
        if usage is not None:
            cached = usage.input_cached_text_tokens or usage.input_cached_tokens
            self._set_usage(values, usage.input_tokens, usage.output_tokens, None)
            values[attr.GEN_AI_USAGE_TOTAL_TOKENS] = usage.total_tokens or (
                usage.input_tokens + usage.output_tokens
            )
            for key, count in (
                (attr.GEN_AI_USAGE_INPUT_TEXT_TOKENS, usage.input_text_tokens - cached),
                (attr.GEN_AI_USAGE_INPUT_CACHED_TEXT_TOKENS, cached),
                (
                    attr.GEN_AI_USAGE_INPUT_AUDIO_TOKENS,
                    usage.input_audio_tokens - usage.input_cached_audio_tokens,
                ),
                (attr.GEN_AI_USAGE_INPUT_CACHED_AUDIO_TOKENS, usage.input_cached_audio_tokens),
                (attr.GEN_AI_USAGE_OUTPUT_TEXT_TOKENS, usage.output_text_tokens),
                (attr.GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS, usage.output_audio_tokens),
            ):
                if count > 0:
                    values[key] = count
            if self.openinference:
                if usage.input_audio_tokens:
                    values[attr.LLM_TOKEN_COUNT_PROMPT_AUDIO] = usage.input_audio_tokens
                if usage.output_audio_tokens:
                    values[attr.LLM_TOKEN_COUNT_COMPLETION_AUDIO] = usage.output_audio_tokens
                if usage.input_cached_tokens:
                    values[attr.LLM_TOKEN_COUNT_CACHE_READ] = usage.input_cached_tokens
        if facts.completion_start_time is not None:
            first = datetime.fromtimestamp(facts.completion_start_time, tz=timezone.utc)
            values[attr.LANGFUSE_COMPLETION_START_TIME] = first.isoformat()
        if facts.cancelled:
            self._set_warning(values, INTERRUPTED_MESSAGE)
        if self.capture:
            heard = content.limit(facts.user_text, self.options) if facts.user_text else ""
            message: dict[str, Any] = {"role": "assistant", "content": facts.output_text or ""}
            if facts.tool_calls:
                message["tool_calls"] = content.tool_call_messages(facts.tool_calls)
            said = content.to_json(message, self.options)
            asked = _messages("user", heard) if heard else "[]"
            self._set_input(values, asked, json_value=True, lk_key=attr.LK_LLM_INPUT_MESSAGES)
            self._set_output(values, said, json_value=True, lk_key=attr.LK_LLM_OUTPUT_MESSAGES)
        return values

    # -- tools --------------------------------------------------------------------------
    def tool_start(self, call: ToolCall) -> Attributes:
        """A ``function_tool`` as the call starts."""
        values: Attributes = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: call.name,
            attr.GEN_AI_TOOL_CALL_ID: call.call_id,
            attr.LANGFUSE_OBSERVATION_TYPE: attr.LANGFUSE_TYPE_TOOL,
        }
        if self.genai:
            values[attr.GEN_AI_TOOL_TYPE] = "function"
        if self.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_TOOL
            values[attr.TOOL_NAME] = call.name
            values[attr.TOOL_CALL_ID] = call.call_id
        return values

    def tool_end(self, call: ToolCall, result: ToolResult) -> Attributes:
        """A ``function_tool`` as the call returns: arguments and result."""
        values: Attributes = {attr.LK_TOOL_IS_ERROR: result.is_error}
        if not self.capture:
            return values
        arguments = content.limit(call.arguments, self.options)
        output = content.limit(result.output, self.options)
        carried = self._io_carried or self.genai
        if self.genai:
            values[attr.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
            values[attr.GEN_AI_TOOL_CALL_RESULT] = output
        if self.openinference:
            values[attr.TOOL_PARAMETERS] = arguments
        self._set_langfuse_io(values, arguments, output)
        self._set_openinference_io(values, arguments, output, json_value=False)
        if not carried:
            values[attr.LK_TOOL_ARGUMENTS] = arguments
            values[attr.LK_TOOL_RESULT] = output
        return values

    # -- TTS ----------------------------------------------------------------------------
    def tts_start(self, request: TtsRequest) -> Attributes:
        """A ``tts_node`` as it opens: the TTS model and provider (never as ``gen_ai.*``)."""
        values: Attributes = {}
        if request.model:
            values[attr.LK_TTS_MODEL] = request.model
        if request.provider:
            values[attr.LK_TTS_PROVIDER] = request.provider
        self._set_kind(values, attr.LANGFUSE_TYPE_SPAN, attr.KIND_CHAIN)
        return values

    def tts_end(self, result: TtsResult, metrics: Attributes) -> Attributes:
        """A ``tts_node`` as it ends: LiveKit's metrics and the text sent to synthesis."""
        values = dict(metrics)
        if result.interrupted:
            self._set_warning(values, INTERRUPTED_MESSAGE)
        if self.capture and result.text is not None:
            text = content.limit(result.text, self.options)
            duration = result.audio_duration
            spoken = f"[audio {duration:.2f}s]" if duration is not None else "[audio]"
            self._set_io(values, text, spoken, lk_input=attr.LK_TTS_TEXT)
        return values

    # -- session events -------------------------------------------------------------------
    def handoff(self, old_agent: str | None, new_agent: str | None) -> Attributes:
        """An ``lk.agent_handoff`` event: the agent that handed the session to another."""
        values: Attributes = {}
        if old_agent:
            values[attr.LK_HANDOFF_FROM] = old_agent
        if new_agent:
            values[attr.LK_HANDOFF_TO] = new_agent
        return values

    def error_event(
        self, error_type: str, source_type: str, recoverable: bool | None
    ) -> Attributes:
        """An ``lk.error`` event: what failed and where (never the message: it may hold text)."""
        values: Attributes = {attr.LK_ERROR_TYPE: error_type, attr.LK_ERROR_SOURCE: source_type}
        if recoverable is not None:
            values[attr.LK_ERROR_RECOVERABLE] = recoverable
        return values

    # -- errors -------------------------------------------------------------------------
    def record_error(self, span: Span, error: BaseException) -> None:
        """ERROR status and an exception event; the message only when content is captured."""
        name = type(error).__name__
        if self.capture:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{name}: {error}"))
        else:
            span.add_event(attr.EXCEPTION_EVENT, {attr.EXCEPTION_TYPE: name})
            span.set_status(Status(StatusCode.ERROR, name))

    # -- setters: one fact, every convention in force -------------------------------------
    def _set_kind(self, values: Attributes, langfuse_type: str, openinference_kind: str) -> None:
        if self.langfuse:
            values[attr.LANGFUSE_OBSERVATION_TYPE] = langfuse_type
        if self.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = openinference_kind

    def _set_model(self, values: Attributes, model: str | None, provider: str | None) -> None:
        if model:
            values[attr.GEN_AI_REQUEST_MODEL] = model
            if self.openinference:
                values[attr.LLM_MODEL_NAME] = model
        if provider:
            name = provider_name(provider)
            values[attr.GEN_AI_PROVIDER_NAME] = name
            if self.openinference:
                values[attr.LLM_PROVIDER] = name

    def _set_usage(
        self,
        values: Attributes,
        input_tokens: int | None,
        output_tokens: int | None,
        cached: int | None,
    ) -> None:
        if input_tokens is None or output_tokens is None:
            return
        values[attr.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        values[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        if cached:
            values[attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
        if self.openinference:
            values[attr.LLM_TOKEN_COUNT_PROMPT] = input_tokens
            values[attr.LLM_TOKEN_COUNT_COMPLETION] = output_tokens
            values[attr.LLM_TOKEN_COUNT_TOTAL] = input_tokens + output_tokens
            if cached:
                values[attr.LLM_TOKEN_COUNT_CACHE_READ] = cached

    def _set_latency(self, values: Attributes, latency: Latency) -> None:
        values[attr.LK_TURN_PERCEIVED_LATENCY] = round(latency.total, 6)
        for part in attr.LATENCY_PARTS:
            values[attr.LK_TURN_LATENCY_PREFIX + part] = round(getattr(latency, part), 6)

    def _set_warning(self, values: Attributes, message: str) -> None:
        if self.langfuse:
            values[attr.LANGFUSE_OBSERVATION_LEVEL] = "WARNING"
            values[attr.LANGFUSE_OBSERVATION_STATUS_MESSAGE] = message

    def _set_langfuse_io(self, values: Attributes, input_value: str, output_value: str) -> None:
        # Langfuse takes input and output as a pair from the first source that has either
        if self.langfuse:
            values[attr.LANGFUSE_OBSERVATION_INPUT] = input_value
            values[attr.LANGFUSE_OBSERVATION_OUTPUT] = output_value

    def _set_openinference_io(
        self,
        values: Attributes,
        input_value: str | None,
        output_value: str | None,
        json_value: bool,
    ) -> None:
        if not self.openinference:
            return
        mime = attr.MIME_JSON if json_value else attr.MIME_TEXT
        if input_value is not None:
            values[attr.INPUT_VALUE] = input_value
            values[attr.INPUT_MIME_TYPE] = mime
        if output_value is not None:
            values[attr.OUTPUT_VALUE] = output_value
            values[attr.OUTPUT_MIME_TYPE] = mime

    def _set_io(
        self,
        values: Attributes,
        input_value: str | None,
        output_value: str | None,
        lk_input: str | None = None,
        lk_output: str | None = None,
    ) -> None:
        """Plain-text input and output of a span that is not a generation."""
        self._set_langfuse_io(values, input_value or "", output_value or "")
        self._set_openinference_io(values, input_value, output_value, json_value=False)
        if not self._io_carried:
            if lk_input and input_value is not None:
                values[lk_input] = input_value
            if lk_output and output_value is not None:
                values[lk_output] = output_value

    def _set_input(self, values: Attributes, value: str, json_value: bool, lk_key: str) -> None:
        """A generation's prompt (its output is written when it ends)."""
        if self.langfuse:
            values[attr.LANGFUSE_OBSERVATION_INPUT] = value
        self._set_openinference_io(values, value, None, json_value)
        if self.genai:
            values[attr.GEN_AI_INPUT_MESSAGES] = value
        if not (self._io_carried or self.genai):
            values[lk_key] = value

    def _set_output(self, values: Attributes, value: str, json_value: bool, lk_key: str) -> None:
        if self.langfuse:
            values[attr.LANGFUSE_OBSERVATION_OUTPUT] = value
        self._set_openinference_io(values, None, value, json_value)
        if self.genai:  # the GenAI conventions take a list of output messages
            values[attr.GEN_AI_OUTPUT_MESSAGES] = "[" + value + "]"
        if not (self._io_carried or self.genai):
            values[lk_key] = value

    def _set_dialogue(
        self,
        values: Attributes,
        user_text: str | None,
        agent_text: str | None,
        lk_input: str | None = None,
        lk_output: str | None = None,
    ) -> None:
        """What the user said and the agent answered, on an agent turn or the session."""
        if not self.capture:
            return
        heard = content.limit(user_text, self.options) if user_text else None
        said = content.limit(agent_text, self.options) if agent_text else None
        if heard is None and said is None:
            return
        self._set_langfuse_io(values, heard or "", said or "")
        self._set_openinference_io(values, heard, said, json_value=False)
        if self.genai:
            if heard is not None:
                values[attr.GEN_AI_INPUT_MESSAGES] = _messages("user", heard)
            if said is not None:
                values[attr.GEN_AI_OUTPUT_MESSAGES] = _messages("assistant", said)
        elif not self._io_carried:
            if lk_input and heard is not None:
                values[lk_input] = heard
            if lk_output and said is not None:
                values[lk_output] = said


def _interruption(facts: AgentTurnFacts) -> str:
    if facts.closed_mid_reply:
        return CLOSED_MESSAGE
    if facts.played_duration is not None:
        return f"interrupted after {facts.played_duration:.2f} s of audio"
    return INTERRUPTED_MESSAGE


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "content": text}], ensure_ascii=False, separators=(",", ":"))


def _scalar(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
