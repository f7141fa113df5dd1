"""Captured text: redaction, size limits, and chat items as messages a backend renders.

Capturing the prompt never grows with the length of the call: each ``llm_node`` records
the system instructions and at most ``prompt_window`` of the most recent chat items, each
item serialized once while it stays in that window.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..config import Options
from .redaction import redact_pii as redact_pii

TRUNCATION_MARKER = "…[truncated {dropped} chars]"


def redact(text: str, options: Options) -> str:
    """Apply the redaction hook, if one is set."""
    return options.redact(text) if options.redact is not None else text


def limit(text: str, options: Options) -> str:
    """Apply the redaction hook, then the size limit with a visible truncation marker."""
    return truncate(redact(text, options), options)


def truncate(text: str, options: Options) -> str:
    """Cut ``text`` at the size limit, with a visible truncation marker."""
    max_length = options.max_attribute_length
    if len(text) <= max_length:
        return text
    dropped = len(text) - max_length
    return text[:max_length] + TRUNCATION_MARKER.format(dropped=dropped)


def to_json(value: Any, options: Options) -> str:
    """``value`` as compact JSON, each string redacted, the whole within the size limit."""
    return limit(compact_json(value), options)


# one encoder for every value: json.dumps with options builds a new one per call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def compact_json(value: Any) -> str:
    """``value`` as compact JSON (non-ASCII kept, anything else as its ``str``)."""
    return _ENCODER.encode(value)


def synthesized_part(text: str, characters: object) -> str:
    """The start of ``text`` that speech synthesis received, given how many characters it took.

    Sentence-by-sentence synthesis counts each sentence without the spaces between them,
    so the count is matched against ``text`` with whitespace runs between sentences skipped.
    """
    if not isinstance(characters, int) or characters >= len(text.strip()):
        return text
    taken = 0
    for index, char in enumerate(text.lstrip()):
        if taken >= characters:
            return text.lstrip()[:index].rstrip()
        if not (char.isspace() and index > 0 and text.lstrip()[index - 1] in ".!?\n"):
            taken += 1
    return text


def spoken_part(text: str, share: float) -> str:
    """The words of ``text`` within its first ``share`` (0 to 1), cut at a word boundary."""
    text = text.strip()
    cut = int(len(text) * max(0.0, min(share, 1.0)))
    if cut >= len(text):
        return text
    head = text[:cut]
    if not text[cut].isspace():
        head = head.rsplit(None, 1)[0] if " " in head else ""
    return head.rstrip()


def message_text(item: Any) -> str:
    """The text of a chat message, whatever the release's content shape."""
    text = getattr(item, "text_content", None)
    if isinstance(text, str):
        return text
    content = getattr(item, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(part for part in content if isinstance(part, str))
    return ""


def chat_item_message(item: Any) -> dict[str, Any] | None:
    """One chat item as an OpenAI-style message (Langfuse renders these as a chat)."""
    kind = getattr(item, "type", None)
    if kind == "message":
        return {"role": str(getattr(item, "role", "user")), "content": message_text(item)}
    if kind == "function_call":
        return {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": getattr(item, "call_id", ""),
                    "type": "function",
                    "function": {
                        "name": getattr(item, "name", ""),
                        "arguments": getattr(item, "arguments", ""),
                    },
                }
            ],
        }
    if kind == "function_call_output":
        return {
            "role": "tool",
            "tool_call_id": getattr(item, "call_id", ""),
            "name": getattr(item, "name", ""),
            "content": str(getattr(item, "output", "")),
        }
    return None


def tool_call_messages(calls: Sequence[Any]) -> list[dict[str, Any]]:
    """The tool calls an LLM generated, as an OpenAI-style ``tool_calls`` list."""
    return [
        {
            "id": getattr(call, "call_id", ""),
            "type": "function",
            "function": {
                "name": getattr(call, "name", ""),
                "arguments": getattr(call, "arguments", ""),
            },
        }
        for call in calls
    ]


class PromptWindow:
    """The prompt of each generation as the model saw it, bounded and serialized once per item.

    A prompt is the system instructions plus at most ``window`` of the most recent chat
    items. Each item is turned into JSON the first time a prompt includes it and reused
    while it stays in the window, so the cost per generation stays flat over a long call.
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, int], str | None] = {}

    def render(self, items: Sequence[Any], window: int, options: Options) -> tuple[str, int]:
        """The prompt as one JSON array, and how many messages it holds."""
        count = len(items)
        start = max(count - window, 0)
        chosen = list(items[start:])
        if start > 0 and _is_instructions(items[0]):
            chosen.insert(0, items[0])
        previous = self._cache
        cache: dict[tuple[Any, int], str | None] = {}
        parts: list[str] = []
        for item in chosen:
            key = (getattr(item, "id", None), id(item))
            if key in previous:
                serialized = previous[key]
            else:
                message = chat_item_message(item)
                serialized = None if message is None else redact(compact_json(message), options)
            cache[key] = serialized
            if serialized is not None:
                parts.append(serialized)
        self._cache = cache
        return truncate("[" + ",".join(parts) + "]", options), len(parts)


def _is_instructions(item: Any) -> bool:
    return getattr(item, "type", None) == "message" and getattr(item, "role", "") in (
        "system",
        "developer",
    )
