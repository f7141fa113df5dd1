"""The agent's replies: one ``agent_turn`` per speech handle, with its LLM, tool and TTS spans.

LLM and TTS spans find their turn by the speech handle whose task runs them, and LiveKit's
metrics find their span by a context variable that the inference task inherits.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from .. import compat
from ..audio.clips import Clip
from ..audio.session import AudioResult, SessionAudio
from ..config import Options
from ..mapping import attributes as attr
from ..mapping import content
from ..mapping.conventions import Attributes
from ..mapping.facts import (
    AgentTurnFacts,
    AudioFacts,
    LlmRequest,
    LlmResponse,
    ToolCall,
    ToolResult,
    TtsRequest,
    TtsResult,
)
from ..mapping.instruments import Instruments
from ..mapping.lk_metrics import MetricsAggregate
from ..mapping.usage import llm_usage, tts_usage
from .latency import Playback, Timeline
from .realtime import RealtimeResponses, Response
from .spans import Protect, SessionSpans, now, ns, seconds
from .user_turns import UserTurns


class Node:
    """An open ``llm_node``, ``tts_node`` or ``function_tool`` span."""

    __slots__ = (
        "call",
        "context",
        "ended",
        "metrics",
        "model",
        "span",
        "started_at",
        "text",
        "turn",
    )

    def __init__(self, span: Span, turn: AgentTurn | None) -> None:
        self.span = span
        self.turn = turn
        self.context = trace.set_span_in_context(span)
        self.metrics: MetricsAggregate | None = None
        self.ended = False
        self.started_at = now()
        self.text: list[str] | None = None
        self.call: ToolCall | None = None
        self.model: tuple[str | None, str | None] = (None, None)


# the node whose inference task is running; LiveKit emits LLM and TTS metrics inside it
ACTIVE_NODE: ContextVar[Node | None] = ContextVar("livekit_otel_active_node", default=None)


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
        self.prompt = content.PromptWindow()
        self._tool_definitions: tuple[tuple[int, ...], str | None] = ((), None)
        self.playback = Playback(protect)
        self.realtime = RealtimeResponses(
            spans, instruments, self.component, self.prompt, options, protect
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

    def node_metrics(self, kind: str, metrics: Any) -> None:
        """LLM or TTS metrics, emitted inside the inference task of the node they belong to."""
        node = ACTIVE_NODE.get()
        if node is None or node.ended:
            return
        if node.metrics is None:
            node.metrics = MetricsAggregate(kind)
        node.metrics.add(metrics)
        facts = node.turn.facts if node.turn is not None else None
        if kind == "tts" and node.turn is not None:
            duration = seconds(getattr(metrics, "audio_duration", None))
            if duration:
                node.turn.synthesized[1].append(duration)
        if facts is not None:
            if kind == "llm" and facts.llm_ttft is None:
                facts.llm_ttft = seconds(getattr(metrics, "ttft", None))
            elif kind == "tts" and facts.tts_ttfb is None:
                facts.tts_ttfb = seconds(getattr(metrics, "ttfb", None))

    def turn_for(self, speech: Any | None) -> AgentTurn | None:
        """The open agent turn of a speech handle."""
        return self.turns.get(getattr(speech, "id", "")) if speech is not None else None

    def captures_content(self) -> bool:
        """Whether the words of a reply are recorded (the tee on TTS input is needed)."""
        return self.conventions.captures_content()

    def text_sent(self, speech: Any | None, at: float) -> None:
        """Text of a reply reached a synthesizer."""
        turn = self.turn_for(speech)
        if turn is not None:
            turn.timeline.text_sent(at)

    def output_started(
        self, speech: Any | None, output: Any
    ) -> tuple[Callable[[float], None], Callable[[Any], None]] | None:
        """What to call as a reply's first frame, and each frame, is handed to ``output``."""
        turn = self.turn_for(speech)
        if turn is None:
            return None
        playback, timeline = self.playback, turn.timeline

        def handed_over(at: float) -> None:
            timeline.frame_handed_over(at)
            playback.segment_started(output, timeline)

        return handed_over, timeline.frame_forwarded

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
        tools = self.tool_definitions(prompt.tools) if prompt is not None and prompt.tools else None
        paced = compat.transcript_paced(self._session())
        return self.realtime.started(turn, response_id, user, prompt, tools, paced)

    # -- nodes: LLM, tools, TTS ---------------------------------------------------------------
    def _start_node(self, name: str, speech: Any | None, values: Attributes) -> Node:
        turn = self.turn_for(speech)
        parent = turn.context if turn is not None else self.spans.session_context
        node = Node(self.spans.child(name, parent, values), turn)
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
        self.spans.end(node.span, error)

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
        node = self._start_node(attr.SPAN_LLM_NODE, speech, values)
        node.model = (request.model, request.provider)
        return node

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
        usage_of = llm_usage(
            *node.model, response.input_tokens, response.output_tokens, response.cached_input_tokens
        )
        response.cost = self.spans.call.billed(usage_of)
        self.instruments.record_cost(usage_of, response.cost)
        self.instruments.record_operation(
            attr.GEN_AI_OPERATION_CHAT,
            *node.model,
            duration=now() - node.started_at,
            first_chunk=reply.ttft,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            agent_name=node.turn.facts.agent_name if node.turn is not None else None,
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
        response = self.realtime.latest(node.turn)
        if response is not None:
            response.tool_calls.append(call)
            self.realtime.function_called(response)
        return node

    def tool_finished(self, node: Node, result: ToolResult, error: BaseException | None) -> None:
        """A tool call returned (or raised)."""
        if node.turn is not None:
            node.turn.timeline.tools.append((node.started_at, now()))
        call = node.call or ToolCall("", "", "")
        self._end_node(node, self.conventions.tool_end(call, result), error)

    def tts_started(self, request: TtsRequest, speech: Any | None, text: list[str] | None) -> Node:
        """Speech synthesis starts; ``text`` collects what is sent to it."""
        node = self._start_node(attr.SPAN_TTS_NODE, speech, self.conventions.tts_start(request))
        node.model = (request.model, request.provider)
        node.text = text
        if text is not None and node.turn is not None:
            node.turn.synthesized[0].append(text)
        return node

    def tts_finished(self, node: Node, cancelled: bool, error: BaseException | None) -> None:
        """Speech synthesis ended: the text it was given and the audio it made."""
        metrics = node.metrics
        duration = metrics.value("audio_duration") if metrics is not None else None
        text = "".join(node.text) if node.text is not None else None
        if text is not None and cancelled and metrics is not None:
            text = content.synthesized_part(text, metrics.value("characters_count"))
        usage = tts_usage(metrics, *node.model)
        cost = self.spans.call.billed(usage)
        self.instruments.record_cost(usage, cost)
        result = TtsResult(
            text=text,
            audio_duration=float(duration) if isinstance(duration, (int, float)) else None,
            interrupted=cancelled,
            usage=usage,
            cost=cost,
        )
        values = self.conventions.tts_end(result, metrics.attributes() if metrics else {})
        if cancelled:
            values[attr.LK_CANCELLED] = True
        self._end_node(node, values, error)


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
