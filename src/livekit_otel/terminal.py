"""Your own agent's traces in your terminal, with no backend.

A span processor collects livekit-otel's spans of each session and, when the session's
``agent_session`` span ends, prints the span tree and the latency table to standard
error (or a stream you give); with ``per_turn=True`` it also prints one line as each
``agent_turn`` ends. It works beside any exporter on the same provider.

Usage::

    from livekit_otel import setup_console

    setup_console()                 # alone, or after setup_langfuse() / setup_otlp()
    setup_console(per_turn=True)    # and one line per agent turn as it ends

or ``attach_console(provider)`` for a provider you built yourself, or the environment
variable ``LIVEKIT_OTEL_CONSOLE=1`` (``=turns`` for the per-turn lines), applied by
:func:`apply_console` to each provider livekit-otel is given.

What it prints, at the end of each session::

    agent_session                        1180.4 ms  close_reason='user_initiated'
    ├─ user_turn                          412.0 ms  transcript='Hi there.'
    ...
    turn   latency      eot     hook      llm    tools      tts     play  formula  interrupted
       1     300.2    100.4     30.1     40.3      0.0     60.2     20.1    110.0

The latency is the measured ``lk.turn.perceived_latency`` (end of the user's speech to the
first audio frame of the reply) and its six parts; ``formula`` is LiveKit's
``lk.turn.total_latency``.

It writes to ``sys.stderr`` as it is at the moment of writing (so LiveKit's ``console``
mode, whose live display redirects ``sys.stdout`` and ``sys.stderr`` while it draws, shows
the lines above its display), one ``write`` per report, flushed at once. It keeps only a
small summary of each span (names, times, a few short texts, the latency numbers), drops a
session's summary when it is printed, and holds at most ``max_sessions`` unfinished
sessions of at most ``max_spans`` spans each. It never raises into the agent: a failure
is logged once as a WARNING on the ``livekit_otel`` logger, and tracing goes on.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider

from .mapping import attributes as attr

__all__ = [
    "ENV_CONSOLE",
    "ConsoleSpanProcessor",
    "apply_console",
    "attach_console",
    "latency_table",
    "span_tree",
]

logger = logging.getLogger("livekit_otel")

ENV_CONSOLE = "LIVEKIT_OTEL_CONSOLE"
"""``1`` (or ``true``, ``yes``, ``on``): print each session's trace at its end; ``turns``:
also one line per agent turn; unset, empty, ``0``, ``false``, ``no``, ``off``: nothing."""

_ON = {"1", "true", "yes", "on", "session"}
_TURNS = {"turns", "turn"}
_OFF = {"", "0", "false", "no", "off"}

_TEXT_LIMIT = 44  # characters of a transcript or reply shown in the tree
_LINE_TEXT_LIMIT = 32  # ... and in a per-turn line
_LABEL_WIDTH = 34
_MS = 1000.0
# the parts' column titles, in the order of attr.LATENCY_PARTS
_PART_TITLES = ("eot", "hook", "llm", "tools", "tts", "play")
_LEGEND = (
    "(milliseconds; '-': not measured, as for a reply the agent started) latency: end of the",
    "user's speech to the first audio frame of the reply, the sum of eot (end of turn), hook",
    "(on_user_turn_completed), llm, tools, tts and play (playout); formula: LiveKit's",
    "lk.turn.total_latency = eou delay + llm ttft + tts ttfb",
)
_BOX = {"tee": "├─ ", "last": "└─ ", "bar": "│  ", "gap": "   "}
_ASCII_BOX = {"tee": "|- ", "last": "`- ", "bar": "|  ", "gap": "   "}


# -- one span, as the terminal shows it ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class TurnLatency:
    """The numbers of one ``agent_turn`` (seconds; ``None`` when the span has none)."""

    perceived: float | None
    parts: tuple[float | None, ...]  # in the order of attributes.LATENCY_PARTS
    formula: float | None
    interrupted: bool
    played: float | None
    discarded: bool
    said: str  # the agent's words, shortened and quoted for a per-turn line
    audio: str = ""  # its clip: "audio 1.23 s at <uri>" (option audio)


@dataclass(frozen=True, slots=True)
class SpanSummary:
    """What the console keeps of a finished span: a few hundred bytes, whatever its size."""

    span_id: int
    parent_id: int | None
    name: str
    start: int
    end: int
    note: str
    turn: TurnLatency | None


def summarize(span: ReadableSpan) -> SpanSummary:
    """The summary of a finished span: its place in the tree, the note shown beside it and,
    for an ``agent_turn``, its latency."""
    values = span.attributes or {}
    context = span.context
    parent = span.parent
    return SpanSummary(
        span_id=context.span_id if context is not None else 0,
        parent_id=parent.span_id if parent is not None else None,
        name=span.name,
        start=span.start_time or 0,
        end=span.end_time or span.start_time or 0,
        note=_note(span.name, values, span.status),
        turn=_turn(values) if span.name == attr.SPAN_AGENT_TURN else None,
    )


def _number(values: Mapping[str, Any], key: str) -> float | None:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _turn(values: Mapping[str, Any]) -> TurnLatency:
    said = _output(values, attr.LK_TURN_AGENT_TEXT).split(_MEDIA_MARK)[0].rstrip()
    return TurnLatency(
        perceived=_number(values, attr.LK_TURN_PERCEIVED_LATENCY),
        parts=tuple(
            _number(values, attr.LK_TURN_LATENCY_PREFIX + part) for part in attr.LATENCY_PARTS
        ),
        formula=_number(values, attr.LK_TURN_TOTAL_LATENCY),
        interrupted=values.get(attr.LK_TURN_INTERRUPTED) is True,
        played=_number(values, attr.LK_TURN_PLAYED_DURATION),
        discarded=values.get(attr.LK_TURN_DISCARDED) is True,
        said=_short(said, _LINE_TEXT_LIMIT) if said else "",
        audio=_audio_note(values),
    )


# where the conventions put a span's text, in the order they are read: Langfuse's, then
# OpenInference's, then the GenAI convention's messages; the lk.* key last (it is written
# only when none of these is in force)
_OUTPUT_KEYS = (attr.LANGFUSE_OBSERVATION_OUTPUT, attr.OUTPUT_VALUE, attr.GEN_AI_OUTPUT_MESSAGES)
_INPUT_KEYS = (attr.LANGFUSE_OBSERVATION_INPUT, attr.INPUT_VALUE, attr.GEN_AI_INPUT_MESSAGES)


def _output(values: Mapping[str, Any], lk_key: str) -> str:
    return _first_text(values, (*_OUTPUT_KEYS, lk_key))


def _first_text(values: Mapping[str, Any], keys: Iterable[str]) -> str:
    for key in keys:
        value = values.get(key)
        if isinstance(value, str) and value:
            return _plain(value)
    return ""


def _plain(value: str) -> str:
    """The words of a text attribute: a chat message or message list reduced to its content."""
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            found = _contents(json.loads(stripped))
        except ValueError:
            found = ""
        if found:
            return found
    return value


def _contents(data: Any) -> str:
    if isinstance(data, list):
        return " ".join(filter(None, (_contents(item) for item in data)))
    if isinstance(data, dict):
        content = data.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return _contents(content)
        text = data.get("text")
        return text if isinstance(text, str) else ""
    return ""


def _short(text: str, limit: int) -> str:
    """One line, at most ``limit`` characters, quoted and escaped (no terminal control codes)."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return repr(flat)


