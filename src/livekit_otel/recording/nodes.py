"""The spans under a reply: ``llm_node``, ``function_tool`` and ``tts_node``.

LLM and TTS spans find their turn by the speech handle whose task runs them, and LiveKit's
metrics find their span by a context variable that the inference task inherits.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span

from .. import compat
from ..config import Options
from ..mapping import attributes as attr
from ..mapping import content
from ..mapping.conventions import Attributes
from ..mapping.facts import LlmRequest, LlmResponse, ToolCall, ToolResult, TtsRequest, TtsResult
from ..mapping.instruments import Instruments
from ..mapping.lk_metrics import MetricsAggregate
from ..mapping.usage import llm_usage, tts_usage
from .realtime import RealtimeResponses
from .spans import SessionSpans, now, seconds

if TYPE_CHECKING:
    from .replies import AgentTurn


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


class NodeSpans:
    """Opens and ends the node spans of one session's replies."""

    def __init__(
        self,
        spans: SessionSpans,
        options: Options,
        instruments: Instruments,
        realtime: RealtimeResponses,
        prompt: content.PromptWindow,
        turn_for: Callable[[Any], AgentTurn | None],
        component: Callable[[str], Any],
    ) -> None:
        self.spans = spans
        self.conventions = spans.conventions
        self.options = options
        self.instruments = instruments
        self.realtime = realtime
        self.prompt = prompt
        self._turn_for = turn_for
        self.component = component
        self._tool_definitions: tuple[tuple[int, ...], str | None] = ((), None)

    def captures_content(self) -> bool:
        """Whether the words of a reply are recorded (the tee on TTS input is needed)."""
        return self.conventions.captures_content()

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

    def _start_node(self, name: str, speech: Any | None, values: Attributes) -> Node:
        turn = self._turn_for(speech)
        parent = turn.context if turn is not None else self.spans.session_context
        node = Node(self.spans.child(name, parent, values), turn)
        if turn is not None:
            turn.nodes.append(node)
        return node

    def end_node(
        self, node: Node, values: Attributes | None = None, error: BaseException | None = None
    ) -> None:
        """End a node's span with ``values``, once."""
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
        self.end_node(node, None, error)

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
        self.end_node(node, values, error)

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
        self.end_node(node, self.conventions.tool_end(call, result), error)

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
        self.end_node(node, values, error)
