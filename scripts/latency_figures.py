"""Print the latency figures docs/spans.md quotes, measured again on scripted calls.

    .venv/bin/python scripts/latency_figures.py

Each case is a real `AgentSession` with the dev kit's scripted components, set delays that
really elapse, traced by livekit-otel into memory. For each heard reply it prints the
`agent_turn`'s perceived latency and parts, `lk.turn.played_duration`, LiveKit's formula
(`lk.turn.total_latency`), the script's own expected latency (from its stamps, not from
livekit-otel) and LiveKit's `e2e_latency` where the release reports one. The figures move by
a millisecond or two from run to run (more on a busy machine).
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit_otel_dev.scripted import (
    ScriptedAgent,
    ScriptedTTS,
    ScriptTimeline,
    ToolCall,
    UserTurn,
    paused_gc,
    run_scripted_session,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from livekit_otel import LiveKitAgentsInstrumentor

WEATHER = ToolCall("lookup_weather", {"location": "Oslo"})
STORY = "Once upon a time there was a scripted kit. " * 6

CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "plain reply (silence 0.10 s, endpointing 0.05 s, hook 0.03 s, ttft 0.04 s, "
        "TTS first byte 0.06 s, playout 0.02 s)",
        {
            "turns": [UserTurn("hello there", silence_duration=0.10)],
            "agent": ScriptedAgent(hook_delay=0.03, playout_delay=0.02),
            "endpointing_delay": 0.05,
        },
    ),
    (
        "reply through a tool (as above, tool 0.10 s, ttft 0.05 s for the step that calls it)",
        {
            "turns": [UserTurn("weather in Oslo?", silence_duration=0.10, reply=WEATHER)],
            "agent": ScriptedAgent(
                hook_delay=0.03, playout_delay=0.02, tool_delays={"lookup_weather": 0.10}
            ),
            "endpointing_delay": 0.05,
            "llm_options": {"tool_ttft": 0.05},
        },
    ),
    (
        "preemptive generation (silence 0.05 s, endpointing 0.2 s, hook 0.03 s)",
        {
            "turns": [UserTurn("hello there", silence_duration=0.05)],
            "agent": ScriptedAgent(hook_delay=0.03),
            "endpointing_delay": 0.2,
            "preemptive_generation": True,
        },
    ),
    (
        "preemptive attempt discarded (the hook edits the chat context)",
        {
            "turns": [UserTurn("hello there", silence_duration=0.05)],
            "agent": ScriptedAgent(hook_delay=0.03, edit_chat_ctx=True),
            "endpointing_delay": 0.2,
            "preemptive_generation": True,
        },
    ),
    (
        "no hook of the agent's own (silence 0.05 s)",
        {"turns": [UserTurn("hello there", silence_duration=0.05)], "endpointing_delay": 0.05},
    ),
    (
        "a story interrupted after 0.30 s of audio (played at real speed)",
        {
            "turns": [
                UserTurn(
                    "tell me a story", silence_duration=0.05, reply=STORY, interrupt_after=0.3
                ),
                UserTurn("stop, thanks", silence_duration=0.05),
            ],
            "endpointing_delay": 0.05,
            "playback_speed": 1.0,
        },
    ),
]

LATENCY_KEYS = (
    "lk.turn.perceived_latency",
    "lk.turn.latency.end_of_turn",
    "lk.turn.latency.on_user_turn_completed",
    "lk.turn.latency.llm",
    "lk.turn.latency.tools",
    "lk.turn.latency.tts",
    "lk.turn.latency.playout",
    "lk.turn.played_duration",
    "lk.turn.total_latency",
)


async def measure(title: str, case: dict[str, Any], exporter: InMemorySpanExporter) -> None:
    """Run one case and print what its replies carried."""
    exporter.clear()
    options = dict(case)
    turns = options.pop("turns")
    options.setdefault("agent", ScriptedAgent())
    llm_options = {"ttft": 0.04, **options.pop("llm_options", {})}
    with paused_gc():
        run = await run_scripted_session(
            turns,
            tts=ScriptedTTS(first_byte_delay=0.06),
            timeline=ScriptTimeline(),
            real_silence=True,
            llm_options=llm_options,
            **options,
        )
    truth = {reply.speech_id: reply for reply in run.expected_latencies()}
    e2e = {
        item.get("id"): (item.get("metrics") or {}).get("e2e_latency")
        for item in run.history
        if item.get("role") == "assistant"
    }
    print(f"\n{title}")
    for span in exporter.get_finished_spans():
        values = dict(span.attributes or {})
        if span.name != "agent_turn":
            continue
        speech_id = values.get("lk.speech_id")
        print(
            f"  agent_turn {speech_id}"
            + ("  (discarded)" if values.get("lk.turn.discarded") else "")
        )
        for key in LATENCY_KEYS:
            if key in values:
                print(f"    {key} = {values[key]}")
        expected = truth.get(str(speech_id))
        if expected is not None:
            print(f"    the script's own expected latency: {expected.perceived_latency:.4f} s")
    heard = [value for value in e2e.values() if isinstance(value, (int, float))]
    if heard:
        print("  LiveKit's e2e_latency: " + ", ".join(f"{value:.4f} s" for value in heard))


async def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = LiveKitAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        for title, case in CASES:
            await measure(title, case, exporter)
    finally:
        instrumentor.uninstrument()


if __name__ == "__main__":
    asyncio.run(main())
