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

Known delays and the script's own clock (opt-in; the defaults above stay fast and
stamp nothing), for latency tests whose expected values never come from the
instrumentation::

    from livekit_otel_dev.scripted import (
        ScriptedAgent, ScriptedTTS, ScriptTimeline, ToolCall, UserTurn, paused_gc,
        run_scripted_session,
    )

    weather = ToolCall("lookup_weather", {"location": "Oslo"})
    with paused_gc():                      # no 100-200 ms collection inside a part
        run = await run_scripted_session(
            [UserTurn("hello there", silence_duration=0.1),
             UserTurn("weather?", silence_duration=0.1, reply=weather)],
            agent=ScriptedAgent(hook_delay=0.03, playout_delay=0.02,
                                tool_delays={"lookup_weather": 0.1}),
            llm_options={"ttft": 0.04, "tool_ttft": 0.05},  # the conversation's own LLM
            tts=ScriptedTTS(first_byte_delay=0.06),
            timeline=ScriptTimeline(),     # every scripted component stamps into it
            real_silence=True,             # the silence after each turn really elapses
            endpointing_delay=0.05,        # LiveKit's minimum endpointing delay
        )
    for reply in run.expected_latencies():   # from the stamps alone
        print(reply.speech_id, reply.perceived_latency, reply.parts, reply.played_duration)

The stamps and the rule that turns them into the contract's six parts are described in
`livekit_otel_dev.scripted.timeline`; the options in `driver` (real-time silence,
transcript delay, endpointing delay), `models` (LLM ttft per step, timed replies,
TTS first-byte delay, a streaming TTS), `tools` (`ScriptedAgent`: hook delay, chat
context edit, timed tools, handoff, playout delay) and `media` (the audio output's
segments: speech id, first frame, played duration).
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
    ScriptedStreamingTTS,
    ScriptedSTT,
    ScriptedTTS,
    ScriptedVAD,
    TimedReply,
    ToolCall,
    default_reply,
)
from .timeline import (
    LATENCY_PARTS,
    MOMENTS,
    ExpectedLatency,
    ScriptTimeline,
    Stamp,
    Window,
    current_speech_id,
    expected_latencies,
    expected_latency,
    paused_gc,
)
from .tools import ScriptedAgent, book_table, handoff_tool, lookup_weather, timed_tool

__all__ = [
    "LATENCY_PARTS",
    "MOMENTS",
    "ExpectedLatency",
    "PlayedSegment",
    "Reply",
    "ScriptTimeline",
    "ScriptedAgent",
    "ScriptedAudioInput",
    "ScriptedAudioOutput",
    "ScriptedConversation",
    "ScriptedLLM",
    "ScriptedRun",
    "ScriptedSTT",
    "ScriptedStreamingTTS",
    "ScriptedTTS",
    "ScriptedTextOutput",
    "ScriptedVAD",
    "Stamp",
    "TimedReply",
    "ToolCall",
    "UserTurn",
    "Window",
    "book_table",
    "current_speech_id",
    "default_reply",
    "expected_latencies",
    "expected_latency",
    "handoff_tool",
    "lookup_weather",
    "paused_gc",
    "run_scripted_session",
    "scripted_session_options",
    "timed_tool",
]
