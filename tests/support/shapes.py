"""The span shapes of a reply on the installed livekit-agents release.

Releases differ in when a reply synthesizes speech, and the trace shows it; which shape
applies is read here from the installed release's source, instead of checking versions.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

SPEAKING_STEP = ["llm_node", "tts_node"]
"""An LLM step whose text is spoken."""


def tool_only_step(tools: int = 1) -> list[str]:
    """The children of an ``agent_turn`` for an LLM step that only calls tools (audio output).

    Where every LLM step starts its own TTS inference, such a step has a ``tts_node`` on an
    empty text stream, right after its ``llm_node`` and before its tools.
    """
    tts = ["tts_node"] if tts_runs_for_tool_only_steps() else []
    return ["llm_node", *tts, *["function_tool"] * tools]


def tool_reply(tools: int = 1) -> list[str]:
    """The children of an ``agent_turn`` that calls tools, then speaks about their output."""
    return [*tool_only_step(tools), *SPEAKING_STEP]


def discarded_attempt() -> list[str]:
    """The children of a preemptive ``agent_turn`` that was discarded before it was scheduled."""
    return SPEAKING_STEP if tts_starts_before_scheduling() else ["llm_node"]


def tts_nodes_per_reply(tool_only_steps: int) -> int:
    """How many ``tts_node`` spans a reply with this many tool-only LLM steps has."""
    return 1 + (tool_only_steps if tts_runs_for_tool_only_steps() else 0)


def synthesized(tts_node: Mapping[str, Any]) -> bool:
    """Whether a ``tts_node`` with these attributes synthesized speech.

    Such a node carries LiveKit's TTS metrics (``lk.tts.request_id``), hence usage, and is
    a Langfuse generation. Where tool-only LLM steps have their own ``tts_node``
    (:func:`tts_runs_for_tool_only_steps`), those synthesize nothing from their empty
    text stream: no metrics, no usage, no cost. Elsewhere every ``tts_node`` counts.
    """
    return "lk.tts.request_id" in tts_node or not tts_runs_for_tool_only_steps()


@functools.cache
def _reply_source() -> str:
    """The source of ``AgentActivity._pipeline_reply_task_impl``, or ``""`` if unreadable."""
    try:
        activity_class = importlib.import_module(
            "livekit.agents.voice.agent_activity"
        ).AgentActivity
        return inspect.getsource(activity_class._pipeline_reply_task_impl)
    except Exception:
        return ""


def tts_runs_for_tool_only_steps() -> bool:
    """Whether each LLM step of a reply with audio output starts its own TTS inference.

    Then an LLM step that only calls tools still has a ``tts_node``, on an empty text
    stream, started right after its ``llm_node`` and before its tools run (livekit-agents
    1.3 to 1.5). Later releases start synthesis lazily, on the first text of each speech
    segment (``_produce_segments``), so such a step has no ``tts_node``.
    """
    source = _reply_source()
    return "perform_tts_inference" in source and "_produce_segments" not in source


def tts_starts_before_scheduling() -> bool:
    """Whether a reply starts its TTS inference before it is scheduled to speak.

    Then a preemptive attempt that is discarded has a ``tts_node`` as well as its
    ``llm_node`` (livekit-agents 1.3 to 1.5.3). Later releases wait for the reply to be
    scheduled unless the ``preemptive_tts`` option asks otherwise.
    """
    source = _reply_source()
    return "perform_tts_inference" in source and "preemptive_tts" not in source


@functools.cache
def _vad_event_source() -> str:
    """The source of ``AudioRecognition._on_vad_event``, or ``""`` if unreadable."""
    try:
        module = importlib.import_module("livekit.agents.voice.audio_recognition")
        return inspect.getsource(module.AudioRecognition._on_vad_event)
    except Exception:
        return ""


def speech_start_dated_by_vad() -> bool:
    """Whether LiveKit dates the start of the user's speech back by the VAD's measure.

    Then the start of speech is when the VAD's START_OF_SPEECH event arrived, less the
    ``speech_duration`` it reports (later releases). Earlier ones (1.3) date it when the
    event arrived: a scripted utterance, whose durations are simulated, then lasts no real
    time between its START_OF_SPEECH and the end of speech the END_OF_SPEECH event dates.
    """
    return "ev.speech_duration" in _vad_event_source()
