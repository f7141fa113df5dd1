"""A trace as a person wants to read it in a terminal: the span tree and a latency table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from livekit_otel import attributes as attr

_SHOWN = (
    attr.LK_USER_TRANSCRIPT,
    attr.LK_TURN_AGENT_TEXT,
    attr.GEN_AI_TOOL_NAME,
    attr.GEN_AI_REQUEST_MODEL,
    attr.LK_TURN_INTERRUPTED,
    attr.LK_SESSION_CLOSE_REASON,
)


def _ms(span: ReadableSpan) -> float:
    return ((span.end_time or 0) - (span.start_time or 0)) / 1e6


def _brief(span: ReadableSpan) -> str:
    values = span.attributes or {}
    parts: list[str] = []
    for key in _SHOWN:
        value = values.get(key)
        if value is None or value is False:
            continue
        text = str(value)
        if len(text) > 48:
            text = text[:45] + "..."
        parts.append(f"{key.rsplit('.', 1)[-1]}={text!r}" if isinstance(value, str) else key)
    if span.status.status_code.name == "ERROR":
        parts.append("ERROR")
    return "  ".join(parts)


def span_tree(spans: Sequence[ReadableSpan]) -> str:
    """The spans of one or more traces as an indented tree with durations."""
    known = {span.context.span_id for span in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in known else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, prefix: str) -> None:
        kids = sorted(children.get(parent, []), key=lambda s: s.start_time or 0)
        for index, span in enumerate(kids):
            last = index == len(kids) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            label = f"{prefix}{branch}{span.name}"
            lines.append(f"{label:<34} {_ms(span):8.1f} ms  {_brief(span)}".rstrip())
            walk(
                span.context.span_id,
                prefix + ("" if parent is None else ("   " if last else "│  ")),
            )

    walk(None, "")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value * 1000:8.1f}" if isinstance(value, (int, float)) else f"{'-':>8}"


def latency_table(spans: Iterable[ReadableSpan]) -> str:
    """One row per agent turn: end-of-turn delay, LLM ttft, TTS ttfb and their total, in ms."""
    rows = ["turn  speech id            eou delay  llm ttft  tts ttfb     total  interrupted"]
    turns = sorted(
        (s for s in spans if s.name == attr.SPAN_AGENT_TURN), key=lambda s: s.start_time or 0
    )
    for number, span in enumerate(turns, 1):
        values = span.attributes or {}
        rows.append(
            f"{number:>4}  {str(values.get(attr.LK_SPEECH_ID, ''))[:18]:<18} "
            f"{_fmt(values.get(attr.LK_TURN_EOU_DELAY))}  {_fmt(values.get(attr.LK_TURN_LLM_TTFT))}"
            f"  {_fmt(values.get(attr.LK_TURN_TTS_TTFB))}  "
            f"{_fmt(values.get(attr.LK_TURN_TOTAL_LATENCY))}  "
            f"{'yes' if values.get(attr.LK_TURN_INTERRUPTED) else ''}"
        )
    rows.append("(milliseconds; total = eou delay + llm ttft + tts ttfb)")
    return "\n".join(rows)
