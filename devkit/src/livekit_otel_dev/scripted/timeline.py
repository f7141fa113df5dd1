"""The script's own clock: what happened when, and the latency a caller would have heard.

A `ScriptTimeline` is given to a scripted run (`run_scripted_session(..., timeline=tl)`
or `ScriptedConversation(timeline=tl)`); every scripted component then appends a
`Stamp(name, time, speech_id, data)` when it does something that matters for latency.
`time` is `time.time()`; `speech_id` is the id of the LiveKit `SpeechHandle` whose
reply task was running (LiveKit's `_SpeechHandleContextVar`), or `None`.

Stamps (all `time.time()`; `data` in brackets):

- `user.speech_start` (driver): START_OF_SPEECH sent [turn, text].
- `user.speech_end` (driver, real-time silence only): the last INFERENCE_DONE with
  speech sent: the TRUE end of the user's speech [turn, text].
- `vad.start_of_speech` / `vad.inference_done` / `vad.end_of_speech` (`ScriptedVAD`):
  any VAD event sent [its durations].
- `livekit.speech_end_heard` (driver, real-time silence only): LiveKit handled that
  END_OF_SPEECH, at its `user_state_changed` (listening) event's `created_at`; LiveKit
  (and livekit-otel) date the end of speech there, as `now - silence_duration`, so the lag
  from `vad.end_of_speech` makes that date late by as much [turn].
- `stt.final` (driver): the final transcript sent [turn, text].
- `livekit.eou` (driver): LiveKit's `EOUMetrics` for the turn, at its `timestamp`;
  `speech_id` is the reply [turn, LiveKit's delays].
- `hook.start` / `hook.end` (`ScriptedAgent`): around its `on_user_turn_completed` [text].
- `llm.request` / `llm.first_chunk` / `llm.end` (`ScriptedLLMStream`): request started,
  first chunk sent (after the ttft), last chunk sent [request_id, kind: text or tools].
- `tool.start` / `tool.end` (timed tools): around the tool's sleep and run [name, run].
- `tts.synthesize` (`ScriptedTTS.synthesize()`): text sent to synthesis; with LiveKit's
  sentence-by-sentence StreamAdapter, one whole sentence [text].
- `tts.push_text` (`ScriptedStreamingTTS` stream): its first `push_text` [text].
- `tts.first_audio` (scripted TTS streams): first audio pushed, `first_byte_delay` after
  the text [request_id].
- `tts_node.first_frame` (`ScriptedAgent.tts_node`): the TTS node yields its first frame.
- `playout.start` / `playout.end` (`ScriptedAgent.transcription_node`): around the
  playout delay [delay].
- `output.first_frame` (`ScriptedAudioOutput`): the first frame of a segment handed to
  `capture_frame`.
- `output.segment_end` (`ScriptedAudioOutput`): a segment finished [pushed, played,
  interrupted].

`expected_latencies(timeline)` turns them into the perceived latency of each reply to a
user's audio turn, with the contract's six parts, from these stamps only (never from
the instrumentation): consecutive intervals from the true end of the user's speech to
the first audio frame handed to the output:

    p0 = user.speech_end                          (true end of speech)
    p1 = max(p0, hook.start)                      commit (the hook starts right after it)
    p2 = max(p1, hook.end)                        hook done
    p3 = max(p2, first tts.synthesize | tts.push_text of the reply)   first text to synthesis
    p4 = max(p3, first tts.first_audio of the reply)                  first synthesized audio
    p5 = max(p4, first output.first_frame of the reply)               first frame to the output
    end_of_turn = p1-p0, on_user_turn_completed = p2-p1,
    tools = |union(tool.start..tool.end of the reply) ∩ [p2, p3]|, llm = p3-p2-tools,
    tts = p4-p3, playout = p5-p4, total = p5-p0

Each reply also gets, from the same stamps, the scripted work inside each part
(`ExpectedLatency.steps`: the silence, transcript or LiveKit endpointing wait, the hook's
sleep, the LLM's times to first token, the tools, the TTS first byte, the playout sleep,
as they actually took, so late on a busy machine, each as far as it lies within its part:
work done before the commit counts nowhere) and, for each of
the contract's six moments, the window in which an observer hooked into LiveKit must see
it (`ExpectedLatency.windows`, see `MOMENTS`). A test compares livekit-otel with these,
never with the settings: on a busy machine the script itself runs late.

The cumulative max means work done before the commit (preemptive generation) costs
nothing: only the wait left after the hook counts. Without hook stamps (an agent that
is not a `ScriptedAgent`) the hook is taken from LiveKit's `EOUMetrics`
(`timestamp - on_user_turn_completed_delay` .. `timestamp`). Only turns played with
real-time silence have a true end of speech, so only they get an expected latency.
The commit itself is LiveKit-internal: the kit dates it by the hook's start, so LiveKit's
own work between the commit and the hook (waiting for the previous commit, interrupting
the current reply) counts as `end_of_turn` here.

Each part also carries LiveKit's own steps around the scripted delay (task hops,
scheduling, the sentence tokenizer): typically 0.5 to 5 ms per part, 5 to 15 ms for a
two-step (tool) LLM part. A full cyclic garbage collection can stop the loop for 100 to
200 ms on a large test heap; wrap a measured run in `paused_gc()` when comparing the
parts with the settings.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "LATENCY_PARTS",
    "MOMENTS",
    "ExpectedLatency",
    "ScriptTimeline",
    "Stamp",
    "Window",
    "current_speech_id",
    "expected_latencies",
    "expected_latency",
    "paused_gc",
]

LATENCY_PARTS = ("end_of_turn", "on_user_turn_completed", "llm", "tools", "tts", "playout")
"""The contract's parts of the perceived latency, in timeline order."""

