"""What Langfuse would show for spans that reached the local OTLP receiver.

Langfuse cannot run here, so the tests export to ``tests/support/otlp_receiver.py`` and
apply the rules of Langfuse's OTLP ingestion to what it decoded. The rules were read from
Langfuse's server (``langfuse/langfuse``):

- ``packages/shared/src/server/otel/ObservationTypeMapper.ts``: the observation type;
- ``packages/shared/src/server/otel/OtelIngestionProcessor.ts``: trace and observation
  fields (name, input/output, model, model parameters, usage, completion start time,
  level, session, user, tags, metadata);
- ``packages/shared/src/server/ingestion/types.ts``: the schema every event must pass
  (``completionStartTime`` is an ISO 8601 time *with* an offset, usage counts are whole
  non-negative numbers), else the event is rejected;
- ``worker/src/services/IngestionService/index.ts``: ``total`` is the sum of all usage
  buckets unless a total was sent.

The usage rules are those of the generic GenAI path of the recent processor (read at
commit 769752ae4 of ``OtelIngestionProcessor.ts``): input, output, total and cache-read
aliases collapse to one value each. Older Langfuse servers mapped only the input, output
and total aliases and kept every other key, cache reads included, as a bucket of its own.

Only the branches a LiveKit voice agent can reach are modelled: those of other
frameworks' scopes (Vercel AI SDK ``ai``, Genkit, Flue, pydantic-ai, Google ADK) and the
input/output sources of other frameworks (Logfire ``prompt``, MLflow, Traceloop) are
left out. Trace-level fields come from the trace's root span and from every other span
that carries a trace key, merged as ``worker/src/services/IngestionService`` merges trace
events (see ``_update_trace``); the spans are taken as one batch, in start order.

Usage::

    view = map_spans(receiver.spans)
    view.traces                      # trace id -> LangfuseTrace
    view.named("llm_node")[0].usage  # {"input": ..., "input_cached_tokens": ..., "total": ...}
    view.dropped                     # observations Langfuse would reject, with the reason
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from livekit_otel_dev.otlp_receiver import ReceivedSpan

LANGFUSE_OTEL_PATH = "/api/public/otel/v1/traces"

# -- observation type (ObservationTypeMapper.ts), in priority order ----------------------
_LANGFUSE_TYPES = frozenset(
    {
        "span",
        "generation",
        "event",
        "embedding",
        "agent",
        "tool",
        "chain",
        "retriever",
        "guardrail",
        "evaluator",
    }
)
_OPENINFERENCE_KINDS = {
    "CHAIN": "chain",
    "RETRIEVER": "retriever",
    "LLM": "generation",
    "EMBEDDING": "embedding",
    "AGENT": "agent",
    "TOOL": "tool",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
_GEN_AI_OPERATIONS = {
    "chat": "generation",
    "completion": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "generate": "generation",
    "embeddings": "embedding",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
}
_TYPE_MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "model",
)
_TYPES_WITHOUT_MODEL = frozenset({"span", "event"})
"""Types whose ingestion body has no model, usage or completion start time."""

# -- observation fields (OtelIngestionProcessor.ts) -------------------------------------
_MODEL_NAME_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.model_name",
    "model",
)
_SESSION_KEYS = (
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.observation.metadata.langfuse_session_id",
    "langfuse.trace.metadata.langfuse_session_id",
)
_USER_KEYS = (
    "langfuse.user.id",
    "user.id",
    "langfuse.observation.metadata.langfuse_user_id",
    "langfuse.trace.metadata.langfuse_user_id",
)
_TAG_KEYS = (
    "langfuse.trace.tags",
    "langfuse.tags",
    "langfuse.observation.metadata.langfuse_tags",
    "langfuse.trace.metadata.langfuse_tags",
    "tag.tags",
)
_TRACE_UPDATE_KEYS = (
    "langfuse.trace.name",
    "langfuse.trace.input",
    "langfuse.trace.output",
    "langfuse.trace.metadata",
    "user.id",
    "session.id",
    "langfuse.trace.public",
    "langfuse.trace.tags",
    "langfuse.user.id",
    "langfuse.session.id",
)
_LEVELS = {
    "DEBUG": "DEBUG",
    "TRACE": "DEBUG",
    "VERBOSE": "DEBUG",
    "DEFAULT": "DEFAULT",
    "INFO": "DEFAULT",
    "LOG": "DEFAULT",
    "NOTICE": "DEFAULT",
    "OK": "DEFAULT",
    "SUCCESS": "DEFAULT",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "ERROR",
    "CRITICAL": "ERROR",
}

# -- usage (extractGenericGenAiUsageDetails) ---------------------------------------------
_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "completion")
_TOTAL_KEYS = ("total_tokens", "total")
_CACHE_READ_KEYS = (
    "cache_read.input_tokens",
    "cache_read_input_tokens",
    "cache_read_tokens",
    "details.cache_read_tokens",
    "details.cache_read_input_tokens",
    "prompt_details.cache_read",
    "input_cached_tokens",
)
_CACHE_CREATION_KEYS = (
    "cache_creation.input_tokens",
    "cache_write.input_tokens",
    "cache_creation_input_tokens",
    "cache_write_tokens",
    "details.cache_write_tokens",
    "details.cache_creation_input_tokens",
    "prompt_details.cache_write",
    "input_cache_creation",
)
_REASONING_KEYS = ("reasoning.output_tokens", "completion_details.reasoning")
_AUDIO_OUTPUT_KEYS = ("completion_details.audio",)
_KNOWN_USAGE_KEYS = frozenset(
    _INPUT_KEYS
    + _OUTPUT_KEYS
    + _TOTAL_KEYS
    + _CACHE_READ_KEYS
    + _CACHE_CREATION_KEYS
    + _REASONING_KEYS
    + _AUDIO_OUTPUT_KEYS
)

# keys Langfuse could take input or output from; it drops them all from an observation's
# metadata (extractInputAndOutput's potentialInputOutputKeys, the ones a LiveKit agent can
# reach), whichever one it used
INPUT_OUTPUT_KEYS = frozenset(
    {
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "lk.input_text",
        "lk.user_transcript",
        "lk.chat_ctx",
        "lk.user_input",
        "lk.function_tool.output",
        "lk.response.text",
        "input.value",
        "output.value",
        "input",
        "output",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.system_instructions",
    }
)
INPUT_OUTPUT_PREFIXES = (
    "gen_ai.prompt",
    "gen_ai.completion",
    "llm.input_messages",
    "llm.output_messages",
)

# zod's ``z.string().datetime({offset: true})``: a T-separated time with Z or an offset
_ISO_WITH_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$"
)


@dataclass(frozen=True)
class LangfuseObservation:
    """One observation as Langfuse would store it."""

    id: str
    trace_id: str
    parent_id: str | None
    span_name: str
    name: str
    """What Langfuse shows: ``gen_ai.tool.name`` when set, else the span name."""
    type: str
    """Lowercase: ``generation``, ``tool``, ``agent``, ``span``, ``chain``, ..."""
    model: str | None
    model_parameters: dict[str, Any]
    usage: dict[str, int]
    """Usage buckets with ``total`` (sent, or the sum of the buckets); empty when none."""
    input: Any
    output: Any
    completion_start_time: str | None
    level: str
    status_message: str | None
    session_id: str | None
    user_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    """The span's attributes, unchanged (Langfuse keeps them as metadata)."""
    cost: dict[str, float] = field(default_factory=dict)
    """The cost Langfuse shows when the span provides one (``cost_details``), with its
    ``total``; empty when it would price the usage from its own model list instead."""

    @property
    def input_usage(self) -> int:
        """The input figure Langfuse shows: the sum of every usage key containing "input"."""
        return sum(value for key, value in self.usage.items() if "input" in key.lower())

    @property
    def output_usage(self) -> int:
        """The output figure: the sum of every usage key containing "output"."""
        return sum(value for key, value in self.usage.items() if "output" in key.lower())

    @property
    def total_mismatch(self) -> bool:
        """Whether Langfuse's worker would log "Sum of provided non-total usage_details
        buckets exceeds provided total" (``warnOnUsageTotalMismatch``: by more than 1 %, at
        least one token)."""
        total = self.usage.get("total")
        if total is None:
            return False
        buckets = sum(value for key, value in self.usage.items() if key != "total")
        return buckets > total + max(1, total * 0.01)

    @property
    def metadata(self) -> dict[str, str]:
        """The span attributes Langfuse keeps as the observation's metadata, as strings.

        ``extractInputAndOutput`` drops every key it could take input or output from,
        whichever it used; ``normalizeToolMetadataForObservation`` moves a list of tool
        definitions (``gen_ai.tool.definitions``) into the input. The resource and scope,
        which Langfuse keeps too, are left out: they are the user's, not the plugin's.
        """
        kept = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in self.attributes.items()
            if key not in INPUT_OUTPUT_KEYS and not key.startswith(INPUT_OUTPUT_PREFIXES)
        }
        if tool_definitions(self.attributes):
            kept.pop("gen_ai.tool.definitions", None)
        return kept

    @property
    def io_size(self) -> int:
        """Characters of the input and output Langfuse shows (tool definitions included)."""
        size = sum(len(_as_text(value)) for value in (self.input, self.output) if value)
        if tool_definitions(self.attributes):
            size += len(_as_text(self.attributes["gen_ai.tool.definitions"]))
        return size

    @property
    def metadata_size(self) -> int:
        """Characters of the metadata Langfuse keeps: each key and its value."""
        return sum(len(key) + len(value) for key, value in self.metadata.items())


