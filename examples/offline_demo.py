"""A scripted voice call traced end to end, offline: no API key, no server.

A real LiveKit ``AgentSession`` runs with scripted STT, LLM, TTS and VAD: four user
turns, one calling a tool, one interrupted by the user. The user's silence and each
component's delay are set by the script and really elapse, so the measured latency in
the table is what a caller of this agent would wait. livekit-otel traces it.

``--realtime``: a call with a scripted realtime (speech-to-speech) model instead: a
greeting, a question answered by a tool call and a spoken answer, and a story the user
barges in on.

The scripted models carry the names of OpenAI's (LLM ``gpt-4o-mini``, STT ``whisper-1``,
TTS ``tts-1``, realtime ``gpt-realtime``), so livekit-otel prices each billed span from
its price table (docs/cost.md) and the call's total is printed at the end.

Where the trace goes:
- ``LANGFUSE_PUBLIC_KEY`` / ``LANGFUSE_SECRET_KEY`` set: to Langfuse (``setup_langfuse``);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` set: to that OTLP backend
  (Arize Phoenix, Jaeger, a Collector), traces only, in the Phoenix project
  ``livekit-otel-demo`` (resource attribute ``openinference.project.name``, unless
  ``OTEL_RESOURCE_ATTRIBUTES`` names another);
- otherwise (the embedded default): an OTLP JSON file under ``traces/`` (``setup_file``;
  ``python -m livekit_otel.view FILE`` shows it again), and the terminal shows the span
  tree and the per-turn latency table, printed by livekit-otel's own console
  (``livekit_otel.terminal``, what ``setup_console()`` prints for your agent).
The demo sends no metrics (Phoenix and Jaeger take none): see docs/metrics.md for those.

The call's audio is captured too (option ``audio="turns,call"``): each turn's clip and
the whole recording, written beside the trace (``<trace>-audio/``) or uploaded to
Langfuse; the user speaks a tone per turn and the agent's voice is a tone per reply.

Run it with ``make demo`` or ``python examples/offline_demo.py [--realtime]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
import time
from pathlib import Path

from livekit_otel_dev.realtime import (
    RealtimeReply,
    RealtimeTurn,
    ScriptedRealtimeModel,
    run_realtime_session,
)
from livekit_otel_dev.scripted import (
    ScriptedAgent,
    ScriptedSTT,
    ScriptedTTS,
    ScriptTimeline,
    ToolCall,
    UserTurn,
    paused_gc,
    run_scripted_session,
    scripted_session_options,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from livekit_otel import setup_file, setup_langfuse, setup_otlp
from livekit_otel.audio import runtime as audio_runtime
from livekit_otel.setup.endpoints import redact_url, resolve_langfuse_target, resolve_otlp_target
from livekit_otel.terminal import attach_console

# The script's delays, in seconds; they really elapse. The user's silence is how long
# the VAD waits after the end of speech before it reports it (a real one waits longer).
SILENCE = 0.2
HOOK = 0.03  # the agent's on_user_turn_completed
LLM_TTFT = 0.08  # the LLM's time to first token
TOOL_TTFT = 0.05  # ... when it answers with a tool call
TOOL = 0.15  # lookup_weather's run time
TTS_TTFB = 0.06  # the TTS's time to first byte
PLAYOUT = 0.02  # from synthesized audio to the first frame handed to the output
ENDPOINTING = 0.05  # LiveKit's minimum endpointing delay
OPENAI = "api.openai.com"  # the provider the scripted models report, as OpenAI's plugins do

# the VAD dates the start of speech back by its duration, as a real VAD does; it is kept
# shorter than the accelerated call's pauses, so a user turn starts after the reply before
_spoken = functools.partial(UserTurn, speech_duration=0.05, silence_duration=SILENCE)
SCRIPT = [
    _spoken("Hi, I'd like to plan a day out in Paris.", tone=330.0),
    _spoken(
        "What's the weather like in Paris today?",
        reply=ToolCall("lookup_weather", {"location": "Paris"}),
        tone=392.0,
    ),
    _spoken(
        "Tell me everything about the history of the Louvre.",
        reply="The Louvre began as a fortress built in the late twelfth century. " * 8,
        interrupt_after=0.05,
        tone=440.0,
    ),
    _spoken("Sorry, short version please. Thanks, bye!", tone=494.0),
]
# the agent's "voice": a tone per reply (the first key its text contains), and the audio
# the demo captures: each turn's clip and the call's recording
AGENT_TONES = {"Louvre": 587.0, "sunny": 659.0, "": 523.0}
AUDIO = "turns,call"

# the realtime call: the model's server answers 150 ms after the end of the user's
# speech and its first audio comes 200 ms after that
RESPONSE_DELAY = 0.15
FIRST_AUDIO = 0.2
_STORY = "Once upon a time a fox lived by the river Seine, and every morning " * 4
REALTIME_GREETING = RealtimeReply("Hello! How can I help you today?", first_audio_delay=FIRST_AUDIO)
REALTIME_SCRIPT = [
    RealtimeTurn(
        "What's the weather like in Paris today?",
        reply=RealtimeReply(
            calls=ToolCall("lookup_weather", {"location": "Paris"}), first_audio_delay=FIRST_AUDIO
        ),
        follow_up=RealtimeReply(
            "It is sunny and 21 degrees in Paris.", first_audio_delay=FIRST_AUDIO
        ),
    ),
    RealtimeTurn(
        "Tell me a story about Paris.",
        reply=RealtimeReply(_STORY, first_audio_delay=FIRST_AUDIO, until_interrupted=True),
    ),
    RealtimeTurn(  # barges in on the story
        "Sorry, I have to go. Bye!",
        reply=RealtimeReply("Goodbye!", first_audio_delay=FIRST_AUDIO),
    ),
]


class ExportErrors(logging.Handler):
    """Counts the errors exporters log, one per batch they could not deliver."""

    # the OTLP exporters log on loggers under the first, the JSON-file exporter on the second
    LOGGERS = ("opentelemetry.exporter", "livekit_otel.setup.jsonfile")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if not self.first:
            self.first = record.getMessage()

    def attach(self) -> ExportErrors:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self


def _traces(spans: tuple[ReadableSpan, ...]) -> str:
    count = len({span.context.trace_id for span in spans if span.context is not None})
    return f"{count} trace" if count == 1 else f"{count} traces"


SERVICE = "livekit-otel-demo"
PROJECT = "openinference.project.name"  # the Phoenix project the spans are filed under


def _configure(name: str) -> tuple[TracerProvider, str, Path | None, Path | None]:
    """The provider livekit-otel traces the call to, where its spans go (for the summary),
    the file they are written to, if any, and the folder the audio goes to beside it (none:
    to Langfuse, or no audio when the spans go to an OTLP backend)."""
    folder = Path(os.environ.get("LIVEKIT_OTEL_DEMO_DIR", "traces"))
    path = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.otlp.jsonl"
    audio_dir = path.with_name(path.name.removesuffix(".otlp.jsonl") + "-audio")
    audio = {"audio": AUDIO, "audio_store": str(audio_dir)}
    if os.environ.get("LANGFUSE_PUBLIC_KEY") and os.environ.get("LANGFUSE_SECRET_KEY"):
        url = resolve_langfuse_target(None, None, None, os.environ).url
        provider = setup_langfuse(service_name=SERVICE, instrument_options={"audio": AUDIO})
        return provider, f"sent to Langfuse ({redact_url(url)})", None, None
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        url = resolve_otlp_target(None, None, os.environ).url
        attributes = (
            {} if PROJECT in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "") else {PROJECT: SERVICE}
        )
        provider = setup_otlp(service_name=SERVICE, resource_attributes=attributes, metrics=False)
        project = attributes.get(PROJECT, "named by OTEL_RESOURCE_ATTRIBUTES")
        return provider, f"sent to {redact_url(url)} (Phoenix project: {project})", None, None
    provider = setup_file(path, service_name=SERVICE, instrument_options=audio)
    # the span tree and latency table of each session, as setup_console() prints them
    attach_console(provider, stream=sys.stdout)
    return provider, f"written as OTLP JSON to {path}", path, audio_dir


async def run_demo_call() -> list[float]:
    """The scripted call itself, traced by whatever provider livekit-otel was given;
    returns the latency of each heard reply by the script's own clock (seconds)."""
    # a short barge-in is enough to interrupt the agent in this accelerated call
    options = scripted_session_options(min_interruption_duration=0.01)
    with paused_gc():  # no garbage collection pause inside a measured part
        run = await run_scripted_session(
            SCRIPT,
            mode="audio",
            agent=ScriptedAgent(
                hook_delay=HOOK, playout_delay=PLAYOUT, tool_delays={"lookup_weather": TOOL}
            ),
            tts=ScriptedTTS(
                first_byte_delay=TTS_TTFB, tones=AGENT_TONES, model="tts-1", provider=OPENAI
            ),
            stt=ScriptedSTT(model="whisper-1", provider=OPENAI),
            session_options=options,
            playback_speed=25.0,
            timeline=ScriptTimeline(),
            real_silence=True,
            endpointing_delay=ENDPOINTING,
            llm_options={
                "ttft": LLM_TTFT,
                "tool_ttft": TOOL_TTFT,
                "model": "gpt-4o-mini",
                "provider": OPENAI,
            },
        )
    return [reply.perceived_latency for reply in run.expected_latencies()]


