"""Every place livekit-otel wraps: location, feature, wrapper factory, and what a release
without the hook loses. The instrumentor wraps and unwraps exactly this table."""

from __future__ import annotations

from .. import compat
from . import audio, inference, replies, session, streams, user_turns
from .guard import Hook

_SESSION = compat.MODULE_SESSION
_ACTIVITY = compat.MODULE_ACTIVITY
_GENERATION = compat.MODULE_GENERATION
_TTS = compat.MODULE_TTS

HOOKS: tuple[Hook, ...] = (
    # -- the session --------------------------------------------------------------------------
    Hook(
        _SESSION,
        "AgentSession.start",
        "sessions",
        "every span: no session is traced",
        session.start,
    ),
    Hook(
        _SESSION,
        "AgentSession._aclose_impl",
        "session close",
        "session_close and the close reason; open spans end only when instrumentation is removed",
        session.close,
    ),
    Hook(
        _SESSION,
        "AgentSession.emit",
        "events and metrics",
        "agent_turn, user_turn, LiveKit's metrics, usage totals and content",
        session.emit,
    ),
    # -- user turns -----------------------------------------------------------------------------
    Hook(
        _ACTIVITY,
        "AgentActivity.on_end_of_turn",
        "user turns",
        "the commit moment of user turns and the end_of_turn part of latency",
        user_turns.end_of_turn,
    ),
    Hook(
        _ACTIVITY,
        "AgentActivity.on_end_of_speech",
        "end of user speech",
        "the VAD's end of speech: perceived latency is not measured",
        user_turns.end_of_speech,
    ),
    Hook(
        _ACTIVITY,
        "AgentActivity._on_input_speech_started",
        "realtime user turns",
        "the start of a realtime model's user turns",
        user_turns.realtime_speech_started,
    ),
    Hook(
        _ACTIVITY,
        "AgentActivity._on_input_speech_stopped",
        "realtime user turns",
        "the end of a realtime model's user turns and their latency",
        user_turns.realtime_speech_stopped,
    ),
    Hook(
        _ACTIVITY,
        "AgentActivity._on_input_audio_transcription_completed",
        "realtime user transcripts",
        "the transcript of a realtime model's user turns",
        user_turns.realtime_transcript,
    ),
    # -- replies --------------------------------------------------------------------------------
    Hook(
        _ACTIVITY,
        "perform_llm_inference",
        "llm_node spans",
        "llm_node spans, their prompt, output and usage",
        inference.llm_inference,
    ),
    Hook(
        _ACTIVITY,
        "perform_tts_inference",
        "tts_node spans",
        "tts_node spans and the tts part of latency",
        inference.tts_inference,
    ),
    Hook(
        _ACTIVITY,
        "perform_tool_executions",
        "function_tool spans",
        "function_tool spans and the tools part of latency",
        inference.tool_executions,
    ),
    Hook(
        _ACTIVITY,
        "AgentActivity._realtime_generation_task",
        "realtime_response spans",
        "realtime_response spans",
        replies.realtime_generation,
    ),
    # agent_activity imports perform_audio_forwarding by name (say(), and every reply before
    # 1.6); from 1.6 a reply's audio goes through generation's own: the call sites are disjoint
    Hook(
        _ACTIVITY,
        "perform_audio_forwarding",
        "first audio played",
        "the first frame played: perceived latency and played duration",
        replies.audio_forwarding,
    ),
    Hook(
        _GENERATION,
        "perform_audio_forwarding",
        "first audio played",
        "the first frame played: perceived latency and played duration",
        replies.audio_forwarding,
    ),
    # a sentence-by-sentence TTS (tts.StreamAdapter) sends each sentence to synthesize(); a
    # streaming TTS gets the text through push_text
    Hook(
        _TTS,
        "ChunkedStream.__init__",
        "text sent to synthesis",
        "the moment text reaches synthesis: llm and tts parts of latency merge",
        streams.tts_request,
    ),
    Hook(
        _TTS,
        "SynthesizeStream.push_text",
        "text sent to synthesis",
        "the moment text reaches a streaming synthesizer: llm and tts parts of latency merge",
        streams.tts_request,
    ),
    # -- audio (option ``audio``; the reply's frames come through perform_audio_forwarding) ------
    Hook(
        _ACTIVITY,
        "AgentActivity.push_audio",
        "user audio clips",
        "the user's audio: no user_turn clip and no user channel in the call recording",
        audio.user_audio,
    ),
)
