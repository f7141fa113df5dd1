"""Your own agent's traces in your terminal (``livekit_otel.terminal``), on real sessions.

A real ``AgentSession`` with scripted components runs on an instrumented provider that
also exports to memory; the console prints to a stream the test reads. What it prints is
checked against the spans the exporter got from the same run.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit_otel_dev.realtime import RealtimeReply, RealtimeTurn, run_realtime_session
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from livekit_otel import LiveKitAgentsInstrumentor, setup_console, terminal
from livekit_otel.mapping.attributes import INSTRUMENTATION_SCOPE, LATENCY_PARTS
from livekit_otel.terminal import (
    ENV_CONSOLE,
    ConsoleSpanProcessor,
    apply_console,
    attach_console,
)
from support.tracing import SpanTree, Tracing, attributes, instrumented

WEATHER = ToolCall("lookup_weather", {"location": "Paris"})
STORY = "The Louvre began as a fortress built in the late twelfth century. " * 8
TURNS = [
    UserTurn("Hi, I'd like to plan a day out in Paris."),
    UserTurn("What's the weather like in Paris today?", reply=WEATHER),
    UserTurn("Tell me about the Louvre.", reply=STORY, interrupt_after=0.02),
    UserTurn("Sorry, short version please."),
]
SESSION_OPTIONS = {"min_interruption_duration": 0.01}
HEADER = "turn   latency"


class Recording(io.StringIO):
    """A stream that notes, at each write, how many agent turns had ended by then."""

    def __init__(self, ended: TurnsEnded) -> None:
        super().__init__()
        self.ended = ended
        self.writes: list[tuple[int, bool, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((self.ended.turns, self.ended.session_over, text))
        return super().write(text)


class TurnsEnded(SpanProcessor):
    """Counts the agent turns ended so far (added before the console, so it sees them first)."""

    def __init__(self) -> None:
        self.turns = 0
        self.session_over = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == "agent_turn":
            self.turns += 1
        elif span.name == "agent_session":
            self.session_over = True


@dataclass
class Printed:
    tree: SpanTree
    stream: Recording
    console: ConsoleSpanProcessor
    held_during: list[int]

    @property
    def text(self) -> str:
        return self.stream.getvalue()


def _traced(turns: list[UserTurn], per_turn: bool = True, **options: Any) -> Printed:
    with instrumented(**options) as tracing:
        ended = TurnsEnded()
        tracing.provider.add_span_processor(ended)
        stream = Recording(ended)
        console = attach_console(tracing.provider, per_turn=per_turn, stream=stream)
        held: list[int] = []
        ended_on_end = ended.on_end

        def note_held(span: ReadableSpan) -> None:
            ended_on_end(span)
            held.append(console.spans_held)

        ended.on_end = note_held  # type: ignore[method-assign]
        asyncio.run(run_scripted_session(turns, session_options=SESSION_OPTIONS))
        return Printed(tracing.tree(), stream, console, held)


@pytest.fixture(scope="module")
def printed() -> Printed:
    return _traced(TURNS)


def _turns(tree: SpanTree) -> list[dict[str, Any]]:
    spans = [s for s in tree.named("agent_turn") if not attributes(s).get("lk.turn.discarded")]
    return [attributes(s) for s in sorted(spans, key=lambda s: s.end_time or 0)]


def _table_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(HEADER)))
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if not re.match(r"^\s+\d+\s", line):
            break
        rows.append(line.split())
    return rows


def _ms(value: Any) -> str:
    return f"{value * 1000:.1f}" if value is not None else "-"


# -- what is printed ---------------------------------------------------------------------------
def test_the_tree_holds_every_span_with_the_transcripts_and_the_agent_text(
    printed: Printed,
) -> None:
    text = printed.text
    for name in printed.tree.names:
        assert re.search(rf"(^|[ ─]){name}\s+\d+\.\d ms", text, re.M), name
    for turn in TURNS:
        assert turn.text[:30] in text
    assert "You said: Hi, I'd like" in text
    assert "Here is what I found" in text
    assert "The Louvre began as a fortress" in text
    assert "name='lookup_weather'" in text
    assert "interrupted" in text


def test_the_tree_has_one_line_per_span_under_its_parent(printed: Printed) -> None:
    tree_lines = [line for line in printed.text.splitlines() if re.search(r"\d+\.\d ms", line)]
    assert len(tree_lines) == len(printed.tree)
    assert tree_lines[0].startswith("agent_session")
    assert sum(1 for line in tree_lines if line.startswith("├─ agent_turn")) == len(
        printed.tree.named("agent_turn")
    )
    assert any(line.startswith("│  ├─ function_tool") for line in tree_lines)


def test_the_header_counts_the_sessions_spans(printed: Printed) -> None:
    session_id = attributes(printed.tree.root)["session.id"]
    assert f"livekit-otel: session {session_id}, {len(printed.tree)} spans" in printed.text


def test_the_latency_table_rows_are_the_spans_measured_values(printed: Printed) -> None:
    rows = _table_rows(printed.text)
    turns = _turns(printed.tree)
    assert len(rows) == len(turns) == len(TURNS)
    for number, (row, values) in enumerate(zip(rows, turns, strict=True), 1):
        assert row[0] == str(number)
        assert values["lk.turn.perceived_latency"] > 0
        expected = [
            _ms(values.get("lk.turn.perceived_latency")),
            *(_ms(values.get(f"lk.turn.latency.{part}")) for part in LATENCY_PARTS),
            _ms(values.get("lk.turn.total_latency")),
        ]
        assert row[1:9] == expected
        assert ("yes," in row) is values["lk.turn.interrupted"]
    interrupted = next(v for v in turns if v["lk.turn.interrupted"])
    assert f"yes, {interrupted['lk.turn.played_duration']:.2f} s played" in printed.text


def test_a_line_per_turn_is_printed_as_each_turn_ends(printed: Printed) -> None:
    turn_lines = [
        (ended, over, text) for ended, over, text in printed.stream.writes if "turn " in text[:30]
    ]
    turns = _turns(printed.tree)
    assert len(turn_lines) == len(turns)
    for number, ((ended, over, text), values) in enumerate(zip(turn_lines, turns, strict=True), 1):
        assert text.startswith(f"livekit-otel turn {number}: ")
        assert ended == number and not over  # right after its agent_turn ended
        latency = values["lk.turn.perceived_latency"] * 1000
        assert f"latency {latency:.0f} ms = eot " in text
    # the session's tree and table come last, once, after the session ended
    _, last_over, last_text = printed.stream.writes[-1]
    assert last_over and HEADER in last_text
    assert sum(HEADER in text for _, _, text in printed.stream.writes) == 1


def test_nothing_is_held_after_the_session_is_printed(printed: Printed) -> None:
    assert max(printed.held_during) > 0
    assert printed.console.sessions_held == 0
    assert printed.console.spans_held == 0


def test_an_exporter_beside_the_console_gets_every_span(printed: Printed) -> None:
    assert printed.tree.root.name == "agent_session"
    assert len(printed.tree) >= 4 * len(TURNS)
    assert len(printed.tree.trace_ids()) == 1


def test_without_per_turn_only_the_session_is_printed() -> None:
    done = _traced(TURNS[:1], per_turn=False)
    assert len(done.stream.writes) == 1
    assert HEADER in done.text


# -- where the text comes from -------------------------------------------------------------------
@pytest.mark.parametrize("conventions", ["langfuse", "openinference", "genai", "none"])
def test_the_text_is_read_from_the_conventions_in_force(conventions: str) -> None:
    chosen: str | list[str] = [] if conventions == "none" else conventions
    done = _traced(TURNS[:2], per_turn=False, conventions=chosen)
    assert 'transcript="Hi, I\'d like to plan a day out in Paris."' in done.text
    assert "agent_text=\"You said: Hi, I'd like" in done.text
    assert 'args=\'{"location": "Paris"}\'' in done.text


def test_with_content_capture_off_no_text_is_printed() -> None:
    done = _traced(TURNS[:2], per_turn=True, capture_content=False)
    assert "Paris" not in done.text
    assert "agent_turn" in done.text and HEADER in done.text


def test_a_session_traced_turn_by_turn_is_printed_whole() -> None:
    done = _traced(TURNS, per_turn=False, trace_per="turn")
    assert len(done.tree.trace_ids()) > 1
    session_id = attributes(done.tree.named("agent_session")[0])["session.id"]
    assert f"livekit-otel: session {session_id}, {len(done.tree)} spans" in done.text
    assert len(_table_rows(done.text)) == len(TURNS)
    assert done.console.spans_held == 0


def test_a_realtime_session_shows_its_responses_with_usage() -> None:
    script = [
        RealtimeTurn("what is the weather in Paris", reply=WEATHER, follow_up="It is sunny."),
        RealtimeTurn("tell me a story", reply=RealtimeReply(STORY, until_interrupted=True)),
        RealtimeTurn("never mind"),
    ]
    with instrumented() as tracing:
        stream = io.StringIO()
        attach_console(tracing.provider, stream=stream)
        asyncio.run(run_realtime_session(script, greeting="Hello! How can I help?"))
        tree = tracing.tree()
    text = stream.getvalue()
    responses = tree.named("realtime_response")
    assert len(responses) == len(re.findall(r"realtime_response .*tokens=\d+/\d+", text))
    assert "model='gpt-4o-realtime-preview'" in text
    assert "It is sunny." in text
    rows = _table_rows(text)
    turns = _turns(tree)
    assert len(rows) == len(turns)
    for row, values in zip(rows, turns, strict=True):
        assert row[1] == _ms(values.get("lk.turn.perceived_latency"))


# -- bounded and safe -----------------------------------------------------------------------------
def _ours(provider: TracerProvider) -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION_SCOPE, tracer_provider=provider)


def test_sessions_that_never_end_are_bounded() -> None:
    provider = TracerProvider()
    stream = io.StringIO()
    console = ConsoleSpanProcessor(stream, max_sessions=3, max_spans=5)
    provider.add_span_processor(console)
    tracer = _ours(provider)
    for session in range(10):
        for _ in range(8):
            tracer.start_span("llm_node", attributes={"session.id": f"s{session}"}).end()
    assert console.sessions_held == 3
    assert console.spans_held == 3 * 5
    # a session given up for a newer one is not picked up again by its late spans
    tracer.start_span("agent_session", attributes={"session.id": "s0"}).end()
    assert stream.getvalue() == ""
    provider.shutdown()


def test_a_session_over_the_span_cap_says_what_it_left_out() -> None:
    provider = TracerProvider()
    stream = io.StringIO()
    provider.add_span_processor(ConsoleSpanProcessor(stream, max_spans=4))
    tracer = _ours(provider)
    root = tracer.start_span("agent_session", attributes={"session.id": "s"})
    for _ in range(6):
        tracer.start_span(
            "llm_node", context=trace.set_span_in_context(root), attributes={"session.id": "s"}
        ).end()
    root.end()
    assert "session s, 7 spans" in stream.getvalue()
    assert "... and 2 more spans not shown" in stream.getvalue()
    assert stream.getvalue().splitlines()[2].startswith("agent_session")
    provider.shutdown()


def test_spans_of_other_instrumentations_are_not_kept() -> None:
    provider = TracerProvider()
    console = ConsoleSpanProcessor(io.StringIO())
    provider.add_span_processor(console)
    trace.get_tracer("someone.else", tracer_provider=provider).start_span(
        "GET", attributes={"session.id": "s"}
    ).end()
    _ours(provider).start_span("llm_node").end()  # no session id
    assert console.spans_held == 0
    provider.shutdown()


def test_a_rendering_failure_is_one_warning_and_never_an_exception(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(terminal, "render_tree", broken)
    monkeypatch.setattr(terminal, "render_turn_line", broken)
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        done = _traced(TURNS, per_turn=True)
        again = _traced(TURNS[:1], per_turn=True)
    assert len(done.tree.named("agent_turn")) == len(TURNS)  # the session ran, traced
    assert len(again.tree) > 0
    warnings = [r for r in caplog.records if "console" in r.getMessage()]
    assert len(warnings) == 2  # one per console, whatever failed how often
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "RuntimeError: cannot draw" in warnings[0].getMessage()
    assert done.console.spans_held == 0


def test_a_failing_stream_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stream closed")

    provider = TracerProvider()
    provider.add_span_processor(ConsoleSpanProcessor(Closed(), per_turn=True))
    tracer = _ours(provider)
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        for session in ("a", "b"):
            tracer.start_span("agent_turn", attributes={"session.id": session}).end()
            tracer.start_span("agent_session", attributes={"session.id": session}).end()
    assert len([r for r in caplog.records if "console" in r.getMessage()]) == 1
    provider.shutdown()


def test_a_stream_that_cannot_write_box_drawing_gets_plain_characters() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    provider = TracerProvider()
    provider.add_span_processor(ConsoleSpanProcessor(stream))
    tracer = _ours(provider)
    session = tracer.start_span("agent_session", attributes={"session.id": "s"})
    context = trace.set_span_in_context(session)
    tracer.start_span(
        "user_turn", context=context, attributes={"session.id": "s", "lk.user.transcript": "café"}
    ).end()
    session.end()
    text = raw.getvalue().decode("ascii")
    assert "`- user_turn" in text
    assert "transcript='caf?'" in text
    provider.shutdown()


# -- entry points ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_console_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """What setup_console() asked for is process-wide: forgotten after each test."""
    monkeypatch.setattr(terminal, "_wanted", None)


@pytest.fixture
def uninstrumented() -> Iterator[None]:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    yield
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


async def test_setup_console_alone_traces_and_prints(uninstrumented: None) -> None:
    stream = io.StringIO()
    provider = setup_console(stream=stream)
    assert LiveKitAgentsInstrumentor._active is not None
    assert LiveKitAgentsInstrumentor._active.provider is provider
    await run_scripted_session(TURNS[:1])
    assert "agent_session" in stream.getvalue() and HEADER in stream.getvalue()
    provider.shutdown()


async def test_setup_console_joins_the_provider_already_in_use_once(tracing: Tracing) -> None:
    stream = io.StringIO()
    assert setup_console(stream=stream) is tracing.provider
    assert setup_console(per_turn=True, stream=stream) is tracing.provider  # not added twice
    await run_scripted_session(TURNS[:1])
    assert stream.getvalue().count(HEADER) == 1
    assert "livekit-otel turn 1:" in stream.getvalue()
    assert len(tracing.tree()) > 0  # the exporter got the spans too


async def test_a_provider_given_after_setup_console_gets_the_console(tracing: Tracing) -> None:
    stream = io.StringIO()
    setup_console(per_turn=True, stream=stream)
    provider, exporter = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # what livekit-otel does with each provider it is given (setup_langfuse() afterwards)
    assert apply_console(provider) is provider
    tracing.instrumentor.set_tracer_provider(provider)
    await run_scripted_session(TURNS[:1])
    assert len(exporter.get_finished_spans()) > 0
    assert stream.getvalue().count(HEADER) == 1
    assert "livekit-otel turn 1:" in stream.getvalue()
    provider.shutdown()


@pytest.mark.parametrize(
    ("value", "per_turn"), [("1", False), ("true", False), ("turns", True), (" TURNS ", True)]
)
def test_the_environment_variable_adds_the_console(
    monkeypatch: pytest.MonkeyPatch, value: str, per_turn: bool
) -> None:
    monkeypatch.setenv(ENV_CONSOLE, value)
    provider = TracerProvider()
    assert apply_console(provider) is provider
    processor = terminal._attached[provider]
    assert processor.per_turn is per_turn and processor.stream is None
    assert apply_console(provider) is provider  # once
    assert terminal._attached[provider] is processor
    provider.shutdown()


@pytest.mark.parametrize("value", [None, "", "0", "off", "false"])
def test_the_environment_variable_off_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(ENV_CONSOLE, raising=False)
    else:
        monkeypatch.setenv(ENV_CONSOLE, value)
    provider = TracerProvider()
    assert apply_console(provider) is provider
    assert apply_console(None) is None
    assert provider not in terminal._attached
    provider.shutdown()


def test_the_environment_variable_without_a_provider_gives_one_that_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_CONSOLE, "1")
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    own = apply_console(None)
    assert isinstance(own, TracerProvider) and own in terminal._attached
    own.shutdown()


def test_the_environment_variable_misspelt_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV_CONSOLE, "yes please")
    provider = TracerProvider()
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        assert apply_console(provider) is provider
    assert provider not in terminal._attached
    assert ENV_CONSOLE in caplog.text
    provider.shutdown()


def test_the_devkit_console_is_the_products_renderer() -> None:
    from livekit_otel_dev import console

    assert console.span_tree is terminal.span_tree
    assert console.latency_table is terminal.latency_table


async def test_instrument_with_the_environment_variable_prints_each_session(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_CONSOLE, "1")
    with instrumented():
        await run_scripted_session([TURNS[0]], mode="text")
    printed = capsys.readouterr().err
    assert "agent_session" in printed and TURNS[0].text in printed