def _count(values: Mapping[str, Any], key: str) -> int:
    value = values.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _tokens(values: Mapping[str, Any]) -> str:
    prompt = values.get(attr.GEN_AI_USAGE_INPUT_TOKENS)
    completion = values.get(attr.GEN_AI_USAGE_OUTPUT_TOKENS)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return ""
    shown = f"tokens={prompt}/{completion}"
    audio_in = _count(values, attr.GEN_AI_USAGE_INPUT_AUDIO_TOKENS) + _count(
        values, attr.GEN_AI_USAGE_INPUT_CACHED_AUDIO_TOKENS
    )
    audio_out = _count(values, attr.GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS)
    if audio_in or audio_out:
        shown += f" audio={audio_in}/{audio_out}"
    return shown


_MEDIA_MARK = "@@@langfuseMedia:"


def _audio_note(values: Mapping[str, Any]) -> str:
    """``audio 1.23 s at <uri>`` (or ``in Langfuse``) for a span with a clip or recording."""
    duration = _number(values, attr.LK_AUDIO_DURATION)
    if duration is None:
        unavailable = values.get(attr.LK_RECORDING_UNAVAILABLE)
        return f"no recording ({unavailable})" if isinstance(unavailable, str) else ""
    uri = values.get(attr.LK_AUDIO_URI)
    texts = " ".join(
        str(values.get(key, ""))
        for key in (attr.LANGFUSE_OBSERVATION_INPUT, attr.LANGFUSE_OBSERVATION_OUTPUT)
    )
    where = f"at {uri}" if isinstance(uri, str) else ("in Langfuse" if _MEDIA_MARK in texts else "")
    return f"audio {duration:.2f} s {where}".rstrip()


