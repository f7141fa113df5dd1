"""Captured text: redaction, size limits, and chat items as messages a backend renders.

Capturing the prompt never grows with the length of the call: each ``llm_node`` records
only the chat items added since the previous generation of the session (found by
walking back from the end of the context, at most ``prompt_window`` items) plus the span
id of that generation, and the first generation records at most ``prompt_window`` items
plus the system instructions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .config import Options
from .redaction import redact_pii as redact_pii

TRUNCATION_MARKER = "…[truncated {dropped} chars]"


def limit(text: str, options: Options) -> str:
    """Apply the redaction hook, then the size limit with a visible truncation marker."""
    if options.redact is not None:
        text = options.redact(text)
    max_length = options.max_attribute_length
    if len(text) <= max_length:
        return text
    dropped = len(text) - max_length
    return text[:max_length] + TRUNCATION_MARKER.format(dropped=dropped)


def to_json(value: Any, options: Options) -> str:
    """``value`` as compact JSON, each string redacted, the whole within the size limit."""
    return limit(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str), options)


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


class PromptCursor:
    """Where the previous generation of a session ended, so the next records only what is new."""

    __slots__ = ("last_item_id", "last_span_id")

    def __init__(self) -> None:
        self.last_item_id: str | None = None
        self.last_span_id: str | None = None

    def new_items(self, items: Sequence[Any], window: int) -> tuple[list[Any], bool]:
        """The items added since the previous generation, and whether that one was found.

        Walks back at most ``window`` items; when the previous end is not among them (the
        first generation, or a context that was rewritten) it returns the last ``window``
        items, with the system instructions in front when they fell outside.
        """
        count = len(items)
        last_id = self.last_item_id
        if last_id is not None:
            stop = max(count - window, 0)
            for index in range(count - 1, stop - 1, -1):
                if getattr(items[index], "id", None) == last_id:
                    return list(items[index + 1 :]), True
        start = max(count - window, 0)
        chosen = list(items[start:])
        if start > 0:
            first = items[0]
            if getattr(first, "type", None) == "message" and getattr(first, "role", "") in (
                "system",
                "developer",
            ):
                chosen.insert(0, first)
        return chosen, False

    def advance(self, items: Sequence[Any], span_id: str) -> None:
        """Remember the end of this generation's prompt."""
        if items:
            self.last_item_id = getattr(items[-1], "id", None)
        self.last_span_id = span_id
