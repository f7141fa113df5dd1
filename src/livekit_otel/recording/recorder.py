"""All tracing state of one ``AgentSession``: its spans, the metrics waiting for them, totals.

The wrappers tell it what LiveKit did (a call, an event, a metrics object); it keeps the
state and timing, turns them into typed facts, and hands those to the conventions
module, which writes the attributes. Replies live in :mod:`.replies`, utterances in
:mod:`.user_turns`.
"""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from .. import compat
from ..audio import runtime as audio_runtime
from ..audio.session import AudioResult, SessionAudio
from ..config import Options
from ..mapping import attributes as attr
from ..mapping import content
from ..mapping.conventions import Attributes, Conventions
from ..mapping.facts import SessionEnd, SessionFacts, SessionStart
from ..mapping.instruments import Instruments
from ..mapping.lk_metrics import MetricsAggregate, metrics_kind
from . import registry as lifecycle
from .realtime import realtime_usage
from .replies import Replies, audio_facts
from .spans import Protect, SessionSpans, now, ns, seconds
from .usage_totals import UsageTotals
from .user_turn_spans import UserTurnSpans
from .user_turns import UserTurns

RECORDER_ATTRIBUTE = "_livekit_otel_recorder"


class SessionRecorder:
    """Tracing state of one session, from ``AgentSession.start`` to its close."""

    def __init__(
        self,
        tracer: Tracer,
        options: Options,
        session: Any,
        agent: Any,
        instruments: Instruments,
        protect: Protect,
    ) -> None:
        self.options = options
        self.conventions = Conventions(options)
        self.closed = False
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
        self.spans = SessionSpans(tracer, self.conventions, self.facts, options.trace_per == "turn")
        self.instruments = instruments
        writer = UserTurnSpans(self.spans, instruments)
        self.user_turns = UserTurns(writer.write)
        self.user_turns.hold_unowned = self.spans.trace_per_turn
        self.replies = Replies(self.spans, options, session, self.user_turns, instruments, protect)
        self.nodes = self.replies.nodes
        writer.replies = self.replies
        self.user_turns.late_stt = writer.late_stt
        self.vad = MetricsAggregate("vad")
        self.connection = MetricsAggregate("realtime")
        self.usage = UsageTotals(instruments, self.replies.component)
        self.first_user_text: str | None = None
        self.last_agent_text: str | None = None

        start = SessionStart(compat.agent_name(agent), room_name, job_id)
        self.spans.call.agent_name = start.agent_name
        self.started_at = now()
        self.session_span = self.spans.open_session(
            attr.SPAN_AGENT_SESSION,
            {**self._trace_level(), **self.conventions.session_start(start, self.facts)},
            self.started_at,
        )
        self.session_context = self.spans.session_context
        self.start_span = self.spans.child(attr.SPAN_SESSION_START, self.session_context)
        self.close_span: Span | None = None
        self.audio = _session_audio(options, self.started_at, session, protect)
        self.replies.audio = writer.audio = self.audio
        writer.started_at = self.started_at
        lifecycle.session_opened(self)

    @property
    def turns(self) -> dict[str, Any]:
        """The open agent turns by speech id."""
        return self.replies.turns

    def _trace_level(self) -> Attributes:
        return {
            **self.conventions.trace_root(self.options.trace_name, self.facts),
            **self.conventions.metadata(self.facts),
        }

    def update(self, *, user_id: str | None, tags: Any, metadata: dict[str, Any] | None) -> None:
        """Set the user id, add tags and metadata, on the running session (public API)."""
        if user_id is not None:
            self.facts.user_id = user_id
        if tags is not None:
            self.facts.tags = tuple(dict.fromkeys((*self.facts.tags, *tags)))
        if metadata:
            self.facts.metadata.update(metadata)
        self.spans.refresh()
        self.session_span.set_attributes({**self.spans.common, **self._trace_level()})

    # -- session --------------------------------------------------------------------------
    def start_context(self) -> Context:
        """The context current while ``AgentSession.start`` runs: the session span's."""
        return self.session_context

    def session_started(self, error: BaseException | None) -> None:
        """``AgentSession.start`` returned."""
        self.spans.end(self.start_span, error)

    def start_failed(self, error: BaseException) -> None:
        """``AgentSession.start`` raised: the session never ran, so its trace ends here."""
        self.spans.end(self.start_span, error)
        self.closed = True
        self.spans.end(self.session_span, error)

    def close_started(self, reason: Any, error: Any) -> Context:
        """The session began to close; returns the context of the ``session_close`` span.

        A second close while the first runs (a tool closing the session being closed, or
        ``shutdown()`` then ``aclose()``) waits for LiveKit's close lock and then finds the
        session closed: it shares the first one's span and leaves its reason alone.
        """
        if self.close_span is None:
            self.close_span = self.spans.child(attr.SPAN_SESSION_CLOSE, self.session_context)
            self._close_reason(reason, error)
        return trace.set_span_in_context(self.close_span)

    def _close_reason(self, reason: Any, error: Any) -> None:
        if reason is None:
            return
        reason_text = str(getattr(reason, "value", reason))
        values: Attributes = {attr.LK_SESSION_CLOSE_REASON: reason_text}
        if error is not None:
            values[attr.LK_SESSION_CLOSE_ERROR] = type(error).__name__
        self.spans.call.end_reason = reason_text
        if error is not None:
            self.session_span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        if self.close_span is not None:
            self.close_span.set_attributes(values)
        self.session_span.set_attribute(attr.LK_SESSION_CLOSE_REASON, reason_text)

    def _on_close(self, event: Any) -> None:
        # LiveKit emits it from inside its close lock: the reason it actually closed for
        self._close_reason(getattr(event, "reason", None), getattr(event, "error", None))

    def abandon(self, reason: str) -> None:
        """End the trace now, whatever is still open (instrumentation removed mid-call)."""
        self.close_started(reason, None)
        self.close_finished()

    def close_finished(self, error: BaseException | None = None) -> None:
        """End every span still open, then ``session_close`` and ``agent_session``."""
        if self.closed:
            return
        self.closed = True
        self.replies.close()
        self.user_turns.close()
        if self.close_span is not None:
            self.spans.end(self.close_span, error)
        end = SessionEnd(
            usage=self.usage.totals,
            agent_turns=self.replies.agent_turn_count,
            vad=self.vad,
            connection=self.connection,
            first_user_text=self.first_user_text,
            last_agent_text=self.last_agent_text,
            call=self.spans.call.facts(now() - self.started_at),
        )
        if end.call is not None:
            self.instruments.record_call(end.call, self.spans.call.agent_name)
        self.session_span.set_attributes(self.conventions.session_end(end))
        if self.audio is None:
            self.session_span.end(ns(now()))
            return
        text = content.limit(self.last_agent_text, self.options) if self.last_agent_text else None
        conventions = self.conventions

        def write(result: AudioResult) -> dict[str, Any]:
            return conventions.audio(audio_facts(result, "output", text))

        self.audio.finish_session(self.session_span, ns(now()), write)

    # -- events ---------------------------------------------------------------------------
    def on_event(self, name: str, event: Any) -> None:
        """Dispatch one ``AgentSession.emit`` call."""
        handler = _EVENT_HANDLERS.get(name)
        if handler is not None and not self.closed:
            handler(self, event)

    def _on_user_state(self, event: Any) -> None:
        state = getattr(event, "new_state", None)
        at = float(getattr(event, "created_at", None) or now())
        if state == "speaking":
            self.user_turns.user_speaking(at)
            self._user_clip_starts()
        elif state == "listening":
            self.user_turns.user_listening(at)
            if self.audio is not None:
                self.audio.user_speech_ended()

    def _user_clip_starts(self) -> None:
        """The user speaks: the utterance's clip starts (or goes on, if it resumed)."""
        turn = self.user_turns.current
        if self.audio is None or turn is None:
            return
        if turn.audio is None or not turn.audio.open:
            turn.audio = self.audio.user_speech_started()

    def _on_transcribed(self, event: Any) -> None:
        if getattr(event, "is_final", False):
            at = float(getattr(event, "created_at", None) or now())
            self.user_turns.transcribed(str(getattr(event, "transcript", "") or ""), at)

    def _on_item_added(self, event: Any) -> None:
        item = getattr(event, "item", None)
        kind = getattr(item, "type", None)
        if kind == "agent_handoff":
            old_agent, new_agent = compat.handoff_agents(item)
            self.session_span.add_event(
                attr.LK_HANDOFF_EVENT,
                self.conventions.handoff(old_agent, new_agent),
                ns(now()),
            )
            return
        if kind != "message":
            return
        role = getattr(item, "role", None)
        turn = self.replies.turn_for(compat.current_speech())
        text = content.message_text(item)
        if role == "user":
            self.spans.call.said("user", text)
            if turn is not None:
                turn.facts.user_text = text
            if self.first_user_text is None:
                self.first_user_text = self.facts.first_user_text = text
            added_at = now()
            created = getattr(item, "created_at", None) or getattr(event, "created_at", None)
            created_at = float(created) if isinstance(created, (int, float)) else added_at
            self.user_turns.user_message(text, created_at, added_at)
        elif role == "assistant" and text:
            self.replies.assistant_said(turn, text)
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
            ns(now()),
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
            self.usage.add_node(kind, metrics)
            self.nodes.node_metrics(kind, metrics)
        elif kind == "eou":
            speech_id = getattr(metrics, "speech_id", None)
            speech_id = speech_id if isinstance(speech_id, str) else None
            hook_ended_at = now()
            user = self.user_turns.end_of_turn(metrics, speech_id)
            turn = self.turns.get(speech_id) if speech_id else None
            if turn is not None:
                turn.facts.eou_delay = seconds(getattr(metrics, "end_of_utterance_delay", None))
                if user is not None:
                    ended = user.speech_ended_at or user.stopped_at
                    turn.timeline.user_turn(ended, user.committed_at)
                    turn.timeline.hook_ended_at = hook_ended_at
        elif kind == "stt":
            self.usage.add_stt(metrics)
            self.user_turns.stt_metrics(metrics)
        elif kind == "vad":
            self.vad.add(metrics)
        elif kind == "realtime":
            usage = realtime_usage(metrics)
            if usage is not None:
                self.usage.add_realtime(usage)
            if getattr(metrics, "request_id", None):
                self.replies.realtime.metrics(metrics)
            else:  # the model's connection, before any response
                self.connection.add(metrics)

    def _on_speech_created(self, event: Any) -> None:
        if not self.spans.trace_per_turn:
            self.replies.speech_created(event)
            return
        # one trace per exchange: the reply's agent_turn is its root, from the utterance's start
        answered = self.user_turns.unanswered()
        start = None
        if answered is not None:
            start = min(max(answered.started_at, self.started_at), now())
        turn = self.replies.speech_created(event, start)
        if turn is not None and answered is not None:
            answered.owner = turn.context
            self.user_turns.owned(answered)


