"""Every span name and attribute key livekit-otel emits.

The names are an API (see ``docs/spans.md``): dashboards, alerts and Langfuse filters are
built on them. Keys of the OpenTelemetry GenAI conventions come from the
``opentelemetry-semantic-conventions`` package when the installed release defines them.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai


def _genai(constant: str, key: str) -> str:
    """The key of a GenAI convention constant, or ``key`` on releases that lack it."""
    value = getattr(_gen_ai, constant, key)
    return value if isinstance(value, str) else key


# -- span names ---------------------------------------------------------------------------
SPAN_AGENT_SESSION: Final = "agent_session"
SPAN_SESSION_START: Final = "session_start"
SPAN_SESSION_CLOSE: Final = "session_close"
SPAN_USER_TURN: Final = "user_turn"
SPAN_END_OF_TURN: Final = "end_of_turn"
SPAN_AGENT_TURN: Final = "agent_turn"
SPAN_LLM_NODE: Final = "llm_node"
SPAN_FUNCTION_TOOL: Final = "function_tool"
SPAN_TTS_NODE: Final = "tts_node"
SPAN_REALTIME_RESPONSE: Final = "realtime_response"

# -- metric instruments (OpenTelemetry metrics) ------------------------------------------
METRIC_PERCEIVED_LATENCY: Final = "lk.turn.perceived_latency"  # histogram, s
METRIC_LATENCY_PART: Final = "lk.turn.latency"  # histogram, s, by LK_LATENCY_PART
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"  # histogram, s
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"  # s
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # histogram, {token}
METRIC_TURNS: Final = "lk.turns"  # counter, by LK_TURN_INTERRUPTED
METRIC_TTS_CHARACTERS: Final = "lk.usage.tts_characters"  # counter
METRIC_STT_AUDIO_DURATION: Final = "lk.usage.stt_audio_duration"  # counter, s
METRIC_COST: Final = "lk.cost"  # counter, USD, by LK_KIND, LK_MODEL, LK_PROVIDER
METRIC_CALL_DURATION: Final = "lk.call.duration"  # histogram, s, one per call
METRIC_CALL_TURNS: Final = "lk.call.turns"  # histogram, {turn}, one per call
METRIC_CALL_COST: Final = "lk.call.cost"  # histogram, USD, one per call with a priced span
LK_KIND: Final = "lk.kind"  # what a cost is for: llm, stt, tts or realtime
LK_LATENCY_PART: Final = "lk.latency.part"  # one of LATENCY_PARTS
LK_MODEL: Final = "lk.model"  # the STT or TTS model a usage counter counts for
LK_PROVIDER: Final = "lk.provider"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # "input" or "output"

# -- LiveKit (lk.*) -------------------------------------------------------------------------
METRICS_PREFIX: Final = "lk."  # lk.<kind>.<field>, kind one of METRICS_KINDS
METRICS_KINDS: Final = ("stt", "llm", "tts", "eou", "vad", "realtime")
METRICS_REQUESTS_FIELD: Final = "requests"

LK_AGENT_NAME: Final = "lk.agent.name"
LK_ROOM_NAME: Final = "lk.room.name"
LK_JOB_ID: Final = "lk.job.id"
LK_SPEECH_ID: Final = "lk.speech_id"
LK_SESSION_CLOSE_REASON: Final = "lk.session.close_reason"
LK_SESSION_CLOSE_ERROR: Final = "lk.session.close_error"
LK_USAGE_LLM_PROMPT_TOKENS: Final = "lk.usage.llm_prompt_tokens"
LK_USAGE_LLM_PROMPT_CACHED_TOKENS: Final = "lk.usage.llm_prompt_cached_tokens"
LK_USAGE_LLM_COMPLETION_TOKENS: Final = "lk.usage.llm_completion_tokens"
LK_USAGE_TTS_CHARACTERS: Final = "lk.usage.tts_characters_count"
LK_USAGE_TTS_AUDIO_DURATION: Final = "lk.usage.tts_audio_duration"
LK_USAGE_STT_AUDIO_DURATION: Final = "lk.usage.stt_audio_duration"
LK_USAGE_REALTIME_INPUT_TOKENS: Final = "lk.usage.realtime_input_tokens"
LK_USAGE_REALTIME_INPUT_TEXT_TOKENS: Final = "lk.usage.realtime_input_text_tokens"
LK_USAGE_REALTIME_INPUT_AUDIO_TOKENS: Final = "lk.usage.realtime_input_audio_tokens"
LK_USAGE_REALTIME_INPUT_CACHED_TOKENS: Final = "lk.usage.realtime_input_cached_tokens"
LK_USAGE_REALTIME_OUTPUT_TOKENS: Final = "lk.usage.realtime_output_tokens"
LK_USAGE_REALTIME_OUTPUT_TEXT_TOKENS: Final = "lk.usage.realtime_output_text_tokens"
LK_USAGE_REALTIME_OUTPUT_AUDIO_TOKENS: Final = "lk.usage.realtime_output_audio_tokens"
LK_SESSION_TURNS: Final = "lk.session.agent_turns"

# -- cost: on each span of a billed model, in USD ------------------------------------------
LK_COST_TOTAL: Final = "lk.cost.total"
LK_COST_SOURCE: Final = "lk.cost.source"  # the price table's read date, or "user"
COST_KINDS: Final = ("llm", "stt", "tts", "realtime")

# -- the call at a glance, on agent_session as it closes ---------------------------------
LK_CALL_COST_TOTAL: Final = "lk.call.cost.total"  # USD, the sum of its spans' costs
LK_CALL_COST_PREFIX: Final = "lk.call.cost."  # + one of COST_KINDS, USD
LK_CALL_DURATION: Final = "lk.call.duration"  # s
LK_CALL_TURNS: Final = "lk.call.turns"  # agent replies (discarded ones not counted)
LK_CALL_INTERRUPTED_TURNS: Final = "lk.call.interrupted_turns"
LK_CALL_USER_TALK_TIME: Final = "lk.call.user_talk_time"  # s, start of speech to its end
LK_CALL_AGENT_TALK_TIME: Final = "lk.call.agent_talk_time"  # s of reply audio played
LK_CALL_LONGEST_SILENCE: Final = "lk.call.longest_silence"  # s, between two speakers
LK_CALL_LATENCY_MEDIAN: Final = "lk.call.perceived_latency.median"  # s
LK_CALL_LATENCY_MAX: Final = "lk.call.perceived_latency.max"  # s
LK_CALL_END_REASON: Final = "lk.call.end_reason"
LK_CALL_TRANSCRIPT: Final = "lk.call.transcript"  # "user: ..." / "agent: ..." lines
LK_CALL_TRANSCRIPT_CUT: Final = "lk.call.transcript.cut"  # True when earlier lines are left out

LK_TURN_INTERRUPTED: Final = "lk.turn.interrupted"
LK_TURN_DISCARDED: Final = "lk.turn.discarded"
LK_TURN_SOURCE: Final = "lk.turn.source"
LK_TURN_EOU_DELAY: Final = "lk.turn.eou_delay"
LK_TURN_LLM_TTFT: Final = "lk.turn.llm_ttft"
LK_TURN_TTS_TTFB: Final = "lk.turn.tts_ttfb"
LK_TURN_TOTAL_LATENCY: Final = "lk.turn.total_latency"
# measured latency: the end of the user's speech to the first audio frame handed to the output
LK_TURN_PERCEIVED_LATENCY: Final = "lk.turn.perceived_latency"
LK_TURN_LATENCY_PREFIX: Final = "lk.turn.latency."  # + one of LATENCY_PARTS
LATENCY_PARTS: Final = ("end_of_turn", "on_user_turn_completed", "llm", "tools", "tts", "playout")
LK_TURN_PLAYED_DURATION: Final = "lk.turn.played_duration"
LK_TURN_USER_TEXT: Final = "lk.turn.user_text"
LK_TURN_AGENT_TEXT: Final = "lk.turn.agent_text"

LK_USER_TRANSCRIPT: Final = "lk.user.transcript"
LK_USER_INPUT_MODE: Final = "lk.user.input_mode"  # "audio" or "text"
LK_USER_TURN_COMMITTED: Final = "lk.user_turn.committed"
LK_STT_MODEL: Final = "lk.stt.model"
LK_STT_PROVIDER: Final = "lk.stt.provider"
LK_TTS_MODEL: Final = "lk.tts.model"
LK_TTS_PROVIDER: Final = "lk.tts.provider"
LK_TTS_TEXT: Final = "lk.tts.text"

LK_LLM_PROMPT_ITEMS: Final = "lk.llm.prompt.items"
LK_LLM_PROMPT_CAPTURED_ITEMS: Final = "lk.llm.prompt.captured_items"
# the prompt and the output of an llm_node, only when no convention in force carries them
LK_LLM_INPUT_MESSAGES: Final = "lk.llm.input.messages"
LK_LLM_OUTPUT_MESSAGES: Final = "lk.llm.output.messages"
LK_TOOL_ARGUMENTS: Final = "lk.function_tool.arguments"
LK_TOOL_RESULT: Final = "lk.function_tool.result"
LK_TOOL_IS_ERROR: Final = "lk.function_tool.is_error"

LK_ERROR_EVENT: Final = "lk.error"
LK_ERROR_SOURCE: Final = "lk.error.source"
LK_ERROR_TYPE: Final = "lk.error.type"
LK_ERROR_RECOVERABLE: Final = "lk.error.recoverable"
LK_HANDOFF_EVENT: Final = "lk.agent_handoff"
LK_HANDOFF_FROM: Final = "lk.handoff.from"
LK_HANDOFF_TO: Final = "lk.handoff.to"
LK_CANCELLED: Final = "lk.cancelled"  # a node still open when its turn or session ended
# seconds cut off the start of a span to keep it within its parent (the measured duration
# stays in its metrics attributes)
LK_CLIPPED_SECONDS: Final = "lk.clipped_seconds"
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"

# audio (option ``audio``): on each span that carries a clip or the call's recording
LK_AUDIO_MIME_TYPE: Final = "lk.audio.mime_type"
LK_AUDIO_DURATION: Final = "lk.audio.duration"  # s
LK_AUDIO_URI: Final = "lk.audio.uri"  # where the audio_store keeps it
LK_AUDIO_DROPPED: Final = "lk.audio.dropped"  # the worker fell behind: (part of) it is missing
LK_AUDIO_TRUNCATED: Final = "lk.audio.truncated"  # longer than the clip limit: cut there
LK_RECORDING_START_OFFSET: Final = "lk.recording.start_offset"  # s, span start to 1st sample
LK_RECORDING_UNAVAILABLE: Final = "lk.recording.unavailable"  # why agent_session has none

# -- session and user, read by Langfuse and Phoenix ---------------------------------------
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"
METADATA: Final = "metadata"  # OpenInference: one JSON object

# -- OpenTelemetry GenAI conventions -------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _genai("GEN_AI_OPERATION_NAME", "gen_ai.operation.name")
GEN_AI_REQUEST_MODEL: Final = _genai("GEN_AI_REQUEST_MODEL", "gen_ai.request.model")
GEN_AI_PROVIDER_NAME: Final = _genai("GEN_AI_PROVIDER_NAME", "gen_ai.provider.name")
GEN_AI_CONVERSATION_ID: Final = _genai("GEN_AI_CONVERSATION_ID", "gen_ai.conversation.id")
GEN_AI_AGENT_NAME: Final = _genai("GEN_AI_AGENT_NAME", "gen_ai.agent.name")
GEN_AI_USAGE_INPUT_TOKENS: Final = _genai("GEN_AI_USAGE_INPUT_TOKENS", "gen_ai.usage.input_tokens")
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _genai(
    "GEN_AI_USAGE_OUTPUT_TOKENS", "gen_ai.usage.output_tokens"
)
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _genai(
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS", "gen_ai.usage.cache_read.input_tokens"
)
GEN_AI_RESPONSE_ID: Final = _genai("GEN_AI_RESPONSE_ID", "gen_ai.response.id")
GEN_AI_USAGE_PREFIX: Final = "gen_ai.usage."
GEN_AI_USAGE_TOTAL_TOKENS: Final = "gen_ai.usage.total_tokens"
# a realtime response's tokens by modality, disjoint (cached apart), under the usage keys of
# Langfuse's price list for realtime models, so audio is priced as audio
GEN_AI_USAGE_INPUT_TEXT_TOKENS: Final = "gen_ai.usage.input_text_tokens"
GEN_AI_USAGE_INPUT_CACHED_TEXT_TOKENS: Final = "gen_ai.usage.input_cached_text_tokens"
GEN_AI_USAGE_INPUT_AUDIO_TOKENS: Final = "gen_ai.usage.input_audio_tokens"
GEN_AI_USAGE_INPUT_CACHED_AUDIO_TOKENS: Final = "gen_ai.usage.input_cached_audio_tokens"
GEN_AI_USAGE_OUTPUT_TEXT_TOKENS: Final = "gen_ai.usage.output_text_tokens"
GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS: Final = "gen_ai.usage.output_audio_tokens"
GEN_AI_RESPONSE_FINISH_REASONS: Final = _genai(
    "GEN_AI_RESPONSE_FINISH_REASONS", "gen_ai.response.finish_reasons"
)
GEN_AI_TOOL_NAME: Final = _genai("GEN_AI_TOOL_NAME", "gen_ai.tool.name")
GEN_AI_TOOL_CALL_ID: Final = _genai("GEN_AI_TOOL_CALL_ID", "gen_ai.tool.call.id")
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _genai(
    "GEN_AI_TOOL_CALL_ARGUMENTS", "gen_ai.tool.call.arguments"
)
GEN_AI_TOOL_CALL_RESULT: Final = _genai("GEN_AI_TOOL_CALL_RESULT", "gen_ai.tool.call.result")
GEN_AI_TOOL_DEFINITIONS: Final = _genai("GEN_AI_TOOL_DEFINITIONS", "gen_ai.tool.definitions")
GEN_AI_TOOL_TYPE: Final = _genai("GEN_AI_TOOL_TYPE", "gen_ai.tool.type")
GEN_AI_INPUT_MESSAGES: Final = _genai("GEN_AI_INPUT_MESSAGES", "gen_ai.input.messages")
GEN_AI_OUTPUT_MESSAGES: Final = _genai("GEN_AI_OUTPUT_MESSAGES", "gen_ai.output.messages")
GEN_AI_OPERATION_CHAT: Final = "chat"
GEN_AI_OPERATION_EXECUTE_TOOL: Final = "execute_tool"
GEN_AI_OPERATION_INVOKE_AGENT: Final = "invoke_agent"

# -- Langfuse (read by its OTLP ingestion) -------------------------------------------------
LANGFUSE_SESSION_ID: Final = "langfuse.session.id"
LANGFUSE_USER_ID: Final = "langfuse.user.id"
LANGFUSE_TRACE_NAME: Final = "langfuse.trace.name"
LANGFUSE_TRACE_TAGS: Final = "langfuse.trace.tags"
LANGFUSE_TRACE_METADATA_PREFIX: Final = "langfuse.trace.metadata."
LANGFUSE_TRACE_METADATA: Final = "langfuse.trace.metadata"  # one JSON object
LANGFUSE_RELEASE: Final = "langfuse.release"
LANGFUSE_ENVIRONMENT: Final = "langfuse.environment"
LANGFUSE_OBSERVATION_TYPE: Final = "langfuse.observation.type"
LANGFUSE_OBSERVATION_INPUT: Final = "langfuse.observation.input"
LANGFUSE_OBSERVATION_OUTPUT: Final = "langfuse.observation.output"
LANGFUSE_OBSERVATION_LEVEL: Final = "langfuse.observation.level"
LANGFUSE_OBSERVATION_STATUS_MESSAGE: Final = "langfuse.observation.status_message"
LANGFUSE_COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"
LANGFUSE_MODEL_PARAMETERS: Final = "langfuse.observation.model.parameters"
# a JSON object of usage key -> count, taken as given (every other usage key ignored)
LANGFUSE_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
# the trace's input and output, read from any span of the trace (the latest non-empty wins)
LANGFUSE_TRACE_INPUT: Final = "langfuse.trace.input"
LANGFUSE_TRACE_OUTPUT: Final = "langfuse.trace.output"
LANGFUSE_MODEL_NAME: Final = "langfuse.observation.model.name"
LANGFUSE_COST_DETAILS: Final = "langfuse.observation.cost_details"  # JSON: key -> USD
LANGFUSE_TYPE_GENERATION: Final = "generation"
LANGFUSE_TYPE_TOOL: Final = "tool"
LANGFUSE_TYPE_AGENT: Final = "agent"
LANGFUSE_TYPE_SPAN: Final = "span"

# -- OpenInference (read by Arize Phoenix) ------------------------------------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_PROVIDER: Final = "llm.provider"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_TOKEN_COUNT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_PROMPT_AUDIO: Final = "llm.token_count.prompt_details.audio"
LLM_TOKEN_COUNT_COMPLETION_AUDIO: Final = "llm.token_count.completion_details.audio"
TOOL_NAME: Final = "tool.name"
TOOL_CALL_ID: Final = "tool_call.id"
TOOL_PARAMETERS: Final = "tool.parameters"
TAG_TAGS: Final = "tag.tags"  # a span's tags, a list of strings
KIND_CHAIN: Final = "CHAIN"
KIND_AGENT: Final = "AGENT"
KIND_LLM: Final = "LLM"
KIND_TOOL: Final = "TOOL"
MIME_JSON: Final = "application/json"
MIME_TEXT: Final = "text/plain"

# -- trace layout -------------------------------------------------------------------------
INSTRUMENTATION_SCOPE: Final = "livekit_otel"  # never "livekit-agents": Langfuse special-cases it