def _note(name: str, values: Mapping[str, Any], status: Any) -> str:
    """What the tree shows after a span's duration."""
    parts: list[str] = []
    if name in (attr.SPAN_AGENT_SESSION, attr.SPAN_SESSION_CLOSE):
        reason = values.get(attr.LK_SESSION_CLOSE_REASON)
        if isinstance(reason, str):
            parts.append(f"close_reason={reason!r}")
    elif name == attr.SPAN_USER_TURN:
        transcript = _output(values, attr.LK_USER_TRANSCRIPT)
        if transcript:
            parts.append(f"transcript={_short(transcript, _TEXT_LIMIT)}")
    elif name == attr.SPAN_AGENT_TURN:
        said = _output(values, attr.LK_TURN_AGENT_TEXT).split(_MEDIA_MARK)[0].rstrip()
        if said:
            parts.append(f"agent_text={_short(said, _TEXT_LIMIT)}")
        if values.get(attr.LK_TURN_INTERRUPTED) is True:
            parts.append("interrupted")
        if values.get(attr.LK_TURN_DISCARDED) is True:
            parts.append("discarded")
    elif name in (attr.SPAN_LLM_NODE, attr.SPAN_REALTIME_RESPONSE):
        model = values.get(attr.GEN_AI_REQUEST_MODEL)
        if isinstance(model, str):
            parts.append(f"model={model!r}")
        tokens = _tokens(values)
        if tokens:
            parts.append(tokens)
    elif name == attr.SPAN_FUNCTION_TOOL:
        tool = values.get(attr.GEN_AI_TOOL_NAME)
        if isinstance(tool, str):
            parts.append(f"name={tool!r}")
        arguments = _first_text(
            values, (*_INPUT_KEYS, attr.GEN_AI_TOOL_CALL_ARGUMENTS, attr.LK_TOOL_ARGUMENTS)
        )
        if arguments:
            parts.append(f"args={_short(arguments, _TEXT_LIMIT)}")
    audio = _audio_note(values)
    if audio:
        parts.append(audio)
    if values.get(attr.LK_CANCELLED) is True:
        parts.append("cancelled")
    if getattr(getattr(status, "status_code", None), "name", "") == "ERROR":
        description = getattr(status, "description", None)
        parts.append(f"ERROR {_short(description, _TEXT_LIMIT)}" if description else "ERROR")
    return "  ".join(parts)


