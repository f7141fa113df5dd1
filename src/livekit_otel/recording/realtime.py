"""Realtime (speech-to-speech) model responses: one ``realtime_response`` span each.

A response starts when LiveKit's generation task for it starts and is identified by the
model's response id. Its usage and timing come in ``RealtimeModelMetrics`` whose
``request_id`` is that response id, usually after the reply has finished playing, so
the span is ended when they come (or when the reply's wait for them runs out), with
its end time kept within its ``agent_turn``.

Like an ``llm_node``, it shows the prompt the model had when the response started (the
agent's instructions and the most recent chat items, tool results included, plus the
transcript of the utterance it answers when that came late) and the tools it was offered;
its output is what the caller heard of it: the transcript cut in proportion to the audio
played when the reply was interrupted.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Span

from .. import compat
from ..config import Options
from ..mapping import attributes as attr
from ..mapping import content
from ..mapping.facts import LlmRequest, RealtimeResponseFacts, RealtimeUsage
from ..mapping.instruments import Instruments
from ..mapping.lk_metrics import MetricsAggregate
from ..mapping.usage import realtime_usage as billed_usage
from .spans import Protect, SessionSpans, now, ns, seconds


class Response:
    """One response of a realtime model, open until its metrics come."""

    __slots__ = (
        "audio_before",
        "ended",
        "first_call_at",
        "metrics",
        "model",
        "output_text",
        "paced",
        "prompt_items",
        "response_id",
        "returned_at",
        "span",
        "started_at",
        "tool_calls",
        "tool_definitions",
        "turn",
        "user",
    )

    def __init__(self, span: Span, turn: Any, response_id: str) -> None:
        self.span = span
        self.turn = turn
        self.response_id = response_id
        self.started_at = now()
        self.returned_at: float | None = None
        self.metrics: Any | None = None
        self.model: tuple[str | None, str | None] = (None, None)
        self.output_text: list[str] = []
        self.tool_calls: list[Any] = []
        self.user: Any | None = None  # the user turn it answers, when a realtime VAD ended one
        self.ended = False
        self.first_call_at: float | None = None  # when its first function call came
        self.prompt_items: list[Any] | None = None  # instructions and chat items it started with
        self.tool_definitions: str | None = None
        self.paced = False  # LiveKit's message is already what was heard (a paced transcript)
        # seconds of the reply's audio handed to the output before this response started
        self.audio_before: float = turn.timeline.forwarded

    def window(self, limit: float | None) -> tuple[int, int]:
        """The span's start and end (ns): the model's own duration when known, within ``limit``."""
        timestamp = seconds(getattr(self.metrics, "timestamp", None))
        duration = seconds(getattr(self.metrics, "duration", None))
        if timestamp is not None and duration:
            end = timestamp + duration
        else:
            end = self.returned_at or now()
        if limit is not None:
            end = min(end, limit)
        return ns(self.started_at), ns(max(self.started_at, end))

    def first_token_at(self) -> float | None:
        """When the first audio (or text) token came, from the metrics (ttft -1: none)."""
        timestamp = seconds(getattr(self.metrics, "timestamp", None))
        ttft = seconds(getattr(self.metrics, "ttft", None))
        return timestamp + ttft if timestamp is not None and ttft is not None else None

    def completion_started_at(self) -> float | None:
        """When the response's output began: its first token, else (a response that only
        calls tools) its first function call, else its first event; none without output."""
        first = self.first_token_at()
        if first is not None:
            return first
        if not self.tool_calls and not self.output_text:
            return None
        if self.first_call_at is not None:
            return self.first_call_at
        return seconds(getattr(self.metrics, "timestamp", None)) or self.started_at

    def heard_text(self) -> str | None:
        """The transcript, cut to what was played when the reply stopped early."""
        said = " ".join(self.output_text) if self.output_text else None
        timeline = self.turn.timeline
        audio = timeline.forwarded - self.audio_before
        heard = max(0.0, timeline.played - self.audio_before)
        if said is None or self.paced or audio <= 0 or heard >= audio or not self.interrupted():
            return said
        return content.spoken_part(said, heard / audio)

    def interrupted(self) -> bool:
        """Whether the response was cancelled or its reply interrupted."""
        return bool(getattr(self.metrics, "cancelled", False)) or compat.speech_interrupted(
            self.turn.handle
        )


class _Said:
    """A message the chat context does not hold: instructions, a transcript that came late."""

    __slots__ = ("role", "text_content")
    type = "message"

    def __init__(self, role: str, text: str) -> None:
        self.role = role
        self.text_content = text


def realtime_usage(metrics: Any) -> RealtimeUsage | None:
    """The token counts of one ``RealtimeModelMetrics``, split by modality and caching."""
    if metrics is None:
        return None
    inputs = getattr(metrics, "input_token_details", None)
    outputs = getattr(metrics, "output_token_details", None)
    cached = getattr(inputs, "cached_tokens_details", None)

    def count(owner: Any, name: str) -> int:
        value = getattr(owner, name, 0) if owner is not None else 0
        return int(value) if isinstance(value, (int, float)) and value > 0 else 0

    usage = RealtimeUsage(
        input_tokens=count(metrics, "input_tokens"),
        output_tokens=count(metrics, "output_tokens"),
        total_tokens=count(metrics, "total_tokens"),
        input_text_tokens=count(inputs, "text_tokens"),
        input_audio_tokens=count(inputs, "audio_tokens"),
        input_cached_tokens=count(inputs, "cached_tokens"),
        input_cached_text_tokens=count(cached, "text_tokens"),
        input_cached_audio_tokens=count(cached, "audio_tokens"),
        output_text_tokens=count(outputs, "text_tokens"),
        output_audio_tokens=count(outputs, "audio_tokens"),
    )
    # a response cut off before the provider reported usage says 0 for everything
    return usage if usage.input_tokens or usage.output_tokens else None


def aggregate(metrics: Any) -> MetricsAggregate:
    """One realtime metrics object as ``lk.realtime.*`` attributes."""
    values = MetricsAggregate("realtime")
    values.add(metrics)
    return values


# how long a finished reply waits for the metrics of its responses before it is written
METRICS_WAIT_SECONDS = 5.0

TurnWriter = Callable[[Any], None]


class RealtimeResponses:
    """The responses of one session's realtime model, by response id, until their metrics come."""

    def __init__(
        self,
        spans: SessionSpans,
        instruments: Instruments,
        component: Callable[[str], Any],
        prompt: content.PromptWindow,
        options: Options,
        protect: Protect,
    ) -> None:
        self._protect = protect
        self.spans = spans
        self.conventions = spans.conventions
        self.instruments = instruments
        self._component = component
        self._prompt = prompt
        self._options = options
        self._instructions: dict[str, _Said] = {}
        self._open: dict[str, Response] = {}
        self._waiting: dict[int, tuple[Any, TurnWriter]] = {}

    def started(
        self,
        turn: Any,
        response_id: str,
        user: Any | None,
        prompt: compat.RealtimePrompt | None = None,
        tool_definitions: str | None = None,
        paced: bool = False,
    ) -> Response:
        """LiveKit started playing out a response of the model: open its span under ``turn``."""
        model, provider = compat.model_and_provider(self._component("llm"))
        values = self.conventions.realtime_start(model, provider, response_id)
        span = self.spans.child(attr.SPAN_REALTIME_RESPONSE, turn.context, values)
        response = Response(span, turn, response_id)
        response.model = (model, provider)
        response.user = user
        response.tool_definitions = tool_definitions
        response.paced = paced
        if prompt is not None and prompt.items is not None:
            said = [self._instruction(text) for text in prompt.instructions]
            response.prompt_items = [*said, *prompt.items]
        turn.responses.append(response)
        if response_id:
            self._open[response_id] = response
        return response

    def _instruction(self, text: str) -> _Said:
        # one object per text, so the prompt window serializes it once
        said = self._instructions.get(text)
        if said is None:
            if len(self._instructions) > 8:
                self._instructions.clear()
            said = self._instructions[text] = _Said("system", text)
        return said

    def function_called(self, response: Response) -> None:
        """A function call of the response came (its tool starts now)."""
        if response.first_call_at is None:
            response.first_call_at = now()

    def _prompt_values(self, response: Response) -> dict[str, Any]:
        """The prompt and tools of a response, written as on ``llm_node``."""
        items = response.prompt_items
        rendered: tuple[str, int] | None = None
        if items is not None:
            # the model's own message of this response may already be in the chat: not input
            created = seconds(getattr(response.metrics, "timestamp", None))
            since = min(created, response.started_at) if created else response.started_at
            items = [item for item in items if not _said_since(item, since)]
            transcript = getattr(response.user, "transcript", None)
            if transcript and not _holds(items, transcript):
                items = [*items, _Said("user", transcript)]  # its transcript came late
            if self.conventions.captures_content():
                window = self._options.prompt_window
                rendered = self._prompt.render(items, window, self._options)
        if rendered is None and response.tool_definitions is None:
            return {}
        model, provider = response.model
        request = LlmRequest(model, provider, items, response.tool_definitions, {})
        return self.conventions.llm_start(request, rendered, len(items) if items else None)

    def returned(self, response: Response) -> None:
        """LiveKit's task for the response returned: played out, its message and tools known."""
        response.returned_at = now()
        if response.metrics is not None:
            self._complete(response)

    def latest(self, turn: Any) -> Response | None:
        """The newest response of a reply, to credit what the agent says or calls."""
        return turn.responses[-1] if turn is not None and turn.responses else None

    def metrics(self, metrics: Any) -> None:
        """A response's metrics came (with OpenAI, before LiveKit adds its message)."""
        response = self._open.pop(str(getattr(metrics, "request_id", "") or ""), None)
        if response is None or response.ended:
            return
        response.metrics = metrics
        if response.returned_at is not None:
            self._complete(response)

    def _complete(self, response: Response) -> None:
        """Metrics and LiveKit's task both done: end the span, and write a reply waiting for it."""
        self._finish(response)
        turn = response.turn
        waiting = self._waiting.get(id(turn))
        if waiting is not None and not self.awaiting(turn):
            del self._waiting[id(turn)]
            waiting[1](turn)

    def awaiting(self, turn: Any) -> bool:
        """Whether a reply has responses not yet complete (their metrics have not come)."""
        return any(not response.ended for response in turn.responses)

    def wait_for_metrics(self, turn: Any, write: TurnWriter) -> None:
        """Write ``turn`` once its responses' metrics came, or after a bounded wait."""
        self._waiting[id(turn)] = (turn, write)
        turn_ref = weakref.ref(turn)

        def give_up() -> None:
            waiting_turn = turn_ref()
            entry = self._waiting.pop(id(waiting_turn), None) if waiting_turn else None
            if entry is not None:
                entry[1](entry[0])

        asyncio.get_running_loop().call_later(METRICS_WAIT_SECONDS, self._protect(give_up))

    def finish_all(self, turn: Any) -> None:
        """End the responses of a reply that are still open, with what is known."""
        for response in turn.responses:
            if not response.ended:
                self._open.pop(response.response_id, None)
                self._finish(response)

    def close(self) -> None:
        """The session closes: write every reply still waiting for metrics."""
        waiting, self._waiting = list(self._waiting.values()), {}
        for turn, write in waiting:
            write(turn)

    def _finish(self, response: Response) -> None:
        response.ended = True
        metrics = response.metrics
        usage = realtime_usage(metrics)
        user = response.user
        usage_of = billed_usage(usage, *response.model)
        cost = self.spans.call.billed(usage_of)
        self.instruments.record_cost(usage_of, cost)
        facts = RealtimeResponseFacts(
            response_id=response.response_id,
            usage=usage,
            completion_start_time=response.completion_started_at(),
            cancelled=bool(getattr(metrics, "cancelled", False)),
            user_text=(getattr(user, "transcript", None) or response.turn.facts.user_text),
            output_text=response.heard_text(),
            tool_calls=response.tool_calls,
            cost=cost,
        )
        values = self.conventions.realtime_end(
            facts, aggregate(metrics).attributes() if metrics is not None else {}
        )
        # the prompt as on llm_node, in place of the user's words alone
        values.update(self._prompt_values(response))
        response.span.set_attributes(values)
        limit = response.turn.done_at if response.turn.ended else None
        start, end = response.window(limit)
        response.span.end(end)
        ttft = seconds(getattr(metrics, "ttft", None))
        self.instruments.record_operation(
            attr.GEN_AI_OPERATION_CHAT,
            *response.model,
            duration=(end - start) / 1e9,
            first_chunk=ttft,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            agent_name=response.turn.facts.agent_name,
        )


def _holds(items: list[Any], transcript: str) -> bool:
    """Whether the chat items already hold a user message with this transcript."""
    wanted = transcript.strip()
    return any(
        getattr(item, "role", None) == "user" and content.message_text(item).strip() == wanted
        for item in reversed(items[-8:])
    )


def _said_since(item: Any, moment: float) -> bool:
    """Whether an item is an assistant message created at or after ``moment``."""
    created = getattr(item, "created_at", None)
    return (
        getattr(item, "role", None) == "assistant"
        and isinstance(created, (int, float))
        and created >= moment
    )
