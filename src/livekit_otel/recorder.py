"""All tracing state of one ``AgentSession``: its open spans and the metrics waiting for them.

The wrappers tell it what LiveKit did (``llm_started``, ``tool_finished``, an event, a
metrics object); it keeps the state and timing, turns them into typed facts and hands
those to the conventions module, which writes the attributes. Agent turns are found by
speech id, LLM and TTS spans by a context variable that the inference task inherits, so
concurrent sessions never mix.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer

from . import attributes as attr
from . import compat, content, lifecycle
from .config import Options
from .conventions import Attributes, Conventions
from .facts import (
    AgentTurnFacts,
    LlmRequest,
    LlmResponse,
    SessionEnd,
    SessionFacts,
    SessionStart,
    ToolCall,
    ToolResult,
    TtsRequest,
    TtsResult,
    UserTurnFacts,
)
from .metrics import MetricsAggregate, metrics_kind
from .user_turns import UserTurn, UserTurns

logger = logging.getLogger("livekit_otel")
_NS = 1_000_000_000


class Node:
    """An open ``llm_node``, ``tts_node`` or ``function_tool`` span."""

    __slots__ = ("call", "context", "ended", "metrics", "span", "started_at", "text", "turn")

    def __init__(self, span: Span, turn: AgentTurn | None) -> None:
        self.span = span
        self.turn = turn
        self.context = trace.set_span_in_context(span)
        self.metrics: MetricsAggregate | None = None
        self.ended = False
        self.started_at = time.time()
        self.text: list[str] | None = None
        self.call: ToolCall | None = None


# the node whose inference task is running; LiveKit emits LLM and TTS metrics inside it
ACTIVE_NODE: ContextVar[Node | None] = ContextVar("livekit_otel_active_node", default=None)


class AgentTurn:
    """An open ``agent_turn`` span: one speech handle."""

    __slots__ = (
        "__weakref__",
        "agent_text",
        "context",
        "done_callback",
        "ended",
        "facts",
        "handle",
        "nodes",
        "span",
    )

    def __init__(self, span: Span, facts: AgentTurnFacts, handle: Any) -> None:
        self.span = span
        self.facts = facts
        self.handle = handle
        self.context = trace.set_span_in_context(span)
        self.nodes: list[Node] = []
        self.agent_text: list[str] = []
        self.done_callback: Any = None
        self.ended = False


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


class SessionRecorder:
    """Tracing state of one session, from ``AgentSession.start`` to its close."""

    def __init__(self, tracer: Tracer, options: Options, session: Any, agent: Any) -> None:
        self.tracer = tracer
        self.options = options
        self.conventions = Conventions(options)
        self.closed = False
        self._session = weakref.ref(session)
        room_name, job_id = compat.job_info()
        pending = getattr(session, "_livekit_otel_pending", None) or {}
        default_id = f"{room_name}:{job_id}" if room_name and job_id else job_id
        self.facts = SessionFacts(
            session_id=str(pending.get("session_id") or default_id or uuid.uuid4().hex),
            user_id=pending.get("user_id") or options.user_id,
            tags=tuple(dict.fromkeys((*options.tags, *pending.get("tags", ())))),
            metadata={**options.metadata, **(pending.get("metadata") or {})},
            environment=options.environment,
            release=options.release,
        )
        self.common = self.conventions.common(self.facts)
        self.turns: dict[str, AgentTurn] = {}
        self.user_turns = UserTurns(self._write_user_turn)
        self.vad = MetricsAggregate("vad")
        self.usage: dict[str, float] = {}
        self.prompt = content.PromptWindow()
        self._tool_definitions: tuple[tuple[int, ...], str | None] = ((), None)
        self.agent_turn_count = 0
        self.first_user_text: str | None = None
        self.last_agent_text: str | None = None

        start = SessionStart(compat.agent_name(agent), room_name, job_id)
        self.started_at = time.time()
        self.session_span = tracer.start_span(
            attr.SPAN_AGENT_SESSION,
            context=Context(),
            attributes={
                **self.common,
                **self.conventions.trace_root(options.trace_name, self.facts),
                **self.conventions.metadata(self.facts),
                **self.conventions.session_start(start, self.facts),
            },
            start_time=_ns(self.started_at),
        )
        self.session_context = trace.set_span_in_context(self.session_span)
        self.start_span = self._child(attr.SPAN_SESSION_START, self.session_context)
        self.close_span: Span | None = None
        lifecycle.session_opened(self)

    def update(self, *, user_id: str | None, tags: Any, metadata: dict[str, Any] | None) -> None:
        """Set the user id, add tags and metadata, on the running session (public API)."""
        if user_id is not None:
            self.facts.user_id = user_id
        if tags is not None:
            self.facts.tags = tuple(dict.fromkeys((*self.facts.tags, *tags)))
        if metadata:
            self.facts.metadata.update(metadata)
        self.common = self.conventions.common(self.facts)
        self.session_span.set_attributes(
            {
                **self.common,
                **self.conventions.trace_root(self.options.trace_name, self.facts),
                **self.conventions.metadata(self.facts),
            }
        )

    # -- span helpers ---------------------------------------------------------------------
    def _child(
        self,
        name: str,
        parent: Context,
        attributes: Attributes | None = None,
        start_time: int | None = None,
        links: list[Link] | None = None,
    ) -> Span:
        merged = {**self.common, **attributes} if attributes else self.common
        return self.tracer.start_span(
            name, context=parent, attributes=merged, start_time=start_time, links=links
        )

    def _top_level(
        self, name: str, owner: AgentTurn | None = None
    ) -> tuple[Context, Attributes, list[Link] | None]:
        """Where a turn span goes: under the session, or (per-turn traces) in its reply's trace."""
        if self.options.trace_per == "session":
            return self.session_context, {}, None
        if owner is not None and not owner.ended:
            return owner.context, {}, None
        link = Link(self.session_span.get_span_context())
        return Context(), self.conventions.trace_root(name, self.facts), [link]

    def _end(self, span: Span, error: BaseException | None = None) -> None:
        if error is not None and not isinstance(error, GeneratorExit):
            self.conventions.record_error(span, error)
        span.end()

    # -- session --------------------------------------------------------------------------
    def start_context(self) -> Context:
        """The context current while ``AgentSession.start`` runs: the session span's."""
        return self.session_context

    def session_started(self, error: BaseException | None) -> None:
        """``AgentSession.start`` returned."""
        self._end(self.start_span, error)

    def start_failed(self, error: BaseException) -> None:
        """``AgentSession.start`` raised: the session never ran, so its trace ends here."""
        self._end(self.start_span, error)
        self.closed = True
        self._end(self.session_span, error)

    def close_started(self, reason: Any, error: Any) -> Context:
        """The session began to close; returns the context of the ``session_close`` span."""
        reason_text = str(getattr(reason, "value", reason))
        values: Attributes = {attr.LK_SESSION_CLOSE_REASON: reason_text}
        if error is not None:
            values[attr.LK_SESSION_CLOSE_ERROR] = type(error).__name__
        self.close_span = self._child(attr.SPAN_SESSION_CLOSE, self.session_context, values)
        self.session_span.set_attribute(attr.LK_SESSION_CLOSE_REASON, reason_text)
        if error is not None:
            self.session_span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        return trace.set_span_in_context(self.close_span)

    def abandon(self, reason: str) -> None:
        """End the trace now, whatever is still open (instrumentation removed mid-call)."""
        self.close_started(reason, None)
        self.close_finished()

    def close_finished(self, error: BaseException | None = None) -> None:
        """End every span still open, then ``session_close`` and ``agent_session``."""
        if self.closed:
            return
        self.closed = True
        for turn in list(self.turns.values()):
            self.end_agent_turn(turn, closing=True)
        self.user_turns.close()
        if self.close_span is not None:
            self._end(self.close_span, error)
        end = SessionEnd(
            usage=self.usage,
            agent_turns=self.agent_turn_count,
            vad=self.vad,
            first_user_text=self.first_user_text,
            last_agent_text=self.last_agent_text,
        )
        self.session_span.set_attributes(self.conventions.session_end(end))
        self.session_span.end()

    # -- events ---------------------------------------------------------------------------
    def on_event(self, name: str, event: Any) -> None:
        """Dispatch one ``AgentSession.emit`` call."""
        handler = _EVENT_HANDLERS.get(name)
        if handler is not None and not self.closed:
            handler(self, event)

    def _on_speech_created(self, event: Any) -> None:
        handle = getattr(event, "speech_handle", None)
        speech_id = getattr(handle, "id", None)
        if handle is None or not isinstance(speech_id, str) or speech_id in self.turns:
            return
        agent = compat.current_agent(self._session())
        facts = AgentTurnFacts(
            speech_id=speech_id,
            source=str(getattr(event, "source", "")),
            agent_name=compat.agent_name(agent) if agent is not None else None,
        )
        parent, extra, links = self._top_level(attr.SPAN_AGENT_TURN)
        values = {**extra, **self.conventions.agent_turn_start(facts)}
        turn = AgentTurn(
            self._child(attr.SPAN_AGENT_TURN, parent, values, links=links), facts, handle
        )
        self.turns[speech_id] = turn
        self.agent_turn_count += 1
        # LiveKit keeps speech handles (in its recorded events) for the whole session: the
        # callback must not keep the turn, its span or this recorder alive
        turn_ref, recorder_ref = weakref.ref(turn), weakref.ref(self)

        def on_done(_: Any) -> None:
            done_turn, recorder = turn_ref(), recorder_ref()
            if done_turn is not None and recorder is not None:
                recorder._turn_done(done_turn)

        turn.done_callback = on_done
        handle.add_done_callback(on_done)

    def _turn_done(self, turn: AgentTurn) -> None:
        try:
            self.end_agent_turn(turn)
        except Exception:
            _report_once("failed to end an agent_turn span")

    def _on_user_state(self, event: Any) -> None:
        state = getattr(event, "new_state", None)
        at = float(getattr(event, "created_at", None) or time.time())
        if state == "speaking":
            self.user_turns.user_speaking(at)
        elif state == "listening":
            self.user_turns.user_listening(at)

    def _on_transcribed(self, event: Any) -> None:
        if getattr(event, "is_final", False):
            at = float(getattr(event, "created_at", None) or time.time())
            self.user_turns.transcribed(str(getattr(event, "transcript", "") or ""), at)

    def _on_item_added(self, event: Any) -> None:
        item = getattr(event, "item", None)
        kind = getattr(item, "type", None)
        if kind == "agent_handoff":
            old_agent, new_agent = compat.handoff_agents(item)
            self.session_span.add_event(
                attr.LK_HANDOFF_EVENT, self.conventions.handoff(old_agent, new_agent)
            )
            return
        if kind != "message":
            return
        role = getattr(item, "role", None)
        turn = self.turn_for(compat.current_speech())
        text = content.message_text(item)
        if role == "user":
            if turn is not None:
                turn.facts.user_text = text
            if self.first_user_text is None:
                self.first_user_text = text
            created = getattr(item, "created_at", None) or getattr(event, "created_at", None)
            self.user_turns.user_message(text, float(created or time.time()))
        elif role == "assistant" and text:
            turn = turn or next(reversed(self.turns.values()), None)
            if turn is not None:
                turn.agent_text.append(text)
            self.last_agent_text = text

    def _on_error(self, event: Any) -> None:
        error = getattr(event, "error", None)
        source = getattr(event, "source", None)
        recoverable = getattr(error, "recoverable", None)
        self.session_span.add_event(
            attr.LK_ERROR_EVENT,
            self.conventions.error_event(
                type(error).__name__,
                type(source).__name__,
                recoverable if isinstance(recoverable, bool) else None,
            ),
        )

    def _on_metrics_event(self, event: Any) -> None:
        metrics = getattr(event, "metrics", None)
        if metrics is not None:
            self.on_metrics(metrics)

    # -- metrics --------------------------------------------------------------------------
    def on_metrics(self, metrics: Any) -> None:
        """Route one LiveKit metrics object to the span it belongs to."""
        kind = metrics_kind(metrics)
        if kind == "llm" or kind == "tts":
            self._on_node_metrics(kind, metrics)
        elif kind == "eou":
            speech_id = getattr(metrics, "speech_id", None)
            speech_id = speech_id if isinstance(speech_id, str) else None
            turn = self.turns.get(speech_id) if speech_id else None
            if turn is not None:
                turn.facts.eou_delay = _seconds(getattr(metrics, "end_of_utterance_delay", None))
            self.user_turns.end_of_turn(metrics, speech_id)
        elif kind == "stt":
            self._count(attr.LK_USAGE_STT_AUDIO_DURATION, getattr(metrics, "audio_duration", 0))
            self.user_turns.stt_metrics(metrics)
        elif kind == "vad":
            self.vad.add(metrics)
        elif kind == "realtime":
            turn = self.turn_for(compat.current_speech()) or next(
                reversed(self.turns.values()), None
            )
            if turn is not None:
                if turn.facts.realtime is None:
                    turn.facts.realtime = MetricsAggregate("realtime")
                turn.facts.realtime.add(metrics)

    def _count(self, key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and value:
            self.usage[key] = self.usage.get(key, 0) + value

    def _on_node_metrics(self, kind: str, metrics: Any) -> None:
        for key, field in _USAGE_FIELDS[kind]:
            self._count(key, getattr(metrics, field, 0))
        node = ACTIVE_NODE.get()
        if node is None or node.ended:
            return
        if node.metrics is None:
            node.metrics = MetricsAggregate(kind)
        node.metrics.add(metrics)
        facts = node.turn.facts if node.turn is not None else None
        if facts is not None:
            if kind == "llm" and facts.llm_ttft is None:
                facts.llm_ttft = _seconds(getattr(metrics, "ttft", None))
            elif kind == "tts" and facts.tts_ttfb is None:
                facts.tts_ttfb = _seconds(getattr(metrics, "ttfb", None))

    # -- user turns -------------------------------------------------------------------------
    def _write_user_turn(self, turn: UserTurn, eou: Any | None) -> tuple[Span, int]:
        """Open the ``user_turn`` span of an utterance (and its ``end_of_turn``)."""
        end = turn.committed_at or time.time()
        start = min(max(turn.started_at, self.started_at), end)
        owner = self.turns.get(turn.speech_id) if turn.speech_id else None
        if owner is None and turn.input_mode == "text":
            owner = self.turn_for(compat.current_speech())
        parent, extra, links = self._top_level(attr.SPAN_USER_TURN, owner)
        model, provider = (None, None)
        if turn.input_mode == "audio":
            model, provider = compat.model_and_provider(self.component("stt"))
        facts = UserTurnFacts(
            input_mode=turn.input_mode,
            committed=turn.committed_at is not None,
            transcript=turn.transcript,
            stt=turn.stt,
            stt_model=model,
            stt_provider=provider,
            speech_id=turn.speech_id,
        )
        values = {**extra, **self.conventions.user_turn(facts)}
        span = self._child(attr.SPAN_USER_TURN, parent, values, _ns(start), links)
        if eou is not None:
            self._write_end_of_turn(span, turn, eou, start, end)
        return span, _ns(end)

    def _write_end_of_turn(
        self, parent: Span, turn: UserTurn, eou: Any, start: float, end: float
    ) -> None:
        aggregate = MetricsAggregate("eou")
        aggregate.add(eou)
        delay = _seconds(getattr(eou, "end_of_utterance_delay", None)) or 0.0
        measured_start = end - delay
        if turn.stopped_at is not None and delay == 0.0:
            measured_start = min(turn.stopped_at, end)
        values = self.conventions.end_of_turn(aggregate.attributes(), turn.speech_id)
        if measured_start < start:
            # kept within its user turn, which starts no earlier than the session: say by how much
            values[attr.LK_CLIPPED_SECONDS] = round(start - measured_start, 6)
        child = self._child(
            attr.SPAN_END_OF_TURN,
            trace.set_span_in_context(parent),
            values,
            _ns(max(start, measured_start)),
        )
        child.end(_ns(end))

    def component(self, name: str) -> Any | None:
        """The session's (or current agent's) ``stt``, ``llm`` or ``tts``."""
        session = self._session()
        return compat.session_component(session, name) if session is not None else None

    # -- agent turns ------------------------------------------------------------------------
    def turn_for(self, speech: Any | None) -> AgentTurn | None:
        """The open agent turn of a speech handle."""
        return self.turns.get(getattr(speech, "id", "")) if speech is not None else None

    def end_agent_turn(self, turn: AgentTurn, closing: bool = False) -> None:
        """End an agent turn and whatever of it is still open."""
        if turn.ended:
            return
        turn.ended = True
        self.turns.pop(turn.facts.speech_id, None)
        self.user_turns.reply_over(turn.facts.speech_id)
        remove = getattr(turn.handle, "remove_done_callback", None)
        if turn.done_callback is not None and callable(remove):
            # later, not now: some releases iterate the callback set while calling ours
            asyncio.get_running_loop().call_soon(remove, turn.done_callback)
            turn.done_callback = None
        for node in turn.nodes:
            if not node.ended:
                self._end_node(node, {attr.LK_CANCELLED: True})
        facts = turn.facts
        facts.interrupted = compat.speech_interrupted(turn.handle) or (
            closing and not turn.handle.done()
        )
        facts.discarded = not compat.speech_scheduled(turn.handle)
        facts.spoken_text = " ".join(turn.agent_text) if turn.agent_text else None
        turn.span.set_attributes(self.conventions.agent_turn_end(facts))
        turn.span.end()

    # -- nodes: LLM, tools, TTS ---------------------------------------------------------------
    def _start_node(self, name: str, speech: Any | None, values: Attributes) -> Node:
        turn = self.turn_for(speech)
        parent = turn.context if turn is not None else self.session_context
        node = Node(self._child(name, parent, values), turn)
        if turn is not None:
            turn.nodes.append(node)
        return node

    def _end_node(
        self, node: Node, values: Attributes | None = None, error: BaseException | None = None
    ) -> None:
        if node.ended:
            return
        node.ended = True
        if values:
            # one set_attributes call: each one takes the span's lock and runs the SDK's checks
            node.span.set_attributes(values)
        if node.turn is not None and node in node.turn.nodes:
            node.turn.nodes.remove(node)
        self._end(node.span, error)

    def abandon_node(self, node: Node, error: BaseException | None = None) -> None:
        """End a node whose LiveKit call failed or could not be followed."""
        self._end_node(node, None, error)

    def llm_started(self, request: LlmRequest, speech: Any | None) -> Node:
        """An LLM inference starts: open its ``llm_node`` with the prompt as the model sees it."""
        prompt: tuple[str, int] | None = None
        if request.chat_items is not None and self.conventions.captures_content():
            prompt = self.prompt.render(
                request.chat_items, self.options.prompt_window, self.options
            )
        items = len(request.chat_items) if request.chat_items is not None else None
        values = self.conventions.llm_start(request, prompt, items)
        return self._start_node(attr.SPAN_LLM_NODE, speech, values)

    def tool_definitions(self, tools: list[Any]) -> str | None:
        """The tools offered to the LLM as ``gen_ai.tool.definitions`` JSON, once per tool set."""
        key = tuple(id(tool) for tool in tools)
        if key != self._tool_definitions[0]:
            definitions = [d for d in map(compat.tool_definition, tools) if d is not None]
            text = content.to_json(definitions, self.options) if definitions else None
            self._tool_definitions = (key, text)
        return self._tool_definitions[1]

    def llm_finished(
        self, node: Node, reply: compat.GeneratedReply, cancelled: bool, error: BaseException | None
    ) -> None:
        """An LLM inference ended: its output, usage and first-token time."""
        usage = node.metrics
        prompt = usage.value("prompt_tokens") if usage is not None else None
        completion = usage.value("completion_tokens") if usage is not None else None
        cached = usage.value("prompt_cached_tokens") if usage is not None else None
        # a reply cut off mid-stream never got the provider's usage: LiveKit says 0 and 0
        reported = (
            isinstance(prompt, int) and isinstance(completion, int) and (prompt or completion)
        )
        finish = "cancelled" if cancelled else ("tool_calls" if reply.tool_calls else "stop")
        response = LlmResponse(
            text=reply.text,
            tool_calls=reply.tool_calls,
            finish_reason=finish,
            completion_start_time=node.started_at + reply.ttft if reply.ttft is not None else None,
            input_tokens=prompt if reported and isinstance(prompt, int) else None,
            output_tokens=completion if reported and isinstance(completion, int) else None,
            cached_input_tokens=cached if reported and isinstance(cached, int) else None,
            interrupted=cancelled,
        )
        metrics = usage.attributes() if usage is not None else {}
        values = self.conventions.llm_end(response, metrics)
        if cancelled:
            values[attr.LK_CANCELLED] = True
        self._end_node(node, values, error)

    def tool_started(self, call: ToolCall, speech: Any | None) -> Node:
        """A tool call starts: open its ``function_tool`` span."""
        node = self._start_node(attr.SPAN_FUNCTION_TOOL, speech, self.conventions.tool_start(call))
        node.call = call
        return node

    def tool_finished(self, node: Node, result: ToolResult, error: BaseException | None) -> None:
        """A tool call returned (or raised)."""
        call = node.call or ToolCall("", "", "")
        self._end_node(node, self.conventions.tool_end(call, result), error)

    def tts_started(self, request: TtsRequest, speech: Any | None, text: list[str] | None) -> Node:
        """Speech synthesis starts; ``text`` collects what is sent to it."""
        node = self._start_node(attr.SPAN_TTS_NODE, speech, self.conventions.tts_start(request))
        node.text = text
        return node

    def tts_finished(self, node: Node, cancelled: bool, error: BaseException | None) -> None:
        """Speech synthesis ended: the text it was given and the audio it made."""
        metrics = node.metrics
        duration = metrics.value("audio_duration") if metrics is not None else None
        text = "".join(node.text) if node.text is not None else None
        if text is not None and cancelled and metrics is not None:
            text = content.synthesized_part(text, metrics.value("characters_count"))
        result = TtsResult(
            text=text,
            audio_duration=float(duration) if isinstance(duration, (int, float)) else None,
            interrupted=cancelled,
        )
        values = self.conventions.tts_end(result, metrics.attributes() if metrics else {})
        if cancelled:
            values[attr.LK_CANCELLED] = True
        self._end_node(node, values, error)


_USAGE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "llm": (
        (attr.LK_USAGE_LLM_PROMPT_TOKENS, "prompt_tokens"),
        (attr.LK_USAGE_LLM_PROMPT_CACHED_TOKENS, "prompt_cached_tokens"),
        (attr.LK_USAGE_LLM_COMPLETION_TOKENS, "completion_tokens"),
    ),
    "tts": (
        (attr.LK_USAGE_TTS_CHARACTERS, "characters_count"),
        (attr.LK_USAGE_TTS_AUDIO_DURATION, "audio_duration"),
    ),
}

_reported: set[str] = set()


def _report_once(what: str) -> None:
    if what not in _reported:
        _reported.add(what)
        logger.warning("livekit-otel %s; the agent is unaffected", what, exc_info=True)


_EVENT_HANDLERS = {
    "speech_created": SessionRecorder._on_speech_created,
    "user_state_changed": SessionRecorder._on_user_state,
    "user_input_transcribed": SessionRecorder._on_transcribed,
    "conversation_item_added": SessionRecorder._on_item_added,
    "metrics_collected": SessionRecorder._on_metrics_event,
    "error": SessionRecorder._on_error,
}