# -- rendering ------------------------------------------------------------------------------
def render_tree(summaries: Sequence[SpanSummary], box: Mapping[str, str] = _BOX) -> str:
    """Spans of one or more traces as an indented tree with durations, children by start."""
    known = {summary.span_id for summary in summaries}
    children: dict[int | None, list[SpanSummary]] = {}
    for summary in summaries:
        parent = summary.parent_id if summary.parent_id in known else None
        children.setdefault(parent, []).append(summary)
    for kids in children.values():
        kids.sort(key=lambda summary: (summary.start, summary.end))
    lines: list[str] = []
    # depth first, without recursion: (summary, prefix before its branch, branch, prefix
    # for its children)
    stack = [(root, "", "", "") for root in reversed(children.get(None, []))]
    while stack:
        summary, prefix, branch, below = stack.pop()
        label = f"{prefix}{branch}{summary.name}"
        duration = (summary.end - summary.start) / 1e6
        lines.append(f"{label:<{_LABEL_WIDTH}} {duration:8.1f} ms  {summary.note}".rstrip())
        kids = children.get(summary.span_id, [])
        for index in range(len(kids) - 1, -1, -1):
            last = index == len(kids) - 1
            stack.append(
                (
                    kids[index],
                    below,
                    box["last"] if last else box["tee"],
                    below + (box["gap"] if last else box["bar"]),
                )
            )
    return "\n".join(lines)


def _ms(value: float | None, width: int = 8) -> str:
    return f"{value * _MS:{width}.1f}" if value is not None else f"{'-':>{width}}"


def _interruption(turn: TurnLatency) -> str:
    if not turn.interrupted:
        return ""
    return f"yes, {turn.played:.2f} s played" if turn.played is not None else "yes"


def heard_turns(summaries: Iterable[SpanSummary]) -> list[TurnLatency]:
    """The agent turns in the order they ended, without discarded preemptive attempts."""
    ordered = sorted(
        (s for s in summaries if s.turn is not None and not s.turn.discarded),
        key=lambda summary: summary.end,
    )
    return [summary.turn for summary in ordered if summary.turn is not None]


def render_table(turns: Sequence[TurnLatency]) -> str:
    """One row per agent turn: measured latency, its six parts, LiveKit's formula, in ms."""
    titles = "".join(f"{title:>9}" for title in _PART_TITLES)
    rows = [f"turn   latency{titles}  formula  interrupted"]
    for number, turn in enumerate(turns, 1):
        parts = "".join(" " + _ms(part) for part in turn.parts)
        rows.append(
            f"{number:>4}  {_ms(turn.perceived)}{parts}  {_ms(turn.formula, 7)}  "
            f"{_interruption(turn)}".rstrip()
        )
    if not turns:
        rows.append("   (no agent turn)")
    rows.extend(_LEGEND)
    return "\n".join(rows)


def render_turn_line(number: int, turn: TurnLatency) -> str:
    """The line printed as an agent turn ends (``per_turn=True``)."""
    pieces = [f"livekit-otel turn {number}:"]
    if turn.perceived is not None:
        parts = " + ".join(
            f"{title} {part * _MS:.0f}"
            for title, part in zip(_PART_TITLES, turn.parts, strict=True)
            if part is not None
        )
        pieces.append(f"latency {turn.perceived * _MS:.0f} ms" + (f" = {parts}" if parts else ""))
    else:
        pieces.append("no measured latency")
    if turn.formula is not None:
        pieces.append(f"| formula {turn.formula * _MS:.0f} ms")
    if turn.interrupted:
        played = f" after {turn.played:.2f} s" if turn.played is not None else ""
        pieces.append(f"| interrupted{played}")
    if turn.said:
        pieces.append(f"| {turn.said}")
    if turn.audio:
        pieces.append(f"| {turn.audio}")
    return " ".join(pieces)


def span_tree(spans: Iterable[ReadableSpan]) -> str:
    """Finished spans of one or more traces as an indented tree with durations."""
    return render_tree([summarize(span) for span in spans])


def latency_table(spans: Iterable[ReadableSpan]) -> str:
    """One row per agent turn (in the order they ended): the measured latency and its six
    parts, and LiveKit's formula as one column, in milliseconds."""
    return render_table(heard_turns(summarize(span) for span in spans))


# -- the span processor -------------------------------------------------------------------------
@dataclass
class _Session:
    """What the console holds of one session until its ``agent_session`` span ends."""

    spans: list[SpanSummary]
    turns: int = 0
    dropped: int = 0