MOMENTS = (
    "end_of_speech",
    "commit",
    "hook_returned",
    "text_sent",
    "first_audio",
    "first_frame",
)
"""The contract's six moments; the parts lie between consecutive ones (`tools` inside the
`hook_returned` .. `text_sent` interval, taken out of `llm`)."""

_speech_var: contextvars.ContextVar[Any] | None = None
_speech_var_loaded = False


def _speech_context_var() -> contextvars.ContextVar[Any] | None:
    global _speech_var, _speech_var_loaded
    if not _speech_var_loaded:
        _speech_var_loaded = True
        try:
            from livekit.agents.voice import agent_activity

            var = getattr(agent_activity, "_SpeechHandleContextVar", None)
            _speech_var = var if isinstance(var, contextvars.ContextVar) else None
        except ImportError:  # pragma: no cover - livekit-agents is a dependency
            _speech_var = None
    return _speech_var


def current_speech_id() -> str | None:
    """The id of the `SpeechHandle` whose reply task is running here, or `None`."""
    var = _speech_context_var()
    handle = var.get(None) if var is not None else None
    return getattr(handle, "id", None) if handle is not None else None


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Collect now and keep the cyclic garbage collector off inside (restored after), so
    a full collection cannot land inside a measured interval."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Stamp(NamedTuple):
    """One moment on the script's clock."""

    name: str
    time: float
    """`time.time()` when it happened."""
    speech_id: str | None
    """The reply (`SpeechHandle.id`) it happened in, or `None`."""
    data: dict[str, Any]


_AUTO: Any = object()


class Window(NamedTuple):
    """Where on the script's clock a moment observed inside LiveKit must lie.

    `earliest` is the last stamp that must come before it, `latest` the first that must
    come after it (or that it is read right before). On an idle machine the two are a few
    milliseconds apart; on a busy one LiveKit's own steps between them take longer, and
    the window widens with them.
    """

    earliest: float
    latest: float

    def holds(self, at: float, tolerance: float) -> bool:
        """Whether `at` lies in the window, give or take `tolerance` seconds."""
        return self.earliest - tolerance <= at <= self.latest + tolerance


