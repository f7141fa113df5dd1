"""A trace as a person wants to read it in a terminal: the span tree and a latency table.

The rendering is the product's own (``livekit_otel.terminal``, what ``setup_console()``
prints for a user's agent); this module keeps the devkit's names for it:
``span_tree(spans)`` and ``latency_table(spans)`` take finished spans, of one or more
traces.
"""

from __future__ import annotations

from livekit_otel.terminal import latency_table, span_tree

__all__ = ["latency_table", "span_tree"]