class ConsoleSpanProcessor(SpanProcessor):
    """Prints each session's span tree and latency table when its ``agent_session`` ends.

    Spans are grouped by ``session.id`` (so one trace per session and one trace per turn
    both work); only livekit-otel's own spans are kept. ``stream``: where to write,
    ``None`` for ``sys.stderr`` as it is when writing. ``per_turn``: also one line per
    agent turn as it ends. At most ``max_sessions`` unfinished sessions of at most
    ``max_spans`` spans each are held; a printed session is dropped.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        per_turn: bool = False,
        *,
        max_sessions: int = 16,
        max_spans: int = 2000,
    ) -> None:
        self.stream = stream
        self.per_turn = per_turn
        self.max_sessions = max_sessions
        self.max_spans = max_spans
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        # sessions printed or given up: their late spans are ignored (the newest 256)
        self._done: dict[str, None] = {}
        self._warned = False

    @property
    def sessions_held(self) -> int:
        """How many unfinished sessions the console holds spans of."""
        with self._lock:
            return len(self._sessions)

    @property
    def spans_held(self) -> int:
        """How many span summaries the console holds, over all unfinished sessions."""
        with self._lock:
            return sum(len(session.spans) for session in self._sessions.values())

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing: spans are read when they end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Keep a summary of one of livekit-otel's spans; print what is due."""
        try:
            self._on_end(span)
        except Exception as error:
            self._failed(error)

    def shutdown(self) -> None:
        """Forget every unfinished session."""
        with self._lock:
            self._sessions.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered for export: a session is printed when it ends."""
        return True

    def _on_end(self, span: ReadableSpan) -> None:
        scope = span.instrumentation_scope
        if scope is None or scope.name != attr.INSTRUMENTATION_SCOPE:
            return
        key = (span.attributes or {}).get(attr.SESSION_ID)
        if not isinstance(key, str):
            return
        summary = summarize(span)
        turn_number = 0
        finished: _Session | None = None
        with self._lock:
            if key in self._done:
                return
            session = self._sessions.get(key)
            if session is None:
                session = self._open(key)
            # the root is kept past the cap: the tree hangs from it
            if len(session.spans) < self.max_spans or summary.name == attr.SPAN_AGENT_SESSION:
                session.spans.append(summary)
            else:
                session.dropped += 1
            if summary.turn is not None and not summary.turn.discarded:
                session.turns += 1
                turn_number = session.turns
            if summary.name == attr.SPAN_AGENT_SESSION:
                finished = self._sessions.pop(key)
                self._finish(key)
        if turn_number and self.per_turn and summary.turn is not None:
            self._write(render_turn_line(turn_number, summary.turn))
        if finished is not None:
            self._write(self._report(key, finished))

    def _open(self, key: str) -> _Session:
        """A new session's holder; the oldest unfinished session is given up past the cap."""
        while len(self._sessions) >= self.max_sessions:
            oldest = next(iter(self._sessions))
            del self._sessions[oldest]
            self._finish(oldest)
            logger.debug("livekit-otel console: session %s given up (too many open)", oldest)
        session = _Session(spans=[])
        self._sessions[key] = session
        return session

    def _finish(self, key: str) -> None:
        self._done[key] = None
        while len(self._done) > 256:
            del self._done[next(iter(self._done))]

    def _report(self, key: str, session: _Session) -> str:
        box = _BOX if _encodable(self._target(), "".join(_BOX.values())) else _ASCII_BOX
        held = len(session.spans)
        lines = [f"livekit-otel: session {key}, {held + session.dropped} spans", ""]
        lines.append(render_tree(session.spans, box))
        if session.dropped:
            lines.append(
                f"... and {session.dropped} more spans not shown (the console keeps "
                f"{self.max_spans} per session)"
            )
        lines.extend(("", render_table(heard_turns(session.spans)), ""))
        return "\n".join(lines)

    def _target(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _write(self, text: str) -> None:
        try:
            stream = self._target()
            encoding = getattr(stream, "encoding", None)
            if encoding:
                text = text.encode(encoding, errors="replace").decode(encoding)
            if _isatty(stream):
                # back to the first column first: a console UI may have left the cursor
                # mid-line (LiveKit's own console log lines start the same way)
                text = "\n".join("\r" + line for line in text.split("\n"))
            stream.write(text + "\n")
            stream.flush()
        except Exception as error:
            self._failed(error)

    def _failed(self, error: Exception) -> None:
        if self._warned:
            logger.debug("livekit-otel console failed again", exc_info=error)
            return
        self._warned = True
        logger.warning(
            "livekit-otel: the terminal console could not print a trace (%s: %s); tracing "
            "and export go on, and further console failures are logged at DEBUG",
            type(error).__name__,
            error,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )


def _encodable(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeError, LookupError):
        return False
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


# -- entry points ---------------------------------------------------------------------------
# the console processor of each provider, so that setting it up twice adds it once
_attached: weakref.WeakKeyDictionary[SDKTracerProvider, ConsoleSpanProcessor] = (
    weakref.WeakKeyDictionary()
)
_attach_lock = threading.Lock()


def attach_console(
    provider: SDKTracerProvider, per_turn: bool = False, stream: TextIO | None = None
) -> ConsoleSpanProcessor:
    """Add the console to ``provider`` (an SDK ``TracerProvider``); returns its processor.

    Done once per provider: a second call changes ``per_turn`` and ``stream`` of the
    processor already there.
    """
    with _attach_lock:
        processor = _attached.get(provider)
        if processor is not None:
            processor.per_turn = per_turn
            processor.stream = stream
            return processor
        processor = ConsoleSpanProcessor(stream, per_turn)
        provider.add_span_processor(processor)
        _attached[provider] = processor
        return processor


# what setup_console() asked for (per_turn, stream): kept, so that a provider livekit-otel
# gets later (setup_langfuse() after setup_console()) gets the console too
_wanted: tuple[bool, TextIO | None] | None = None


def want_console(per_turn: bool, stream: TextIO | None) -> None:
    """Remember that the console was asked for in code (``setup_console``), with its settings."""
    global _wanted
    _wanted = (per_turn, stream)


def _from_environment() -> tuple[bool, TextIO | None] | None:
    """``(per_turn, stream)`` as ``LIVEKIT_OTEL_CONSOLE`` asks, or ``None`` for no console."""
    raw = os.environ.get(ENV_CONSOLE)
    value = (raw or "").strip().lower()
    if value in _OFF:
        return None
    if value in _ON or value in _TURNS:
        return value in _TURNS, None
    logger.warning(
        "livekit-otel: %s=%r is not understood (1 for the console, turns for a line per turn "
        "as well); no console",
        ENV_CONSOLE,
        raw,
    )
    return None


def apply_console(provider: trace.TracerProvider | None) -> trace.TracerProvider | None:
    """Give the provider livekit-otel is about to use the console, when it was asked for.

    Asked for by ``setup_console()`` (its settings) or else by ``LIVEKIT_OTEL_CONSOLE``
    (``1``, ``true``, ``yes``, ``on``; ``turns`` for a line per turn as well). Returns the
    provider livekit-otel should use: ``provider`` itself when nothing was asked for, or
    with the console added when it is an SDK ``TracerProvider`` (the global provider gets
    it when ``provider`` is ``None`` and the global one is an SDK provider); when there is
    no provider to add it to (``None`` and no SDK global provider), a new SDK provider
    holding only the console. A provider that already has the console keeps it as it is.
    Never raises: an unknown value of the variable, or a provider of another kind, is one
    WARNING and no console.
    """
    wish = _wanted if _wanted is not None else _from_environment()
    if wish is None:
        return provider
    per_turn, stream = wish
    try:
        target = provider if provider is not None else trace.get_tracer_provider()
        if isinstance(target, SDKTracerProvider):
            with _attach_lock:
                present = target in _attached
            if not present:
                attach_console(target, per_turn, stream)
            return provider
        if provider is None:
            own = SDKTracerProvider()
            attach_console(own, per_turn, stream)
            return own
        logger.warning(
            "livekit-otel: the console was asked for, but the tracer provider (%s) is not an "
            "OpenTelemetry SDK TracerProvider, so it cannot be added to it",
            type(provider).__name__,
        )
    except Exception as error:
        logger.warning(
            "livekit-otel: the console could not be set up (%s: %s)", type(error).__name__, error
        )
    return provider
