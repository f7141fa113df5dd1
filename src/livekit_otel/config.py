"""The instrumentor's options: keyword arguments first, ``LIVEKIT_OTEL_*`` variables second."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ENV_CAPTURE_CONTENT = "LIVEKIT_OTEL_CAPTURE_CONTENT"
ENV_CONVENTIONS = "LIVEKIT_OTEL_CONVENTIONS"
ENV_TRACE_PER = "LIVEKIT_OTEL_TRACE_PER"
ENV_MAX_ATTRIBUTE_LENGTH = "LIVEKIT_OTEL_MAX_ATTRIBUTE_LENGTH"
ENV_PROMPT_WINDOW = "LIVEKIT_OTEL_PROMPT_WINDOW"

# the attributes the trace contract requires are always emitted; a convention adds its own
CONVENTIONS = ("langfuse", "openinference", "genai")
DEFAULT_CONVENTIONS = ("langfuse", "openinference")
TracePer = Literal["session", "turn"]
BuiltinTelemetry = Literal["auto", "off", "keep"]
Redactor = Callable[[str], str]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Options:
    """What to record and how; built once by :func:`resolve_options`."""

    capture_content: bool = True
    conventions: frozenset[str] = frozenset(DEFAULT_CONVENTIONS)
    trace_per: TracePer = "session"
    redact: Redactor | None = None
    max_attribute_length: int = 16_384
    prompt_window: int = 16
    builtin_telemetry: BuiltinTelemetry = "auto"
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    release: str | None = None
    environment: str | None = None
    trace_name: str = "agent_session"

    @property
    def langfuse(self) -> bool:
        """Whether Langfuse's ``langfuse.*`` attributes are emitted."""
        return "langfuse" in self.conventions

    @property
    def genai(self) -> bool:
        """Whether the OpenTelemetry GenAI ``gen_ai.*`` attributes are emitted."""
        return "genai" in self.conventions

    @property
    def openinference(self) -> bool:
        """Whether OpenInference attributes (for Arize Phoenix) are emitted."""
        return "openinference" in self.conventions


def _env_bool(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _conventions(value: str | Sequence[str]) -> frozenset[str]:
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen = frozenset(name.strip().lower() for name in names if name.strip())
    if "all" in chosen:
        return frozenset(CONVENTIONS)
    if chosen == {"none"}:
        return frozenset()
    unknown = sorted(chosen - set(CONVENTIONS))
    if unknown:
        raise ValueError(
            f"unknown convention(s) {', '.join(unknown)}: choose from "
            f"{', '.join(CONVENTIONS)}, or 'all', or 'none'"
        )
    return chosen


def resolve_options(**kwargs: Any) -> Options:
    """Build :class:`Options` from instrumentor keyword arguments and the environment.

    Unknown keywords raise ``TypeError`` naming them, so a typo never silently does nothing.
    """
    known = set(Options.__dataclass_fields__)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(
            f"unknown livekit-otel option(s): {', '.join(unknown)}; "
            f"valid options are {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {k: v for k, v in kwargs.items() if v is not None}

    if "capture_content" not in values:
        env_capture = _env_bool(ENV_CAPTURE_CONTENT)
        if env_capture is not None:
            values["capture_content"] = env_capture
    conventions = values.get("conventions", os.environ.get(ENV_CONVENTIONS))
    if conventions is not None and (conventions or "conventions" in values):
        values["conventions"] = _conventions(conventions)
    trace_per = values.get("trace_per", os.environ.get(ENV_TRACE_PER) or "session")
    if trace_per not in ("session", "turn"):
        raise ValueError(f"trace_per must be 'session' or 'turn', got {trace_per!r}")
    values["trace_per"] = trace_per
    for name, env in (
        ("max_attribute_length", ENV_MAX_ATTRIBUTE_LENGTH),
        ("prompt_window", ENV_PROMPT_WINDOW),
    ):
        if name not in values and (env_value := _env_int(env)) is not None:
            values[name] = env_value
        if name in values and int(values[name]) < 1:
            raise ValueError(f"{name} must be at least 1, got {values[name]!r}")
    if values.get("builtin_telemetry", "auto") not in ("auto", "off", "keep"):
        raise ValueError("builtin_telemetry must be 'auto', 'off' or 'keep'")
    if "redact" in values and not callable(values["redact"]):
        raise TypeError("redact must be a callable taking and returning a str")
    if "tags" in values:
        values["tags"] = tuple(values["tags"])
    if "metadata" in values:
        values["metadata"] = dict(values["metadata"])
    return Options(**values)
