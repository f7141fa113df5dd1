"""The setters every convention family offers: one per fact, each a no-op until a family writes it.

A family (``langfuse_keys``, ``openinference_keys``, ``genai_keys``, ``livekit_keys``)
overrides the setters of the facts it has keys for. :class:`~.composed.Conventions` asks each
family in force once, at construction, which setters it overrides, and from then on calls
only those: a fact no family in force writes costs nothing per span.

To add a fact (a cost, say): add its setter here as a no-op, override it in each family that
has a key for it, and call ``self._each("name")`` once in ``Conventions``.
"""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from ..content import compact_json
from ..facts import Cost, RealtimeUsage, SessionFacts, ToolCall, Usage

Attributes = dict[str, AttributeValue]

# what a span is, in Langfuse's observation type names; each family maps it to its own
KIND_AGENT = "agent"
KIND_SPAN = "span"
KIND_GENERATION = "generation"
KIND_TOOL = "tool"


class Keys:
    """One convention family's keys for each fact; every setter writes into ``values``."""

    # -- filed under --------------------------------------------------------------------
    def session(self, values: Attributes, facts: SessionFacts) -> None:
        """Session, user, environment and release: on every span of the session."""

    def trace(self, values: Attributes, name: str, facts: SessionFacts) -> None:
        """What a backend reads at trace level: name, tags, metadata (on a trace's root)."""

    def metadata(self, values: Attributes, facts: SessionFacts) -> None:
        """The session's metadata (on the root span)."""

    # -- what a span is -----------------------------------------------------------------
    def kind(self, values: Attributes, kind: str) -> None:
        """What the span is: one of the ``KIND_*`` values."""

    def agent(self, values: Attributes, name: str) -> None:
        """The agent that runs the session or the reply."""

    def invoke_agent(self, values: Attributes) -> None:
        """An agent's reply (an ``agent_turn``) as an operation."""

    # -- models -------------------------------------------------------------------------
    def model(self, values: Attributes, model: str | None, provider: str | None) -> None:
        """The model and its provider (the provider already as the registry names it)."""

    def model_parameters(self, values: Attributes, parameters: str) -> None:
        """The request's parameters, as one JSON object."""

    def usage(
        self, values: Attributes, input_tokens: int, output_tokens: int, cached: int | None
    ) -> None:
        """The tokens of one inference; ``cached`` is part of ``input_tokens``."""

    def realtime_usage(self, values: Attributes, usage: RealtimeUsage) -> None:
        """The tokens of one realtime response, by modality."""

    def finish_reason(self, values: Attributes, reason: str) -> None:
        """Why the model stopped."""

    def completion_start(self, values: Attributes, iso_time: str) -> None:
        """When the first token came, as an ISO 8601 time with its zone."""

    # -- cost (docs/cost.md) --------------------------------------------------------------
    def cost(self, values: Attributes, cost: Cost) -> None:
        """What a billed span cost in USD, by usage key, and whose price it used."""

    def speech_usage(self, values: Attributes, usage: Usage) -> None:
        """An STT or TTS span's usage in its billing unit, with its model (not a chat)."""

    def call(self, values: Attributes, glance: Attributes) -> None:
        """The call at a glance (the ``lk.call.*`` values) where a backend reads a trace."""

    def transcript(self, values: Attributes, text: str) -> None:
        """The call's transcript, bounded (captured content)."""

    # -- tools --------------------------------------------------------------------------
    def tool(self, values: Attributes, call: ToolCall) -> None:
        """Which tool a ``function_tool`` span calls."""

    def tool_io(self, values: Attributes, arguments: str, result: str) -> None:
        """A tool call's arguments and result (captured content)."""

    # -- what the span says (captured content) ------------------------------------------
    def text_io(
        self,
        values: Attributes,
        input_text: str | None,
        output_text: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        """Plain-text input and output of a span that is not a generation."""

    def prompt(self, values: Attributes, messages: str, lk_key: str) -> None:
        """A generation's input: its messages as JSON."""

    def completion(self, values: Attributes, message: str, lk_key: str) -> None:
        """A generation's output: one message as JSON."""

    def trace_io(self, values: Attributes, first_heard: str | None, said: str | None) -> None:
        """The call so far, at trace level: its first user line and the latest agent line."""

    def dialogue(
        self,
        values: Attributes,
        heard: str | None,
        said: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        """What the user said and the agent answered, on an agent turn or the session."""

    # -- how it went --------------------------------------------------------------------
    def warning(self, values: Attributes, message: str) -> None:
        """The span ended short of its goal (an interruption) and why."""

    # -- audio (captured content) -------------------------------------------------------
    def audio_reference(self, values: Attributes, field: str, shown: str) -> None:
        """Where a backend shows a span's audio: ``shown`` (the text and the media
        reference) as the span's ``input`` or ``output`` (``field``)."""


def overridden(family: Keys, name: str) -> bool:
    """Whether ``family`` writes keys for the fact ``name`` (overrides the no-op)."""
    return getattr(type(family), name) is not getattr(Keys, name)


def messages(role: str, text: str) -> str:
    """One chat message as the JSON list the GenAI and OpenAI message formats use."""
    return compact_json([{"role": role, "content": text}])