async def run_realtime_call() -> None:
    """The scripted realtime call, traced by whatever provider livekit-otel was given."""
    model = ScriptedRealtimeModel(
        response_delay=RESPONSE_DELAY, model="gpt-realtime", provider=OPENAI
    )
    await run_realtime_session(REALTIME_SCRIPT, greeting=REALTIME_GREETING, model=model)


def _cost(spans: tuple[ReadableSpan, ...]) -> str | None:
    """The call's cost as its root span says it (``lk.call.cost.*``), or None if unpriced."""
    for span in spans:
        values = span.attributes or {}
        if span.name == "agent_session" and "lk.call.cost.total" in values:
            parts = ", ".join(
                f"{kind.upper()} ${values[f'lk.call.cost.{kind}']:.6f}"
                for kind in ("llm", "stt", "tts", "realtime")
                if f"lk.call.cost.{kind}" in values
            )
            return f"${values['lk.call.cost.total']:.6f} ({parts})"
    return None


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


async def main(realtime: bool = False) -> int:
    """Run the scripted call and show where its trace went; non-zero if an export failed."""
    errors = ExportErrors().attach()
    provider, destination, file, audio_dir = _configure("demo-realtime" if realtime else "demo")
    collected = InMemorySpanExporter()  # the demo's own copy, for the summary below
    provider.add_span_processor(SimpleSpanProcessor(collected))
    if realtime:
        print(
            f"A scripted realtime call: a greeting and {len(REALTIME_SCRIPT)} user turns; the "
            f"model answers {_ms(RESPONSE_DELAY)} ms after the user's speech, its first audio "
            f"{_ms(FIRST_AUDIO)} ms later\n"
        )
    else:
        print(
            f"A scripted voice call of {len(SCRIPT)} user turns, with these delays (ms): "
            f"silence {_ms(SILENCE)}, hook {_ms(HOOK)}, LLM first token {_ms(LLM_TTFT)} "
            f"(tool call {_ms(TOOL_TTFT)}), tool {_ms(TOOL)}, TTS first byte {_ms(TTS_TTFB)}, "
            f"playout {_ms(PLAYOUT)}\n"
        )
    started = time.perf_counter()
    truth: list[float] = []
    if realtime:
        await run_realtime_call()
    else:
        truth = await run_demo_call()
    elapsed = time.perf_counter() - started
    audio_runtime.shared_worker().drain(10.0)  # the spans that wait for their audio
    provider.force_flush()
    spans = collected.get_finished_spans()
    print(f"Scripted call done in {elapsed:.2f} s")
    if truth:
        print("Latency by the script's own clock (ms): " + ", ".join(_ms(t) for t in truth))
    cost = _cost(spans)
    if cost is not None:
        print(f"What the call cost at the table's prices: {cost}")
    provider.shutdown()
    summary = f"{len(spans)} spans in {_traces(spans)}"
    if errors.count:
        print(
            f"{summary}, to be {destination}, but exporting FAILED: {errors.count} export "
            f"error(s) logged, the first: {errors.first}"
        )
        return 1
    print(f"{summary} {destination}; no metrics sent.")
    if file is not None:
        print(f"Show it again: python -m livekit_otel.view {file}")
    if audio_dir is not None:
        _where_to_listen(audio_dir)
    elif file is None and "Langfuse" in destination:
        print("Listen in Langfuse: each turn's clip and the call recording play beside the text.")
    return 0


def _where_to_listen(audio_dir: Path) -> None:
    files = sorted(audio_dir.glob("*.ogg")) if audio_dir.is_dir() else []
    calls = [f for f in files if f.name.endswith("-call.ogg")]
    if not files:
        print(f"No audio was written to {audio_dir}.")
        return
    call = calls[0].name if calls else "missing"
    print(
        f"Listen: {len(files) - len(calls)} turn clips and the call recording ({call}; user "
        f"left, agent right) in {audio_dir}/"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="a call with a scripted realtime (speech-to-speech) model instead",
    )
    sys.exit(asyncio.run(main(realtime=parser.parse_args().realtime)))
