"""What Langfuse shows for a traced voice session, exported through ``setup_langfuse``.

Each test runs a scripted session (a real ``AgentSession``), exports it with
``setup_langfuse`` to a local OTLP receiver at Langfuse's path with Basic auth, and maps
the received spans with Langfuse's ingestion rules (``support.langfuse_mapper``). Where the
mapper does not model a field Langfuse has (the environment and release of each
observation, a generation's tool list, the metadata an observation keeps), the reading is
spelled out here, after Langfuse's server code (``OtelIngestionProcessor``'s
``extractEnvironment`` and ``extractInputAndOutput``, and ``normalizeToolsForObservation``
for the tool list). Expected values come from the script and from LiveKit's own chat
history and metrics, never from the code under test. Tests are grouped by the rule they
check.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import pytest
from livekit.agents import AgentSession
from livekit.agents.llm import tool_context
from livekit.agents.metrics import LLMMetrics, TTSMetrics
from livekit.agents.vad import VADEventType
from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer
from livekit_otel_dev.otlp_receiver import OtlpReceiver, ReceivedSpan
from livekit_otel_dev.scripted import (
    ScriptedAgent,
    ScriptedConversation,
    ScriptedLLM,
    ScriptedRun,
    ScriptedTTS,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from livekit_otel_dev.scripted.media import silence_frame
from livekit_otel_dev.scripted.tools import DEFAULT_INSTRUCTIONS
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiProviderNameValues as Registry,
)

from livekit_otel import LiveKitAgentsInstrumentor, setup_langfuse, update_session
from livekit_otel.mapping.conventions import provider_name
from livekit_otel.setup import installed as setup_state
from support.langfuse_mapper import (
    INPUT_OUTPUT_KEYS,
    INPUT_OUTPUT_PREFIXES,
    LANGFUSE_OTEL_PATH,
    LangfuseObservation,
    LangfuseView,
    map_span,
    map_spans,
)
from support.shapes import synthesized, tts_nodes_per_reply

PUBLIC_KEY = "pk-lf-mapping-test"
SECRET_KEY = "sk-lf-mapping-test"
AUTHORIZATION = "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()

GREETING = "hello there"
QUESTION = "what is the weather in Paris?"
WEATHER_ARGUMENTS = {"location": "Paris"}
WEATHER_RESULT = "It is sunny and 21 degrees in Paris"
WEATHER = ToolCall("lookup_weather", WEATHER_ARGUMENTS)
_MS = 1_000_000  # one millisecond in nanoseconds: clock rounding between span and attribute
# the spans Langfuse shows as STT and TTS generations (docs/cost.md)
SPEECH = ("user_turn", "tts_node")


def user_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A trace's metadata without the call at a glance (``call``, ``call_*``) livekit-otel adds."""
    return {
        key: value
        for key, value in metadata.items()
        if key != "call" and not key.startswith("call_")
    }


SCRIPT = (UserTurn(GREETING), UserTurn(QUESTION, reply=WEATHER))

SENTENCE = "Once upon a time there was a fox who lived by the river."
STORY = " ".join([SENTENCE] * 12)
"""A long reply: twelve sentences, which LiveKit's TTS stream adapter synthesizes one by one."""
STORY_REQUEST = "tell me a story"
DEMO_LIKE = (
    UserTurn("Hi, I'd like to plan a day out in Paris."),
    UserTurn("What's the weather like in Paris today?", reply=WEATHER),
    UserTurn(STORY_REQUEST, reply=STORY, interrupt_after=0.02),
    UserTurn("Sorry, short version please. Thanks, bye!"),
)
"""Like the demo call (``examples/offline_demo.py``): a tool call and an interrupted reply."""

# content keys under lk.* that a convention key carries when one is in force
LK_CONTENT_KEYS = (
    "lk.user.transcript",
    "lk.turn.user_text",
    "lk.turn.agent_text",
    "lk.tts.text",
    "lk.llm.input.messages",
    "lk.llm.output.messages",
    "lk.function_tool.arguments",
    "lk.function_tool.result",
)

_LANGFUSE_ENVIRONMENT_KEYS = (
    "langfuse.environment",
    "deployment.environment.name",
    "deployment.environment",
)


# -- Langfuse's readings the mapper does not model -----------------------------------------
def environment_of(span: ReceivedSpan) -> str:
    """An observation's environment as Langfuse v4 reads it (``extractEnvironment``).

    Each key is looked up on the span, then on its resource; ``default`` when none is set.
    """
    for key in _LANGFUSE_ENVIRONMENT_KEYS:
        for source in (span.attributes, span.resource):
            if source.get(key):
                return str(source[key])
    return "default"


def release_of(span: ReceivedSpan) -> str | None:
    """An observation's release: ``langfuse.release`` on the span, else on its resource."""
    value = span.attributes.get("langfuse.release") or span.resource.get("langfuse.release")
    return str(value) if value else None


