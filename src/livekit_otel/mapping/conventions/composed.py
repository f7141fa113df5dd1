"""Facts to attributes, span by span: each fact handed to every family in force.

With ``setters`` (which chooses the families once), this is the only reader of the
``conventions`` and ``capture_content`` options: when content capture is off no user or
model text leaves it. LiveKit's own ``lk.*`` keys (metrics, turn timing) come from
``livekit_keys``, the same for every convention.
"""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode

from ...config import Options
from .. import attributes as attr
from .. import content
from ..facts import (
    AgentTurnFacts,
    AudioFacts,
    CallFacts,
    Cost,
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
    Usage,
    UserTurnFacts,
)
from . import livekit_keys as lk
from .keys import (
    KIND_AGENT,
    KIND_GENERATION,
    KIND_SPAN,
    Attributes,
    messages,
)
from .setters import FactSetters, families

INTERRUPTED_MESSAGE = "interrupted before it finished"
CLOSED_MESSAGE = "cut off: the session closed before the reply finished"


class Conventions(FactSetters):
    """Writes facts as attributes, for the conventions and content options chosen."""

    def __init__(self, options: Options) -> None:
        super().__init__(options, families(options))

    # -- what every span carries --------------------------------------------------------
    def common(self, facts: SessionFacts) -> Attributes:
        """Session, user, environment and release: on every span of the session."""
        values: Attributes = {}
        for write in self._session:
            write(values, facts)
        return values

    def trace_root(self, name: str, facts: SessionFacts) -> Attributes:
        """What a backend reads at trace level, set on the root span of each trace."""
        values: Attributes = {}
        for write in self._trace:
            write(values, name, facts)
        return values

    def metadata(self, facts: SessionFacts) -> Attributes:
        """The session's metadata, for the conventions that have a key for it."""
        values: Attributes = {}
        for write in self._metadata:
            write(values, facts)
        return values

    # -- session ------------------------------------------------------------------------
    def session_start(self, start: SessionStart, facts: SessionFacts) -> Attributes:
        """The ``agent_session`` root span as it opens."""
        values = lk.session_opened(start, facts.session_id)
        for write in self._agent:
            write(values, start.agent_name)
        self._set_kind(values, KIND_AGENT)
        return values

    def session_end(self, end: SessionEnd) -> Attributes:
        """Usage totals and the call's first and last words, at close."""
        values = lk.session_totals(end)
        self._set_dialogue(values, end.first_user_text, end.last_agent_text, None, None)
        if end.call is not None:
            self._set_call(values, end.call)
        return values

    # -- user turns ---------------------------------------------------------------------
    def user_turn(self, facts: UserTurnFacts) -> Attributes:
        """A ``user_turn``: how the user spoke, the STT metrics and the transcript."""
        values = lk.user_turn(facts)
        self._set_kind(values, KIND_SPAN)
        self._set_speech_usage(values, facts.usage, facts.cost)
        if self.capture and facts.transcript:
            text = content.limit(facts.transcript, self.options)
            heard = "[audio]" if facts.input_mode == "audio" else text
            for write in self._text_io:
                write(values, heard, text, None, attr.LK_USER_TRANSCRIPT)
        return values

    def stt_usage(self, stt: Attributes, usage: Usage | None, cost: Cost | None) -> Attributes:
        """STT metrics that came after their ``user_turn`` was written, with usage and cost."""
        values = dict(stt)
        self._set_speech_usage(values, usage, cost)
        return values

    def end_of_turn(self, eou: Attributes, speech_id: str | None) -> Attributes:
        """An ``end_of_turn``: LiveKit's end-of-utterance metrics."""
        values = dict(eou)
        if speech_id:
            values[attr.LK_SPEECH_ID] = speech_id
        self._set_kind(values, KIND_SPAN)
        return values

    # -- agent turns --------------------------------------------------------------------
    def agent_turn_start(self, facts: AgentTurnFacts) -> Attributes:
        """An ``agent_turn`` as its speech handle is created."""
        values = lk.agent_turn_opened(facts)
        if facts.agent_name:
            for write in self._agent:
                write(values, facts.agent_name)
        for invoke in self._invoke_agent:
            invoke(values)
        self._set_kind(values, KIND_AGENT)
        return values

    def agent_turn_end(self, facts: AgentTurnFacts) -> Attributes:
        """An ``agent_turn`` as it ends: interruption, LiveKit's latency formula, the words."""
        values = lk.agent_turn_timing(facts)
        if facts.interrupted:
            self._set_warning(values, _interruption(facts))
        self._set_dialogue(
            values,
            facts.user_text,
            facts.spoken_text,
            attr.LK_TURN_USER_TEXT,
            attr.LK_TURN_AGENT_TEXT,
        )
        if self.capture and self._trace_io and (facts.call_input or facts.spoken_text):
            first = content.limit(facts.call_input, self.options) if facts.call_input else None
            said = content.limit(facts.spoken_text, self.options) if facts.spoken_text else None
            for write in self._trace_io:
                write(values, first, said)
        return values

    # -- audio --------------------------------------------------------------------------
    def audio(self, facts: AudioFacts) -> Attributes:
        """A span's clip or recording, and the backend's reference to it beside the text.
        Nothing at all when content capture is off."""
        if not self.capture:
            return {}
        values = lk.audio(facts)
        if facts.duration is not None and facts.reference:
            shown = f"{facts.text}\n{facts.reference}" if facts.text else facts.reference
            for write in self._audio_reference:
                write(values, facts.field, shown)
        return values

    # -- LLM ----------------------------------------------------------------------------
    def llm_start(
        self, request: LlmRequest, prompt: tuple[str, int] | None, items: int | None
    ) -> Attributes:
        """An ``llm_node`` as it opens: model, provider, tools and the prompt (JSON, count)."""
        values: Attributes = {}
        self._set_kind(values, KIND_GENERATION)
        self._set_model(values, request.model, request.provider)
        if request.parameters and self._model_parameters:
            parameters = content.to_json(request.parameters, self.options)
            for write in self._model_parameters:
                write(values, parameters)
        if request.tool_definitions is not None:
            values[attr.GEN_AI_TOOL_DEFINITIONS] = request.tool_definitions
        if items is not None:
            values[attr.LK_LLM_PROMPT_ITEMS] = items
        if self.capture and prompt is not None:
            values[attr.LK_LLM_PROMPT_CAPTURED_ITEMS] = prompt[1]
            for write in self._prompt:
                write(values, prompt[0], attr.LK_LLM_INPUT_MESSAGES)
        return values

    def captures_content(self) -> bool:
        """Whether user and model text is recorded at all."""
        return self.capture

    def llm_end(self, response: LlmResponse, metrics: Attributes) -> Attributes:
        """An ``llm_node`` as it ends: LiveKit's metrics, usage, first token, the output."""
        values = dict(metrics)
        if response.input_tokens is not None and response.output_tokens is not None:
            for write in self._usage:
                write(
                    values,
                    response.input_tokens,
                    response.output_tokens,
                    response.cached_input_tokens,
                )
        self._set_completion_start(values, response.completion_start_time)
        if response.cost is not None:
            self._set_cost(values, response.cost)
        for write in self._finish_reason:
            write(values, response.finish_reason)
        if response.interrupted:
            self._set_warning(values, INTERRUPTED_MESSAGE)
        if self.capture:
            self._set_reply(values, response.text, response.tool_calls)
        return values

    # -- realtime responses -------------------------------------------------------------
    def realtime_start(
        self, model: str | None, provider: str | None, response_id: str
    ) -> Attributes:
        """A ``realtime_response`` as the model starts it: a generation, like ``llm_node``."""
        values: Attributes = {}
        self._set_kind(values, KIND_GENERATION)
        if response_id:
            values[attr.GEN_AI_RESPONSE_ID] = response_id
        self._set_model(values, model, provider)
        return values

    def realtime_end(self, facts: RealtimeResponseFacts, metrics: Attributes) -> Attributes:
        """A ``realtime_response`` once its metrics came: usage by modality, first token, words."""
        values = dict(metrics)
        usage = facts.usage
        if usage is not None:
            for write in self._usage:
                write(values, usage.input_tokens, usage.output_tokens, None)
            for split in self._realtime_usage:
                split(values, usage)
        self._set_completion_start(values, facts.completion_start_time)
        if facts.cost is not None:
            self._set_cost(values, facts.cost)
        if facts.cancelled:
            self._set_warning(values, INTERRUPTED_MESSAGE)
        if self.capture:
            heard = content.limit(facts.user_text, self.options) if facts.user_text else ""
            asked = messages("user", heard) if heard else "[]"
            for write in self._prompt:
                write(values, asked, attr.LK_LLM_INPUT_MESSAGES)
            self._set_reply(values, facts.output_text or "", facts.tool_calls)
        return values

    # -- tools --------------------------------------------------------------------------
    def tool_start(self, call: ToolCall) -> Attributes:
        """A ``function_tool`` as the call starts."""
        values: Attributes = {}
        for write in self._tool:
            write(values, call)
        return values

    def tool_end(self, call: ToolCall, result: ToolResult) -> Attributes:
        """A ``function_tool`` as the call returns: arguments and result."""
        values: Attributes = {attr.LK_TOOL_IS_ERROR: result.is_error}
        if self.capture:
            arguments = content.limit(call.arguments, self.options)
            output = content.limit(result.output, self.options)
            for write in self._tool_io:
                write(values, arguments, output)
        return values

    # -- TTS ----------------------------------------------------------------------------
    def tts_start(self, request: TtsRequest) -> Attributes:
        """A ``tts_node`` as it opens: the TTS model and provider (never as ``gen_ai.*``)."""
        values = lk.tts_model(request)
        self._set_kind(values, KIND_SPAN)
        return values

    def tts_end(self, result: TtsResult, metrics: Attributes) -> Attributes:
        """A ``tts_node`` as it ends: LiveKit's metrics and the text sent to synthesis."""
        values = dict(metrics)
        self._set_speech_usage(values, result.usage, result.cost)
        if result.interrupted:
            self._set_warning(values, INTERRUPTED_MESSAGE)
        if self.capture and result.text is not None:
            text = content.limit(result.text, self.options)
            duration = result.audio_duration
            spoken = f"[audio {duration:.2f}s]" if duration is not None else "[audio]"
            for write in self._text_io:
                write(values, text, spoken, attr.LK_TTS_TEXT, None)
        return values

    # -- session events -----------------------------------------------------------------
    def handoff(self, old_agent: str | None, new_agent: str | None) -> Attributes:
        """An ``lk.agent_handoff`` event: the agent that handed the session to another."""
        return lk.handoff(old_agent, new_agent)

    def error_event(
        self, error_type: str, source_type: str, recoverable: bool | None
    ) -> Attributes:
        """An ``lk.error`` event: what failed and where (never the message: it may hold text)."""
        return lk.error_event(error_type, source_type, recoverable)

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

    # -- the call at a glance ---------------------------------------------------------
    def _set_call(self, values: Attributes, call: CallFacts) -> None:
        """The call at a glance and, when content is captured, its transcript (bounded)."""
        glance = lk.call_glance(call)
        values.update(glance)
        for write in self._call:
            write(values, glance)
        if not (self.capture and call.transcript):
            return
        lines = [f"{role}: {content.redact(text, self.options)}" for role, text in call.transcript]
        limit = self.options.max_attribute_length
        text, cut = _bounded_tail(lines, limit)
        cut = cut or call.transcript_dropped > 0
        if cut:
            text = CUT_MARKER + "\n" + _bounded_tail(lines, limit - len(CUT_MARKER) - 1)[0]
        values[attr.LK_CALL_TRANSCRIPT_CUT] = cut
        for write in self._transcript:
            write(values, text)


CUT_MARKER = "[... earlier turns cut]"


def _bounded_tail(lines: list[str], limit: int) -> tuple[str, bool]:
    """The last of ``lines`` that fit in ``limit`` characters, and whether any was left out."""
    limit = max(limit, 1)
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > limit:
            if not kept:  # one line longer than the limit: its end
                kept.append(line[-limit:])
            return "\n".join(reversed(kept)), True
        kept.append(line)
        size += len(line) + 1
    return "\n".join(reversed(kept)), False


def _interruption(facts: AgentTurnFacts) -> str:
    if facts.closed_mid_reply:
        return CLOSED_MESSAGE
    if facts.played_duration is not None:
        return f"interrupted after {facts.played_duration:.2f} s of audio"
    return INTERRUPTED_MESSAGE
