"""OpenTelemetry metrics from the same facts the spans carry, recorded as each turn ends.

Histograms carry explicit bucket boundaries through the API's advisory: voice latencies
from tens of milliseconds to ten seconds, and the GenAI conventions' own boundaries for
operation duration and token usage, so dashboards line up with other GenAI
instrumentations. Attributes are low-cardinality only: agent name, model, provider,
environment; never a session id, user id or text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.metrics import Histogram, Meter
from opentelemetry.util.types import AttributeValue

from . import attributes as attr
from .conventions import provider_name
from .facts import AgentTurnFacts, CallFacts, Cost, Usage

Attributes = dict[str, AttributeValue]

# dense where voice turns sit (0.3 s to 2 s), up to 10 s
VOICE_LATENCY_BUCKETS = (
    0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8,
    1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0,
)  # fmt: skip
# OpenTelemetry GenAI metric conventions
OPERATION_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_USAGE_BUCKETS = tuple(float(4**power) for power in range(14))
# a voice call: seconds to an hour, USD from a tenth of a cent to ten dollars, 1 to 200 turns
CALL_DURATION_BUCKETS = (
    5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
)  # fmt: skip
CALL_TURNS_BUCKETS = (1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0, 200.0)
CALL_COST_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def _histogram(meter: Meter, name: str, unit: str, doc: str, buckets: Sequence[float]) -> Histogram:
    try:
        return meter.create_histogram(
            name, unit=unit, description=doc, explicit_bucket_boundaries_advisory=list(buckets)
        )
    except TypeError:  # an API release before the bucket advisory (1.30)
        return meter.create_histogram(name, unit=unit, description=doc)


class Instruments:
    """The contract's instruments on one meter; every ``record_*`` takes a span's facts."""

    def __init__(self, meter: Meter, environment: str | None) -> None:
        self._base: Attributes = {}
        self._sets: dict[tuple[tuple[str, AttributeValue | None], ...], Attributes] = {}
        if environment:
            self._base[attr.DEPLOYMENT_ENVIRONMENT_NAME] = environment
        self.perceived = _histogram(
            meter,
            attr.METRIC_PERCEIVED_LATENCY,
            "s",
            "End of the user's speech to the first audio of the reply handed to the output",
            VOICE_LATENCY_BUCKETS,
        )
        self.latency_part = _histogram(
            meter,
            attr.METRIC_LATENCY_PART,
            "s",
            "One part of the perceived latency, named by lk.latency.part",
            VOICE_LATENCY_BUCKETS,
        )
        self.duration = _histogram(
            meter,
            attr.METRIC_OPERATION_DURATION,
            "s",
            "Duration of a GenAI operation (an LLM inference or a realtime response)",
            OPERATION_DURATION_BUCKETS,
        )
        self.first_chunk = _histogram(
            meter,
            attr.METRIC_TIME_TO_FIRST_CHUNK,
            "s",
            "Time from the request to the first chunk of the response",
            VOICE_LATENCY_BUCKETS,
        )
        self.tokens = _histogram(
            meter,
            attr.METRIC_TOKEN_USAGE,
            "{token}",
            "Tokens used by a GenAI operation, by gen_ai.token.type",
            TOKEN_USAGE_BUCKETS,
        )
        self.turns = meter.create_counter(
            attr.METRIC_TURNS, unit="{turn}", description="Agent replies, by lk.turn.interrupted"
        )
        self.tts_characters = meter.create_counter(
            attr.METRIC_TTS_CHARACTERS,
            unit="{character}",
            description="Characters sent to speech synthesis",
        )
        self.stt_audio = meter.create_counter(
            attr.METRIC_STT_AUDIO_DURATION,
            unit="s",
            description="Seconds of user audio sent to speech recognition",
        )
        self.cost = meter.create_counter(
            attr.METRIC_COST,
            unit="USD",
            description="What billed models cost, by lk.kind (llm, stt, tts, realtime) and model",
        )
        self.call_duration = _histogram(
            meter, attr.METRIC_CALL_DURATION, "s", "Duration of a call", CALL_DURATION_BUCKETS
        )
        self.call_turns = _histogram(
            meter, attr.METRIC_CALL_TURNS, "{turn}", "Agent replies in a call", CALL_TURNS_BUCKETS
        )
        self.call_cost = _histogram(
            meter,
            attr.METRIC_CALL_COST,
            "USD",
            "What a call cost (its priced spans)",
            CALL_COST_BUCKETS,
        )

    def _attributes(self, *pairs: tuple[str, AttributeValue | None]) -> Attributes:
        """The attribute set of these pairs (``None`` values left out), built once and reused.

        Attribute sets are few (low cardinality by design), so each is kept; recording
        then allocates nothing per turn.
        """
        found = self._sets.get(pairs)
        if found is None:
            found = self._sets[pairs] = {
                **self._base,
                **{key: value for key, value in pairs if value is not None},
            }
        return found

    def record_turn(self, facts: AgentTurnFacts) -> None:
        """An agent turn ended: the turn count, and its perceived latency if it was heard."""
        if facts.discarded:
            return
        agent = (attr.LK_AGENT_NAME, facts.agent_name)
        self.turns.add(1, self._attributes(agent, (attr.LK_TURN_INTERRUPTED, facts.interrupted)))
        latency = facts.latency
        if latency is None:
            return
        self.perceived.record(latency.total, self._attributes(agent))
        for part in attr.LATENCY_PARTS:
            values = self._attributes(agent, (attr.LK_LATENCY_PART, part))
            self.latency_part.record(getattr(latency, part), values)

    def record_operation(
        self,
        operation: str,
        model: str | None,
        provider: str | None,
        duration: float,
        first_chunk: float | None,
        input_tokens: int | None,
        output_tokens: int | None,
        agent_name: str | None,
    ) -> None:
        """One LLM inference or realtime response: duration, first chunk, token usage."""
        pairs = (
            (attr.LK_AGENT_NAME, agent_name),
            (attr.GEN_AI_OPERATION_NAME, operation),
            (attr.GEN_AI_REQUEST_MODEL, model or None),
            (attr.GEN_AI_PROVIDER_NAME, provider_name(provider) if provider else None),
        )
        values = self._attributes(*pairs)
        self.duration.record(duration, values)
        if first_chunk is not None:
            self.first_chunk.record(first_chunk, values)
        for kind, count in (("input", input_tokens), ("output", output_tokens)):
            if count is not None:
                self.tokens.record(count, self._attributes(*pairs, (attr.GEN_AI_TOKEN_TYPE, kind)))

    def record_usage(self, kind: str, amount: float, component: tuple[Any, Any]) -> None:
        """TTS characters or STT audio seconds, with the model and provider that used them."""
        if not amount:
            return
        model, provider = component
        values = self._attributes(
            (attr.LK_MODEL, model or None), (attr.LK_PROVIDER, provider or None)
        )
        counter = self.tts_characters if kind == "tts" else self.stt_audio
        counter.add(amount, values)

    def record_cost(self, usage: Usage | None, cost: Cost | None) -> None:
        """One span's cost, by kind, model and provider."""
        if usage is None or cost is None:
            return
        values = self._attributes(
            (attr.LK_KIND, usage.kind),
            (attr.LK_MODEL, usage.model or None),
            (attr.LK_PROVIDER, provider_name(usage.provider) if usage.provider else None),
        )
        self.cost.add(cost.total, values)

    def record_call(self, facts: CallFacts, agent_name: str | None) -> None:
        """A call ended: its duration, turns and (when some span was priced) cost."""
        values = self._attributes((attr.LK_AGENT_NAME, agent_name))
        self.call_duration.record(facts.duration, values)
        self.call_turns.record(facts.turns, values)
        if facts.costs:
            self.call_cost.record(sum(facts.costs.values()), values)