def tool_definitions_of(observation: LangfuseObservation) -> dict[str, dict[str, Any]]:
    """The tools Langfuse lists for a generation, by name.

    Langfuse moves ``gen_ai.tool.definitions`` out of the metadata into the input's
    ``tools`` when every item is a definition with a name (flat, or OpenAI's
    ``{"type": "function", "function": {...}}``); otherwise it lists none.
    """
    raw = observation.attributes.get("gen_ai.tool.definitions")
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(items, list):
        return {}
    tools: dict[str, dict[str, Any]] = {}
    for item in items:
        tool = json.loads(item) if isinstance(item, str) else item
        flat = tool.get("function", tool) if isinstance(tool, dict) else {}
        if not isinstance(flat, dict) or not flat.get("name"):
            return {}
        tools.setdefault(str(flat["name"]), flat)
    return tools


def metadata_attributes(observation: LangfuseObservation) -> dict[str, str]:
    """The attributes Langfuse keeps as an observation's metadata, values as strings."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in observation.attributes.items()
        if key not in INPUT_OUTPUT_KEYS and not key.startswith(INPUT_OUTPUT_PREFIXES)
    }


def message_texts(value: Any) -> list[tuple[str, str]]:
    """``(role, text)`` of each chat message in a JSON value (OpenAI or GenAI parts shape)."""
    messages = json.loads(value) if isinstance(value, str) else value
    if isinstance(messages, dict):
        messages = [messages]
    texts: list[tuple[str, str]] = []
    for message in messages or []:
        content = message.get("content")
        if content is None and isinstance(message.get("parts"), list):
            content = "".join(
                str(part.get("content", "")) for part in message["parts"] if part.get("content")
            )
        texts.append((str(message.get("role")), str(content or "")))
    return texts


# -- what LiveKit itself says ---------------------------------------------------------------
def history_messages(run: ScriptedRun) -> list[tuple[str, str]]:
    """``(role, text)`` of every chat message of the session, from LiveKit's chat history."""
    return [
        (item["role"], " ".join(part for part in item["content"] if isinstance(part, str)))
        for item in run.history
        if item.get("type") == "message"
    ]


def spoken_reply(run: ScriptedRun, user_text: str) -> str:
    """What LiveKit's chat history keeps of the reply to ``user_text`` (what was played)."""
    messages = history_messages(run)
    index = messages.index(("user", user_text))
    role, text = messages[index + 1]
    assert role == "assistant", f"no reply to {user_text!r} in the history"
    return text


def agent_tool_names() -> list[str]:
    """The names of the scripted agent's tools, as LiveKit knows them."""
    return [
        tool_context.get_function_info(tool).name
        for tool in ScriptedAgent().tools
        if tool_context.is_function_tool(tool)
    ]


def synthesized_characters(text: str) -> int:
    """Characters of ``text`` the way TTS counts them: each sentence, not the gaps between."""
    return len(re.sub(r"(?<=[.!?])\s+", "", text.strip()))


# -- a Langfuse backend ---------------------------------------------------------------------
@dataclass
class LangfuseCall:
    """A scripted call, the spans Langfuse accepted, and what it shows for them."""

    run: ScriptedRun
    spans: list[ReceivedSpan]
    view: LangfuseView

    def turn_of(self, user_text: str) -> LangfuseObservation:
        """The agent turn that answers ``user_text``."""
        (turn,) = [obs for obs in self.view.named("agent_turn") if obs.input == user_text]
        return turn

    def children_of(self, parent: LangfuseObservation, span_name: str) -> list[LangfuseObservation]:
        """The observations called ``span_name`` right under ``parent``, in start order."""
        return [obs for obs in self.view.named(span_name) if obs.parent_id == parent.id]


class Langfuse:
    """``setup_langfuse`` pointed at a local receiver, and Langfuse's reading of what it got."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.providers: list[TracerProvider] = []

    def instrument(self, **options: Any) -> None:
        """Trace every session from now on with these instrument options."""
        self.providers.append(
            setup_langfuse(
                host=self.receiver.url,
                public_key=PUBLIC_KEY,
                secret_key=SECRET_KEY,
                instrument_options=options,
            )
        )

    def read(self, run: ScriptedRun) -> LangfuseCall:
        """Flush the export and map what the receiver accepted."""
        for provider in self.providers:
            assert provider.force_flush(10_000)
        spans = self.receiver.spans
        return LangfuseCall(run, spans, map_spans(spans))

    async def call(
        self,
        turns: Sequence[UserTurn | str],
        mode: Literal["audio", "text"] = "audio",
        scripted_llm: ScriptedLLM | None = None,
        **options: Any,
    ) -> LangfuseCall:
        """Instrument with ``options``, run a scripted call and read it back."""
        self.instrument(**options)
        run = await run_scripted_session(turns, mode=mode, llm=scripted_llm)
        return self.read(run)


@dataclass
class Export:
    """A scripted session, the spans the receiver accepted and what Langfuse shows."""

    run: ScriptedRun
    spans: list[ReceivedSpan]
    view: LangfuseView
    receiver: OtlpReceiver

    @property
    def llm_metrics(self) -> dict[str, LLMMetrics]:
        """The session's LLM metrics by request id."""
        return {metrics.request_id: metrics for metrics in self.run.metrics_of(LLMMetrics)}

    def metrics_of(self, generation: LangfuseObservation) -> LLMMetrics:
        """The LLM metrics of the inference a generation records."""
        return self.llm_metrics[generation.attributes["lk.llm.request_id"]]

    @property
    def assistant_texts(self) -> list[str]:
        """What the agent said, one entry per reply, from the session's chat history."""
        return [
            " ".join(item["content"])
            for item in self.run.history
            if item.get("type") == "message" and item.get("role") == "assistant"
        ]

    def generations_of(self, user_text: str) -> list[LangfuseObservation]:
        """The generations of the agent turn that answers ``user_text``, in order."""
        (turn,) = [obs for obs in self.view.named("agent_turn") if obs.input == user_text]
        return [obs for obs in self.view.named("llm_node") if obs.parent_id == turn.id]


