"""Scripted, offline, deterministic LiveKit components and a session driver.

They drive a real `livekit.agents.AgentSession` with no room, server or network: the
LLM, STT, TTS and VAD are subclasses of LiveKit's public base classes and the session's
audio input, audio output and transcription output are `voice.io` subclasses, so
LiveKit's own turn handling and metrics code run unchanged. Used by the project's
demo, tests and benchmark.

Usage::

    import asyncio
    from livekit.agents.metrics import LLMMetrics
    from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session

    async def main() -> None:
        weather = ToolCall("lookup_weather", {"location": "Paris"})
        run = await run_scripted_session(
            [
                UserTurn("hello there"),
                UserTurn("weather in Paris?", reply=weather),
                UserTurn("a long story", reply="Once upon a time. " * 20, interrupt_after=0.02),
                UserTurn("thanks, bye"),
            ],
            mode="audio",  # or "text": session.run(user_input=...)
        )
        print(run.history)              # session.history items as dicts
        print(run.metric_kinds)         # {"LLMMetrics": 5, "TTSMetrics": ..., ...}
        print(run.metrics_of(LLMMetrics)[0].speech_id)

    asyncio.run(main())

For turn-by-turn control use `ScriptedConversation` (`start`, `user_says`,
`user_types`, `aclose`). `scripted_session_options()` gives the session settings
(VAD end of turn, zero endpointing delay, VAD interruptions, preemptive generation
off unless asked), feature-detected on the installed livekit-agents release.
"""

from .driver import (
    ScriptedConversation,
    ScriptedRun,
    UserTurn,
    run_scripted_session,
    scripted_session_options,
)
from .media import PlayedSegment, ScriptedAudioInput, ScriptedAudioOutput, ScriptedTextOutput
from .models import (
    Reply,
    ScriptedLLM,
    ScriptedSTT,
    ScriptedTTS,
    ScriptedVAD,
    ToolCall,
    default_reply,
)
from .tools import ScriptedAgent, book_table, lookup_weather

__all__ = [
    "PlayedSegment",
    "Reply",
    "ScriptedAgent",
    "ScriptedAudioInput",
    "ScriptedAudioOutput",
    "ScriptedConversation",
    "ScriptedLLM",
    "ScriptedRun",
    "ScriptedSTT",
    "ScriptedTTS",
    "ScriptedTextOutput",
    "ScriptedVAD",
    "ToolCall",
    "UserTurn",
    "book_table",
    "default_reply",
    "lookup_weather",
    "run_scripted_session",
    "scripted_session_options",
]