class ScriptTimeline:
    """The stamps every scripted component writes when a run is given this timeline."""

    def __init__(self) -> None:
        self.stamps: list[Stamp] = []

    def stamp(
        self,
        name: str,
        /,
        *,
        at: float | None = None,
        speech_id: str | None = _AUTO,
        **data: Any,
    ) -> Stamp:
        """Record `name` now (or `at`), in the current speech unless `speech_id` is given."""
        when = time.time() if at is None else at
        sid = current_speech_id() if speech_id is _AUTO else speech_id
        stamp = Stamp(name, when, sid, data)
        self.stamps.append(stamp)
        return stamp

    def of(self, name: str | None = None, speech_id: str | None = _AUTO) -> list[Stamp]:
        """The stamps with this name (any if `None`), of this speech if given, in order."""
        return [
            s
            for s in self.stamps
            if (name is None or s.name == name) and (speech_id is _AUTO or s.speech_id == speech_id)
        ]

    def first(self, name: str, speech_id: str | None = _AUTO) -> Stamp | None:
        """The earliest stamp with this name (of this speech if given), or `None`."""
        found = self.of(name, speech_id)
        return min(found, key=lambda s: s.time) if found else None

    def speech_ids(self) -> list[str]:
        """Every speech id seen, in order of first appearance."""
        seen: dict[str, None] = {}
        for s in self.stamps:
            if s.speech_id is not None:
                seen.setdefault(s.speech_id, None)
        return list(seen)

    def __iter__(self) -> Iterator[Stamp]:
        return iter(list(self.stamps))

    def __len__(self) -> int:
        return len(self.stamps)

    def describe(self, origin: float | None = None) -> str:
        """The stamps as text lines, times in ms from `origin` (default: the first stamp)."""
        if not self.stamps:
            return ""
        t0 = self.stamps[0].time if origin is None else origin
        lines = []
        for s in sorted(self.stamps, key=lambda s: s.time):
            data = " ".join(f"{k}={v!r}" for k, v in s.data.items())
            at = (s.time - t0) * 1000
            lines.append(f"{at:9.1f} ms  {s.name:22} {s.speech_id or '-':16} {data}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ExpectedLatency:
    """The perceived latency of one reply to a user's audio turn, from the script's clock."""

    speech_id: str
    turn: int
    """The user turn it answers (0-based, in the order the driver played them)."""
    user_text: str
    speech_ended_at: float
    committed_at: float
    hook_ended_at: float
    text_sent_at: float | None
    first_audio_at: float | None
    first_frame_at: float
    end_of_turn: float
    on_user_turn_completed: float
    llm: float
    tools: float
    tts: float
    playout: float
    perceived_latency: float
    played_duration: float
    """Seconds of the reply's audio played (the output's playback positions, summed)."""
    interrupted: bool
    tool_intervals: tuple[tuple[float, float], ...] = field(default=())
    steps: dict[str, float] = field(default_factory=dict)
    """Per part, the scripted work recorded inside it, in seconds (see the module)."""
    windows: dict[str, Window] = field(default_factory=dict)
    """Per moment of `MOMENTS`, where an observer hooked into LiveKit sees it."""
    tools_at_most: float = 0.0
    """The most tool time an observer hooked into LiveKit can see: from each tool-calling
    LLM step's tool calls to the reply's next LLM request (where LiveKit runs the tools),
    within the part's interval. At least `tools`."""

    @property
    def parts(self) -> dict[str, float]:
        """The six parts, in timeline order."""
        return {name: getattr(self, name) for name in LATENCY_PARTS}


def _union_within(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo))
    total, end = 0.0, lo
    for a, b in clipped:
        a = max(a, end)
        if b > a:
            total += b - a
            end = b
    return total


def _tool_intervals(timeline: ScriptTimeline, speech_id: str) -> list[tuple[float, float]]:
    ends = {s.data.get("run"): s.time for s in timeline.of("tool.end", speech_id)}
    return [
        (s.time, ends[s.data.get("run")])
        for s in timeline.of("tool.start", speech_id)
        if s.data.get("run") in ends
    ]


def _hook(timeline: ScriptTimeline, lo: float, eou: Stamp) -> tuple[float, float]:
    """(start, end) of the agent's hook for the turn whose end of speech is `lo`."""
    starts = [s for s in timeline.of("hook.start") if lo <= s.time <= eou.time]
    if starts:
        start = starts[-1]
        ends = [s for s in timeline.of("hook.end") if start.time <= s.time <= eou.time]
        if ends:
            return start.time, ends[0].time
    delay = float(eou.data.get("on_user_turn_completed_delay") or 0.0)
    return eou.time - delay, eou.time


def _first_after(timeline: ScriptTimeline, name: str, after: float) -> Stamp | None:
    found = [s for s in timeline.of(name) if s.time >= after]
    return min(found, key=lambda s: s.time) if found else None


def _of_turn(timeline: ScriptTimeline, name: str, turn: Any) -> Stamp | None:
    found = [s for s in timeline.of(name) if s.data.get("turn") == turn]
    return found[-1] if found else None


def _overlap(start: float, end: float, lo: float, hi: float) -> float:
    """How much of `start`..`end` lies within `lo`..`hi`."""
    return max(0.0, min(end, hi) - max(start, lo))


def _llm_waits(timeline: ScriptTimeline, speech_id: str, lo: float, hi: float) -> float:
    """The reply's LLM requests' times to first chunk, as far as they lie within lo..hi."""
    firsts = {s.data.get("request_id"): s.time for s in timeline.of("llm.first_chunk", speech_id)}
    return sum(
        _overlap(s.time, firsts[s.data.get("request_id")], lo, hi)
        for s in timeline.of("llm.request", speech_id)
        if s.data.get("request_id") in firsts
    )


def _tool_room(timeline: ScriptTimeline, speech_id: str, lo: float, hi: float) -> float:
    """From each tool-calling step's first chunk to the reply's next LLM request, in lo..hi."""
    requests = sorted(s.time for s in timeline.of("llm.request", speech_id))
    calls = [
        s.time for s in timeline.of("llm.first_chunk", speech_id) if s.data.get("kind") == "tools"
    ]
    spans = [(t, next((r for r in requests if r >= t), hi)) for t in calls]
    return _union_within(spans, lo, hi)