_EVENT_HANDLERS = {
    "speech_created": SessionRecorder._on_speech_created,
    "user_state_changed": SessionRecorder._on_user_state,
    "user_input_transcribed": SessionRecorder._on_transcribed,
    "conversation_item_added": SessionRecorder._on_item_added,
    "metrics_collected": SessionRecorder._on_metrics_event,
    "error": SessionRecorder._on_error,
    "close": SessionRecorder._on_close,
}
RECORDED_EVENTS = frozenset(_EVENT_HANDLERS)
"""The names of the session events a recorder handles; the hook passes the others by."""


def _session_audio(
    options: Options, started_at: float, session: Any, protect: Protect
) -> SessionAudio | None:
    """The session's audio capture, when the ``audio`` option asks for it."""
    if not options.audio or not options.capture_content:
        return None
    settings = audio_runtime.settings_for(
        options.audio, options.audio_store, options.audio_inline, options.langfuse
    )
    return SessionAudio(
        settings,
        audio_runtime.shared_worker(),
        started_at,
        lambda: compat.livekit_recording(session),
        protect,
    )


def attach_recorder(session: Any, recorder: SessionRecorder) -> None:
    """Keep ``recorder`` on its session, where the hooks find it."""
    setattr(session, RECORDER_ATTRIBUTE, recorder)


def recorder_of(session: Any) -> SessionRecorder | None:
    """The recorder of a session, if it is being traced and not yet closed."""
    recorder = getattr(session, RECORDER_ATTRIBUTE, None)
    return recorder if type(recorder) is SessionRecorder and not recorder.closed else None


def was_traced(session: Any) -> bool:
    """Whether a session was traced (it may be closed by now)."""
    return isinstance(getattr(session, RECORDER_ATTRIBUTE, None), SessionRecorder)


def current_recorder() -> SessionRecorder | None:
    """The recorder of the session whose activity task is running."""
    activity = compat.current_activity()
    return recorder_of(compat.activity_session(activity)) if activity is not None else None
