"""The instrumentor's options: keyword arguments first, ``LIVEKIT_OTEL_*`` variables second."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Literal

logger = logging.getLogger("livekit_otel")

ENV_CAPTURE_CONTENT = "LIVEKIT_OTEL_CAPTURE_CONTENT"
ENV_CONVENTIONS = "LIVEKIT_OTEL_CONVENTIONS"
ENV_TRACE_PER = "LIVEKIT_OTEL_TRACE_PER"
ENV_MAX_ATTRIBUTE_LENGTH = "LIVEKIT_OTEL_MAX_ATTRIBUTE_LENGTH"
ENV_PROMPT_WINDOW = "LIVEKIT_OTEL_PROMPT_WINDOW"
ENV_AUDIO = "LIVEKIT_OTEL_AUDIO"
ENV_AUDIO_STORE = "LIVEKIT_OTEL_AUDIO_STORE"
ENV_PRICES = "LIVEKIT_OTEL_PRICES"  # a JSON object, or the path of a JSON file holding one

# the attributes the trace contract requires are always emitted; a convention adds its own
CONVENTIONS = ("langfuse", "openinference", "genai")
# instrument() without a setup cannot tell the backend: the keys of the two LLM backends
# most users of this plugin pick (the contract's GenAI keys are written anyway); each
# setup narrows this to its backend's (backend_conventions)
DEFAULT_CONVENTIONS = ("langfuse", "openinference")
AUDIO_KINDS = ("turns", "call")
TracePer = Literal["session", "turn"]
BuiltinTelemetry = Literal["auto", "off", "keep"]
Redactor = Callable[[str], str]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_BOOL_WORDS = "true or false (also 1/0, yes/no, on/off)"


class InvalidOptionError(ValueError, TypeError):
    """An option or environment variable of the wrong type or value.

    Both a ``ValueError`` and a ``TypeError``, so code that catches either keeps working;
    the message names the option, what was given and what is accepted.
    """


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
    audio: frozenset[str] = frozenset()
    """``turns`` (each turn's clip), ``call`` (the whole recording), both, or none (default)."""
    audio_store: Any = None
    """A directory, or a callable ``(bytes, name) -> uri``, that keeps the audio."""
    audio_inline: bool = False
    """Langfuse only: the audio inline as a data URI (for servers that extract them)."""
    # model name -> prices to add or replace (see livekit_otel.mapping.prices), None: unpriced
    prices: Mapping[str, Any] | None = None

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


def parse_bool(value: object, name: str) -> bool:
    """``value`` as a bool: ``True``/``False``, or a string such as ``"false"``, ``"0"``,
    ``"no"``, ``"off"`` (any case); anything else is an :class:`InvalidOptionError`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidOptionError(f"{name} must be {_BOOL_WORDS}, got {_given(value)}")


def parse_positive_int(value: object, name: str) -> int:
    """``value`` as a whole number of at least 1: an int, or a string of digits."""
    number: object = value
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InvalidOptionError(
            f"{name} must be a whole number of at least 1, got {_given(value)}"
        )
    return number


def _given(value: object) -> str:
    """What the user gave, for an error message: the value and, when not obvious, its type."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if isinstance(value, (bool, int, float, str)) or value is None:
        return f"{shown} ({type(value).__name__})"
    return f"a {type(value).__name__}"


def _env(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw if raw is not None and raw.strip() else None


def _choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (case and surrounding blanks ignored)."""
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    accepted = ", ".join(repr(choice) for choice in choices)
    raise InvalidOptionError(f"{name} must be one of {accepted}, got {_given(value)}")


def _conventions(value: object, name: str = "conventions") -> frozenset[str]:
    if isinstance(value, str):
        names: list[object] = list(value.split(","))
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        names = list(value)
    else:
        names = [value]
    if not all(isinstance(item, str) for item in names):
        raise InvalidOptionError(
            f"{name} must be a comma-separated string or a list of names from "
            f"{', '.join(CONVENTIONS)}, got {_given(value)}"
        )
    chosen = frozenset(str(item).strip().lower() for item in names if str(item).strip())
    if "all" in chosen:
        return frozenset(CONVENTIONS)
    if chosen == {"none"}:
        return frozenset()
    unknown = sorted(chosen - set(CONVENTIONS))
    if unknown:
        raise InvalidOptionError(
            f"unknown convention(s) {', '.join(unknown)} in {name}: choose from "
            f"{', '.join(CONVENTIONS)}, or 'all', or 'none'"
        )
    return chosen


def _optional_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidOptionError(f"{name} must be a string, got {_given(value)}")
    return value


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise InvalidOptionError(
            f"tags must be a list of strings, such as tags=[{value!r}], got {_given(value)}"
        )
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InvalidOptionError(f"tags must be a list of strings, got {_given(value)}")
    tags = tuple(value)
    if not all(isinstance(tag, str) for tag in tags):
        raise InvalidOptionError(f"tags must be a list of strings, got {_given(list(tags))}")
    return tags


def _metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidOptionError(
            f"metadata must be a dict with string keys, such as {{'plan': 'pro'}}, "
            f"got {_given(value)}"
        )
    return dict(value)


def backend_conventions(
    instrument_options: Mapping[str, Any] | None, conventions: str
) -> dict[str, Any]:
    """``instrument_options`` with a backend's ``conventions`` as their default.

    The ``conventions`` option, then ``LIVEKIT_OTEL_CONVENTIONS``, still win.
    """
    options = dict(instrument_options or {})
    if options.get("conventions") is None and not os.environ.get(ENV_CONVENTIONS, "").strip():
        options["conventions"] = conventions
    return options


def _audio(value: object, name: str = "audio") -> frozenset[str]:
    """``turns``, ``call``, both (``"turns,call"``, a list, ``"both"``) or none (``"off"``)."""
    if isinstance(value, str):
        names: list[object] = list(value.split(","))
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        names = list(value)
    else:
        raise InvalidOptionError(
            f"{name} must be 'turns', 'call' or 'turns,call' (or 'off'), got {_given(value)}"
        )
    chosen = frozenset(str(item).strip().lower() for item in names if str(item).strip())
    if chosen & {"off", "none", "false", "0"}:
        return frozenset()
    if chosen & {"both", "all"}:
        return frozenset(AUDIO_KINDS)
    unknown = sorted(chosen - set(AUDIO_KINDS))
    if unknown:
        raise InvalidOptionError(
            f"unknown audio kind(s) {', '.join(unknown)} in {name}: choose 'turns', 'call' "
            "or 'turns,call' (or 'off')"
        )
    return chosen


def _audio_store(value: object, name: str = "audio_store") -> object:
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return value
    if callable(value) and not isinstance(value, (str, os.PathLike)):
        return value
    raise InvalidOptionError(
        f"{name} must be a directory path or a function (bytes, name) -> uri, got {_given(value)}"
    )


def resolve_options(**kwargs: Any) -> Options:
    """Build :class:`Options` from instrumentor keyword arguments and the environment.

    Each option is checked by type and value; a wrong one raises
    :class:`InvalidOptionError` (a ``ValueError`` and a ``TypeError``) naming it, what was
    given and what is accepted. Strings are parsed as the environment variables are:
    ``capture_content="false"`` is ``False``, ``max_attribute_length="5000"`` is 5000.
    Unknown keywords raise ``InvalidOptionError`` naming them, so a typo never silently
    does nothing.
    """
    known = set(Options.__dataclass_fields__)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        suggestions = [
            f"{name} (did you mean {close[0]}?)"
            if (close := get_close_matches(name, known, 1))
            else name
            for name in unknown
        ]
        raise InvalidOptionError(
            f"unknown livekit-otel option(s): {', '.join(suggestions)}; "
            f"valid options are {', '.join(sorted(known))}"
        )
    warn_unknown_environment()
    values: dict[str, Any] = {k: v for k, v in kwargs.items() if v is not None}

    if "capture_content" in values:
        values["capture_content"] = parse_bool(values["capture_content"], "capture_content")
    elif (raw := _env(ENV_CAPTURE_CONTENT)) is not None:
        values["capture_content"] = parse_bool(raw, ENV_CAPTURE_CONTENT)
    if "conventions" in values:
        values["conventions"] = _conventions(values["conventions"])
    elif (raw := _env(ENV_CONVENTIONS)) is not None:
        values["conventions"] = _conventions(raw, ENV_CONVENTIONS)
    if "trace_per" in values:
        values["trace_per"] = _choice(values["trace_per"], "trace_per", ("session", "turn"))
    elif (raw := _env(ENV_TRACE_PER)) is not None:
        values["trace_per"] = _choice(raw, ENV_TRACE_PER, ("session", "turn"))
    for name, env in (
        ("max_attribute_length", ENV_MAX_ATTRIBUTE_LENGTH),
        ("prompt_window", ENV_PROMPT_WINDOW),
    ):
        if name in values:
            values[name] = parse_positive_int(values[name], name)
        elif (raw := _env(env)) is not None:
            values[name] = parse_positive_int(raw, env)
    if "builtin_telemetry" in values:
        values["builtin_telemetry"] = _choice(
            values["builtin_telemetry"], "builtin_telemetry", ("auto", "off", "keep")
        )
    if "redact" in values and not callable(values["redact"]):
        raise InvalidOptionError(
            f"redact must be a function taking and returning a str (such as "
            f"livekit_otel.redact_pii), got {_given(values['redact'])}"
        )
    for name in ("user_id", "release", "environment", "trace_name"):
        if name in values:
            values[name] = _optional_text(values[name], name)
    if "audio" in values:
        values["audio"] = _audio(values["audio"])
    elif (raw := _env(ENV_AUDIO)) is not None:
        values["audio"] = _audio(raw, ENV_AUDIO)
    if "audio_store" in values:
        values["audio_store"] = _audio_store(values["audio_store"])
    elif (raw := _env(ENV_AUDIO_STORE)) is not None:
        values["audio_store"] = _audio_store(raw.strip(), ENV_AUDIO_STORE)
    if "audio_inline" in values:
        values["audio_inline"] = parse_bool(values["audio_inline"], "audio_inline")
    if values.get("capture_content") is False:
        values["audio"] = frozenset()  # audio is content: no sound either
    if "tags" in values:
        values["tags"] = _tags(values["tags"])
    if "metadata" in values:
        values["metadata"] = _metadata(values["metadata"])
    if "prices" not in values and (env_prices := _env_prices()) is not None:
        values["prices"] = env_prices
    if "prices" in values and not isinstance(values["prices"], Mapping):
        raise InvalidOptionError(
            f"prices must be a dict of model name to its prices (or None), got "
            f"{_given(values['prices'])}"
        )
    return Options(**values)


# -- environment variables that do not exist ----------------------------------------------
ENV_PREFIX = "LIVEKIT_OTEL_"
# every LIVEKIT_OTEL_* variable the product reads, and those the development kit and the
# project's own tests read (a warning about them would be noise)
KNOWN_ENVIRONMENT = frozenset(
    {
        ENV_CAPTURE_CONTENT,
        ENV_CONVENTIONS,
        ENV_TRACE_PER,
        ENV_MAX_ATTRIBUTE_LENGTH,
        ENV_PROMPT_WINDOW,
        ENV_AUDIO,
        ENV_AUDIO_STORE,
        ENV_PRICES,
        "LIVEKIT_OTEL_CONSOLE",
        "LIVEKIT_OTEL_FILE",
        "LIVEKIT_OTEL_DEMO_DIR",
        "LIVEKIT_OTEL_SKIP_E2E",
        "LIVEKIT_OTEL_PROMETHEUS_BIN",
        "LIVEKIT_OTEL_PHOENIX_VENV",
        "LIVEKIT_OTEL_PHOENIX_START_TIMEOUT",
    }
)
_warned_environment: set[str] = set()


def warn_unknown_environment(
    prefix: str = ENV_PREFIX,
    known: Iterable[str] = KNOWN_ENVIRONMENT,
    *,
    only_close: bool = False,
) -> None:
    """One warning per variable starting with ``prefix`` that is not in ``known``.

    The warning names the nearest known variable (``difflib``). With ``only_close=True``
    (for another product's prefix, such as ``LANGFUSE_``, whose full list livekit-otel
    does not own) only a variable close to a known one is reported.
    """
    names = sorted(set(known))
    for variable in sorted(os.environ):
        if not variable.startswith(prefix) or variable in names:
            continue
        close = get_close_matches(variable, names, 1, 0.75 if only_close else 0.0)
        if (only_close and not close) or variable in _warned_environment:
            continue
        _warned_environment.add(variable)
        nearest = f"did you mean {close[0]}?" if close else f"known: {', '.join(names)}"
        logger.warning(
            "livekit-otel: the environment variable %s is not one livekit-otel reads, so "
            "it has no effect: %s",
            variable,
            nearest,
        )


def _env_prices() -> Mapping[str, Any] | None:
    raw = os.environ.get(ENV_PRICES, "").strip()
    if not raw:
        return None
    try:
        if raw.startswith("{"):
            value = json.loads(raw)
        else:
            with open(raw, encoding="utf-8") as file:
                value = json.load(file)
    except (OSError, ValueError) as error:
        raise InvalidOptionError(
            f"{ENV_PRICES} must be a JSON object or the path of a JSON file holding one: {error}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidOptionError(f"{ENV_PRICES} must hold a JSON object of model name to prices")
    return value
