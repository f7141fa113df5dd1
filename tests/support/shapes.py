"""The span shapes of a reply on the installed livekit-agents release.

Releases differ in when a reply synthesizes speech, and the trace shows it; which shape
applies is what ``livekit_otel.compat`` detects, so the tests ask it here instead of
checking versions.
"""

from __future__ import annotations

from livekit_otel import compat

SPEAKING_STEP = ["llm_node", "tts_node"]
"""An LLM step whose text is spoken."""


def tool_only_step(tools: int = 1) -> list[str]:
    """The children of an ``agent_turn`` for an LLM step that only calls tools (audio output).

    Where every LLM step starts its own TTS inference, such a step has a ``tts_node`` on an
    empty text stream, right after its ``llm_node`` and before its tools.
    """
    tts = ["tts_node"] if compat.tts_runs_for_tool_only_steps() else []
    return ["llm_node", *tts, *["function_tool"] * tools]


def tool_reply(tools: int = 1) -> list[str]:
    """The children of an ``agent_turn`` that calls tools, then speaks about their output."""
    return [*tool_only_step(tools), *SPEAKING_STEP]


def discarded_attempt() -> list[str]:
    """The children of a preemptive ``agent_turn`` that was discarded before it was scheduled."""
    return SPEAKING_STEP if compat.tts_starts_before_scheduling() else ["llm_node"]


def tts_nodes_per_reply(tool_only_steps: int) -> int:
    """How many ``tts_node`` spans a reply with this many tool-only LLM steps has."""
    return 1 + (tool_only_steps if compat.tts_runs_for_tool_only_steps() else 0)
