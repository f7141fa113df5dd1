"""Every difference between livekit-agents releases, in one place.

Wrappers ask this module where things are and what they look like; no version check
lives anywhere else. Features are detected, not inferred from version strings, except
for the supported-range check at ``instrument()``.
"""

from __future__ import annotations

import importlib
import logging
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger("livekit_otel")

OLDEST_SUPPORTED = (1, 3, 6)
NEWEST_TESTED = (1, 8)  # every 1.8.x release
SUPPORTED_RANGE = "livekit-agents >= 1.3.6, < 1.9"

MODULE_SESSION = "livekit.agents.voice.agent_session"
MODULE_ACTIVITY = "livekit.agents.voice.agent_activity"
MODULE_GENERATION = "livekit.agents.voice.generation"
MODULE_TTS = "livekit.agents.tts.tts"


class UnsupportedVersionError(RuntimeError):
    """The installed livekit-agents is older than the oldest release livekit-otel supports."""


def livekit_version() -> str:
    """The installed livekit-agents version string, or ``"0"`` when it is not installed."""
    try:
        return version("livekit-agents")
    except PackageNotFoundError:
        return "0"


def _release(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


_warned_newer = False


def check_supported() -> None:
    """Raise for a release older than 1.3.6; warn once for one newer than the tested range."""
    found = livekit_version()
    release = _release(found)
    if release < OLDEST_SUPPORTED:
        raise UnsupportedVersionError(
            f"livekit-otel supports {SUPPORTED_RANGE}; found livekit-agents {found}. "
            "Upgrade livekit-agents to 1.3.6 or newer."
        )
    global _warned_newer
    if release[:2] > NEWEST_TESTED and not _warned_newer:
        _warned_newer = True
        logger.warning(
            "livekit-otel was tested with %s; livekit-agents %s is newer, so it instruments "
            "the hooks it finds and warns about any it cannot",
            SUPPORTED_RANGE,
            found,
        )


# -- reading livekit objects -------------------------------------------------------------
def _activity_module() -> Any:
    return importlib.import_module(MODULE_ACTIVITY)


def _context_var(name: str) -> ContextVar[Any] | None:
    var = getattr(_activity_module(), name, None)
    return var if isinstance(var, ContextVar) else None


_speech_var: ContextVar[Any] | None = None
_activity_var: ContextVar[Any] | None = None


def load_context_vars() -> None:
    """Look up LiveKit's task-local speech and activity variables once, at instrument time."""
    global _speech_var, _activity_var
    _speech_var = _context_var("_SpeechHandleContextVar")
    _activity_var = _context_var("_AgentActivityContextVar")


def current_speech() -> Any | None:
    """The ``SpeechHandle`` whose reply task is running, or ``None``."""
    return _speech_var.get(None) if _speech_var is not None else None


def current_activity() -> Any | None:
    """The ``AgentActivity`` whose task is running, or ``None``."""
    return _activity_var.get(None) if _activity_var is not None else None


def activity_session(activity: Any) -> Any | None:
    """The ``AgentSession`` an ``AgentActivity`` belongs to."""
    return getattr(activity, "_session", None) or getattr(activity, "session", None)


def agent_name(agent: Any) -> str:
    """An agent's label (1.1+ has ``label``), else its class name."""
    label = getattr(agent, "label", None)
    return label if isinstance(label, str) and label else type(agent).__name__


def session_agent(session: Any) -> Any | None:
    """The agent currently running a session (``current_agent`` on 1.x, else ``_agent``)."""
    if session is None:
        return None
    try:
        agent = getattr(session, "current_agent", None)
    except Exception:  # raises before start on some releases
        agent = None
    return agent if agent is not None else getattr(session, "_agent", None)


def current_agent(session: Any) -> Any | None:
    """The agent whose activity is running now, else the session's current agent."""
    activity = current_activity()
    agent = getattr(activity, "agent", None) if activity is not None else None
    return agent if agent is not None else session_agent(session)


def handoff_agents(item: Any) -> tuple[str | None, str | None]:
    """The old and new agent ids of an ``agent_handoff`` chat item."""
    old_id = getattr(item, "old_agent_id", None)
    new_id = getattr(item, "new_agent_id", None)
    return (str(old_id) if old_id else None), (str(new_id) if new_id else None)


def speech_interrupted(handle: Any) -> bool:
    """Whether a speech handle was interrupted."""
    return bool(getattr(handle, "interrupted", False))


def speech_scheduled(handle: Any) -> bool:
    """Whether a speech handle was ever scheduled (a discarded preemptive attempt was not)."""
    scheduled = getattr(handle, "scheduled", None)
    if isinstance(scheduled, bool):
        return scheduled
    event = getattr(handle, "_scheduled_fut", None)
    done = getattr(event, "done", None)
    return bool(done()) if callable(done) else True


def model_and_provider(component: Any) -> tuple[str | None, str | None]:
    """``model`` and ``provider`` of an STT, LLM or TTS object, where the release has them."""
    if component is None:
        return None, None
    model = _safe_str(component, "model")
    provider = _safe_str(component, "provider")
    return model, provider


def _safe_str(component: Any, name: str) -> str | None:
    try:
        value = getattr(component, name, None)
    except Exception:
        return None
    return value if isinstance(value, str) and value and value != "unknown" else None


def is_realtime_model(component: Any) -> bool:
    """Whether an agent's ``llm`` is a realtime (speech-to-speech) model."""
    try:
        from livekit.agents.llm import RealtimeModel
    except ImportError:
        return False
    return isinstance(component, RealtimeModel)


def session_component(session: Any, name: str) -> Any | None:
    """The session's (or the current agent's) ``stt``, ``llm`` or ``tts``."""
    activity = getattr(session, "_activity", None)
    component = getattr(activity, name, None) if activity is not None else None
    if component is None:
        component = getattr(session, name, None)
    return component


def model_parameters(model_settings: Any) -> dict[str, Any]:
    """The request parameters LiveKit passes to the LLM node (``tool_choice``), when set."""
    tool_choice = getattr(model_settings, "tool_choice", None)
    if isinstance(tool_choice, (str, dict)):
        return {"tool_choice": tool_choice}
    return {}


def job_info() -> tuple[str | None, str | None]:
    """Room name and job id when running inside a LiveKit job, else ``(None, None)``."""
    try:
        from livekit.agents import get_job_context

        context = get_job_context()
    except Exception:
        return None, None
    if context is None:
        return None, None
    room = getattr(context, "room", None)
    job = getattr(context, "job", None)
    room_name = getattr(room, "name", None) or getattr(getattr(job, "room", None), "name", None)
    job_id = getattr(job, "id", None)
    return (room_name or None), (job_id or None)


def generation_response(event: Any) -> tuple[str, bool]:
    """The response id and ``user_initiated`` flag of a ``GenerationCreatedEvent``."""
    response_id = getattr(event, "response_id", None)
    return (str(response_id) if response_id else ""), bool(getattr(event, "user_initiated", False))


def realtime_transcript(event: Any) -> tuple[str, bool, float | None]:
    """Text, finality and (1.8+) turn start of an ``InputTranscriptionCompleted`` event."""
    started = getattr(event, "turn_started_at", None)
    return (
        str(getattr(event, "transcript", "") or ""),
        bool(getattr(event, "is_final", False)),
        float(started) if isinstance(started, (int, float)) else None,
    )


def realtime_silence_window(model: Any) -> float:
    """Seconds of silence a realtime model's server-side turn detection waits before it ends
    the user's turn (``_opts.turn_detection.silence_duration_ms`` of LiveKit's OpenAI plugin
    and of plugins built on it); 0 when the model has no such setting (semantic detection).

    LiveKit's ``InputSpeechStoppedEvent`` carries no time of its own (the server's
    ``audio_end_ms`` stops in the plugin), so the end of speech is its arrival minus this.
    """
    detection = _field(getattr(model, "_opts", None), "turn_detection")
    silence_ms = _field(detection, "silence_duration_ms")
    if isinstance(silence_ms, (int, float)) and not isinstance(silence_ms, bool):
        return max(0.0, float(silence_ms) / 1000.0)
    return 0.0


def _field(owner: Any, name: str) -> Any:
    """``owner.name`` or ``owner[name]`` (plugins keep their options as objects or dicts)."""
    if owner is None:
        return None
    if isinstance(owner, dict):
        return owner.get(name)
    return getattr(owner, name, None)


def vad_speech_end(event: Any, now: float) -> float:
    """When the user's speech ended, as a VAD end-of-speech event dates it (``now`` without one)."""
    silence = getattr(event, "silence_duration", 0.0) or 0.0
    inference = getattr(event, "inference_duration", 0.0) or 0.0  # 1.4+
    return now - float(silence) - float(inference)


# streams that receive the LLM's raw tokens and pass whole sentences (or the same tokens)
# on to another TTS: their push_text is not the text reaching a synthesizer
_FORWARDING_STREAMS = frozenset({"StreamAdapterWrapper", "FallbackSynthesizeStream"})


def sends_text_to_synthesis(stream: Any) -> bool:
    """Whether ``push_text`` on this stream hands text to a synthesizer itself."""
    return type(stream).__name__ not in _FORWARDING_STREAMS


# -- private shapes of a session, a reply and a tool call -----------------------------------
def session_already_started(session: Any) -> bool:
    """Whether ``AgentSession.start`` already ran on this session (``_started``)."""
    return bool(getattr(session, "_started", False))


def session_running(session: Any) -> bool:
    """Whether a session is started, as ``_aclose_impl`` sees it (``True`` when unknown)."""
    return bool(getattr(session, "_started", True))


def inference_task(result: Any) -> tuple[Any, Any]:
    """The ``(task, data)`` pair ``perform_llm_inference`` / ``perform_tts_inference`` return."""
    task, data = result
    return task, data


@dataclass(frozen=True)
class GeneratedReply:
    """What an LLM inference produced, read from LiveKit's ``_LLMGenerationData``."""

    text: str
    tool_calls: list[Any]
    ttft: float | None


def generated_reply(data: Any) -> GeneratedReply:
    """The text, tool calls and time to first token of a finished LLM inference."""
    ttft = getattr(data, "ttft", None)
    return GeneratedReply(
        text=str(getattr(data, "generated_text", "") or ""),
        tool_calls=list(getattr(data, "generated_functions", None) or ()),
        ttft=float(ttft) if isinstance(ttft, (int, float)) and ttft >= 0 else None,
    )


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call returned, read from LiveKit's tool execution output."""

    call: Any | None
    output: str
    is_error: bool
    exception: BaseException | None


def tool_outcome(output: Any) -> ToolOutcome:
    """The call, output text, error flag and exception of one tool execution output."""
    call_output = getattr(output, "fnc_call_out", None)
    exception = getattr(output, "raw_exception", None)
    return ToolOutcome(
        call=getattr(output, "fnc_call", None),
        output=str(getattr(call_output, "output", "") or ""),
        is_error=bool(getattr(call_output, "is_error", False)),
        exception=exception if isinstance(exception, BaseException) else None,
    )


def function_call_fields(call: Any) -> tuple[str, str, str]:
    """Name, call id and JSON arguments of an ``llm.FunctionCall``."""
    return (
        str(getattr(call, "name", "")),
        str(getattr(call, "call_id", "")),
        str(getattr(call, "arguments", "") or ""),
    )


def end_of_turn_transcript(info: Any) -> str | None:
    """The transcript LiveKit commits with a user turn (``EndOfTurnInfo.new_transcript``)."""
    text = getattr(info, "new_transcript", None)
    return text if isinstance(text, str) else None


def chat_items(chat_ctx: Any) -> list[Any] | None:
    """The items of a ``ChatContext``."""
    items = getattr(chat_ctx, "items", None)
    return items if isinstance(items, list) else None


def transcript_paced(session: Any) -> bool:
    """Whether the session's transcription output is paced with the audio (a room's
    ``_SyncedTextOutput``): then LiveKit's message of an interrupted reply is what was heard."""
    output = getattr(getattr(session, "output", None), "transcription", None)
    for _ in range(8):  # outputs chain through next_in_chain
        if output is None:
            return False
        if type(output).__name__ == "_SyncedTextOutput":
            return True
        output = getattr(output, "next_in_chain", None)
    return False


class RealtimePrompt(NamedTuple):
    """What a realtime model had before it when a response started."""

    instructions: tuple[str, ...]
    items: list[Any] | None
    tools: list[Any]


def realtime_prompt(activity: Any, reply_instructions: Any = None) -> RealtimePrompt:
    """The agent's instructions (and a reply's own), its chat items and the realtime
    session's function tools, as an ``AgentActivity`` holds them."""
    agent = getattr(activity, "_agent", None)
    instructions = tuple(
        str(text) for text in (getattr(agent, "instructions", None), reply_instructions) if text
    )
    session = getattr(activity, "_rt_session", None)
    return RealtimePrompt(
        instructions=instructions,
        items=chat_items(getattr(agent, "chat_ctx", None)),
        tools=function_tools(getattr(session, "tools", None)),
    )


def function_tools(tool_ctx: Any) -> list[Any]:
    """The function tools a ``ToolContext`` offers the LLM."""
    tools = getattr(tool_ctx, "function_tools", None)
    return list(tools.values()) if isinstance(tools, dict) else []


_TOOL_DEFINITIONS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], dict[str, Any] | None]] = (
    weakref.WeakKeyDictionary()
)
"""Definitions built from a tool's signature, by the tool's function, then by its name,
description and whether it is bound to an agent: every call of an agent offers the same
tools."""


