"""All tracing state of one ``AgentSession``: its open spans and the metrics waiting for them.

The wrappers feed it LiveKit calls and events; it turns them into spans. Agent turns are
found by speech id, LLM and TTS spans by a context variable that the inference task
inherits, so concurrent sessions never mix. ``user_turn`` and ``end_of_turn`` are written
once the end-of-turn metrics (which arrive after the reply was created) are known, with
the times LiveKit measured.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from . import attributes as attr
from . import compat, content, lifecycle
from .config import Options
from .metrics import MetricsAggregate, metrics_kind

_NS = 1_000_000_000


class Node:
    """An open ``llm_node``, ``tts_node`` or ``function_tool`` span."""

    __slots__ = ("context", "ended", "metrics", "span", "started_at", "text", "turn")

    def __init__(self, span: Span, turn: AgentTurn | None) -> None:
        self.span = span
        self.turn = turn
        self.context = trace.set_span_in_context(span)
        self.metrics: MetricsAggregate | None = None
        self.ended = False
        self.started_at = time.time()
        self.text: list[str] | None = None


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
        "eou_delay",
        "handle",
        "llm_ttft",
        "nodes",
        "realtime",
        "span",
        "speech_id",
        "tts_ttfb",
        "user_text",
    )

    def __init__(self, span: Span, speech_id: str, handle: Any) -> None:
        self.span = span
        self.speech_id = speech_id
        self.handle = handle
        self.context = trace.set_span_in_context(span)
        self.nodes: list[Node] = []
        self.eou_delay: float | None = None
        self.llm_ttft: float | None = None
        self.tts_ttfb: float | None = None
        self.user_text: str | None = None
        self.agent_text: list[str] = []
        self.realtime: MetricsAggregate | None = None
        self.done_callback: Any = None
        self.ended = False


class UserTurn:
    """A user utterance, written as ``user_turn`` once its end-of-turn is known."""

    __slots__ = (
        "committed_at",
        "input_mode",
        "speech_id",
        "started_at",
        "stopped_at",
        "stt",
        "transcript",
    )

    def __init__(self, started_at: float, input_mode: str) -> None:
        self.started_at = started_at
        self.stopped_at: float | None = None
        self.committed_at: float | None = None
        self.transcript: str = ""
        self.input_mode = input_mode
        self.stt: MetricsAggregate | None = None
        self.speech_id: str | None = None


# the user turn being committed; the task LiveKit starts for it inherits this, and emits
# the end-of-turn metrics from there
COMMITTING_TURN: ContextVar[UserTurn | None] = ContextVar(
    "livekit_otel_committing_turn", default=None
)


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def _finite_number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


class SessionRecorder:
    """Tracing state of one session, from ``AgentSession.start`` to its close."""

    def __init__(self, tracer: Tracer, options: Options, session: Any, agent: Any) -> None:
        self.tracer = tracer
        self.options = options
        self.closed = False
        self._session = weakref.ref(session)
        room_name, job_id = compat.job_info()
        pending = getattr(session, "_livekit_otel_pending", None) or {}
        default_id = f"{room_name}:{job_id}" if room_name and job_id else job_id
        self.session_id: str = str(pending.get("session_id") or default_id or uuid.uuid4().hex)
        self.user_id: str | None = pending.get("user_id") or options.user_id
        self.tags: tuple[str, ...] = tuple(pending.get("tags") or options.tags)
        self.metadata: dict[str, Any] = {**options.metadata, **(pending.get("metadata") or {})}
        self.common = self._common_attributes()
        self.turns: dict[str, AgentTurn] = {}
        self.user_turn: UserTurn | None = None
        self.awaiting_eou: deque[UserTurn] = deque()
        self.pending_stt: MetricsAggregate | None = None
        # a committed audio turn written before any STT metrics came for it, its span still
        # open, and the span's end time: some releases report the STT usage of an utterance
        # only after its end-of-turn
        self.settling: tuple[UserTurn, Span, int] | None = None
        self.vad = MetricsAggregate("vad")
        self.usage: dict[str, float] = {}
        self.prompt_cursor = content.PromptCursor()
        self.agent_turn_count = 0
        self.unmatched_audio_commits = 0

        root_attributes: dict[str, AttributeValue] = {
            **self.common,
            **self._trace_attributes(options.trace_name),
            attr.LK_AGENT_NAME: compat.agent_name(agent),
            attr.GEN_AI_CONVERSATION_ID: self.session_id,
        }
        if room_name:
            root_attributes[attr.LK_ROOM_NAME] = room_name
        if job_id:
            root_attributes[attr.LK_JOB_ID] = job_id
        if options.langfuse:
            root_attributes[attr.LANGFUSE_OBSERVATION_TYPE] = attr.LANGFUSE_TYPE_AGENT
        if options.genai:
            root_attributes[attr.GEN_AI_AGENT_NAME] = compat.agent_name(agent)
        if options.openinference:
            root_attributes[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_AGENT
        self.started_at = time.time()
        self.session_span = tracer.start_span(
            attr.SPAN_AGENT_SESSION,
            context=Context(),
            attributes=root_attributes,
            start_time=_ns(self.started_at),
        )
        self.session_context = trace.set_span_in_context(self.session_span)
        self.first_user_text: str | None = None
        self.last_agent_text: str | None = None
        self.start_span = self._child(attr.SPAN_SESSION_START, self.session_context)
        self.close_span: Span | None = None
        lifecycle.session_opened(self)

    # -- attribute sets -----------------------------------------------------------------
    def _common_attributes(self) -> dict[str, AttributeValue]:
        common: dict[str, AttributeValue] = {
            attr.SESSION_ID: self.session_id,
            attr.LANGFUSE_SESSION_ID: self.session_id,
        }
        if self.user_id:
            common[attr.USER_ID] = self.user_id
            if self.options.langfuse:
                common[attr.LANGFUSE_USER_ID] = self.user_id
        return common

    def _trace_attributes(self, name: str) -> dict[str, AttributeValue]:
        """What Langfuse reads at trace level; set on every trace's root span."""
        if not self.options.langfuse:
            return {}
        values: dict[str, AttributeValue] = {attr.LANGFUSE_TRACE_NAME: name}
        if self.tags:
            values[attr.LANGFUSE_TRACE_TAGS] = list(self.tags)
        for key, value in self.metadata.items():
            values[attr.LANGFUSE_TRACE_METADATA_PREFIX + str(key)] = _attribute_value(value)
        if self.options.release:
            values[attr.LANGFUSE_RELEASE] = self.options.release
        if self.options.environment:
            values[attr.LANGFUSE_ENVIRONMENT] = self.options.environment
        return values

    def update(
        self,
        *,
        user_id: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Set the user id, tags and metadata of the running session (public API)."""
        if user_id is not None:
            self.user_id = user_id
        if tags is not None:
            self.tags = tuple(dict.fromkeys((*self.tags, *tags)))
        if metadata:
            self.metadata.update(metadata)
        self.common = self._common_attributes()
        self.session_span.set_attributes(
            {**self.common, **self._trace_attributes(self.options.trace_name)}
        )
        if self.options.openinference and self.metadata:
            self.session_span.set_attribute(
                attr.METADATA, content.to_json(self.metadata, self.options)
            )

    # -- span helpers ------------------------------------------------------------------
    def _child(
        self,
        name: str,
        parent: Context,
        attributes: dict[str, AttributeValue] | None = None,
        start_time: int | None = None,
        links: list[Link] | None = None,
    ) -> Span:
        merged = {**self.common, **attributes} if attributes else self.common
        return self.tracer.start_span(
            name, context=parent, attributes=merged, start_time=start_time, links=links
        )

    def _turn_parent(self, name: str) -> tuple[Context, dict[str, AttributeValue], list[Link]]:
        """Where a top-level turn span goes: under the session, or its own trace."""
        if self.options.trace_per == "session":
            return self.session_context, {}, []
        link = Link(self.session_span.get_span_context())
        return Context(), self._trace_attributes(name), [link]

    def add_io(
        self,
        values: dict[str, AttributeValue],
        input_value: str | None,
        output_value: str | None,
        json_io: bool = False,
    ) -> None:
        """Input and output as Langfuse and OpenInference read them (both set together)."""
        if not self.options.capture_content:
            return
        if self.options.langfuse:
            values[attr.LANGFUSE_OBSERVATION_INPUT] = input_value or ""
            values[attr.LANGFUSE_OBSERVATION_OUTPUT] = output_value or ""
        if self.options.openinference:
            mime = attr.MIME_JSON if json_io else attr.MIME_TEXT
            if input_value is not None:
                values[attr.INPUT_VALUE] = input_value
                values[attr.INPUT_MIME_TYPE] = mime
            if output_value is not None:
                values[attr.OUTPUT_VALUE] = output_value
                values[attr.OUTPUT_MIME_TYPE] = mime

    def mark_plain(self, values: dict[str, AttributeValue]) -> None:
        """Type a span that is neither generation, tool nor agent (Langfuse, Phoenix)."""
        if self.options.langfuse:
            values[attr.LANGFUSE_OBSERVATION_TYPE] = attr.LANGFUSE_TYPE_SPAN
        if self.options.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_CHAIN

    def _text(self, text: str) -> str:
        return content.limit(text, self.options)

    # -- session ------------------------------------------------------------------------
    def start_context(self) -> Context:
        """The context current while ``AgentSession.start`` runs: the session span's."""
        return self.session_context

    def session_started(self, error: BaseException | None) -> None:
        """``AgentSession.start`` returned."""
        _end_with(self.start_span, error, self.options.capture_content)

    def start_failed(self, error: BaseException) -> None:
        """``AgentSession.start`` raised: the session never ran, so its trace ends here."""
        _end_with(self.start_span, error, self.options.capture_content)
        self.closed = True
        _record_error(self.session_span, error, self.options.capture_content)
        self.session_span.end()

    def close_started(self, reason: Any, error: Any) -> Context:
        """The session began to close; returns the context of the ``session_close`` span."""
        reason_text = str(getattr(reason, "value", reason))
        values: dict[str, AttributeValue] = {attr.LK_SESSION_CLOSE_REASON: reason_text}
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
        while self.awaiting_eou:
            self._write_user_turn(self.awaiting_eou.popleft(), None)
        if self.user_turn is not None:
            self._write_user_turn(self.user_turn, None)
            self.user_turn = None
        self._settle_user_turn()
        if self.close_span is not None:
            _end_with(self.close_span, error, self.options.capture_content)
        values: dict[str, AttributeValue] = {
            key: round(value, 6) if isinstance(value, float) else value
            for key, value in self.usage.items()
        }
        values[attr.LK_SESSION_TURNS] = self.agent_turn_count
        if self.vad.requests:
            values.update(self.vad.attributes())
        first_user = self._text(self.first_user_text) if self.first_user_text else None
        last_agent = self._text(self.last_agent_text) if self.last_agent_text else None
        self.add_io(values, first_user, last_agent)
        self.session_span.set_attributes(values)
        self.session_span.end()

    # -- events -------------------------------------------------------------------------
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
        parent, extra, links = self._turn_parent(attr.SPAN_AGENT_TURN)
        values: dict[str, AttributeValue] = {
            **extra,
            attr.LK_SPEECH_ID: speech_id,
            attr.LK_TURN_SOURCE: str(getattr(event, "source", "")),
        }
        agent = self._current_agent()
        if agent is not None:
            values[attr.LK_AGENT_NAME] = compat.agent_name(agent)
            if self.options.genai:
                values[attr.GEN_AI_AGENT_NAME] = compat.agent_name(agent)
        if self.options.langfuse:
            values[attr.LANGFUSE_OBSERVATION_TYPE] = attr.LANGFUSE_TYPE_AGENT
        if self.options.genai:
            values[attr.GEN_AI_OPERATION_NAME] = attr.GEN_AI_OPERATION_INVOKE_AGENT
        if self.options.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_AGENT
        span = self._child(attr.SPAN_AGENT_TURN, parent, values, links=links)
        turn = AgentTurn(span, speech_id, handle)
        self.turns[speech_id] = turn
        self.agent_turn_count += 1
        # LiveKit keeps speech handles (in its recorded events) for the whole session: the
        # callback must not keep the turn, its span or this recorder alive
        turn_ref = weakref.ref(turn)
        recorder_ref = weakref.ref(self)

        def on_done(done_handle: Any) -> None:
            done_turn, recorder = turn_ref(), recorder_ref()
            if done_turn is not None and recorder is not None:
                recorder._turn_done(done_turn)

        turn.done_callback = on_done
        handle.add_done_callback(on_done)

    def _turn_done(self, turn: AgentTurn) -> None:
        try:
            self.end_agent_turn(turn)
        except Exception:
            if not _reported_turn_failure:
                _report_turn_failure()

    def _current_agent(self) -> Any | None:
        activity = compat.current_activity()
        agent = getattr(activity, "agent", None) if activity is not None else None
        if agent is None:
            agent = compat.session_agent(self._session())
        return agent

    def _on_user_state(self, event: Any) -> None:
        state = getattr(event, "new_state", None)
        at = float(getattr(event, "created_at", None) or time.time())
        if state == "speaking":
            if self.user_turn is None:
                self.user_turn = self._new_user_turn(at, "audio")
        elif state == "listening" and self.user_turn is not None:
            self.user_turn.stopped_at = at

    def _new_user_turn(self, at: float, mode: str) -> UserTurn:
        self._settle_user_turn()  # STT metrics from now on belong to the new utterance
        turn = UserTurn(at, mode)
        if self.pending_stt is not None:
            turn.stt, self.pending_stt = self.pending_stt, None
        return turn

    def _on_transcribed(self, event: Any) -> None:
        if not getattr(event, "is_final", False):
            return
        if self.user_turn is None:
            at = float(getattr(event, "created_at", None) or time.time())
            self.user_turn = self._new_user_turn(at, "audio")
        text = str(getattr(event, "transcript", "") or "")
        if text:
            joined = f"{self.user_turn.transcript} {text}" if self.user_turn.transcript else text
            self.user_turn.transcript = joined

    def _on_item_added(self, event: Any) -> None:
        item = getattr(event, "item", None)
        kind = getattr(item, "type", None)
        if kind == "agent_handoff":
            self._on_handoff(item)
            return
        if kind != "message":
            return
        role = getattr(item, "role", None)
        speech = compat.current_speech()
        turn = self.turns.get(getattr(speech, "id", "")) if speech is not None else None
        text = content.message_text(item)
        if role == "user":
            if turn is not None:
                turn.user_text = text
            if self.first_user_text is None:
                self.first_user_text = text
            if self.unmatched_audio_commits > 0:
                self.unmatched_audio_commits -= 1
            else:
                created = getattr(item, "created_at", None) or getattr(event, "created_at", None)
                self._write_text_user_turn(text, float(created or time.time()))
        elif role == "assistant":
            if turn is None:
                turn = self._latest_open_turn()
            if turn is not None and text:
                turn.agent_text.append(text)
            if text:
                self.last_agent_text = text

    def _latest_open_turn(self) -> AgentTurn | None:
        return next(reversed(self.turns.values()), None)

    def _on_handoff(self, item: Any) -> None:
        values: dict[str, AttributeValue] = {}
        old_id = getattr(item, "old_agent_id", None)
        new_id = getattr(item, "new_agent_id", None)
        if old_id:
            values[attr.LK_HANDOFF_FROM] = str(old_id)
        if new_id:
            values[attr.LK_HANDOFF_TO] = str(new_id)
        self.session_span.add_event(attr.LK_HANDOFF_EVENT, values)

    def _on_error(self, event: Any) -> None:
        error = getattr(event, "error", None)
        source = getattr(event, "source", None)
        values: dict[str, AttributeValue] = {
            attr.LK_ERROR_TYPE: type(error).__name__,
            attr.LK_ERROR_SOURCE: type(source).__name__,
        }
        recoverable = getattr(error, "recoverable", None)
        if isinstance(recoverable, bool):
            values[attr.LK_ERROR_RECOVERABLE] = recoverable
        self.session_span.add_event(attr.LK_ERROR_EVENT, values)

    def _on_metrics_event(self, event: Any) -> None:
        metrics = getattr(event, "metrics", None)
        if metrics is not None:
            self.on_metrics(metrics)

    # -- metrics ------------------------------------------------------------------------
    def on_metrics(self, metrics: Any) -> None:
        """Route one LiveKit metrics object to the span it belongs to."""
        kind = metrics_kind(metrics)
        if kind is None:
            return
        if kind == "llm" or kind == "tts":
            self._on_node_metrics(kind, metrics)
        elif kind == "eou":
            self._on_eou(metrics)
        elif kind == "stt":
            self._count(attr.LK_USAGE_STT_AUDIO_DURATION, getattr(metrics, "audio_duration", 0))
            turn = self.user_turn or (self.awaiting_eou[-1] if self.awaiting_eou else None)
            if turn is None and self.settling is not None:
                settling = self.settling[0]
                if settling.stt is None:
                    settling.stt = MetricsAggregate("stt")
                settling.stt.add(metrics)
                self._settle_user_turn()
            elif turn is None:
                if self.pending_stt is None:
                    self.pending_stt = MetricsAggregate("stt")
                self.pending_stt.add(metrics)
            else:
                if turn.stt is None:
                    turn.stt = MetricsAggregate("stt")
                turn.stt.add(metrics)
        elif kind == "vad":
            self.vad.add(metrics)
        elif kind == "realtime":
            agent_turn = self.turn_for(compat.current_speech()) or self._latest_open_turn()
            if agent_turn is not None:
                if agent_turn.realtime is None:
                    agent_turn.realtime = MetricsAggregate("realtime")
                agent_turn.realtime.add(metrics)

    def _count(self, key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and value:
            self.usage[key] = self.usage.get(key, 0) + value

    def _on_node_metrics(self, kind: str, metrics: Any) -> None:
        if kind == "llm":
            self._count(attr.LK_USAGE_LLM_PROMPT_TOKENS, getattr(metrics, "prompt_tokens", 0))
            self._count(
                attr.LK_USAGE_LLM_PROMPT_CACHED_TOKENS,
                getattr(metrics, "prompt_cached_tokens", 0),
            )
            self._count(
                attr.LK_USAGE_LLM_COMPLETION_TOKENS, getattr(metrics, "completion_tokens", 0)
            )
        else:
            self._count(attr.LK_USAGE_TTS_CHARACTERS, getattr(metrics, "characters_count", 0))
            self._count(attr.LK_USAGE_TTS_AUDIO_DURATION, getattr(metrics, "audio_duration", 0))
        node = ACTIVE_NODE.get()
        if node is None or node.ended:
            return
        if node.metrics is None:
            node.metrics = MetricsAggregate(kind)
        node.metrics.add(metrics)
        turn = node.turn
        if turn is not None:
            if kind == "llm" and turn.llm_ttft is None:
                turn.llm_ttft = _finite_number(getattr(metrics, "ttft", None))
            elif kind == "tts" and turn.tts_ttfb is None:
                turn.tts_ttfb = _finite_number(getattr(metrics, "ttfb", None))

    def _on_eou(self, metrics: Any) -> None:
        speech_id = getattr(metrics, "speech_id", None)
        turn = self.turns.get(speech_id) if isinstance(speech_id, str) else None
        delay = _finite_number(getattr(metrics, "end_of_utterance_delay", None))
        if turn is not None:
            turn.eou_delay = delay
        user_turn = COMMITTING_TURN.get()
        if user_turn is None or user_turn not in self.awaiting_eou:
            user_turn = self.awaiting_eou[0] if self.awaiting_eou else None
        if user_turn is not None:
            self.awaiting_eou.remove(user_turn)
            user_turn.speech_id = speech_id if isinstance(speech_id, str) else None
            self._write_user_turn(user_turn, metrics)

    # -- user turns -------------------------------------------------------------------
    def begin_commit(self, transcript: str | None) -> UserTurn:
        """LiveKit is deciding on the end of the user's turn (``on_end_of_turn`` was called)."""
        now = time.time()
        turn = self.user_turn or self._new_user_turn(now, "audio")
        self.user_turn = None
        turn.committed_at = now
        if transcript:
            turn.transcript = transcript
        return turn

    def finish_commit(self, turn: UserTurn, accepted: bool) -> None:
        """``on_end_of_turn`` returned: the turn is committed, or the user goes on speaking."""
        if not accepted:
            turn.committed_at = None
            if self.user_turn is None:
                self.user_turn = turn
            return
        # earlier commits that never got end-of-turn metrics made no reply: write them now
        while self.awaiting_eou:
            self._write_user_turn(self.awaiting_eou.popleft(), None)
        self.awaiting_eou.append(turn)
        self.unmatched_audio_commits += 1

    def _write_text_user_turn(self, text: str, at: float) -> None:
        turn = UserTurn(at, "text")
        turn.transcript = text
        turn.committed_at = at
        self._write_user_turn(turn, None)

    def _write_user_turn(self, turn: UserTurn, eou: Any | None) -> None:
        end = turn.committed_at or time.time()
        start = min(max(turn.started_at, self.started_at), end)
        parent, extra, links = self._turn_parent(attr.SPAN_USER_TURN)
        values: dict[str, AttributeValue] = {
            **extra,
            attr.LK_USER_INPUT_MODE: turn.input_mode,
            attr.LK_USER_TURN_COMMITTED: turn.committed_at is not None,
        }
        if turn.stt is not None:
            values.update(turn.stt.attributes())
        if turn.input_mode == "audio":
            model, provider = compat.model_and_provider(self.component("stt"))
            if model:
                values[attr.LK_STT_MODEL] = model
            if provider:
                values[attr.LK_STT_PROVIDER] = provider
        self.mark_plain(values)
        if self.options.capture_content and turn.transcript:
            text = self._text(turn.transcript)
            values[attr.LK_USER_TRANSCRIPT] = text
            self.add_io(values, "[audio]" if turn.input_mode == "audio" else text, text)
        if turn.speech_id:
            values[attr.LK_SPEECH_ID] = turn.speech_id
        span = self._child(attr.SPAN_USER_TURN, parent, values, _ns(start), links or None)
        if eou is not None:
            eou_values = MetricsAggregate("eou")
            eou_values.add(eou)
            delay = _finite_number(getattr(eou, "end_of_utterance_delay", None)) or 0.0
            eou_start = max(start, end - delay)
            if turn.stopped_at is not None and delay == 0.0:
                eou_start = max(start, min(turn.stopped_at, end))
            child_values: dict[str, AttributeValue] = eou_values.attributes()
            if turn.speech_id:
                child_values[attr.LK_SPEECH_ID] = turn.speech_id
            self.mark_plain(child_values)
            child = self._child(
                attr.SPAN_END_OF_TURN,
                trace.set_span_in_context(span),
                child_values,
                _ns(eou_start),
            )
            child.end(_ns(end))
        if eou is not None and turn.stt is None and turn.input_mode == "audio" and not self.closed:
            # its STT metrics may still come (right after the commit on some releases): keep
            # the span open, with its end time fixed, until they do or the turn is over
            self._settle_user_turn()
            self.settling = (turn, span, _ns(end))
            return
        span.end(_ns(end))

    def _settle_user_turn(self) -> None:
        """End the committed user turn still waiting for its STT metrics, with what came."""
        if self.settling is None:
            return
        turn, span, end = self.settling
        self.settling = None
        if turn.stt is not None:
            span.set_attributes(turn.stt.attributes())
        span.end(end)

    def component(self, name: str) -> Any | None:
        session = self._session()
        return compat.session_component(session, name) if session is not None else None

    # -- agent turns ------------------------------------------------------------------
    def turn_for(self, speech: Any | None) -> AgentTurn | None:
        """The open agent turn of a speech handle."""
        if speech is None:
            return None
        return self.turns.get(getattr(speech, "id", ""))

    def end_agent_turn(self, turn: AgentTurn, closing: bool = False) -> None:
        """End an agent turn and whatever of it is still open."""
        if turn.ended:
            return
        turn.ended = True
        self.turns.pop(turn.speech_id, None)
        if self.settling is not None and self.settling[0].speech_id == turn.speech_id:
            self._settle_user_turn()  # the reply is over: so is the wait for its STT metrics
        remove = getattr(turn.handle, "remove_done_callback", None)
        if turn.done_callback is not None and callable(remove):
            # later, not now: some releases iterate the callback set while calling ours
            asyncio.get_running_loop().call_soon(remove, turn.done_callback)
            turn.done_callback = None
        for node in turn.nodes:
            if not node.ended:
                self.end_node(node, cancelled=True)
        interrupted = compat.speech_interrupted(turn.handle)
        values: dict[str, AttributeValue] = {attr.LK_TURN_INTERRUPTED: interrupted}
        if closing and not turn.handle.done():
            values[attr.LK_TURN_INTERRUPTED] = True
        if not compat.speech_scheduled(turn.handle):
            values[attr.LK_TURN_DISCARDED] = True
        for key, value in (
            (attr.LK_TURN_EOU_DELAY, turn.eou_delay),
            (attr.LK_TURN_LLM_TTFT, turn.llm_ttft),
            (attr.LK_TURN_TTS_TTFB, turn.tts_ttfb),
        ):
            if value is not None:
                values[key] = value
        if turn.eou_delay is not None and turn.llm_ttft is not None and turn.tts_ttfb is not None:
            values[attr.LK_TURN_TOTAL_LATENCY] = turn.eou_delay + turn.llm_ttft + turn.tts_ttfb
        if turn.realtime is not None:
            values.update(turn.realtime.attributes())
        if self.options.capture_content:
            user_text = self._text(turn.user_text) if turn.user_text else None
            agent_text = self._text(" ".join(turn.agent_text)) if turn.agent_text else None
            if user_text is not None:
                values[attr.LK_TURN_USER_TEXT] = user_text
            if agent_text is not None:
                values[attr.LK_TURN_AGENT_TEXT] = agent_text
            self.add_io(values, user_text, agent_text)
        turn.span.set_attributes(values)
        turn.span.end()

    # -- nodes ------------------------------------------------------------------------
    def start_node(self, name: str, speech: Any | None, values: dict[str, AttributeValue]) -> Node:
        """Open an ``llm_node``, ``tts_node`` or ``function_tool`` span under its agent turn."""
        turn = self.turn_for(speech)
        parent = turn.context if turn is not None else self.session_context
        node = Node(self._child(name, parent, values), turn)
        if turn is not None:
            turn.nodes.append(node)
        return node

    def end_node(
        self,
        node: Node,
        values: dict[str, AttributeValue] | None = None,
        error: BaseException | None = None,
        cancelled: bool = False,
    ) -> None:
        """End a node span with its metrics, extra attributes and error status."""
        if node.ended:
            return
        node.ended = True
        span = node.span
        # one set_attributes call: each one takes the span's lock and runs the SDK's checks
        merged: dict[str, AttributeValue] = {}
        if node.metrics is not None:
            merged.update(node.metrics.attributes())
            if node.metrics.kind == "llm":
                merged.update(self._llm_usage(node.metrics))
        if values:
            merged.update(values)
        if cancelled:
            merged[attr.LK_CANCELLED] = True
        if merged:
            span.set_attributes(merged)
        if node.turn is not None and node in node.turn.nodes:
            node.turn.nodes.remove(node)
        _end_with(span, error, self.options.capture_content)

    def _llm_usage(self, metrics: MetricsAggregate) -> dict[str, AttributeValue]:
        prompt = metrics.value("prompt_tokens")
        completion = metrics.value("completion_tokens")
        cached = metrics.value("prompt_cached_tokens")
        values: dict[str, AttributeValue] = {}
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return values
        values[attr.GEN_AI_USAGE_INPUT_TOKENS] = prompt
        values[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = completion
        if isinstance(cached, int) and cached:
            values[attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
        if self.options.openinference:
            values[attr.LLM_TOKEN_COUNT_PROMPT] = prompt
            values[attr.LLM_TOKEN_COUNT_COMPLETION] = completion
            values[attr.LLM_TOKEN_COUNT_TOTAL] = prompt + completion
            if isinstance(cached, int) and cached:
                values[attr.LLM_TOKEN_COUNT_CACHE_READ] = cached
        return values


def _end_with(span: Span, error: BaseException | None, capture_content: bool) -> None:
    if error is not None and not isinstance(error, GeneratorExit):
        _record_error(span, error, capture_content)
    span.end()


def _record_error(span: Span, error: BaseException, capture_content: bool) -> None:
    """ERROR status and an exception event; the message only when content is captured."""
    name = type(error).__name__
    if capture_content:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{name}: {error}"))
    else:
        span.add_event(attr.EXCEPTION_EVENT, {attr.EXCEPTION_TYPE: name})
        span.set_status(Status(StatusCode.ERROR, name))


_reported_turn_failure = False


def _report_turn_failure() -> None:
    global _reported_turn_failure
    _reported_turn_failure = True
    logging.getLogger("livekit_otel").warning(
        "livekit-otel failed to end an agent_turn span; the agent is unaffected", exc_info=True
    )


def _attribute_value(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


_EVENT_HANDLERS = {
    "speech_created": SessionRecorder._on_speech_created,
    "user_state_changed": SessionRecorder._on_user_state,
    "user_input_transcribed": SessionRecorder._on_transcribed,
    "conversation_item_added": SessionRecorder._on_item_added,
    "metrics_collected": SessionRecorder._on_metrics_event,
    "error": SessionRecorder._on_error,
}
