"""The agent's replies: one ``agent_turn`` per speech handle, its realtime responses, and
the moments its audio reached the output. Its LLM, tool and TTS spans are in :mod:`.nodes`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from .. import compat
from ..audio.clips import Clip
from ..audio.session import AudioResult, SessionAudio
from ..config import Options
from ..mapping import attributes as attr
from ..mapping import content
from ..mapping.facts import (
    AgentTurnFacts,
    AudioFacts,
)
from ..mapping.instruments import Instruments
from .latency import Playback, Timeline
from .nodes import Node, NodeSpans
from .realtime import RealtimeResponses, Response
from .spans import Protect, SessionSpans, now, ns, seconds
from .user_turns import UserTurns


class AgentTurn:
    """An open ``agent_turn`` span: one speech handle."""

    __slots__ = (
        "__weakref__",
        "agent_text",
        "audio",
        "context",
        "done_at",
        "done_callback",
        "ended",
        "facts",
        "handle",
        "nodes",
        "responses",
        "span",
        "synthesized",
        "timeline",
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
        self.timeline = Timeline()
        self.responses: list[Response] = []
        self.done_at = 0.0
        # what speech synthesis was given (the TTS nodes' text) and the seconds of audio it made
        self.synthesized: tuple[list[list[str]], list[float]] = ([], [])
        self.audio: Clip | None = None  # the reply's audio as handed to the output


class Replies:
    """The open agent turns of one session, and the spans under them."""

    def __init__(
        self,
        spans: SessionSpans,
        options: Options,
        session: Any,
        user_turns: UserTurns,
        instruments: Instruments,
        protect: Protect,
    ) -> None:
        self.spans = spans
        self.conventions = spans.conventions
        self.options = options
        self._session = weakref.ref(session)
        self.user_turns = user_turns
        self._protect = protect
        self.instruments = instruments
        self.turns: dict[str, AgentTurn] = {}
        self.agent_turn_count = 0
        prompt = content.PromptWindow()
        self.playback = Playback(protect)
        self.realtime = RealtimeResponses(
            spans, instruments, self.component, prompt, options, protect
        )
        self.nodes = NodeSpans(
            spans, options, instruments, self.realtime, prompt, self.turn_for, self.component
        )
        self.audio: SessionAudio | None = None

    def component(self, name: str) -> Any | None:
        """The session's (or current agent's) ``stt``, ``llm`` or ``tts``."""
        session = self._session()
        return compat.session_component(session, name) if session is not None else None

    def latest(self) -> AgentTurn | None:
        """The most recently opened agent turn still open."""
        return next(reversed(self.turns.values()), None)

    def close(self) -> None:
        """The session closes: end every reply still open, as interrupted."""
        for turn in list(self.turns.values()):
            self.end_agent_turn(turn, closing=True)
        self.realtime.close()
        self.playback.close()

    def speech_created(self, event: Any, started_at: float | None = None) -> AgentTurn | None:
        """A reply was created: open its ``agent_turn`` (from ``started_at`` when given: a
        per-turn trace's root starts with the utterance it answers)."""
        handle = getattr(event, "speech_handle", None)
        speech_id = getattr(handle, "id", None)
        if handle is None or not isinstance(speech_id, str) or speech_id in self.turns:
            return None
        agent = compat.current_agent(self._session())
        facts = AgentTurnFacts(
            speech_id=speech_id,
            source=str(getattr(event, "source", "")),
            agent_name=compat.agent_name(agent) if agent is not None else None,
        )
        parent, extra, links = self.spans.top_level(attr.SPAN_AGENT_TURN)
        values = {**extra, **self.conventions.agent_turn_start(facts)}
        start = ns(started_at) if started_at is not None else None
        turn = AgentTurn(
            self.spans.child(attr.SPAN_AGENT_TURN, parent, values, start, links), facts, handle
        )
        self.turns[speech_id] = turn
        self.agent_turn_count += 1
        # LiveKit keeps speech handles (in its recorded events) for the whole session: the
        # callback must not keep the turn, its span or this recorder alive
        turn_ref, recorder_ref = weakref.ref(turn), weakref.ref(self)

        def speech_done(_: Any) -> None:
            done_turn, recorder = turn_ref(), recorder_ref()
            if done_turn is not None and recorder is not None:
                recorder.end_agent_turn(done_turn)

        turn.done_callback = self._protect(speech_done)
        handle.add_done_callback(turn.done_callback)
        return turn

    def turn_for(self, speech: Any | None) -> AgentTurn | None:
        """The open agent turn of a speech handle."""
        return self.turns.get(getattr(speech, "id", "")) if speech is not None else None

    def text_sent(self, speech: Any | None, at: float) -> None:
        """Text of a reply reached a synthesizer."""
        turn = self.turn_for(speech)
        if turn is not None:
            turn.timeline.text_sent(at)

    def output_started(
        self, speech: Any | None, output: Any
    ) -> tuple[Callable[[float], None], Callable[[Any], None] | None] | None:
        """What to call as a reply's first frame, and each frame, is handed to ``output``.

        Each frame is needed only to keep it (audio capture) or to measure a realtime
        model's audio, whose text is cut by it when interrupted; otherwise ``None``.
        """
        turn = self.turn_for(speech)
        if turn is None:
            return None
        playback, timeline = self.playback, turn.timeline

        def handed_over(at: float) -> None:
            timeline.frame_handed_over(at)
            playback.segment_started(output, timeline)

        audio = self.audio
        if audio is None:
            realtime = compat.is_realtime_model(self.component("llm"))
            return handed_over, timeline.frame_forwarded if realtime else None
        if turn.audio is None:
            turn.audio = audio.agent_clip()
        clip, first = turn.audio, [True]

        def forwarded(frame: Any) -> None:
            """Each frame: counted, and kept for the reply's clip and the call recording."""
            timeline.frame_forwarded(frame)
            audio.agent_frame(clip, frame, first[0], output)
            first[0] = False

        return handed_over, forwarded

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
                self.nodes.end_node(node, {attr.LK_CANCELLED: True})
        facts = turn.facts
        facts.closed_mid_reply = closing and not turn.handle.done()
        facts.interrupted = compat.speech_interrupted(turn.handle) or facts.closed_mid_reply
        facts.discarded = not compat.speech_scheduled(turn.handle)
        facts.spoken_text = " ".join(turn.agent_text) if turn.agent_text else None
        turn.done_at = now()
        if not closing and self.realtime.awaiting(turn):
            self.realtime.wait_for_metrics(turn, self._write_turn)
            return
        self._write_turn(turn)

    def _write_turn(self, turn: AgentTurn) -> None:
        """Write an ended agent turn's attributes and end its span (at the moment it ended)."""
        self.realtime.finish_all(turn)
        facts, timeline = turn.facts, turn.timeline
        for response in turn.responses:  # the first response that produced audio or text
            first_token = response.first_token_at()
            if first_token is not None:
                timeline.audio_synthesized(first_token)
                facts.llm_ttft = seconds(getattr(response.metrics, "ttft", None))
                break
        if facts.user_text is None and turn.responses:
            facts.user_text = getattr(turn.responses[0].user, "transcript", None) or None
        facts.latency = timeline.latency()
        if timeline.segments:
            facts.played_duration = timeline.played
            if facts.interrupted:
                facts.spoken_text = self._heard_text(turn, facts.spoken_text, timeline.played)
        facts.call_input = self.spans.facts.first_user_text
        turn.span.set_attributes(self.conventions.agent_turn_end(facts))
        self._end_with_audio(turn)
        self.instruments.record_turn(facts)
        if not facts.discarded:
            latency = facts.latency.total if facts.latency is not None else None
            self.spans.call.agent_turn(
                facts.interrupted, latency, timeline.first_frame_at, facts.played_duration
            )
            self.spans.call.said("agent", facts.spoken_text)  # what the caller heard

    def _end_with_audio(self, turn: AgentTurn) -> None:
        """End the turn's span, after its clip (cut where playback stopped) is stored."""
        clip, audio = turn.audio, self.audio
        if audio is None or clip is None:
            turn.span.end(ns(turn.done_at))
            return
        if turn.timeline.segments:
            clip.cut(turn.timeline.played)
        said = turn.facts.spoken_text
        text = content.limit(said, self.options) if said else None
        conventions = self.conventions

        def write(result: AudioResult) -> dict[str, Any]:
            return conventions.audio(audio_facts(result, "output", text))

        audio.finish_clip(turn.span, ns(turn.done_at), clip, "output", "agent", write)

    @staticmethod
    def _heard_text(turn: AgentTurn, said: str | None, played: float) -> str | None:
        """What the caller heard of an interrupted reply.

        LiveKit's chat message holds it when the output paces a transcript with the audio
        (a room does); otherwise it holds all the text sent to speech, and the heard part is
        taken in proportion to the audio played.
        """
        texts, durations = turn.synthesized
        sent = "".join("".join(pieces) for pieces in texts)
        audio = sum(durations)
        if not texts and said and turn.responses:  # a realtime model's reply: its own audio
            if any(response.paced for response in turn.responses):
                return said
            audio = turn.timeline.forwarded
            return said if audio <= played else content.spoken_part(said, played / audio)
        if not sent or audio <= played or (said is not None and len(said) < len(sent.strip())):
            return said
        return content.spoken_part(sent, played / audio)

    def assistant_said(self, turn: AgentTurn | None, text: str) -> None:
        """An assistant message entered the chat: what the reply said."""
        turn = turn or self.latest()
        if turn is None:
            return
        turn.agent_text.append(text)
        response = self.realtime.latest(turn)
        if response is not None:
            response.output_text.append(text)

    def realtime_started(
        self,
        speech: Any,
        response_id: str,
        user_initiated: bool,
        prompt: compat.RealtimePrompt | None = None,
    ) -> Response | None:
        """LiveKit runs a realtime model's response for a reply: open its span."""
        turn = self.turn_for(speech)
        if turn is None:
            return None
        # the utterance the model's own turn detection ended last, answered by this response
        user = None if user_initiated else self.user_turns.take_server_turn()
        if user is not None and turn.timeline.speech_ended_at is None:
            turn.timeline.user_turn(user.speech_ended_at, user.committed_at)
        if user is None and turn.responses:  # a follow-up answers what the first one did
            user = turn.responses[0].user
        tools = self.nodes.tool_definitions(prompt.tools) if prompt and prompt.tools else None
        paced = compat.transcript_paced(self._session())
        return self.realtime.started(turn, response_id, user, prompt, tools, paced)


def audio_facts(result: AudioResult, field: str, text: str | None) -> AudioFacts:
    """What the audio module found, as the conventions module reads it."""
    return AudioFacts(
        mime_type=result.mime_type,
        duration=result.duration,
        uri=result.uri,
        reference=result.reference,
        field=field,
        text=text,
        dropped=result.dropped,
        truncated=result.truncated,
        start_offset=result.start_offset,
        unavailable=result.unavailable,
    )