@dataclass(frozen=True)
class DroppedObservation:
    """A span Langfuse would reject, and why."""

    span_name: str
    span_id: str
    reason: str


@dataclass
class LangfuseTrace:
    """One trace as Langfuse would store it."""

    id: str
    name: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    input: Any = None
    output: Any = None
    release: str | None = None
    environment: str = "default"
    has_root: bool = False


@dataclass
class LangfuseView:
    """Traces and observations Langfuse would show for a set of received spans."""

    traces: dict[str, LangfuseTrace]
    observations: list[LangfuseObservation]
    dropped: list[DroppedObservation]

    def named(self, span_name: str) -> list[LangfuseObservation]:
        """The observations of spans called ``span_name``, in start order."""
        return [obs for obs in self.observations if obs.span_name == span_name]

    def one(self, span_name: str) -> LangfuseObservation:
        """The one observation of a span called ``span_name``."""
        found = self.named(span_name)
        assert len(found) == 1, f"expected one {span_name!r} observation, got {len(found)}"
        return found[0]

    def of_type(self, kind: str) -> list[LangfuseObservation]:
        """The observations of one Langfuse type (``generation``, ``tool``, ...)."""
        return [obs for obs in self.observations if obs.type == kind]

    def by_id(self, observation_id: str) -> LangfuseObservation | None:
        """The observation with this id (the span id), if any."""
        for obs in self.observations:
            if obs.id == observation_id:
                return obs
        return None

    def trace_of(self, observation: LangfuseObservation) -> LangfuseTrace:
        """The trace an observation belongs to."""
        return self.traces[observation.trace_id]

    @property
    def session_ids(self) -> set[str | None]:
        """The distinct session ids of the traces."""
        return {trace.session_id for trace in self.traces.values()}


