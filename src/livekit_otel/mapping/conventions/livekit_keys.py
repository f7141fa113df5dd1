"""The trace contract's own keys: written whatever conventions are chosen.

Besides LiveKit's ``lk.*`` keys, the contract names a few GenAI and Langfuse keys every
backend gets (model, provider and usage of a generation, its type, the session id). Captured
content goes under an ``lk.*`` key only when no convention in force carries it.
"""

from __future__ import annotations

from .. import attributes as attr
from ..facts import (
    AgentTurnFacts,
    AudioFacts,
    CallFacts,
    Cost,
    RealtimeUsage,
    SessionEnd,
    SessionFacts,
    SessionStart,
    ToolCall,
    TtsRequest,
    UserTurnFacts,
)
from .keys import KIND_GENERATION, Attributes, Keys

USAGE_PREFIX = attr.GEN_AI_USAGE_PREFIX


class LiveKitKeys(Keys):
    """Writes the keys the trace contract requires, and content no convention carries."""

    def __init__(
        self,
        text_carried: bool,
        messages_carried: bool,
        total_carried: bool,
        transcript_carried: bool = False,
    ) -> None:
        # whether a convention in force carries a span's plain text, or a generation's
        # messages (and a turn's dialogue and a tool's arguments and result), or a realtime
        # response's total (Langfuse's usage details), or the call's transcript
        self.text_carried = text_carried
        self.messages_carried = messages_carried
        self.total_carried = total_carried
        self.transcript_carried = transcript_carried

    def session(self, values: Attributes, facts: SessionFacts) -> None:
        # one key each, read by Langfuse and by Phoenix (the session and user) or by
        # Langfuse and OpenTelemetry's resource conventions (the environment); Langfuse's
        # release key is the only one it reads
        values[attr.SESSION_ID] = facts.session_id
        if facts.user_id:
            values[attr.USER_ID] = facts.user_id
        if facts.environment:
            values[attr.DEPLOYMENT_ENVIRONMENT_NAME] = facts.environment
        if facts.release:
            values[attr.LANGFUSE_RELEASE] = facts.release

    def kind(self, values: Attributes, kind: str) -> None:
        if kind == KIND_GENERATION:
            values[attr.GEN_AI_OPERATION_NAME] = attr.GEN_AI_OPERATION_CHAT
            values[attr.LANGFUSE_OBSERVATION_TYPE] = attr.LANGFUSE_TYPE_GENERATION

    def model(self, values: Attributes, model: str | None, provider: str | None) -> None:
        if model:
            values[attr.GEN_AI_REQUEST_MODEL] = model
        if provider:
            values[attr.GEN_AI_PROVIDER_NAME] = provider

    def usage(
        self, values: Attributes, input_tokens: int, output_tokens: int, cached: int | None
    ) -> None:
        values[attr.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        values[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        if cached:
            values[attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached

    def realtime_usage(self, values: Attributes, usage: RealtimeUsage) -> None:
        if not self.total_carried:
            values[attr.GEN_AI_USAGE_TOTAL_TOKENS] = usage.total_tokens or (
                usage.input_tokens + usage.output_tokens
            )
        for key, count in split_usage(usage):
            values[key] = count

    def completion_start(self, values: Attributes, iso_time: str) -> None:
        values[attr.LANGFUSE_COMPLETION_START_TIME] = iso_time

    def tool(self, values: Attributes, call: ToolCall) -> None:
        values[attr.GEN_AI_OPERATION_NAME] = attr.GEN_AI_OPERATION_EXECUTE_TOOL
        values[attr.GEN_AI_TOOL_NAME] = call.name
        values[attr.GEN_AI_TOOL_CALL_ID] = call.call_id
        values[attr.LANGFUSE_OBSERVATION_TYPE] = attr.LANGFUSE_TYPE_TOOL

    def cost(self, values: Attributes, cost: Cost) -> None:
        values[attr.LK_COST_TOTAL] = usd(cost.total)
        values[attr.LK_COST_SOURCE] = cost.source

    def transcript(self, values: Attributes, text: str) -> None:
        if not self.transcript_carried:
            values[attr.LK_CALL_TRANSCRIPT] = text

    def tool_io(self, values: Attributes, arguments: str, result: str) -> None:
        if not self.messages_carried:
            values[attr.LK_TOOL_ARGUMENTS] = arguments
            values[attr.LK_TOOL_RESULT] = result

    def text_io(
        self,
        values: Attributes,
        input_text: str | None,
        output_text: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        if self.text_carried:
            return
        if lk_input and input_text is not None:
            values[lk_input] = input_text
        if lk_output and output_text is not None:
            values[lk_output] = output_text

    def prompt(self, values: Attributes, messages: str, lk_key: str) -> None:
        if not self.messages_carried:
            values[lk_key] = messages

    def completion(self, values: Attributes, message: str, lk_key: str) -> None:
        if not self.messages_carried:
            values[lk_key] = message

    def dialogue(
        self,
        values: Attributes,
        heard: str | None,
        said: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        if self.messages_carried:
            return
        if lk_input and heard is not None:
            values[lk_input] = heard
        if lk_output and said is not None:
            values[lk_output] = said


def split_usage(usage: RealtimeUsage) -> list[tuple[str, int]]:
    """A realtime response's tokens by modality, disjoint (cached apart), the zeros left out.

    The keys are those of Langfuse's price list for realtime models, so audio is priced
    as audio.
    """
    cached_text = usage.input_cached_text_tokens or usage.input_cached_tokens
    splits = (
        (attr.GEN_AI_USAGE_INPUT_TEXT_TOKENS, usage.input_text_tokens - cached_text),
        (attr.GEN_AI_USAGE_INPUT_CACHED_TEXT_TOKENS, cached_text),
        (
            attr.GEN_AI_USAGE_INPUT_AUDIO_TOKENS,
            usage.input_audio_tokens - usage.input_cached_audio_tokens,
        ),
        (attr.GEN_AI_USAGE_INPUT_CACHED_AUDIO_TOKENS, usage.input_cached_audio_tokens),
        (attr.GEN_AI_USAGE_OUTPUT_TEXT_TOKENS, usage.output_text_tokens),
        (attr.GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS, usage.output_audio_tokens),
    )
    return [(key, count) for key, count in splits if count > 0]


# -- LiveKit's own facts: lk.* keys, the same under every convention ----------------------
def session_opened(start: SessionStart, session_id: str) -> Attributes:
    """The ``agent_session`` span's own keys as it opens."""
    values: Attributes = {
        attr.LK_AGENT_NAME: start.agent_name,
        # the contract's copies of the session id, on the root only
        attr.LANGFUSE_SESSION_ID: session_id,
        attr.GEN_AI_CONVERSATION_ID: session_id,
    }
    if start.room_name:
        values[attr.LK_ROOM_NAME] = start.room_name
    if start.job_id:
        values[attr.LK_JOB_ID] = start.job_id
    return values


def session_totals(end: SessionEnd) -> Attributes:
    """A closing session's usage totals, turn count and VAD and connection metrics."""
    values: Attributes = {
        key: round(value, 6) if isinstance(value, float) else value
        for key, value in end.usage.items()
    }
    values[attr.LK_SESSION_TURNS] = end.agent_turns
    if end.vad is not None and end.vad.requests:
        values.update(end.vad.attributes())
    if end.connection is not None and end.connection.requests:
        values.update(end.connection.attributes())
    return values


def usd(value: float) -> float:
    """A cost as written: USD to the ten-billionth."""
    return round(value, 10)


def call_glance(call: CallFacts) -> Attributes:
    """The call at a glance: duration, turns, talk times, silence, latency, end, costs."""
    values: Attributes = {
        attr.LK_CALL_DURATION: round(call.duration, 6),
        attr.LK_CALL_TURNS: call.turns,
        attr.LK_CALL_INTERRUPTED_TURNS: call.interrupted_turns,
        attr.LK_CALL_USER_TALK_TIME: round(call.user_talk_time, 6),
        attr.LK_CALL_AGENT_TALK_TIME: round(call.agent_talk_time, 6),
    }
    for key, value in (
        (attr.LK_CALL_LONGEST_SILENCE, call.longest_silence),
        (attr.LK_CALL_LATENCY_MEDIAN, call.latency_median),
        (attr.LK_CALL_LATENCY_MAX, call.latency_max),
    ):
        if value is not None:
            values[key] = round(value, 6)
    if call.end_reason:
        values[attr.LK_CALL_END_REASON] = call.end_reason
    if call.costs:  # no priced span: no cost (never 0)
        values[attr.LK_CALL_COST_TOTAL] = usd(sum(call.costs.values()))
        for kind, amount in sorted(call.costs.items()):
            values[attr.LK_CALL_COST_PREFIX + kind] = usd(amount)
    return values


def user_turn(facts: UserTurnFacts) -> Attributes:
    """A ``user_turn``'s own keys: input mode, commit, the STT metrics, model and provider."""
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
    return values


def audio(facts: AudioFacts) -> Attributes:
    """A span's clip or recording: its type, length, where it is, and what befell it."""
    values: Attributes = {}
    if facts.unavailable is not None:
        values[attr.LK_RECORDING_UNAVAILABLE] = facts.unavailable
    if facts.dropped:
        values[attr.LK_AUDIO_DROPPED] = True
    if facts.duration is None:
        return values
    values[attr.LK_AUDIO_MIME_TYPE] = facts.mime_type
    values[attr.LK_AUDIO_DURATION] = facts.duration
    if facts.uri:
        values[attr.LK_AUDIO_URI] = facts.uri
    if facts.truncated:
        values[attr.LK_AUDIO_TRUNCATED] = True
    if facts.start_offset is not None:
        values[attr.LK_RECORDING_START_OFFSET] = facts.start_offset
    return values


def agent_turn_opened(facts: AgentTurnFacts) -> Attributes:
    """An ``agent_turn``'s own keys as its speech handle is created."""
    values: Attributes = {attr.LK_SPEECH_ID: facts.speech_id, attr.LK_TURN_SOURCE: facts.source}
    if facts.agent_name:
        values[attr.LK_AGENT_NAME] = facts.agent_name
    return values


def agent_turn_timing(facts: AgentTurnFacts) -> Attributes:
    """An ended ``agent_turn``'s interruption, LiveKit's latency formula, measured latency."""
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
    if facts.eou_delay is not None and facts.llm_ttft is not None and facts.tts_ttfb is not None:
        values[attr.LK_TURN_TOTAL_LATENCY] = facts.eou_delay + facts.llm_ttft + facts.tts_ttfb
    latency = facts.latency
    if latency is not None:
        values[attr.LK_TURN_PERCEIVED_LATENCY] = round(latency.total, 6)
        for part in attr.LATENCY_PARTS:
            values[attr.LK_TURN_LATENCY_PREFIX + part] = round(getattr(latency, part), 6)
    if facts.played_duration is not None:
        values[attr.LK_TURN_PLAYED_DURATION] = round(facts.played_duration, 6)
    return values


def tts_model(request: TtsRequest) -> Attributes:
    """A ``tts_node``'s model and provider, never as ``gen_ai.*`` (not a chat generation)."""
    values: Attributes = {}
    if request.model:
        values[attr.LK_TTS_MODEL] = request.model
    if request.provider:
        values[attr.LK_TTS_PROVIDER] = request.provider
    return values


def handoff(old_agent: str | None, new_agent: str | None) -> Attributes:
    """An ``lk.agent_handoff`` event: the agent that handed the session to another."""
    values: Attributes = {}
    if old_agent:
        values[attr.LK_HANDOFF_FROM] = old_agent
    if new_agent:
        values[attr.LK_HANDOFF_TO] = new_agent
    return values


def error_event(error_type: str, source_type: str, recoverable: bool | None) -> Attributes:
    """An ``lk.error`` event: what failed and where (never the message: it may hold text)."""
    values: Attributes = {attr.LK_ERROR_TYPE: error_type, attr.LK_ERROR_SOURCE: source_type}
    if recoverable is not None:
        values[attr.LK_ERROR_RECOVERABLE] = recoverable
    return values
