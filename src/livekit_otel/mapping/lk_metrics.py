"""LiveKit metrics objects as ``lk.<kind>.<field>`` attributes, summed per span.

Each metrics class is read through a plan computed once (its field names, nested models
flattened with dots), so copying a metrics object costs a few attribute reads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from operator import attrgetter
from typing import Any

from opentelemetry.util.types import AttributeValue

from .attributes import METRICS_PREFIX, METRICS_REQUESTS_FIELD

# LiveKit's metrics class name -> the kind used in attribute keys
KIND_BY_CLASS = {
    "STTMetrics": "stt",
    "LLMMetrics": "llm",
    "TTSMetrics": "tts",
    "EOUMetrics": "eou",
    "VADMetrics": "vad",
    "RealtimeModelMetrics": "realtime",
}
# numbers that describe the first request rather than add up across requests: a moment,
# the time to the first token or byte, a rate (durations such as ``acquire_time`` and
# ``session_duration`` add up, as the contract says of every duration)
_FIRST_ONLY = frozenset({"timestamp", "ttft", "ttfb", "tokens_per_second"})
_SKIPPED = frozenset({"type"})

_Reader = Callable[[Any], Any]
_Plan = tuple[tuple[_Reader, str, bool, bool], ...]
"""Per field: how to read it, its key, whether only the first value counts, whether it is
``cancelled`` (true if any was)."""
_plans: dict[type, _Plan | None] = {}


def metrics_kind(metrics: Any) -> str | None:
    """``stt``, ``llm``, ``tts``, ``eou``, ``vad`` or ``realtime``; ``None`` for other kinds."""
    return KIND_BY_CLASS.get(type(metrics).__name__)


def _fields(model_type: type) -> list[str]:
    fields = getattr(model_type, "model_fields", None)
    if fields is None:  # pydantic v1 shape
        fields = getattr(model_type, "__fields__", {})
    return list(fields)


def _plan_for(metrics_type: type, kind: str) -> _Plan:
    entries: list[tuple[_Reader, str, bool, bool]] = []

    def walk(model_type: type, path: tuple[str, ...]) -> None:
        for name in _fields(model_type):
            if not path and name in _SKIPPED:
                continue
            annotation = getattr(model_type, "model_fields", {}).get(name)
            nested = _nested_model(annotation)
            if nested is not None and len(path) < 3:
                walk(nested, (*path, name))
            else:
                key = METRICS_PREFIX + kind + "." + ".".join((*path, name))
                read = partial(_read, path=(*path, name)) if path else attrgetter(name)
                entries.append((read, key, name in _FIRST_ONLY, name == "cancelled"))

    walk(metrics_type, ())
    return tuple(entries)


def _nested_model(field_info: Any) -> type | None:
    annotation = getattr(field_info, "annotation", None)
    candidates = getattr(annotation, "__args__", None) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
            return candidate
    return None


def _read(metrics: Any, path: tuple[str, ...]) -> Any:
    """A nested field (a flat one, declared on the model, is read by ``attrgetter``)."""
    value = metrics
    for name in path:
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


class MetricsAggregate:
    """The metrics of one kind that belong to one span: sums, first values, a request count."""

    __slots__ = ("_values", "kind", "requests")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.requests = 0
        self._values: dict[str, AttributeValue] = {}

    def add(self, metrics: Any) -> None:
        """Fold one metrics object in: counts and durations add up, time-to-first stays first."""
        metrics_type = type(metrics)
        plan = _plans.get(metrics_type)
        if plan is None:
            plan = _plans[metrics_type] = _plan_for(metrics_type, self.kind)
        values = self._values
        first = self.requests == 0
        self.requests += 1
        for read, key, first_only, cancelled in plan:
            value = read(metrics)
            if value is None:
                continue
            if first or key not in values:
                if isinstance(value, (bool, int, float, str)):
                    values[key] = value
                continue
            if first_only:
                continue
            current = values[key]
            if isinstance(value, bool):
                if cancelled:
                    values[key] = bool(current) or value
            elif isinstance(value, (int, float)) and isinstance(current, (int, float)):
                values[key] = current + value

    def value(self, field: str) -> AttributeValue | None:
        """The aggregated value of one field, e.g. ``value("ttft")``."""
        return self._values.get(METRICS_PREFIX + self.kind + "." + field)

    def attributes(self) -> dict[str, AttributeValue]:
        """All ``lk.<kind>.*`` attributes, ``lk.<kind>.requests`` included."""
        result = dict(self._values)
        result[METRICS_PREFIX + self.kind + "." + METRICS_REQUESTS_FIELD] = self.requests
        return result
