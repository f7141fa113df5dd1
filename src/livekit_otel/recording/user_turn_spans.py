"""Writing a user's utterance: its ``user_turn`` span and its ``end_of_turn``, with the STT
usage, cost and (when asked for) the clip of the utterance."""

from __future__ import annotations

from typing import Any, cast

from opentelemetry import trace
from opentelemetry.trace import Span

from .. import compat
from ..audio.session import AudioResult, SessionAudio
from ..mapping import attributes as attr
from ..mapping.conventions import Attributes, Conventions
from ..mapping.facts import UserTurnFacts
from ..mapping.instruments import Instruments
from ..mapping.lk_metrics import MetricsAggregate
from ..mapping.usage import stt_usage
from .replies import Replies, audio_facts
from .spans import SessionSpans, now, ns, seconds
from .user_turns import UserTurn


class UserTurnSpans:
    """Writes the spans of one session's utterances (the ``UserTurns`` machine's writer)."""

    def __init__(self, spans: SessionSpans, instruments: Instruments) -> None:
        self.spans = spans
        self.instruments = instruments
        self.replies: Replies | None = None  # set once the session's replies exist
        self.audio: SessionAudio | None = None
        self.started_at = now()

    def write(self, turn: UserTurn, eou: Any | None) -> tuple[Span, int]:
        """Open the ``user_turn`` span of an utterance (and its ``end_of_turn``)."""
        written_at = now()
        # LiveKit-supplied times (a realtime transcript's turn start) may lie anywhere: keep
        # both ends within the session
        end = min(max(turn.end() or written_at, self.started_at), written_at)
        start = min(max(turn.started_at, self.started_at), end)
        owner = self._replies().turns.get(turn.speech_id) if turn.speech_id else None
        if owner is None and turn.input_mode == "text":
            owner = self._replies().turn_for(compat.current_speech())
        owner_context = owner.context if owner is not None and not owner.ended else None
        if turn.owner is not None:  # the root of its exchange's trace, ended or not
            owner_context = turn.owner
        parent, extra, links = self.spans.top_level(attr.SPAN_USER_TURN, owner_context)
        model, provider = (None, None)
        if turn.input_mode == "audio":
            model, provider = compat.model_and_provider(self._replies().component("stt"))
            self.spans.call.user_spoke(turn.started_at, turn.speech_ended_at or turn.stopped_at)
        usage = stt_usage(turn.stt, model, provider)
        cost = self.spans.call.billed(usage)
        self.instruments.record_cost(usage, cost)
        facts = UserTurnFacts(
            input_mode=turn.input_mode,
            committed=turn.committed_at is not None,
            transcript=turn.transcript,
            stt=turn.stt,
            stt_model=model or (usage.model if usage else None),
            stt_provider=provider or (usage.provider if usage else None),
            speech_id=turn.speech_id,
            usage=usage,
            cost=cost,
        )
        values = {**extra, **self.spans.conventions.user_turn(facts)}
        span = self.spans.child(attr.SPAN_USER_TURN, parent, values, ns(start), links)
        if eou is not None:
            self._end_of_turn(span, turn, eou, start, end)
        if self.audio is not None and turn.audio is not None:
            ending = _EndsWithAudio(span, self.audio, turn.audio, self.spans.conventions)
            return cast(Span, ending), ns(end)
        return span, ns(end)

    def late_stt(self, turn: UserTurn, span: Span) -> None:
        """An utterance's STT metrics came after its ``user_turn`` was written."""
        if turn.stt is None:
            return
        model, provider = compat.model_and_provider(self._replies().component("stt"))
        usage = stt_usage(turn.stt, model, provider)
        cost = self.spans.call.billed(usage)
        self.instruments.record_cost(usage, cost)
        values = self.spans.conventions.stt_usage(turn.stt.attributes(), usage, cost)
        if usage is not None and usage.model and not model:
            values[attr.LK_STT_MODEL] = usage.model
        span.set_attributes(values)

    def _end_of_turn(
        self, parent: Span, turn: UserTurn, eou: Any, start: float, end: float
    ) -> None:
        aggregate = MetricsAggregate("eou")
        aggregate.add(eou)
        delay = seconds(getattr(eou, "end_of_utterance_delay", None)) or 0.0
        measured_start = end - delay
        if turn.stopped_at is not None and delay == 0.0:
            measured_start = min(turn.stopped_at, end)
        values = self.spans.conventions.end_of_turn(aggregate.attributes(), turn.speech_id)
        if measured_start < start:
            # kept within its user turn, which starts no earlier than the session: say by how much
            values[attr.LK_CLIPPED_SECONDS] = round(start - measured_start, 6)
        child = self.spans.child(
            attr.SPAN_END_OF_TURN,
            trace.set_span_in_context(parent),
            values,
            ns(max(start, measured_start)),
        )
        child.end(ns(end))

    def _replies(self) -> Replies:
        assert self.replies is not None, "UserTurnSpans.replies is set at construction"
        return self.replies


class _EndsWithAudio:
    """A ``user_turn`` span whose end waits for its clip to be stored (the rest passes on)."""

    def __init__(
        self, span: Span, audio: SessionAudio, clip: Any, conventions: Conventions
    ) -> None:
        self._span = span
        self._audio = audio
        self._clip = clip
        self._conventions = conventions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)

    def set_attributes(self, attributes: Attributes) -> None:
        """Passed on to the span."""
        self._span.set_attributes(attributes)

    def end(self, end_time: int | None = None) -> None:
        """End the span once its clip is stored (it keeps ``end_time``)."""
        conventions = self._conventions

        def write(result: AudioResult) -> dict[str, Any]:
            return conventions.audio(audio_facts(result, "input", None))

        end = end_time if end_time is not None else ns(now())
        self._audio.finish_clip(self._span, end, self._clip, "input", "user", write)
