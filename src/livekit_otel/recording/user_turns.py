"""The user-turn state machine: which utterance LiveKit's events and metrics belong to.

An audio utterance starts with the user speaking (or a first final transcript), gathers
transcripts and STT metrics, is committed by LiveKit's end-of-turn decision, and is
written once its end-of-turn metrics arrive (they come after the reply was created). A
typed message is a whole turn at once. Some releases report an utterance's STT usage only
after its end of turn: then its span stays open, end time fixed, until they come.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry.trace import Span

from ..mapping.lk_metrics import MetricsAggregate
from .spans import now


class UserTurn:
    """One user utterance while it is being heard."""

    __slots__ = (
        "__weakref__",
        "audio",
        "committed_at",
        "ends_at_speech_end",
        "input_mode",
        "owner",
        "speech_ended_at",
        "speech_id",
        "started_at",
        "stopped_at",
        "stt",
        "transcript",
    )

    def __init__(self, started_at: float, input_mode: str) -> None:
        self.started_at = started_at
        self.stopped_at: float | None = None
        self.speech_ended_at: float | None = None
        self.committed_at: float | None = None
        self.transcript: str = ""
        self.input_mode = input_mode
        self.stt: MetricsAggregate | None = None
        self.speech_id: str | None = None
        # a realtime model's utterance ends where the speech ended, not at the commit
        self.ends_at_speech_end = False
        # the context of the reply that answers it (a per-turn trace's root), once known
        self.owner: Any | None = None
        self.audio: Any = None  # its clip, when audio turns are captured

    def end(self) -> float | None:
        """When the utterance's span ends: the commit, or the end of speech (realtime)."""
        if self.ends_at_speech_end and self.speech_ended_at is not None:
            return self.speech_ended_at
        return self.committed_at

    def add_stt(self, metrics: Any) -> None:
        """Fold one STT metrics object into this utterance's."""
        if self.stt is None:
            self.stt = MetricsAggregate("stt")
        self.stt.add(metrics)


# the user turn being committed; the task LiveKit starts for it inherits this, and emits
# the end-of-turn metrics from there. A weak reference: LiveKit keeps its finished speech
# tasks, and their contexts, as long as the session, and a turn (its STT metrics, its
# audio clip) must not live that long
COMMITTING_TURN: ContextVar[weakref.ref[UserTurn] | None] = ContextVar(
    "livekit_otel_committing_turn", default=None
)


def mark_committing(turn: UserTurn) -> Token[weakref.ref[UserTurn] | None]:
    """``turn`` is being committed in the running task (and the tasks it starts)."""
    return COMMITTING_TURN.set(weakref.ref(turn))


def committing_turn() -> UserTurn | None:
    """The user turn whose commit the running task belongs to, while it is still held."""
    reference = COMMITTING_TURN.get()
    return reference() if reference is not None else None


# writes a turn (with its end-of-turn metrics, if any) and returns its span, not yet
# ended, and the span's end time in ns
TurnWriter = Callable[[UserTurn, Any | None], tuple[Span, int]]