def map_spans(spans: Iterable[ReceivedSpan]) -> LangfuseView:
    """Apply Langfuse's OTLP ingestion rules to received spans."""
    ordered = sorted(spans, key=lambda span: (span.start_ns, span.span_id))
    traces: dict[str, LangfuseTrace] = {}
    observations: list[LangfuseObservation] = []
    dropped: list[DroppedObservation] = []
    for span in ordered:
        _update_trace(traces, span)
        observation, reason = map_span(span)
        if reason is not None:
            dropped.append(DroppedObservation(span.name, span.span_id, reason))
        else:
            observations.append(observation)
    return LangfuseView(traces=traces, observations=observations, dropped=dropped)


def map_span(span: ReceivedSpan) -> tuple[LangfuseObservation, str | None]:
    """One span as an observation, with the reason Langfuse would reject it (or None)."""
    attributes = span.attributes
    kind = observation_type(attributes)
    has_model = kind not in _TYPES_WITHOUT_MODEL
    start_time, start_time_reason = completion_start_time(attributes)
    usage, usage_reason = displayed_usage(attributes)
    reason = None
    if has_model:
        reason = start_time_reason or usage_reason
    observation_input, observation_output = input_output(attributes)
    observation = LangfuseObservation(
        id=span.span_id,
        trace_id=span.trace_id,
        parent_id=span.parent_span_id or None,
        span_name=span.name,
        name=display_name(span.name, attributes),
        type=kind,
        model=model_name(attributes) if has_model else None,
        model_parameters=model_parameters(attributes) if has_model else {},
        usage=usage if has_model else {},
        input=observation_input,
        output=observation_output,
        completion_start_time=start_time if has_model else None,
        level=level(attributes, span.status_code),
        status_message=_text(attributes.get("langfuse.observation.status_message"))
        or span.status_message
        or None,
        session_id=session_id(attributes),
        user_id=user_id(attributes),
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        attributes=dict(attributes),
        cost=provided_cost(attributes) if has_model else {},
    )
    return observation, reason


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def tool_definitions(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The tools Langfuse lists for a generation, by name.

    Langfuse moves ``gen_ai.tool.definitions`` out of the metadata into the input's
    ``tools`` when every item is a definition with a name (flat, or OpenAI's
    ``{"type": "function", "function": {...}}``); otherwise it lists none.
    """
    raw = attributes.get("gen_ai.tool.definitions")
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    if not isinstance(items, list):
        return {}
    tools: dict[str, dict[str, Any]] = {}
    for item in items:
        tool = json.loads(item) if isinstance(item, str) else item
        flat = tool.get("function", tool) if isinstance(tool, dict) else {}
        if not isinstance(flat, dict) or not flat.get("name"):
            return {}
        tools.setdefault(str(flat["name"]), flat)
    return tools


def metadata_ratio(view: LangfuseView, content_keys: frozenset[str] = frozenset()) -> float:
    """The call's metadata over its input and output, in characters, as Langfuse keeps them.

    ``content_keys``: metadata keys that hold captured words (a transcript Langfuse files
    as metadata); they count with the input and output, not as metadata.
    """
    metadata = shown = 0
    for obs in view.observations:
        kept = obs.metadata
        words = sum(len(kept[key]) for key in content_keys if key in kept)
        metadata += obs.metadata_size - words - sum(len(key) for key in content_keys if key in kept)
        shown += obs.io_size + words
    return metadata / shown if shown else float("inf")


# -- type and name ------------------------------------------------------------------------
def _meaningful(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, (list, tuple, dict)):
        return len(value) > 0
    return True


def observation_type(attributes: Mapping[str, Any]) -> str:
    """The observation type, by Langfuse's mapper precedence (lowercase)."""
    declared = attributes.get("langfuse.observation.type")
    if _meaningful(declared) and declared in _LANGFUSE_TYPES:
        return str(declared)
    kind = attributes.get("openinference.span.kind")
    if _meaningful(kind) and kind in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[str(kind)]
    operation = attributes.get("gen_ai.operation.name")
    if _meaningful(operation) and operation in _GEN_AI_OPERATIONS:
        return _GEN_AI_OPERATIONS[str(operation)]
    if _meaningful(attributes.get("gen_ai.tool.name")) or _meaningful(
        attributes.get("gen_ai.tool.call.id")
    ):
        return "tool"
    if any(_meaningful(attributes.get(key)) for key in _TYPE_MODEL_KEYS):
        return "generation"
    return "span"


def _text(value: Any) -> str | None:
    if value is None or value == "" or value is False or value == 0:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def display_name(span_name: str, attributes: Mapping[str, Any]) -> str:
    """The observation name: ``gen_ai.tool.name`` (or ``logfire.msg``), else the span name."""
    for key in ("gen_ai.tool.name", "logfire.msg"):
        text = _text(attributes.get(key))
        if text is not None:
            return text
    return span_name


def _first_text(attributes: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        text = _text(attributes.get(key))
        if text is not None:
            return text
    return None


def model_name(attributes: Mapping[str, Any]) -> str | None:
    """The model Langfuse shows (and prices the usage with)."""
    return _first_text(attributes, _MODEL_NAME_KEYS)


def session_id(attributes: Mapping[str, Any]) -> str | None:
    """``langfuse.session.id`` > ``session.id`` > ``gen_ai.conversation.id`` > metadata keys."""
    return _first_text(attributes, _SESSION_KEYS)


def user_id(attributes: Mapping[str, Any]) -> str | None:
    """``langfuse.user.id`` > ``user.id`` > metadata keys."""
    return _first_text(attributes, _USER_KEYS)


def tags(attributes: Mapping[str, Any]) -> list[str]:
    """Trace tags: a list, a JSON list, a comma-separated string or one string."""
    value: Any = None
    for key in _TAG_KEYS:
        if attributes.get(key):
            value = attributes[key]
            break
    if value is None:
        return []
    if isinstance(value, list):
        return [str(tag) for tag in value]
    if isinstance(value, str):
        if value.strip().startswith("["):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return [str(tag) for tag in parsed]
        if "," in value:
            return [tag.strip() for tag in value.split(",")]
        return [value]
    return []


def level(attributes: Mapping[str, Any], status_code: str) -> str:
    """``langfuse.observation.level`` (with its aliases), else ERROR status -> ERROR."""
    declared = attributes.get("langfuse.observation.level")
    if isinstance(declared, str) and declared.strip().upper() in _LEVELS:
        return _LEVELS[declared.strip().upper()]
    return "ERROR" if status_code == "ERROR" else "DEFAULT"


# -- metadata -----------------------------------------------------------------------------
def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def metadata(attributes: Mapping[str, Any], domain: str) -> dict[str, Any]:
    """``langfuse.<domain>.metadata`` (a JSON object) merged with its ``.<key>`` attributes."""
    prefix = f"langfuse.{domain}.metadata"
    result = _json_object(attributes.get(prefix) or attributes.get("langfuse.metadata"))
    for key, value in attributes.items():
        for each in (prefix, "langfuse.metadata"):
            if key.startswith(each + ".") and len(key) > len(each) + 1:
                result[key[len(each) + 1 :]] = value
    return result


# -- input and output -------------------------------------------------------------------
def input_output(attributes: Mapping[str, Any], trace_level: bool = False) -> tuple[Any, Any]:
    """Input and output, as a pair from the first source that has either.

    Langfuse's own keys count when present at all (an empty string included); the other
    sources only when one of the two is non-empty. Values are kept as sent: a JSON string
    stays a string (Langfuse's UI parses it for display).
    """
    lf_input = attributes.get("langfuse.observation.input")
    lf_output = attributes.get("langfuse.observation.output")
    if trace_level:
        lf_input = attributes.get("langfuse.trace.input") or lf_input
        lf_output = attributes.get("langfuse.trace.output") or lf_output
    if lf_input is not None or lf_output is not None:
        return lf_input, lf_output
    livekit_input = (
        attributes.get("lk.input_text")
        or attributes.get("lk.pii.input_text")
        or attributes.get("lk.user_transcript")
        or attributes.get("lk.pii.user_transcript")
        or attributes.get("lk.chat_ctx")
        or attributes.get("lk.pii.chat_ctx")
        or attributes.get("lk.user_input")
        or attributes.get("lk.pii.user_input")
        or attributes.get("lk.pii.function_tool.arguments")
    )
    livekit_output = (
        attributes.get("lk.function_tool.output")
        or attributes.get("lk.pii.function_tool.output")
        or attributes.get("lk.response.text")
        or attributes.get("lk.pii.response.text")
    )
    for pair in (
        (livekit_input, livekit_output),
        (attributes.get("input.value"), attributes.get("output.value")),
        (attributes.get("input"), attributes.get("output")),
        (attributes.get("gen_ai.input.messages"), attributes.get("gen_ai.output.messages")),
        (attributes.get("gen_ai.tool.call.arguments"), attributes.get("gen_ai.tool.call.result")),
    ):
        if pair[0] or pair[1]:
            return pair
    return None, None


# -- model parameters ---------------------------------------------------------------------
def _sanitized(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        if isinstance(value, (str, int, float)) and not isinstance(value, bool)
        else json.dumps(value)
        for key, value in params.items()
    }


def model_parameters(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``langfuse.observation.model.parameters`` (JSON), else the ``gen_ai.request.*`` keys."""
    for key in ("langfuse.observation.model.parameters", "llm.invocation_parameters"):
        if attributes.get(key):
            parsed = _json_object(attributes[key])
            if parsed or attributes[key] == "{}":
                return _sanitized(parsed)
    params: dict[str, Any] = {}
    for prefix in ("gen_ai.request.", "llm.invocation_parameters."):
        for key, value in attributes.items():
            name = key[len(prefix) :] if key.startswith(prefix) else None
            if name and name != "model":
                params[name] = value
    return _sanitized(params)


# -- cost (extractCostDetails; IngestionService.calculateUsageCosts) ----------------------
def provided_cost(attributes: Mapping[str, Any]) -> dict[str, float]:
    """The cost a span provides: ``langfuse.observation.cost_details`` (a JSON object of
    key to USD), else ``gen_ai.usage.cost`` or ``llm.cost.total`` as the total.

    Provided costs are authoritative: Langfuse then prices nothing itself. Values that are
    not numbers >= 0 are dropped; a missing ``total`` is the sum of ``input`` and
    ``output`` when those are the only keys.
    """
    raw = _json_object(attributes.get("langfuse.observation.cost_details"))
    if not raw:
        for key in ("gen_ai.usage.cost", "llm.cost.total"):
            if _meaningful(attributes.get(key)):
                raw = {"total": attributes[key]}
                break
    cost = {
        key: float(value)
        for key, value in raw.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    }
    if cost and "total" not in cost and set(cost) <= {"input", "output"}:
        cost["total"] = cost.get("input", 0.0) + cost.get("output", 0.0)
    return cost


# -- usage --------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or "0")
        except ValueError:
            return None
    return None


def _first(raw: Mapping[str, float], keys: Iterable[str]) -> float | None:
    for key in keys:
        if key in raw:
            return raw[key]
    return None


def provided_usage(attributes: Mapping[str, Any]) -> dict[str, float]:
    """The usage buckets Langfuse extracts from a span (before it completes ``total``).

    ``langfuse.observation.usage_details`` (a JSON object) wins. Otherwise every
    ``gen_ai.usage.*`` (but ``gen_ai.usage.cost``) and ``llm.token_count.*`` key is read,
    the prefix removed; input, output, total and cache aliases collapse to one value
    each (first alias present wins), cache reads and writes are subtracted from input
    into their own buckets (``input_cached_tokens``, ``input_cache_creation``), reasoning
    and audio output from output, and any other key becomes a bucket of its own.
    """
    explicit = attributes.get("langfuse.observation.usage_details")
    if explicit:
        parsed = _json_object(explicit) if isinstance(explicit, str) else {}
        if parsed or explicit == "{}":
            return {key: value for key, value in parsed.items() if _number(value) is not None}
    raw: dict[str, float] = {}
    for key, value in attributes.items():
        if key.startswith("gen_ai.usage.") and key != "gen_ai.usage.cost":
            name = key[len("gen_ai.usage.") :]
        elif key.startswith("llm.token_count."):
            name = key[len("llm.token_count.") :]
        else:
            continue
        number = _number(value)
        if number is not None:
            raw[name] = number
    if not raw:
        return {}
    usage: dict[str, float] = {}
    for key, value in raw.items():
        if key not in _KNOWN_USAGE_KEYS:
            usage[key.removeprefix("details.")] = value
    input_tokens = _first(raw, _INPUT_KEYS)
    output_tokens = _first(raw, _OUTPUT_KEYS)
    total = _first(raw, _TOTAL_KEYS)
    cache_read = _first(raw, _CACHE_READ_KEYS)
    cache_creation = _first(raw, _CACHE_CREATION_KEYS)
    reasoning = _first(raw, _REASONING_KEYS)
    audio_output = _first(raw, _AUDIO_OUTPUT_KEYS)
    if input_tokens is not None:
        usage["input"] = max(input_tokens - (cache_read or 0) - (cache_creation or 0), 0)
    if output_tokens is not None:
        usage["output"] = max(output_tokens - (reasoning or 0) - (audio_output or 0), 0)
    if total is not None:
        usage["total"] = total
    for name, value in (
        ("input_cached_tokens", cache_read),
        ("input_cache_creation", cache_creation),
        ("output_reasoning_tokens", reasoning),
        ("output_audio_tokens", audio_output),
    ):
        if value is not None:
            usage[name] = value
    return usage


def displayed_usage(attributes: Mapping[str, Any]) -> tuple[dict[str, int], str | None]:
    """The usage Langfuse shows (``total`` added as the sum when none was sent).

    The second value is why Langfuse would reject the observation: a bucket that is not
    a whole non-negative number.
    """
    provided = provided_usage(attributes)
    for key, value in provided.items():
        number = _number(value)
        if number is None or number < 0 or number != int(number):
            return {}, f"usage {key}={value!r} is not a whole non-negative number"
    usage = {key: int(_number(value) or 0) for key, value in provided.items()}
    if usage and "total" not in usage:
        usage["total"] = sum(usage.values())
    return usage, None


# -- completion start time ----------------------------------------------------------------
def _parses_as_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def completion_start_time(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The completion start time, and why Langfuse would reject the generation (or None).

    A value that is no time at all is ignored (Langfuse's extractor returns null); one
    that is a time without a time zone passes the extractor but fails the ingestion
    schema (ISO 8601 with ``Z`` or an offset), and the whole generation is dropped.
    A JSON-quoted time (older Langfuse SDKs) is unwrapped first.
    """
    value = attributes.get("langfuse.observation.completion_start_time")
    if not isinstance(value, str):
        return None, None
    candidates = [value]
    try:
        unquoted = json.loads(value)
    except ValueError:
        unquoted = None
    if isinstance(unquoted, str):
        candidates.append(unquoted)
    for text in candidates:
        if _parses_as_time(text):
            if _ISO_WITH_OFFSET.match(text):
                return text, None
            return None, f"completion_start_time {text!r} has no time zone"
    return None, None


# -- traces -------------------------------------------------------------------------------
def _has_trace_updates(attributes: Mapping[str, Any]) -> bool:
    if any(attributes.get(key) for key in _TRACE_UPDATE_KEYS):
        return True
    return any(key.startswith("langfuse.trace.metadata") for key in attributes)


def _environment(attributes: Mapping[str, Any], resource: Mapping[str, Any]) -> str | None:
    for key in ("langfuse.environment", "deployment.environment.name", "deployment.environment"):
        for source in (attributes, resource):
            text = _text(source.get(key))
            if text is not None:
                return text
    return None


def _update_trace(traces: dict[str, LangfuseTrace], span: ReceivedSpan) -> None:
    """Merge one span's trace event into its trace, as Langfuse's ingestion does.

    ``createTraceEvent``: a root span sends every trace field; any other span that carries
    a trace key (``_TRACE_UPDATE_KEYS``, ``langfuse.trace.metadata.*``) sends its own
    ``langfuse.trace.name``, user, session, tags, release, environment, metadata and
    ``langfuse.trace.input`` / ``.output`` (only those two keys: no fallback); the worker
    (``IngestionService.mergeTraceRecords``) applies the events in start-time order, each
    defined value overwriting (a release left out is sent as null and overwrites too),
    tags joined (Langfuse also sorts them; kept here in first-seen order), the
    environment kept from the first event, and the input and output taken from the
    latest event that has a truthy one. Spans without trace keys only create the
    trace (with their environment) when it is new.
    """
    attributes = span.attributes
    new = span.trace_id not in traces
    trace = traces.setdefault(span.trace_id, LangfuseTrace(id=span.trace_id))
    is_root = not span.parent_span_id or str(
        attributes.get("langfuse.internal.as_root")
    ).lower() in ("true",)
    environment = _environment(attributes, span.resource) or "default"
    release = _text(attributes.get("langfuse.release")) or _text(
        span.resource.get("langfuse.release")
    )
    if new:
        trace.environment = environment
    if is_root:
        trace.has_root = True
        trace.name = _text(attributes.get("langfuse.trace.name")) or display_name(
            span.name, attributes
        )
        trace.session_id = session_id(attributes) or trace.session_id
        trace.user_id = user_id(attributes) or trace.user_id
        trace.tags = list(dict.fromkeys([*trace.tags, *tags(attributes)]))
        trace.metadata = {**trace.metadata, **metadata(attributes, "trace")}
        trace_input, trace_output = input_output(attributes, trace_level=True)
        trace.input = trace_input or trace.input
        trace.output = trace_output or trace.output
        trace.release = release
        return
    if not _has_trace_updates(attributes):
        return
    trace.name = _text(attributes.get("langfuse.trace.name")) or trace.name
    trace.session_id = session_id(attributes) or trace.session_id
    trace.user_id = user_id(attributes) or trace.user_id
    trace.tags = list(dict.fromkeys([*trace.tags, *tags(attributes)]))
    trace.metadata = {**trace.metadata, **metadata(attributes, "trace")}
    trace.input = attributes.get("langfuse.trace.input") or trace.input
    trace.output = attributes.get("langfuse.trace.output") or trace.output
    trace.release = release