Exporter = Callable[..., Awaitable[Export]]
SetUp = Callable[..., TracerProvider]


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def langfuse_setup(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[SetUp]:
    """``setup(**instrument_options)``: ``setup_langfuse`` pointed at the receiver.

    The receiver answers 401 unless a request carries Langfuse's Basic auth. No
    ``OTEL_*``, ``LANGFUSE_*`` or ``LIVEKIT_OTEL_*`` variable applies; the instrumentation
    is undone and the providers shut down after the test.
    """
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    otlp_receiver.require_header("authorization", AUTHORIZATION)
    _uninstrument()
    providers: list[TracerProvider] = []

    def setup(**instrument_options: Any) -> TracerProvider:
        provider = setup_langfuse(
            host=otlp_receiver.url,
            public_key=PUBLIC_KEY,
            secret_key=SECRET_KEY,
            instrument_options=instrument_options or None,
        )
        providers.append(provider)
        return provider

    try:
        yield setup
    finally:
        _uninstrument()
        for provider in providers:
            provider.shutdown()


@pytest.fixture
def export_to_langfuse(langfuse_setup: SetUp, otlp_receiver: OtlpReceiver) -> Exporter:
    """``await export(turns, on_session=None, **instrument_options)``: run and map a session."""

    async def export(
        turns: Sequence[UserTurn | str] = SCRIPT,
        on_session: Callable[[AgentSession], None] | None = None,
        **instrument_options: Any,
    ) -> Export:
        provider = langfuse_setup(**instrument_options)
        run = await run_scripted_session(turns, mode="audio", on_session=on_session)
        assert provider.force_flush(10_000)
        spans = otlp_receiver.spans
        return Export(run, spans, map_spans(spans), otlp_receiver)

    return export


def _json(value: Any) -> Any:
    assert isinstance(value, str), f"expected a JSON string, got {value!r}"
    return json.loads(value)


@pytest.fixture
def langfuse(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Langfuse]:
    """A Langfuse stand-in: Basic auth required, no ``OTEL_*``/``LANGFUSE_*`` variable applies."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    otlp_receiver.require_header("authorization", AUTHORIZATION)
    _uninstrument()
    backend = Langfuse(otlp_receiver)
    try:
        yield backend
    finally:
        _uninstrument()
        for provider in backend.providers:
            provider.shutdown()


# -- driving a call by hand -------------------------------------------------------------------
async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), timeout)


async def user_barges_in(conversation: ScriptedConversation) -> None:
    """The user starts speaking over the agent, long enough to interrupt it (VAD only)."""
    for _ in range(3):
        conversation.audio_input.push_frame(silence_frame())
    await conversation.vad.emit_event(VADEventType.START_OF_SPEECH, speech_duration=0.6)
    await conversation.vad.emit_event(VADEventType.INFERENCE_DONE, speech_duration=0.6)


async def user_stops(conversation: ScriptedConversation) -> None:
    """The barging-in user falls silent without a word transcribed."""
    await conversation.vad.emit_event(
        VADEventType.END_OF_SPEECH, speech_duration=0.6, silence_duration=0.2
    )


async def cut_off(conversation: ScriptedConversation, when: Callable[[], bool]) -> ScriptedRun:
    """Ask for the story, barge in once ``when()`` holds, and close the call."""
    await conversation.start()
    asked = asyncio.ensure_future(conversation.user_says(UserTurn(STORY_REQUEST, reply=STORY)))
    await until(when)
    await user_barges_in(conversation)
    handle = await asked
    assert handle.interrupted
    await user_stops(conversation)
    return await conversation.aclose()


class PacedTranscriptConversation(ScriptedConversation):
    """A conversation whose agent transcript is paced with its audio, as in a room.

    LiveKit's ``TranscriptSynchronizer`` (what its room output uses) releases the reply's
    text as the audio plays, so an interrupted reply keeps, in the chat history, only the
    words played. The scripted speaker plays ``playback_speed`` times faster than real
    time, and the synchronizer paces the text at the same speed.
    """

    async def start(self) -> Any:
        session = await super().start()
        self.synchronizer = TranscriptSynchronizer(
            next_in_chain_audio=self.audio_output,
            next_in_chain_text=self.text_output,
            speed=self.audio_output.playback_speed,
        )
        session.output.audio = self.synchronizer.audio_output
        session.output.transcription = self.synchronizer.text_output
        return session

    async def aclose(self) -> ScriptedRun:
        run = await super().aclose()
        await self.synchronizer.aclose()
        return run


# -- transport ------------------------------------------------------------------------
async def test_spans_reach_langfuses_otel_path_with_basic_auth(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    assert export.spans
    assert {request.path for request in export.receiver.requests} == {LANGFUSE_OTEL_PATH}
    assert {request.status for request in export.receiver.requests} == {200}
    assert {span.headers["authorization"] for span in export.spans} == {AUTHORIZATION}


async def test_langfuse_keeps_every_span(export_to_langfuse: Exporter) -> None:
    export = await export_to_langfuse()

    assert export.view.dropped == []
    assert len(export.view.observations) == len(export.spans)


# -- traces: one per session (or per turn), filed under its session -------------------
async def test_a_session_is_one_trace_named_agent_session(export_to_langfuse: Exporter) -> None:
    export = await export_to_langfuse()

    assert [trace.name for trace in export.view.traces.values()] == ["agent_session"]
    assert all(trace.has_root for trace in export.view.traces.values())


async def test_every_observation_carries_the_session_id_of_the_trace(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    (trace,) = export.view.traces.values()
    assert trace.session_id
    assert {obs.session_id for obs in export.view.observations} == {trace.session_id}


async def test_every_span_names_its_trace_and_carries_its_session_user_tags_and_release(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(
        SCRIPT, environment="staging", release="v4.2.0", user_id="caller-7", tags=["voice"]
    )

    (trace,) = call.view.traces.values()
    filed = {
        (
            span.attributes.get("langfuse.trace.name"),
            span.attributes.get("session.id"),
            span.attributes.get("user.id"),
            tuple(span.attributes.get("langfuse.trace.tags") or ()),
            environment_of(span),
            release_of(span),
        )
        for span in call.spans
    }
    assert filed == {
        ("agent_session", trace.session_id, "caller-7", ("voice",), "staging", "v4.2.0")
    }


async def test_setup_langfuse_writes_each_session_fact_once_and_no_openinference_key(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(SCRIPT, environment="staging", user_id="caller-7")

    session_keys = ("session.id", "langfuse.session.id", "gen_ai.conversation.id")
    for span in call.spans:
        # the contract's three copies on the root, one key everywhere else
        expected = session_keys if span.name == "agent_session" else ("session.id",)
        assert tuple(key for key in session_keys if key in span.attributes) == expected, span.name
    for duplicate in ("langfuse.user.id", "langfuse.environment"):
        assert [span.name for span in call.spans if duplicate in span.attributes] == []
    assert [
        (span.name, key)
        for span in call.spans
        for key in span.attributes
        if key.startswith(("openinference.", "input.", "output.", "llm."))
    ] == []


async def test_the_trace_shows_the_calls_words_before_its_root_arrives(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(SCRIPT)

    (trace,) = call.view.traces.values()
    (partial,) = map_spans([s for s in call.spans if s.name != "agent_session"]).traces.values()
    assert (partial.name, partial.session_id) == ("agent_session", trace.session_id)
    assert (partial.input, partial.output) == (GREETING, spoken_reply(call.run, QUESTION))
    assert (trace.input, trace.output) == (partial.input, partial.output)


@pytest.mark.parametrize("conventions", [None, "genai", []], ids=["default", "genai", "none"])
async def test_every_observation_has_the_environment_release_session_and_user(
    langfuse: Langfuse, conventions: Any
) -> None:
    call = await langfuse.call(
        SCRIPT,
        conventions=conventions,
        environment="staging",
        release="v4.2.0",
        user_id="caller-7",
    )

    (trace,) = call.view.traces.values()
    assert trace.session_id
    assert {"agent_session", "user_turn", "agent_turn", "llm_node", "function_tool"} <= {
        span.name for span in call.spans
    }
    assert [(s.name, environment_of(s)) for s in call.spans if environment_of(s) != "staging"] == []
    assert [(s.name, release_of(s)) for s in call.spans if release_of(s) != "v4.2.0"] == []
    assert [
        (obs.span_name, obs.session_id, obs.user_id)
        for obs in call.view.observations
        if (obs.session_id, obs.user_id) != (trace.session_id, "caller-7")
    ] == []
    assert (trace.environment, trace.release, trace.user_id) == ("staging", "v4.2.0", "caller-7")


async def test_trace_per_turn_gives_one_trace_per_turn_sharing_one_session(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(trace_per="turn")

    names = Counter(trace.name for trace in export.view.traces.values())
    assert names == {"agent_session": 1, "agent_turn": 2}
    assert all(trace.has_root for trace in export.view.traces.values())
    (session,) = export.view.session_ids
    assert session
    assert {obs.session_id for obs in export.view.observations} == {session}


async def test_trace_per_turn_puts_each_user_utterance_in_the_trace_of_its_reply(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(trace_per="turn")

    user_turns = export.view.named("user_turn")
    assert len(user_turns) == 2
    for obs in user_turns:
        parent = export.view.by_id(obs.parent_id or "")
        assert parent is not None and parent.name == "agent_turn"
        assert parent.trace_id == obs.trace_id


@pytest.mark.parametrize("mode", ["audio", "text"])
async def test_trace_per_turn_puts_each_utterance_in_the_trace_of_its_reply(
    langfuse: Langfuse, mode: Literal["audio", "text"]
) -> None:
    call = await langfuse.call(SCRIPT, mode=mode, trace_per="turn")

    traces = []
    for text in (GREETING, QUESTION):
        (utterance,) = [obs for obs in call.view.named("user_turn") if obs.output == text]
        assert utterance.trace_id == call.turn_of(text).trace_id, text
        traces.append(utterance.trace_id)
    assert len(set(traces)) == 2


async def test_trace_per_turn_keeps_a_replys_generations_tools_and_speech_in_its_turn_trace(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(trace_per="turn")

    for name in ("llm_node", "function_tool", "tts_node"):
        for obs in export.view.named(name):
            parent = export.view.by_id(obs.parent_id or "")
            assert parent is not None and parent.span_name == "agent_turn"
            assert export.view.trace_of(obs).name == "agent_turn"
            assert parent.trace_id == obs.trace_id


# -- generations: model, provider, usage, first token ---------------------------------
async def test_every_llm_node_is_a_generation_with_the_llm_model(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    llm = export.run.session.llm
    assert isinstance(llm, ScriptedLLM)

    generations = export.view.named("llm_node")
    assert len(generations) == len(export.llm_metrics) == 3
    chat = [obs for obs in export.view.of_type("generation") if obs.span_name not in SPEECH]
    assert chat == generations
    assert {obs.model for obs in generations} == {llm.model}


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("api.openai.com", Registry.OPENAI.value),
        ("llm.internal.example:8080", "llm.internal.example:8080"),
    ],
)
async def test_every_generation_names_the_provider_as_the_registry_does(
    langfuse: Langfuse, reported: str, expected: str
) -> None:
    call = await langfuse.call([GREETING], scripted_llm=ScriptedLLM(provider=reported))

    (generation,) = call.view.named("llm_node")
    assert generation.type == "generation"
    assert generation.attributes["gen_ai.provider.name"] == expected


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("api.openai.com", Registry.OPENAI),
        ("api.anthropic.com", Registry.ANTHROPIC),
        ("Anthropic", Registry.ANTHROPIC),
        ("generativelanguage.googleapis.com", Registry.GCP_GEMINI),
        ("Gemini", Registry.GCP_GEMINI),  # livekit-plugins-google without Vertex
        ("us-central1-aiplatform.googleapis.com", Registry.GCP_VERTEX_AI),
        ("Vertex AI", Registry.GCP_VERTEX_AI),  # livekit-plugins-google on Vertex
        ("bedrock-runtime.us-east-1.amazonaws.com", Registry.AWS_BEDROCK),
        ("my-resource.openai.azure.com", Registry.AZURE_AI_OPENAI),
        ("api.groq.com", Registry.GROQ),
        ("api.deepseek.com", Registry.DEEPSEEK),
        ("api.mistral.ai", Registry.MISTRAL_AI),
    ],
)
def test_provider_name_gives_the_registry_value_of_a_known_provider(
    reported: str, expected: Registry
) -> None:
    assert provider_name(reported) == expected.value


@pytest.mark.parametrize("reported", ["llm.internal.example:8080", "127.0.0.1:11434", "scripted"])
def test_provider_name_keeps_an_unknown_provider_as_reported(reported: str) -> None:
    assert provider_name(reported) == reported


async def test_generation_usage_equals_the_llm_metrics_with_cached_tokens_as_their_own_type(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    for generation in export.view.named("llm_node"):
        metrics = export.metrics_of(generation)
        assert metrics.prompt_cached_tokens > 0
        assert generation.usage == {
            "input": metrics.prompt_tokens - metrics.prompt_cached_tokens,
            "input_cached_tokens": metrics.prompt_cached_tokens,
            "output": metrics.completion_tokens,
            "total": metrics.prompt_tokens + metrics.completion_tokens,
        }


async def test_session_usage_in_langfuse_equals_the_llm_metrics_total(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    with_usage = [obs for obs in export.view.observations if obs.usage]
    assert {obs.span_name for obs in with_usage} == {"llm_node", *SPEECH}
    llm_usage = [obs for obs in with_usage if obs.span_name == "llm_node"]
    assert sum(obs.usage["total"] for obs in llm_usage) == sum(
        metrics.total_tokens for metrics in export.llm_metrics.values()
    )


async def test_usage_total_without_openinference_counts_cached_tokens_once(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(conventions="langfuse")

    for generation in export.view.named("llm_node"):
        assert "llm.token_count.total" not in generation.attributes
        metrics = export.metrics_of(generation)
        assert generation.usage["total"] == metrics.prompt_tokens + metrics.completion_tokens


async def test_a_reply_cut_off_mid_stream_has_no_usage_in_langfuse(langfuse: Langfuse) -> None:
    langfuse.instrument()
    # one sentence per chunk, 0.2 s apart; the usage would come after the last one
    slow = ScriptedLLM([STORY], chunk_delay=0.2, chunks=STORY.count(SENTENCE))
    conversation = ScriptedConversation(llm=slow)

    def speaking() -> bool:
        return conversation.session.agent_state == "speaking"

    call = langfuse.read(await cut_off(conversation, speaking))

    (metrics,) = call.run.metrics_of(LLMMetrics)
    assert (metrics.prompt_tokens, metrics.completion_tokens) == (0, 0)  # LiveKit got no usage
    (generation,) = call.children_of(call.turn_of(STORY_REQUEST), "llm_node")
    assert [key for key in generation.attributes if key.startswith("gen_ai.usage.")] == []
    assert generation.usage == {}


async def test_generation_completion_start_time_is_an_iso_time_with_zone_inside_the_span(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    for generation in export.view.named("llm_node"):
        text = generation.completion_start_time
        assert text is not None and text.endswith("+00:00")
        first_token_ns = int(datetime.fromisoformat(text).timestamp() * 1_000_000_000)
        assert generation.start_ns - _MS <= first_token_ns <= generation.end_ns + _MS


# -- generations: the prompt as the model saw it, the tools it was offered ------------
async def test_generation_input_is_the_chat_messages_and_output_the_reply(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    calling, answering = export.generations_of(QUESTION)
    assert {"role": "user", "content": QUESTION} in _json(calling.input)
    (call,) = _json(calling.output)["tool_calls"]
    assert call["function"]["name"] == "lookup_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGUMENTS
    reply = _json(answering.output)
    assert reply["role"] == "assistant" and WEATHER_RESULT in reply["content"]


THREE_TURNS = (
    UserTurn(GREETING, reply="Hello! How can I help you today?"),
    UserTurn("what can you do?", reply="I can look up the weather for you."),
    UserTurn("great, thanks"),
)


async def test_the_third_generation_shows_the_system_prompt_and_the_history_in_order(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(THREE_TURNS)

    first, second, third = THREE_TURNS
    assert isinstance(first.reply, str) and isinstance(second.reply, str)
    said = [
        ("user", first.text),
        ("assistant", first.reply),
        ("user", second.text),
        ("assistant", second.reply),
        ("user", third.text),
    ]
    assert history_messages(call.run)[: len(said)] == said  # LiveKit's own record agrees
    generations = call.view.named("llm_node")
    assert len(generations) == 3
    assert message_texts(generations[2].input) == [("system", DEFAULT_INSTRUCTIONS), *said]


async def test_a_prompt_window_of_two_keeps_the_system_prompt_and_the_two_latest_items(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(THREE_TURNS, prompt_window=2)

    second, third = THREE_TURNS[1:]
    assert isinstance(second.reply, str)
    third_generation = call.view.named("llm_node")[2]
    assert message_texts(third_generation.input) == [
        ("system", DEFAULT_INSTRUCTIONS),
        ("assistant", second.reply),
        ("user", third.text),
    ]


async def test_every_generation_lists_the_agents_tools_as_langfuse_reads_them(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(SCRIPT)

    names = agent_tool_names()
    assert sorted(names) == ["book_table", "lookup_weather"]
    generations = call.view.named("llm_node")
    assert len(generations) == 3  # the greeting, the tool call, the answer after the tool
    for generation in generations:
        tools = tool_definitions_of(generation)
        assert sorted(tools) == sorted(names)
        assert all(tool["parameters"]["type"] == "object" for tool in tools.values())


# -- tools ----------------------------------------------------------------------------
async def test_every_function_tool_is_a_tool_named_after_it_with_arguments_and_result(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    (tool,) = export.view.named("function_tool")
    assert export.view.of_type("tool") == [tool]
    assert tool.name == "lookup_weather"
    assert _json(tool.input) == WEATHER_ARGUMENTS
    assert tool.output == WEATHER_RESULT
    assert tool.level == "DEFAULT"


async def test_a_failing_tool_is_an_error_level_tool(export_to_langfuse: Exporter) -> None:
    booking = ToolCall("book_table", {"restaurant": "Chez Nous", "people": 4})
    export = await export_to_langfuse([UserTurn("book a table for four", reply=booking)])

    (tool,) = export.view.named("function_tool")
    assert tool.type == "tool" and tool.name == "book_table"
    assert tool.level == "ERROR"
    assert tool.status_message and "Chez Nous" in tool.status_message


# -- turns and speech: what was heard and said ----------------------------------------
async def test_user_turn_and_tts_node_are_generations_of_their_speech_model(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    session = export.run.session
    assert session.stt is not None and session.tts is not None
    speech = export.view.named("user_turn") + export.view.named("tts_node")
    assert len(speech) == len(SCRIPT) + tts_nodes_per_reply(0) + tts_nodes_per_reply(1)
    spoken = [obs for obs in speech if obs.span_name == "user_turn" or synthesized(obs.attributes)]
    assert len(spoken) == len(SCRIPT) + 2  # what each of the two replies said
    for obs in speech:
        if obs not in spoken:  # a tool-only step's tts_node, on an empty text stream
            assert obs.type == "span" and not obs.usage and not obs.cost
    for obs in spoken:
        assert obs.type == "generation", obs.span_name
        stt = obs.span_name == "user_turn"
        assert obs.model == (session.stt.model if stt else session.tts.model)
        assert set(obs.usage) == {"input_audio_ms" if stt else "input_characters", "total"}
        assert not [key for key in obs.attributes if key.startswith("gen_ai.")]
        assert obs.cost == {}  # the scripted models have no price


async def test_agent_turn_shows_the_user_text_in_and_the_agent_text_out(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    turns = export.view.named("agent_turn")
    assert [obs.type for obs in turns] == ["agent", "agent"]
    assert [obs.input for obs in turns] == [GREETING, QUESTION]
    assert [obs.output for obs in turns] == export.assistant_texts


async def test_the_trace_input_is_the_first_user_text_and_output_the_last_agent_text(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    (trace,) = export.view.traces.values()
    assert trace.input == GREETING
    assert trace.output == export.view.named("agent_turn")[-1].output


async def test_with_genai_conventions_agent_turns_show_the_users_words_in_and_the_reply_out(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(SCRIPT, conventions="genai")

    shown = [
        (message_texts(o.input), message_texts(o.output)) for o in call.view.named("agent_turn")
    ]
    assert shown == [
        ([("user", text)], [("assistant", spoken_reply(call.run, text))])
        for text in (GREETING, QUESTION)
    ]


async def test_with_genai_conventions_the_trace_shows_the_first_words_in_and_the_last_out(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(SCRIPT, conventions="genai")

    (trace,) = call.view.traces.values()
    assert message_texts(trace.input) == [("user", GREETING)]
    assert message_texts(trace.output) == [("assistant", spoken_reply(call.run, QUESTION))]


# -- an interrupted turn: a warning, and only what was played -------------------------
async def test_an_interrupted_agent_turn_is_a_warning_saying_it_was_interrupted(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(
        [UserTurn(STORY_REQUEST, reply=STORY, interrupt_after=0.02), UserTurn(GREETING)]
    )

    assert [handle.interrupted for handle in call.run.speech_handles] == [True, False]
    story, answer = call.turn_of(STORY_REQUEST), call.turn_of(GREETING)
    assert story.level == "WARNING"
    assert story.status_message and "interrupted" in story.status_message
    assert (answer.level, answer.status_message) == ("DEFAULT", None)


async def test_an_interrupted_agent_turn_outputs_what_was_played_not_what_was_generated(
    langfuse: Langfuse,
) -> None:
    langfuse.instrument()
    conversation = PacedTranscriptConversation()
    await conversation.start()
    await conversation.user_says(UserTurn(STORY_REQUEST, reply=STORY, interrupt_after=0.02))
    await conversation.user_says(UserTurn(GREETING))
    call = langfuse.read(await conversation.aclose())

    played = spoken_reply(call.run, STORY_REQUEST)
    assert played and len(played) < len(STORY)  # LiveKit kept only what was played
    story = call.turn_of(STORY_REQUEST)
    assert story.output == played
    (generation,) = call.children_of(story, "llm_node")
    assert json.loads(generation.output)["content"] == STORY  # what the model generated


async def test_an_interrupted_agent_turn_without_paced_transcript_outputs_less_than_the_reply(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(
        [UserTurn(STORY_REQUEST, reply=STORY, interrupt_after=0.02), UserTurn(GREETING)]
    )

    story_audio = call.run.audio_output.segments[0]
    assert story_audio.interrupted and story_audio.played < story_audio.pushed / 2
    output = call.turn_of(STORY_REQUEST).output
    assert isinstance(output, str) and STORY.startswith(output)
    assert len(output) < len(STORY) / 2


async def test_an_interrupted_tts_node_holds_only_the_text_sent_to_synthesis(
    langfuse: Langfuse,
) -> None:
    langfuse.instrument()
    conversation = ScriptedConversation(tts=ScriptedTTS(first_byte_delay=0.05))

    def two_sentences_synthesized() -> bool:
        return len([m for m in conversation.metrics if isinstance(m, TTSMetrics)]) >= 2

    call = langfuse.read(await cut_off(conversation, two_sentences_synthesized))

    story = call.turn_of(STORY_REQUEST)
    (speech,) = call.children_of(story, "tts_node")
    synthesized = sum(
        metrics.characters_count
        for metrics in call.run.metrics_of(TTSMetrics)
        if metrics.speech_id == story.attributes["lk.speech_id"]
    )
    assert 0 < synthesized < synthesized_characters(STORY)  # cut off mid-synthesis
    assert isinstance(speech.input, str) and STORY.startswith(speech.input)
    assert synthesized_characters(speech.input) <= synthesized


# -- content: once, under the keys in force, or not at all ----------------------------
async def test_with_content_capture_off_langfuse_shows_no_input_or_output(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(capture_content=False)

    assert [(o.span_name, o.input, o.output) for o in export.view.observations if o.input] == []
    assert [(o.span_name, o.output) for o in export.view.observations if o.output] == []
    assert [(t.input, t.output) for t in export.view.traces.values()] == [(None, None)]


async def test_with_default_conventions_no_observation_keeps_content_under_an_lk_key(
    langfuse: Langfuse,
) -> None:
    call = await langfuse.call(DEMO_LIKE)

    assert [key for span in call.spans for key in LK_CONTENT_KEYS if key in span.attributes] == []
    repeated = [
        (obs.span_name, key)
        for obs in call.view.observations
        for key, value in metadata_attributes(obs).items()
        if key.startswith("lk.")
        for text in (obs.input, obs.output)
        if isinstance(text, str) and text.strip() and text in value
    ]
    assert repeated == []


async def test_with_no_convention_content_is_kept_under_the_lk_keys(langfuse: Langfuse) -> None:
    call = await langfuse.call(SCRIPT, conventions=[])

    reply = spoken_reply(call.run, GREETING)
    (function_call,) = [item for item in call.run.history if item["type"] == "function_call"]
    (tool_output,) = [item for item in call.run.history if item["type"] == "function_call_output"]
    (greeting,) = [
        obs
        for obs in call.view.named("agent_turn")
        if obs.attributes.get("lk.turn.user_text") == GREETING
    ]
    assert greeting.attributes["lk.turn.agent_text"] == reply
    assert {obs.attributes.get("lk.user.transcript") for obs in call.view.named("user_turn")} == {
        GREETING,
        QUESTION,
    }
    assert reply in {obs.attributes.get("lk.tts.text") for obs in call.view.named("tts_node")}
    first = call.view.named("llm_node")[0]
    assert ("user", GREETING) in message_texts(first.attributes["lk.llm.input.messages"])
    assert message_texts(first.attributes["lk.llm.output.messages"]) == [("assistant", reply)]
    (tool,) = call.view.named("function_tool")
    assert json.loads(tool.attributes["lk.function_tool.arguments"]) == json.loads(
        function_call["arguments"]
    )
    assert tool.attributes["lk.function_tool.result"] == tool_output["output"]


# -- user, tags and metadata ----------------------------------------------------------
async def test_update_session_before_start_sets_user_tags_and_metadata_on_the_trace(
    export_to_langfuse: Exporter,
) -> None:
    def label(session: AgentSession) -> None:
        update_session(
            session, user_id="caller-42", tags=["voice", "beta"], metadata={"plan": "pro"}
        )

    export = await export_to_langfuse(on_session=label)

    (trace,) = export.view.traces.values()
    assert trace.user_id == "caller-42"
    assert trace.tags == ["voice", "beta"]
    assert user_metadata(trace.metadata) == {"plan": "pro"}


async def test_update_session_before_start_puts_the_user_id_on_every_observation(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(
        on_session=lambda session: update_session(session, user_id="caller-42")
    )

    assert {obs.user_id for obs in export.view.observations} == {"caller-42"}


async def test_update_session_during_the_call_sets_user_tags_and_metadata_on_the_trace(
    langfuse_setup: SetUp, otlp_receiver: OtlpReceiver
) -> None:
    provider = langfuse_setup()
    conversation = ScriptedConversation()
    await conversation.start()
    await conversation.user_says(UserTurn(GREETING))
    update_session(
        conversation.session, user_id="late-caller", tags=["escalated"], metadata={"tier": 2}
    )
    await conversation.user_says(UserTurn(QUESTION))
    await conversation.aclose()
    assert provider.force_flush(10_000)
    view = map_spans(otlp_receiver.spans)

    (trace,) = view.traces.values()
    assert trace.user_id == "late-caller"
    assert trace.tags == ["escalated"]
    assert user_metadata(trace.metadata) == {"tier": 2}


async def test_instrument_options_set_user_tags_and_metadata_on_the_trace(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(
        user_id="default-user", tags=["prod"], metadata={"region": "eu"}
    )

    (trace,) = export.view.traces.values()
    assert trace.user_id == "default-user"
    assert trace.tags == ["prod"]
    assert user_metadata(trace.metadata) == {"region": "eu"}


async def test_tags_set_before_start_join_the_default_tags(export_to_langfuse: Exporter) -> None:
    export = await export_to_langfuse(
        tags=["prod"], on_session=lambda session: update_session(session, tags=["voice"])
    )

    (trace,) = export.view.traces.values()
    assert trace.tags == ["prod", "voice"]


async def test_tags_set_during_the_call_join_the_default_tags(
    langfuse_setup: SetUp, otlp_receiver: OtlpReceiver
) -> None:
    provider = langfuse_setup(tags=["prod"])
    conversation = ScriptedConversation()
    await conversation.start()
    await conversation.user_says(UserTurn(GREETING))
    update_session(conversation.session, tags=["escalated"])
    await conversation.aclose()
    assert provider.force_flush(10_000)

    (trace,) = map_spans(otlp_receiver.spans).traces.values()
    assert trace.tags == ["prod", "escalated"]


# -- the Langfuse rules the plugin steers clear of ------------------------------------
async def test_a_completion_start_time_without_zone_would_drop_the_generation(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()
    span = next(span for span in export.spans if span.name == "llm_node")
    sent = span.attributes["langfuse.observation.completion_start_time"]
    naive = replace(
        span,
        attributes={
            **span.attributes,
            "langfuse.observation.completion_start_time": sent.removesuffix("+00:00"),
        },
    )

    assert map_span(span)[1] is None
    assert map_span(naive)[1] is not None and "time zone" in str(map_span(naive)[1])


async def test_an_unrecognised_usage_key_would_be_an_extra_bucket_added_to_the_total(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(conventions="langfuse")
    span = next(span for span in export.spans if span.name == "llm_node")
    cached = span.attributes["gen_ai.usage.cache_read.input_tokens"]
    extra = replace(
        span, attributes={**span.attributes, "gen_ai.usage.prompt_cached_tokens": cached}
    )

    usage = map_span(extra)[0].usage
    assert usage["prompt_cached_tokens"] == cached
    assert usage["total"] == map_span(span)[0].usage["total"] + cached