class UserTurns:
    """The utterances of one session, from first sound to a written ``user_turn``."""

    def __init__(self, write: TurnWriter) -> None:
        self._write = write
        self.current: UserTurn | None = None
        self._awaiting_eou: deque[UserTurn] = deque()
        self._pending_stt: MetricsAggregate | None = None
        self._settling: tuple[UserTurn, Span, int] | None = None
        self._unmatched_audio_commits = 0
        # utterances a realtime model's server-side turn detection ended, until transcribed
        self._awaiting_transcript: deque[UserTurn] = deque()
        self.last_server_turn: UserTurn | None = None
        self._transcript_handled = False
        # per-turn traces: transcribed utterances waiting for the reply whose trace they join
        self.hold_unowned = False
        self._awaiting_owner: deque[UserTurn] = deque()
        # writes STT metrics that came after their turn was written (usage and cost with them)
        self.late_stt: Callable[[UserTurn, Span], None] | None = None

    # -- LiveKit events -------------------------------------------------------------------
    def user_speaking(self, at: float) -> None:
        """The user started speaking."""
        if self.current is None:
            self.current = self._new(at, "audio")

    def user_listening(self, at: float) -> None:
        """The user stopped speaking."""
        if self.current is not None:
            self.current.stopped_at = at

    def speech_ended(self, at: float) -> None:
        """The VAD dated the end of the user's speech (the last one before the commit counts)."""
        if self.current is not None:
            self.current.speech_ended_at = at
        elif self._awaiting_eou and self._awaiting_eou[-1].speech_ended_at is None:
            # a late end of speech, after a commit that did not wait for it
            self._awaiting_eou[-1].speech_ended_at = at

    def server_committed(self, at: float, silence: float = 0.0) -> None:
        """A realtime model's turn detection ended the utterance: its transcript comes later.

        The server says so ``silence`` seconds (its silence window) after the speech ended:
        the utterance ends there, and the turn is committed now.
        """
        turn = self.current or self._new(at, "audio")
        self.current = None
        turn.stopped_at = turn.speech_ended_at = max(turn.started_at, at - silence)
        turn.committed_at = at
        turn.ends_at_speech_end = True
        self._awaiting_transcript.append(turn)
        self.last_server_turn = turn

    def unanswered(self) -> UserTurn | None:
        """The committed utterance no reply answers yet (the one a new reply answers)."""
        committing = committing_turn()
        for turn in (committing, *reversed(self._awaiting_eou), self.last_server_turn):
            if turn is not None and turn.owner is None:
                return turn
        return None

    def take_server_turn(self) -> UserTurn | None:
        """The utterance a realtime model's VAD ended last, for the one response answering it."""
        turn, self.last_server_turn = self.last_server_turn, None
        return turn

    def server_transcript(self, text: str, started_at: float | None, at: float) -> None:
        """A realtime model transcribed an utterance (often late): write it, once."""
        if self._awaiting_transcript:
            turn = self._awaiting_transcript.popleft()
        else:  # a transcript with no speech events: it is the whole utterance
            turn = self.current or self._new(started_at or at, "audio")
            self.current = None
            turn.committed_at = at
        turn.transcript = text
        self._unmatched_audio_commits += 1  # its chat message follows
        if self.hold_unowned and turn.owner is None:
            self._awaiting_owner.append(turn)  # written once its reply exists
            return
        self._write_server_turn(turn)

    def owned(self, turn: UserTurn) -> None:
        """A reply answering ``turn`` was opened: write it now if it only waited for that."""
        if turn in self._awaiting_owner:
            self._awaiting_owner.remove(turn)
            self._write_server_turn(turn)

    def _write_server_turn(self, turn: UserTurn) -> None:
        span, end = self._write(turn, None)
        if turn.stt is None:  # the transcription's usage may follow (STT metrics)
            self.settle()
            self._settling = (turn, span, end)
            return
        span.end(end)

    def handling_transcript(self, handled: bool) -> None:
        """While LiveKit relays a realtime transcript as session events, do not count it twice."""
        self._transcript_handled = handled

    def transcribed(self, text: str, at: float) -> None:
        """A final transcript of the utterance being heard."""
        if self._transcript_handled:
            return
        if self.current is None:
            self.current = self._new(at, "audio")
        if text:
            current = self.current.transcript
            self.current.transcript = f"{current} {text}" if current else text

    def begin_commit(self, transcript: str | None) -> UserTurn:
        """LiveKit is deciding on the end of the user's turn (``on_end_of_turn`` was called)."""
        at = now()
        turn = self.current or self._new(at, "audio")
        self.current = None
        turn.committed_at = at
        if transcript:
            turn.transcript = transcript
        return turn

    def finish_commit(self, turn: UserTurn, accepted: bool) -> None:
        """``on_end_of_turn`` returned: the turn is committed, or the user goes on speaking."""
        if not accepted:
            turn.committed_at = None
            if self.current is None:
                self.current = turn
            return
        # earlier commits that never got end-of-turn metrics made no reply: write them now
        while self._awaiting_eou:
            self._end(self._awaiting_eou.popleft(), None)
        self._awaiting_eou.append(turn)
        self._unmatched_audio_commits += 1

    def user_message(self, text: str, created_at: float, added_at: float) -> None:
        """A user message entered the chat: a committed utterance's, or a typed one (which
        lasts from the message's creation to its entering the chat)."""
        if self._unmatched_audio_commits > 0:
            self._unmatched_audio_commits -= 1
            return
        turn = UserTurn(min(created_at, added_at), "text")
        turn.transcript = text
        turn.committed_at = added_at
        self._end(turn, None)

    def stt_metrics(self, metrics: Any) -> None:
        """STT metrics: they belong to the utterance being heard or the last committed one."""
        turn = self.current or (self._awaiting_eou[-1] if self._awaiting_eou else None)
        if turn is None and self._awaiting_transcript:  # a realtime model's transcription
            turn = self._awaiting_transcript[0]
        if turn is None and self._awaiting_owner:
            turn = self._awaiting_owner[-1]
        if turn is not None:
            turn.add_stt(metrics)
        elif self._settling is not None:
            self._settling[0].add_stt(metrics)
            self.settle()
        else:
            if self._pending_stt is None:
                self._pending_stt = MetricsAggregate("stt")
            self._pending_stt.add(metrics)

    def end_of_turn(self, metrics: Any, speech_id: str | None) -> UserTurn | None:
        """End-of-turn metrics: the committed utterance they decided is written now."""
        turn = committing_turn()
        if turn is None or turn not in self._awaiting_eou:
            turn = self._awaiting_eou[0] if self._awaiting_eou else None
        if turn is None:
            return None
        self._awaiting_eou.remove(turn)
        turn.speech_id = speech_id
        span, end = self._write(turn, metrics)
        if turn.stt is None and turn.input_mode == "audio":
            # its STT metrics may still come (right after the commit on some releases): keep
            # the span open, with its end time fixed, until they do or the reply is over
            self.settle()
            self._settling = (turn, span, end)
            return turn
        span.end(end)
        return turn

    def reply_over(self, speech_id: str) -> None:
        """A reply ended: so does the wait for the STT metrics of the turn that caused it."""
        if self._settling is not None and self._settling[0].speech_id == speech_id:
            self.settle()

    def close(self) -> None:
        """The session closes: write every utterance still unwritten."""
        while self._awaiting_transcript:
            self._end(self._awaiting_transcript.popleft(), None)
        while self._awaiting_owner:
            self._end(self._awaiting_owner.popleft(), None)
        while self._awaiting_eou:
            self._end(self._awaiting_eou.popleft(), None)
        if self.current is not None:
            self._end(self.current, None)
            self.current = None
        self.settle()

    def unwritten(self) -> int:
        """How many utterances were heard and not yet written (or their STT awaited)."""
        waiting = len(self._awaiting_eou) + len(self._awaiting_transcript)
        waiting += len(self._awaiting_owner)
        waiting += self.current is not None
        return waiting + (self._settling is not None) + (self._pending_stt is not None)

    # -- helpers --------------------------------------------------------------------------
    def settle(self) -> None:
        """End the committed turn still waiting for its STT metrics, with what came."""
        if self._settling is None:
            return
        turn, span, end = self._settling
        self._settling = None
        if self.late_stt is not None:
            self.late_stt(turn, span)
        elif turn.stt is not None:
            span.set_attributes(turn.stt.attributes())
        span.end(end)

    def _new(self, at: float, mode: str) -> UserTurn:
        self.settle()  # STT metrics from now on belong to the new utterance
        turn = UserTurn(at, mode)
        if self._pending_stt is not None:
            turn.stt, self._pending_stt = self._pending_stt, None
        return turn

    def _end(self, turn: UserTurn, eou: Any | None) -> None:
        span, end = self._write(turn, eou)
        span.end(end)