def tool_definition(tool: Any) -> dict[str, Any] | None:
    """One tool as ``{"type": "function", "name", "description", "parameters"}``.

    A tool with a raw schema is read as it is. Any other is described once in the process:
    LiveKit derives its schema through a new pydantic model each time (about 1 ms a tool,
    and garbage for the collector), and each call of an agent offers the same tools. The
    definition returned is shared: read only.
    """
    raw = _raw_schema(tool)
    if raw is not None:
        return {
            "type": "function",
            "name": raw.get("name", ""),
            "description": raw.get("description") or "",
            "parameters": raw.get("parameters", {}),
        }
    function = getattr(tool, "_func", None) or getattr(tool, "__func__", tool)  # 1.4+ / 1.3
    info = getattr(tool, "info", None)
    bound = getattr(tool, "_instance", None) is not None or hasattr(tool, "__self__")
    variant = (getattr(info, "name", None), getattr(info, "description", None), bound)
    try:
        known = _TOOL_DEFINITIONS.setdefault(function, {})
    except TypeError:  # a callable that takes no weak reference
        return _schema_definition(tool)
    if variant not in known:
        known[variant] = _schema_definition(tool)
    return known[variant]


def _schema_definition(tool: Any) -> dict[str, Any] | None:
    try:
        from livekit.agents.llm.utils import build_legacy_openai_schema

        schema = build_legacy_openai_schema(tool, internally_tagged=True)
    except Exception:
        return None
    return schema if isinstance(schema, dict) else None


def _raw_schema(tool: Any) -> dict[str, Any] | None:
    info = getattr(tool, "info", None)  # 1.4+: RawFunctionTool.info.raw_schema
    raw = getattr(info, "raw_schema", None)
    if isinstance(raw, dict):
        return raw
    try:  # 1.3: a decorated function with its info kept aside
        from livekit.agents import llm

        if llm.tool_context.is_raw_function_tool(tool):
            raw = llm.tool_context.get_raw_function_info(tool).raw_schema
    except Exception:
        return None
    return raw if isinstance(raw, dict) else None


def livekit_recording(session: Any) -> tuple[Path | None, float | None, bool] | None:
    """LiveKit's own recording of a session (``start(record=...)`` in a job): its file, its
    start (``time.time()``), and whether it is still being written; ``None`` without one."""
    recorder = getattr(session, "_recorder_io", None)
    if recorder is None:
        return None
    path = getattr(recorder, "output_path", None)
    # what the session report gives as audio_recording_started_at (1.3.6 to 1.8.9)
    started = getattr(recorder, "recording_started_at", None)
    writing = bool(getattr(recorder, "recording", False))
    return (
        Path(path) if path else None,
        float(started) if isinstance(started, (int, float)) else None,
        writing,
    )
