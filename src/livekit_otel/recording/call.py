"""The call at a glance: what a session's spans hold, summed as they end.

Costs by kind, turns and interruptions, who spoke how long, the longest silence between
speakers, the perceived latencies and the words, kept small (a few numbers per turn and a
bounded transcript) however long the call.
"""

from __future__ import annotations

import statistics
from array import array
from collections import deque

from ..mapping.facts import CallFacts, Cost, Usage
from ..mapping.prices import PriceTable

# transcript lines kept: the last 40 (20 exchanges); the attribute is cut to the size limit
TRANSCRIPT_LINES = 40
# speech intervals kept for the longest silence (they come a little out of order: a user
# turn is written after its reply started); the older half is folded in when it fills
_INTERVALS = 8


class CallTally:
    """One session's running totals, from the facts its spans were written with."""

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices
        self.agent_name: str | None = None
        self.end_reason: str | None = None
        self.costs: dict[str, float] = {}
        self.turns = 0
        self.interrupted = 0
        self.user_talk = 0.0
        self.agent_talk = 0.0
        self.latencies = array("d")  # 8 bytes a heard reply
        self.lines: deque[tuple[str, str]] = deque(maxlen=TRANSCRIPT_LINES)
        self.lines_dropped = 0
        self._speech: list[tuple[float, float]] = []
        self._longest_gap: float | None = None
        self._spoken_until: float | None = None

    # -- costs ------------------------------------------------------------------------------
    def billed(self, usage: Usage | None) -> Cost | None:
        """Price one span's usage and add it to the call's total of its kind."""
        cost = self.prices.cost(usage)
        if cost is not None and usage is not None:
            self.costs[usage.kind] = self.costs.get(usage.kind, 0.0) + cost.total
        return cost

    # -- turns and speech -------------------------------------------------------------------
    def agent_turn(
        self,
        interrupted: bool,
        latency: float | None,
        heard_from: float | None,
        played: float | None,
    ) -> None:
        """An agent reply ended (a discarded one is not counted)."""
        self.turns += 1
        self.interrupted += interrupted
        if latency is not None:
            self.latencies.append(latency)
        if played:
            self.agent_talk += played
            if heard_from is not None:
                self.speech(heard_from, heard_from + played)

    def user_spoke(self, start: float, end: float | None) -> None:
        """The user spoke from ``start`` to ``end`` (one utterance)."""
        if end is not None and end > start:
            self.user_talk += end - start
            self.speech(start, end)

    def speech(self, start: float, end: float) -> None:
        """Someone spoke from ``start`` to ``end``; the silences between are measured later."""
        self._speech.append((start, end))
        if len(self._speech) > _INTERVALS:
            self._fold(len(self._speech) // 2)

    def _fold(self, count: int) -> None:
        """Measure the gaps of the oldest ``count`` intervals and forget them."""
        self._speech.sort()
        for start, end in self._speech[:count]:
            self._advance(start, end)
        del self._speech[:count]

    def _advance(self, start: float, end: float) -> None:
        if self._spoken_until is not None:  # overlapping speech: a silence of 0
            gap = max(0.0, start - self._spoken_until)
            if self._longest_gap is None or gap > self._longest_gap:
                self._longest_gap = gap
        if self._spoken_until is None or end > self._spoken_until:
            self._spoken_until = end

    def said(self, role: str, text: str | None) -> None:
        """A line of the conversation (user or agent), for the transcript."""
        if not text:
            return
        if len(self.lines) == self.lines.maxlen:
            self.lines_dropped += 1
        self.lines.append((role, text))

    # -- the summary ------------------------------------------------------------------------
    def facts(self, duration: float) -> CallFacts:
        """The call at a glance, as it closes."""
        self._fold(len(self._speech))
        latencies = self.latencies
        return CallFacts(
            duration=duration,
            turns=self.turns,
            interrupted_turns=self.interrupted,
            user_talk_time=self.user_talk,
            agent_talk_time=self.agent_talk,
            longest_silence=self._longest_gap,
            latency_median=statistics.median(latencies) if latencies else None,
            latency_max=max(latencies) if latencies else None,
            end_reason=self.end_reason,
            costs=dict(self.costs),
            transcript=list(self.lines),
            transcript_dropped=self.lines_dropped,
        )