def _between(start: Stamp | None, end: Stamp | None, lo: float, hi: float) -> float:
    """How much of the wait from `start` to `end` (0 without both) lies within lo..hi."""
    return _overlap(start.time, end.time, lo, hi) if start is not None and end is not None else 0.0


def _windows(raw: list[tuple[float, float]]) -> dict[str, Window]:
    """The moments' windows, each no earlier than the one before (as the parts are)."""
    windows: dict[str, Window] = {}
    low = high = float("-inf")
    for name, (earliest, latest) in zip(MOMENTS, raw, strict=True):
        low, high = max(low, earliest), max(high, latest, earliest)
        windows[name] = Window(low, high)
    return windows


def expected_latency(timeline: ScriptTimeline, speech_id: str) -> ExpectedLatency | None:
    """The expected latency of the reply `speech_id`, or `None` (not a heard reply to a
    user turn played with real-time silence)."""
    for item in expected_latencies(timeline):
        if item.speech_id == speech_id:
            return item
    return None


def expected_latencies(timeline: ScriptTimeline) -> list[ExpectedLatency]:
    """The expected perceived latency of every heard reply to a user's audio turn.

    One per user turn that LiveKit answered (`livekit.eou`), played with real-time
    silence (`user.speech_end`), whose reply handed a frame to the output.
    """
    results: list[ExpectedLatency] = []
    for eou in timeline.of("livekit.eou"):
        sid, turn = eou.speech_id, eou.data.get("turn")
        if sid is None:
            continue
        ends = [s for s in timeline.of("user.speech_end") if s.data.get("turn") == turn]
        frame = timeline.first("output.first_frame", sid)
        if not ends or frame is None:
            continue
        p0 = ends[-1].time
        hook_start, hook_end = _hook(timeline, p0, eou)
        texts = [
            s
            for s in (timeline.first("tts.synthesize", sid), timeline.first("tts.push_text", sid))
            if s is not None
        ]
        text = min(texts, key=lambda s: s.time) if texts else None
        audio = timeline.first("tts.first_audio", sid)
        p1 = max(p0, hook_start)
        p2 = max(p1, hook_end)
        anchor = next(s for s in (text, audio, frame) if s is not None)
        p3 = max(p2, anchor.time)
        p4 = max(p3, audio.time if audio is not None else p3)
        p5 = max(p4, frame.time)
        intervals = _tool_intervals(timeline, sid)
        tools = _union_within(intervals, p2, p3)
        segments = timeline.of("output.segment_end", sid)
        eos = _first_after(timeline, "vad.end_of_speech", p0)
        eos_at = eos.time if eos is not None else p0
        heard = _of_turn(timeline, "livekit.speech_end_heard", turn)
        lag = max(0.0, heard.time - eos_at) if heard is not None else 0.0
        final = _of_turn(timeline, "stt.final", turn)
        node_frame = timeline.first("tts_node.first_frame", sid)
        steps = {
            "end_of_turn": max(
                eos_at - p0,
                final.time - p0 if final is not None else 0.0,
                float(eou.data.get("end_of_utterance_delay") or 0.0),
            ),
            "on_user_turn_completed": _overlap(hook_start, hook_end, p1, p2),
            "llm": _llm_waits(timeline, sid, p2, p3),
            "tools": tools,
            "tts": _between(text, audio, p3, p4),
            "playout": _between(
                timeline.first("playout.start", sid), timeline.first("playout.end", sid), p4, p5
            ),
        }
        windows = _windows(
            [
                (p0, p0 + lag),
                (min(eos_at, p1), p1),
                (p2, max(p2, eou.time)),
                (p3, p3),
                (p4, node_frame.time if node_frame is not None else p5),
                (p5, p5),
            ]
        )
        results.append(
            ExpectedLatency(
                speech_id=sid,
                turn=int(turn) if turn is not None else -1,
                user_text=str(ends[-1].data.get("text", "")),
                speech_ended_at=p0,
                committed_at=p1,
                hook_ended_at=p2,
                text_sent_at=text.time if text is not None else None,
                first_audio_at=audio.time if audio is not None else None,
                first_frame_at=frame.time,
                end_of_turn=p1 - p0,
                on_user_turn_completed=p2 - p1,
                llm=(p3 - p2) - tools,
                tools=tools,
                tts=p4 - p3,
                playout=p5 - p4,
                perceived_latency=p5 - p0,
                played_duration=sum(float(s.data.get("played", 0.0)) for s in segments),
                interrupted=any(bool(s.data.get("interrupted")) for s in segments),
                tool_intervals=tuple(intervals),
                steps=steps,
                windows=windows,
                tools_at_most=max(tools, _tool_room(timeline, sid, p2, p3)),
            )
        )
    return results
