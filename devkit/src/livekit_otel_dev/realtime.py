"""A scripted realtime (speech-to-speech) model for offline sessions, and a driver for it.

`ScriptedRealtimeModel` / `ScriptedRealtimeSession` subclass LiveKit's `llm.RealtimeModel`
and `llm.RealtimeSession` and play the server's part the way LiveKit's OpenAI Realtime
plugin relays it, in the same order, with no network:

1. server VAD: `input_speech_started`, then, once the speech ended, the model's silence
   window (`silence_duration_ms`, kept where OpenAI's plugin keeps it:
   `model._opts.turn_detection.silence_duration_ms`) and the server's buffering
   (`stop_delay`) later, `input_speech_stopped` (`user_transcription_enabled=True`), then
   the user's audio item (`remote_item_added`, on releases that have that event); each
   utterance records the true end of speech and its `audio_end_ms` on the server's audio
   timeline (milliseconds from the session's creation), which LiveKit's event does not
   carry;
2. `response.created`: `generation_created` with a message stream and a function stream
   (`user_initiated=True` and the `generate_reply()` future resolved first when it answers
   `generate_reply()`, `False` when the server started it after the user's speech);
3. the message: a `MessageGeneration` whose modalities resolve when its first content
   arrives, then 100 ms audio frames (24 kHz mono) with the transcript text beside them;
   the message's streams close when it is done; then each function call (each item also
   announced as a remote item where the release has `remote_item_added`);
4. `response.done`: every stream closed, then one `RealtimeModelMetrics` with
   `request_id` = the response id, `timestamp` = its creation, `ttft` = first audio (first
   text for a text-only message; `-1` when neither came, e.g. a function-only response),
   `duration`, `cancelled` (the response was cancelled by `interrupt()`), the usage with
   its text/audio/cached splits; a failed response then emits a recoverable `error`;
5. the user's final transcript (`input_audio_transcription_completed`) whenever the
   script says: before the response, during it, or after it ended (a late transcript);
   with `turn_started_at` = the speech-started time where the release has that field;
   optionally followed by the transcription's `STTMetrics`;
6. connection metrics (`request_id=""`) right after the session is created, where the
   release has `RealtimeSession._report_connection_acquired`.

`interrupt()` cancels the response that is still streaming (no-op otherwise, as LiveKit
calls it on every start of user speech); `truncate()` is recorded.

`RealtimeConversation` runs a real `AgentSession` on it (`vad=None`, server-side turn
detection, scripted audio input/output and transcription output): `start()`, `greet()`,
`user_speaks()`, `user_types()`, `barge_in()`, `aclose()` -> `RealtimeRun`.
`run_realtime_session(script, mode=...)` does a whole scripted conversation at once.

Usage::

    from livekit_otel_dev.realtime import RealtimeReply, RealtimeTurn, run_realtime_session
    from livekit_otel_dev.scripted import ToolCall

    run = await run_realtime_session(
        [
            RealtimeTurn("what is the weather in Paris",
                         reply=ToolCall("lookup_weather", {"location": "Paris"}),
                         transcript="after"),                      # a late transcript
            RealtimeTurn("tell me a story",
                         reply=RealtimeReply("Once upon a time ...", until_interrupted=True)),
            RealtimeTurn("never mind"),                            # barges in on the story
        ],
        greeting="Hello! How can I help?",
    )
    run.history, run.response_ids, run.realtime_metrics, run.utterances, run.truncations

Release differences are detected by feature, here (`FEATURES`), never by version:
`RealtimeCapabilities` fields beyond the six of 1.3 (set only where they exist),
`InputTranscriptionCompleted.turn_started_at` / `confidence`, the `remote_item_added`
event, `_report_connection_acquired` (connection metrics), token fields on `STTMetrics`
(transcription usage as tokens, and whether it is reported by default), and
`AgentSession(turn_handling=)` versus the flat turn options. `session()` accepts
`turn_detection_disabled` and `generate_reply()` accepts `tool_choice` / `tools`, which
fits every release; `RealtimeModelMetrics` is built with every field (1.3 has no
defaults; the later fields keep theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import itertools
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from livekit import rtc
from livekit.agents import Agent, AgentSession, APIError, llm, utils
from livekit.agents.metrics import RealtimeModelMetrics, STTMetrics
from livekit.agents.metrics.base import Metadata
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice import SpeechHandle

from .scripted.media import (
    ScriptedAudioInput,
    ScriptedAudioOutput,
    ScriptedTextOutput,
    tone_frames,
    tone_pcm,
)
from .scripted.models import ToolCall
from .scripted.tools import ScriptedAgent

__all__ = [
    "FEATURES",
    "RealtimeAudioOutput",
    "RealtimeConversation",
    "RealtimeFeatures",
    "RealtimeReply",
    "RealtimeResponse",
    "RealtimeRun",
    "RealtimeStamp",
    "RealtimeTruncation",
    "RealtimeTurn",
    "RealtimeUsage",
    "RealtimeUtterance",
    "ScriptedRealtimeModel",
    "ScriptedRealtimeOptions",
    "ScriptedRealtimeSession",
    "ServerTurnDetection",
    "realtime_capabilities",
    "realtime_session_options",
    "run_realtime_session",
]

logger = logging.getLogger("livekit_otel_dev.realtime")

T = TypeVar("T")

SAMPLE_RATE = 24000
"""The output audio's sample rate (OpenAI Realtime's PCM16 rate)."""
FRAME_SECONDS = 0.1
"""Seconds of audio in each output frame the model streams."""
INPUT_AUDIO_TOKENS_PER_SECOND = 10
"""Estimated usage: input audio tokens per second of user speech."""
OUTPUT_AUDIO_TOKENS_PER_SECOND = 20
"""Estimated usage: output audio tokens per second of model audio."""


# -- release features -------------------------------------------------------------------


@dataclass(frozen=True)
class RealtimeFeatures:
    """What the installed livekit-agents offers a realtime model (detected, never by version)."""

    capability_fields: frozenset[str]
    """The fields of `llm.RealtimeCapabilities` (1.3: the six required ones only)."""
    transcript_turn_started_at: bool
    """`InputTranscriptionCompleted.turn_started_at`: LiveKit dates the user message by it."""
    transcript_confidence: bool
    """`InputTranscriptionCompleted.confidence`."""
    connection_metrics: bool
    """`RealtimeSession._report_connection_acquired`: metrics with `request_id=""`."""
    remote_item_added: bool
    """`llm.RemoteItemAddedEvent` and the `remote_item_added` session event."""
    generate_reply_per_response_tools: bool
    """`RealtimeSession.generate_reply(tool_choice=, tools=)`."""
    session_turn_detection_kwarg: bool
    """`RealtimeModel.session(turn_detection_disabled=)`."""
    turn_handling_option: bool
    """`AgentSession(turn_handling=...)` rather than the flat turn options."""
    stt_token_usage: bool
    """`STTMetrics.input_audio_tokens`: token-billed transcription usage is reported."""


def _params(func: Any) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # pragma: no cover - only builtins lack a signature
        return frozenset()


def _detect_features() -> RealtimeFeatures:
    transcript_fields = {f.name for f in dataclasses.fields(llm.InputTranscriptionCompleted)}
    return RealtimeFeatures(
        capability_fields=frozenset(f.name for f in dataclasses.fields(llm.RealtimeCapabilities)),
        transcript_turn_started_at="turn_started_at" in transcript_fields,
        transcript_confidence="confidence" in transcript_fields,
        connection_metrics=hasattr(llm.RealtimeSession, "_report_connection_acquired"),
        remote_item_added=hasattr(llm, "RemoteItemAddedEvent"),
        generate_reply_per_response_tools="tools" in _params(llm.RealtimeSession.generate_reply),
        session_turn_detection_kwarg="turn_detection_disabled"
        in _params(llm.RealtimeModel.session),
        turn_handling_option="turn_handling" in _params(AgentSession.__init__),
        stt_token_usage="input_audio_tokens" in STTMetrics.model_fields,
    )


FEATURES = _detect_features()
"""The installed release's features, detected once at import."""

_OPENAI_LIKE_CAPABILITIES: dict[str, bool] = {
    "message_truncation": True,
    "turn_detection": True,
    "user_transcription": True,
    "auto_tool_reply_generation": False,
    "audio_output": True,
    "manual_function_calls": True,
    # only on releases that have them
    "can_disable_turn_detection": False,  # keep server VAD whatever the session says
    "supports_overlapping_speech": False,
    "mutable_chat_context": True,
    "mutable_instructions": True,
    "mutable_tools": True,
    "per_response_tool_choice": True,
    "supports_say": False,
}


def realtime_capabilities(**overrides: bool) -> llm.RealtimeCapabilities:
    """Capabilities like OpenAI Realtime's, with `overrides`; fields the release lacks are
    left out (the six fields of 1.3 are required, later ones optional)."""
    wanted = {**_OPENAI_LIKE_CAPABILITIES, **overrides}
    return llm.RealtimeCapabilities(
        **{k: v for k, v in wanted.items() if k in FEATURES.capability_fields}
    )


_SESSION_PARAMS = _params(AgentSession.__init__)


def realtime_session_options(*, allow_interruptions: bool = True) -> dict[str, Any]:
    """`AgentSession` keywords for an offline realtime session on the installed release.

    No local VAD (`vad=None`, so the server's speech events drive the user state),
    turn detection by the realtime model (`turn_handling={"turn_detection":
    "realtime_llm", ...}` where `turn_handling` exists, `turn_detection="realtime_llm"`
    before), interruptions by audio activity with no adaptive (network) detector, no
    false-interruption resume, no preemptive generation, no AEC warm-up, no user-away
    timer, no wait for a last transcript at close.
    """
    opts: dict[str, Any] = {"vad": None}
    if FEATURES.turn_handling_option:
        opts["turn_handling"] = {
            "turn_detection": "realtime_llm",
            "interruption": {
                "enabled": allow_interruptions,
                "mode": "vad",
                "resume_false_interruption": False,
                "false_interruption_timeout": None,
            },
            "preemptive_generation": {"enabled": False},
        }
    else:
        flat = {
            "turn_detection": "realtime_llm",
            "allow_interruptions": allow_interruptions,
            "resume_false_interruption": False,
            "false_interruption_timeout": None,
            "preemptive_generation": False,
        }
        opts.update({k: v for k, v in flat.items() if k in _SESSION_PARAMS})
    for name, value in (
        ("aec_warmup_duration", None),
        ("user_away_timeout", None),
        ("session_close_transcript_timeout", 0.0),
    ):
        if name in _SESSION_PARAMS:
            opts[name] = value
    return opts


# -- the script -------------------------------------------------------------------------


@dataclass(frozen=True)
class RealtimeUsage:
    """One response's usage as OpenAI reports it: text counts include the cached text."""

    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def input_tokens(self) -> int:
        return self.input_text_tokens + self.input_audio_tokens

    @property
    def cached_tokens(self) -> int:
        return self.cached_text_tokens + self.cached_audio_tokens

    @property
    def output_tokens(self) -> int:
        return self.output_text_tokens + self.output_audio_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class RealtimeReply:
    """One response of the model: a spoken message, tool calls, or both (message first)."""

    text: str = ""
    """The transcript of the spoken message; empty: no message."""
    calls: ToolCall | Sequence[ToolCall] = ()
    """Function calls, sent after the message."""
    frames: int | None = None
    """100 ms audio frames of the message; `None`: one per three words (at least 2);
    `0`: a text-only message (modalities `["text"]`; LiveKit logs an error for it when
    the model has audio output and the session no TTS, as with OpenAI)."""
    usage: RealtimeUsage | None = None
    """The usage reported at `response.done`; `None`: estimated from the conversation
    (text ~4 characters a token, audio 10 tokens/s in and 20 tokens/s out, the previous
    response's input counted as cached), the part actually sent when cancelled."""
    first_audio_delay: float = 0.004
    """Seconds from `response.created` to the first audio (the model's ttft)."""
    frame_interval: float = 0.001
    """Seconds between audio frames (the model streams faster than real time)."""
    done_delay: float = 0.002
    """Seconds from the end of its last item to `response.done` (streams closed, metrics).
    The message's own streams close at its end; the generation's streams only at
    `response.done`, so LiveKit ends the reply (assistant message, speech done) after the
    metrics, whatever this delay: it only moves them after the message has played."""
    until_interrupted: bool = False
    """Stream the whole message, then keep the response open (still generating) until
    `interrupt()` cancels it, or `release()`: to barge in while it streams."""
    error: str | None = None
    """Fail the response (`status=failed`) with this message: metrics, then a recoverable
    `RealtimeModelError`."""
    tone: float | None = None
    """The message's audio is a sine of this many Hz (a test's known signal); `None`:
    silence."""

    def __post_init__(self) -> None:
        if isinstance(self.calls, ToolCall):
            object.__setattr__(self, "calls", (self.calls,))
        else:
            object.__setattr__(self, "calls", tuple(self.calls))

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls, always as a tuple."""
        return tuple(self.calls) if not isinstance(self.calls, ToolCall) else (self.calls,)

    @property
    def frame_count(self) -> int:
        """Audio frames of the message (0: no audio)."""
        if not self.text:
            return 0
        if self.frames is not None:
            return max(0, self.frames)
        return max(2, math.ceil(len(self.text.split()) / 3))


ReplyLike = RealtimeReply | str | ToolCall | Sequence[ToolCall]
"""A reply: a `RealtimeReply`, the text of a spoken one, or tool calls."""


def as_reply(reply: ReplyLike) -> RealtimeReply:
    """Normalize a reply-like value."""
    if isinstance(reply, RealtimeReply):
        return reply
    if isinstance(reply, str):
        return RealtimeReply(reply)
    if isinstance(reply, ToolCall):
        return RealtimeReply(calls=(reply,))
    return RealtimeReply(calls=tuple(reply))


TranscriptTiming = Literal["before", "during", "after", "none"]


@dataclass(frozen=True)
class RealtimeTurn:
    """One user turn of `run_realtime_session`."""

    text: str
    reply: ReplyLike | None = None
    """The model's response; `None`: it echoes the user."""
    follow_up: ReplyLike | None = None
    """The answer to LiveKit's `generate_reply()` after the reply's tools ran; `None`:
    a summary of the tool output."""
    transcript: TranscriptTiming = "before"
    """When the final transcript arrives (audio mode): before the response, during it
    (after its first audio), after it ended (late), or never."""
    speech_duration: float = 1.0
    """Simulated seconds of speech (usage and transcription metrics only)."""


# -- records ----------------------------------------------------------------------------


class RealtimeStamp(NamedTuple):
    """A moment on the script's clock."""

    name: str
    at: float
    """`time.time()`."""
    ref: str | None
    """The response id or the user item id it concerns."""


@dataclass
class RealtimeUtterance:
    """One user utterance as the server saw it."""

    item_id: str
    text: str
    speech_started_at: float
    """`time.time()` when `input_speech_started` was emitted (the true start of speech)."""
    speech_ended_at: float | None = None
    """`time.time()` when the user's speech truly ended (the script stopped speaking)."""
    audio_end_ms: int | None = None
    """The end of speech on the server's audio timeline (ms from the session's creation), as
    OpenAI's `input_audio_buffer.speech_stopped` says it."""
    speech_stopped_at: float | None = None
    """`time.time()` when `input_speech_stopped` was emitted: the end of speech plus the
    model's silence window and the server's buffering (`stop_delay`)."""
    transcript_at: float | None = None
    """`time.time()` when the final transcript was emitted."""
    speech_duration: float = 0.0
    frames_pushed: int = 0
    """Audio frames the driver pushed to the session's audio input during it."""
    frames_received: int = 0
    """Audio frames LiveKit pushed to the model between its start and its end."""
    response_id: str | None = None
    """The response the server started after it."""


@dataclass
class RealtimeTruncation:
    """One `truncate()` call from LiveKit (after an interruption)."""

    message_id: str
    modalities: list[str]
    audio_end_ms: int
    audio_transcript: str | None
    at: float
    response_id: str | None


@dataclass
class RealtimeResponse:
    """One response of the model, with the times the script stamped (`time.time()`)."""

    response_id: str
    user_initiated: bool
    reply: RealtimeReply
    message_id: str | None
    call_ids: list[str] = field(default_factory=list)
    """The `call_id` of each function call."""
    created_at: float = 0.0
    """`response.created`: `generation_created` emitted."""
    first_audio_at: float | None = None
    """The model sent its first audio frame."""
    first_text_at: float | None = None
    """The model sent its first transcript text."""
    first_call_at: float | None = None
    """The model sent its first function call."""
    first_frame_handed_at: float | None = None
    """The first of its frames reached the session's audio output (`capture_frame`)."""
    done_at: float | None = None
    """`response.done`: streams closed, metrics emitted."""
    status: Literal["in_progress", "completed", "cancelled", "failed"] = "in_progress"
    frames_sent: int = 0
    text_sent: str = ""
    speech_id: str | None = None
    """The LiveKit `SpeechHandle` that played it, when known."""
    usage: RealtimeUsage | None = None
    metrics: RealtimeModelMetrics | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _stop_reason: str | None = field(default=None, repr=False)
    _held: bool = field(default=False, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _session: Any = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def held(self) -> bool:
        """Streaming, kept open by `until_interrupted`."""
        return self._held and not self.done

    async def wait_done(self) -> None:
        await self._done.wait()

    async def _pause(self, seconds: float) -> bool:
        """Sleep `seconds`; False if the response was stopped meanwhile."""
        if self._stop.is_set():
            return False
        if seconds <= 0:
            await asyncio.sleep(0)
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)
        return not self._stop.is_set()


# -- LiveKit's speech context (for the response -> speech map only) ----------------------


def _speech_context_var() -> contextvars.ContextVar[Any] | None:
    try:
        from livekit.agents.voice import agent_activity
    except ImportError:  # pragma: no cover
        return None
    var = getattr(agent_activity, "_SpeechHandleContextVar", None)
    return var if isinstance(var, contextvars.ContextVar) else None


_SPEECH_VAR = _speech_context_var()


def _current_speech_id() -> str | None:
    handle = _SPEECH_VAR.get(None) if _SPEECH_VAR is not None else None
    return getattr(handle, "id", None)


# -- the model --------------------------------------------------------------------------


def _output_frame(tone: float | None = None) -> rtc.AudioFrame:
    samples = int(SAMPLE_RATE * FRAME_SECONDS)
    if tone is not None:  # whole periods per frame at the test tones: frames join cleanly
        return rtc.AudioFrame(tone_pcm(tone, FRAME_SECONDS, SAMPLE_RATE), SAMPLE_RATE, 1, samples)
    return rtc.AudioFrame(bytes(2 * samples), SAMPLE_RATE, 1, samples)


def _split_words(text: str, pieces: int) -> list[str]:
    words = re.findall(r"\S+\s*", text) or [text]
    pieces = max(1, min(pieces, len(words)))
    size = math.ceil(len(words) / pieces)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _message_text(item: Any) -> str:
    content = getattr(item, "content", None) or []
    return " ".join(c for c in content if isinstance(c, str))


@dataclass(frozen=True)
class ServerTurnDetection:
    """The server's turn detection settings, shaped like OpenAI's `TurnDetection`."""

    type: str = "server_vad"
    silence_duration_ms: int = 0


@dataclass(frozen=True)
class ScriptedRealtimeOptions:
    """The model's options, shaped like those of OpenAI's plugin (`_opts`)."""

    turn_detection: ServerTurnDetection = field(default_factory=ServerTurnDetection)


class ScriptedRealtimeModel(llm.RealtimeModel):
    """A realtime model whose server is the script; capabilities like OpenAI Realtime's.

    `capabilities` overrides (e.g. `auto_tool_reply_generation=True`) are applied where
    the release has the field. `transcription_metrics`: emit the transcription usage as
    `STTMetrics` after each final transcript (`None`: where the release reports
    token-billed transcription usage, as its OpenAI plugin does).
    """

    def __init__(
        self,
        *,
        model: str = "gpt-4o-realtime-preview",
        provider: str = "api.openai.com",
        response_delay: float = 0.002,
        connection_acquire_time: float = 0.015,
        transcription_metrics: bool | None = None,
        transcription_model: str = "gpt-4o-transcribe",
        silence_duration_ms: int = 0,
        stop_delay: float = 0.0,
        chat_ctx_update_delay: float = 0.0,
        **capabilities: bool,
    ) -> None:
        super().__init__(capabilities=realtime_capabilities(**capabilities))
        self._model = model
        self._provider = provider
        self.response_delay = response_delay
        """Seconds from `generate_reply()` to `response.created`."""
        self.connection_acquire_time = connection_acquire_time
        self.transcription_metrics = (
            FEATURES.stt_token_usage if transcription_metrics is None else transcription_metrics
        )
        self.transcription_model = transcription_model
        self._opts = ScriptedRealtimeOptions(
            turn_detection=ServerTurnDetection(silence_duration_ms=silence_duration_ms)
        )
        """Where OpenAI's plugin keeps its options (`turn_detection.silence_duration_ms`)."""
        self.stop_delay = stop_delay
        """Seconds the server's `speech_stopped` comes after its silence window (buffering)."""
        self.chat_ctx_update_delay = chat_ctx_update_delay
        """Seconds `update_chat_ctx` takes (the server acknowledging the items it was sent);
        each call is stamped `chat_ctx.update` (its start) and `chat_ctx.updated`."""
        self.sessions: list[ScriptedRealtimeSession] = []
        """Every session LiveKit opened, newest last."""
        self.responses: list[RealtimeResponse] = []
        """Every response of every session, in creation order."""
        self.utterances: list[RealtimeUtterance] = []
        self.truncations: list[RealtimeTruncation] = []
        self.timeline: list[RealtimeStamp] = []
        """What happened when: `user.speech_started`, `user.speech_ended`, `user.speech_stopped`,
        `user.transcript`, `response.created`, `response.first_audio`,
        `output.first_frame`, `response.function_call`, `response.done`, `truncate`,
        `connection`."""
        self.session_kwargs: list[dict[str, Any]] = []
        """The keywords LiveKit passed to each `session()` call."""
        self._ids = itertools.count(1)
        self._frame_owner: dict[int, tuple[rtc.AudioFrame, RealtimeResponse]] = {}
        self.emitting: RealtimeResponse | None = None
        """The response whose `generation_created` is being emitted (for listeners)."""

    @property
    def model(self) -> str:
        return self._model

    @property
    def silence_window(self) -> float:
        """Seconds of silence the server waits for before it ends the user's turn."""
        return self._opts.turn_detection.silence_duration_ms / 1000

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def active_session(self) -> ScriptedRealtimeSession:
        """The newest session."""
        if not self.sessions:
            raise RuntimeError("no realtime session was opened yet")
        return self.sessions[-1]

    def session(self, *, turn_detection_disabled: bool = False) -> ScriptedRealtimeSession:
        """Open a session (1.3 calls it with no keyword, later releases with one)."""
        self.session_kwargs.append({"turn_detection_disabled": turn_detection_disabled})
        session = ScriptedRealtimeSession(self)
        self.sessions.append(session)
        return session

    async def aclose(self) -> None:
        for session in self.sessions:
            await session.aclose()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def stamp(self, name: str, ref: str | None, at: float | None = None) -> float:
        when = time.time() if at is None else at
        self.timeline.append(RealtimeStamp(name, when, ref))
        return when

    def frame_handed(self, frame: rtc.AudioFrame, at: float) -> None:
        """An output frame reached the session's audio output: stamp its response's first."""
        owner = self._frame_owner.pop(id(frame), None)
        rec = owner[1] if owner is not None and owner[0] is frame else None
        if rec is None:  # not our frame object (resampled?): the oldest playing response
            rec = next(
                (r for r in self.responses if r.frames_sent and r.first_frame_handed_at is None),
                None,
            )
        if rec is not None and rec.first_frame_handed_at is None:
            rec.first_frame_handed_at = at
            if rec.speech_id is None:
                rec.speech_id = _current_speech_id()
            self.stamp("output.first_frame", rec.response_id, at)


class ScriptedRealtimeSession(llm.RealtimeSession):
    """The server side of one realtime connection, played by the script."""

    def __init__(self, model: ScriptedRealtimeModel) -> None:
        super().__init__(model)
        self._scripted = model
        self.created_at = time.time()
        """The start of the server's audio timeline (`audio_end_ms` counts from it)."""
        self._loop = asyncio.get_running_loop()
        self._chat_ctx = llm.ChatContext.empty()
        self._tools: list[Any] = []
        self.instructions: str | None = None
        self.tool_choice: Any = None
        self._replies: deque[RealtimeReply] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending_replies: set[asyncio.Future[Any]] = set()
        self._active: RealtimeResponse | None = None
        self._closed = False
        self._audio_items: dict[str, float] = {}
        self._frames_at_start: dict[str, int] = {}
        self._last_usage: RealtimeUsage | None = None
        self._audio_arrived = asyncio.Event()
        self.audio_frames_received = 0
        self.audio_seconds_received = 0.0
        self.video_frames_received = 0
        self.interrupt_calls = 0
        """Times LiveKit called `interrupt()` (it does on every start of user speech)."""
        self.cancelled_by_interrupt: list[str] = []
        self.commit_audio_calls = 0
        self.clear_audio_calls = 0
        self.chat_ctx_updates = 0
        self.generate_reply_calls: list[dict[str, Any]] = []
        self.options_updates: list[dict[str, Any]] = []
        if FEATURES.connection_metrics:  # after LiveKit subscribed to this session
            self._loop.call_soon(self._report_connection)

    # -- LiveKit's API ------------------------------------------------------------------

    @property
    def chat_ctx(self) -> llm.ChatContext:
        return self._chat_ctx.copy()

    @property
    def tools(self) -> llm.ToolContext:
        return llm.ToolContext(self._tools)

    async def update_instructions(self, instructions: str) -> None:
        self.instructions = instructions

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        self.chat_ctx_updates += 1
        delay = self._scripted.chat_ctx_update_delay
        if delay > 0:
            self._scripted.stamp("chat_ctx.update", None)
            await asyncio.sleep(delay)
            self._scripted.stamp("chat_ctx.updated", None)
        self._chat_ctx = chat_ctx.copy()

    async def update_tools(self, tools: list[Any]) -> None:
        self._tools = list(tools)

    def update_options(self, *, tool_choice: NotGivenOr[Any] = NOT_GIVEN) -> None:
        self.options_updates.append({"tool_choice": tool_choice})
        if tool_choice is not NOT_GIVEN:
            self.tool_choice = tool_choice

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        self.audio_frames_received += 1
        self.audio_seconds_received += frame.duration
        self._audio_arrived.set()

    def push_video(self, frame: rtc.VideoFrame) -> None:
        self.video_frames_received += 1

    def generate_reply(
        self,
        *,
        instructions: NotGivenOr[str] = NOT_GIVEN,
        tool_choice: NotGivenOr[Any] = NOT_GIVEN,
        tools: NotGivenOr[list[Any]] = NOT_GIVEN,
    ) -> asyncio.Future[llm.GenerationCreatedEvent]:
        """`response.create`: the next queued reply (else a default one) answers it."""
        fut: asyncio.Future[llm.GenerationCreatedEvent] = self._loop.create_future()
        self.generate_reply_calls.append(
            {
                "instructions": instructions if instructions is not NOT_GIVEN else None,
                "tool_choice": tool_choice if tool_choice is not NOT_GIVEN else None,
                "speech_id": _current_speech_id(),
            }
        )
        reply = self._replies.popleft() if self._replies else self._default_reply()
        self._pending_replies.add(fut)
        fut.add_done_callback(self._pending_replies.discard)
        self._spawn(self._answer(reply, fut, _current_speech_id()))
        return fut

    def commit_audio(self) -> None:
        self.commit_audio_calls += 1

    def clear_audio(self) -> None:
        self.clear_audio_calls += 1

    def interrupt(self) -> None:
        """`response.cancel` for the response still streaming; nothing otherwise."""
        self.interrupt_calls += 1
        rec = self._active
        if rec is not None and not rec.done and not rec._stop.is_set():
            rec._stop_reason = "interrupt"
            rec._stop.set()
            self.cancelled_by_interrupt.append(rec.response_id)

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Any],
        audio_end_ms: int,
        audio_transcript: NotGivenOr[str] = NOT_GIVEN,
    ) -> None:
        transcript = audio_transcript if isinstance(audio_transcript, str) else None
        owner = next((r for r in self._scripted.responses if r.message_id == message_id), None)
        self._scripted.truncations.append(
            RealtimeTruncation(
                message_id=message_id,
                modalities=list(modalities),
                audio_end_ms=audio_end_ms,
                audio_transcript=transcript,
                at=self._scripted.stamp("truncate", owner.response_id if owner else None),
                response_id=owner.response_id if owner else None,
            )
        )
        item = self._chat_ctx.get_by_id(message_id)
        if isinstance(item, llm.ChatMessage) and transcript is not None:
            item.content = [transcript]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for rec in self._scripted.responses:
            if not rec.done and not rec._stop.is_set():
                rec._stop_reason = "close"
                rec._stop.set()
        for fut in list(self._pending_replies):
            if not fut.done():
                fut.set_exception(llm.RealtimeError("the realtime session closed"))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    # -- the script's API ---------------------------------------------------------------

    def _own_responses(self) -> list[RealtimeResponse]:
        return [r for r in self._scripted.responses if r._session is self]

    def queue_reply(self, reply: ReplyLike) -> None:
        """Answer the next `generate_reply()` with `reply`."""
        self._replies.append(as_reply(reply))

    def speech_started(self, text: str = "", *, speech_duration: float = 1.0) -> RealtimeUtterance:
        """Server VAD: the user started speaking (a new user audio item)."""
        item_id = self._scripted.next_id("item")
        utt = RealtimeUtterance(
            item_id=item_id,
            text=text,
            speech_started_at=time.time(),
            speech_duration=speech_duration,
        )
        self._frames_at_start[item_id] = self.audio_frames_received
        self._scripted.utterances.append(utt)
        self._scripted.stamp("user.speech_started", item_id, utt.speech_started_at)
        self.emit("input_speech_started", llm.InputSpeechStartedEvent())
        return utt

    def speech_ended(self, utt: RealtimeUtterance) -> None:
        """The user's speech truly ends now (the server says so a silence window later)."""
        utt.speech_ended_at = self._scripted.stamp("user.speech_ended", utt.item_id)
        utt.audio_end_ms = round((utt.speech_ended_at - self.created_at) * 1000)

    def speech_stopped(self, utt: RealtimeUtterance) -> None:
        """Server VAD: the user stopped; the audio item is committed to the conversation."""
        if utt.speech_ended_at is None:
            self.speech_ended(utt)
        utt.speech_stopped_at = self._scripted.stamp("user.speech_stopped", utt.item_id)
        utt.frames_received = self.audio_frames_received - self._frames_at_start.pop(utt.item_id, 0)
        self.emit(
            "input_speech_stopped", llm.InputSpeechStoppedEvent(user_transcription_enabled=True)
        )
        item = llm.ChatMessage(role="user", content=[], id=utt.item_id)
        self._audio_items[utt.item_id] = utt.speech_duration
        self._add_remote_item(item)

    def transcribe(self, utt: RealtimeUtterance, *, confidence: float | None = None) -> None:
        """The final transcript of `utt` (with `turn_started_at` where the release has it)."""
        kwargs: dict[str, Any] = {"item_id": utt.item_id, "transcript": utt.text, "is_final": True}
        if FEATURES.transcript_turn_started_at:
            kwargs["turn_started_at"] = utt.speech_started_at
        if FEATURES.transcript_confidence and confidence is not None:
            kwargs["confidence"] = confidence
        utt.transcript_at = self._scripted.stamp("user.transcript", utt.item_id)
        item = self._chat_ctx.get_by_id(utt.item_id)
        if isinstance(item, llm.ChatMessage):
            item.content = [utt.text]
        self.emit("input_audio_transcription_completed", llm.InputTranscriptionCompleted(**kwargs))
        if self._scripted.transcription_metrics:
            self._emit_transcription_metrics(utt)

    def respond(self, reply: ReplyLike) -> RealtimeResponse:
        """The server starts a response of its own (after the user's speech)."""
        return self._start_response(as_reply(reply), None, speech_id=None)

    def release(self) -> None:
        """Let held responses (`until_interrupted`) finish normally."""
        for rec in self._own_responses():
            rec._released.set()

    def emit_error(self, message: str, *, recoverable: bool = True) -> None:
        """A `RealtimeModelError` carrying an `APIError`."""
        self.emit(
            "error",
            llm.RealtimeModelError(
                timestamp=time.time(),
                label=self._scripted.label,
                error=APIError(message, retryable=recoverable),
                recoverable=recoverable,
            ),
        )

    async def wait_for_audio(self, frames: int, timeout: float = 0.5) -> bool:
        """Wait until LiveKit has pushed `frames` audio frames in all; False on timeout."""
        deadline = self._loop.time() + timeout
        while self.audio_frames_received < frames:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return False
            self._audio_arrived.clear()
            try:
                await asyncio.wait_for(self._audio_arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return self.audio_frames_received >= frames
        return True

    # -- internals ----------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report_connection(self) -> None:
        if not self._closed:
            self._scripted.stamp("connection", None)
            self._report_connection_acquired(self._scripted.connection_acquire_time)

    def _add_remote_item(self, item: llm.ChatItem) -> None:
        previous = self._chat_ctx.items[-1].id if self._chat_ctx.items else None
        self._chat_ctx.items.append(item)
        if FEATURES.remote_item_added:
            self.emit(
                "remote_item_added",
                llm.RemoteItemAddedEvent(previous_item_id=previous, item=item.model_copy()),
            )

    def _default_reply(self) -> RealtimeReply:
        items = self._chat_ctx.items
        if items and isinstance(items[-1], llm.FunctionCallOutput):
            outputs: list[str] = []
            for item in reversed(items):
                if not isinstance(item, llm.FunctionCallOutput):
                    break
                outputs.insert(0, str(item.output).rstrip(".") + ".")
            return RealtimeReply("Here is what I found. " + " ".join(outputs))
        for item in reversed(items):
            if isinstance(item, llm.ChatMessage) and item.role == "user":
                said = _message_text(item)
                if said:
                    return RealtimeReply(f"You said: {said}. Anything else?")
                break
        return RealtimeReply("Hello! How can I help you today?")

    async def _answer(
        self,
        reply: RealtimeReply,
        fut: asyncio.Future[llm.GenerationCreatedEvent],
        speech_id: str | None,
    ) -> None:
        await asyncio.sleep(self._scripted.response_delay)
        if fut.done() or self._closed:  # cancelled by LiveKit (interrupted) or closed
            return
        self._start_response(reply, fut, speech_id=speech_id)

    def _start_response(
        self,
        reply: RealtimeReply,
        fut: asyncio.Future[llm.GenerationCreatedEvent] | None,
        *,
        speech_id: str | None,
    ) -> RealtimeResponse:
        model = self._scripted
        response_id = model.next_id("resp")
        rec = RealtimeResponse(
            response_id=response_id,
            user_initiated=fut is not None,
            reply=reply,
            message_id=model.next_id("item") if reply.text else None,
            speech_id=speech_id,
        )
        rec._session = self
        model.responses.append(rec)
        self._active = rec
        message_ch: utils.aio.Chan[llm.MessageGeneration] = utils.aio.Chan()
        function_ch: utils.aio.Chan[llm.FunctionCall] = utils.aio.Chan()
        ev = llm.GenerationCreatedEvent(
            message_stream=message_ch,
            function_stream=function_ch,
            user_initiated=fut is not None,
            response_id=response_id,
        )
        rec.created_at = model.stamp("response.created", response_id)
        if fut is not None:
            fut.set_result(ev)
        model.emitting = rec
        try:
            self.emit("generation_created", ev)
        finally:
            model.emitting = None
        self._spawn(self._stream(rec, message_ch, function_ch))
        return rec

    async def _stream(
        self,
        rec: RealtimeResponse,
        message_ch: utils.aio.Chan[llm.MessageGeneration],
        function_ch: utils.aio.Chan[llm.FunctionCall],
    ) -> None:
        reply, model = rec.reply, self._scripted
        try:
            if rec.message_id is not None:
                await self._stream_message(rec, message_ch)
            for i, call in enumerate(reply.tool_calls):
                if not await rec._pause(reply.frame_interval):
                    break
                call_id = call.call_id or f"call_{rec.response_id.split('_')[-1]}_{i}"
                fnc = llm.FunctionCall(
                    id=model.next_id("item"),
                    call_id=call_id,
                    name=call.name,
                    arguments=json.dumps(call.arguments),
                )
                self._add_remote_item(fnc)
                rec.call_ids.append(call_id)
                if rec.first_call_at is None:
                    rec.first_call_at = model.stamp("response.function_call", rec.response_id)
                function_ch.send_nowait(fnc)
            await rec._pause(reply.done_delay)
            if rec._stop_reason == "interrupt":  # response.cancel's round trip
                await asyncio.sleep(model.response_delay)
        finally:
            message_ch.close()
            function_ch.close()
            self._finish(rec)

    async def _stream_message(
        self, rec: RealtimeResponse, message_ch: utils.aio.Chan[llm.MessageGeneration]
    ) -> None:
        reply, model = rec.reply, self._scripted
        assert rec.message_id is not None
        text_ch: utils.aio.Chan[str] = utils.aio.Chan()
        audio_ch: utils.aio.Chan[rtc.AudioFrame] = utils.aio.Chan()
        modalities: asyncio.Future[list[Literal["text", "audio"]]] = self._loop.create_future()
        frames = reply.frame_count
        message_ch.send_nowait(
            llm.MessageGeneration(
                message_id=rec.message_id,
                text_stream=text_ch,
                audio_stream=audio_ch,
                modalities=modalities,
            )
        )
        self._add_remote_item(llm.ChatMessage(role="assistant", content=[], id=rec.message_id))
        try:
            if not await rec._pause(reply.first_audio_delay):
                return
            modalities.set_result(["audio", "text"] if frames else ["text"])
            pieces = _split_words(reply.text, frames or 3)
            for i in range(max(frames, len(pieces))):
                if i and not await rec._pause(reply.frame_interval):
                    return
                if i < frames:
                    frame = _output_frame(reply.tone)
                    model._frame_owner[id(frame)] = (frame, rec)
                    audio_ch.send_nowait(frame)
                    rec.frames_sent += 1
                    if rec.first_audio_at is None:
                        rec.first_audio_at = model.stamp("response.first_audio", rec.response_id)
                if i < len(pieces):
                    text_ch.send_nowait(pieces[i])
                    rec.text_sent += pieces[i]
                    if rec.first_text_at is None:
                        rec.first_text_at = time.time()
            if reply.until_interrupted:
                rec._held = True
                stop = asyncio.ensure_future(rec._stop.wait())
                released = asyncio.ensure_future(rec._released.wait())
                await asyncio.wait([stop, released], return_when=asyncio.FIRST_COMPLETED)
                for waiter in (stop, released):
                    waiter.cancel()
                rec._held = False
        finally:
            if not modalities.done():
                modalities.set_result(["audio", "text"] if frames else ["text"])
            text_ch.close()
            audio_ch.close()
            item = self._chat_ctx.get_by_id(rec.message_id)
            if isinstance(item, llm.ChatMessage) and not item.content:
                item.content = [rec.text_sent]

    def _finish(self, rec: RealtimeResponse) -> None:
        model = self._scripted
        if self._active is rec:
            self._active = None
        if rec._stop_reason == "close":  # the connection went away: no response.done
            rec.status = "cancelled"
            rec.done_at = time.time()
            rec._done.set()
            return
        if rec._stop_reason == "interrupt":
            rec.status = "cancelled"
        elif rec.reply.error is not None:
            rec.status = "failed"
        else:
            rec.status = "completed"
        rec.usage = rec.reply.usage or self._estimate_usage(rec)
        if not rec.cancelled:
            self._last_usage = rec.usage
        rec.done_at = model.stamp("response.done", rec.response_id)
        rec.metrics = self._response_metrics(rec)
        self.emit("metrics_collected", rec.metrics)
        if rec.reply.error is not None:
            self.emit_error(rec.reply.error, recoverable=True)
        rec._done.set()

    def _estimate_usage(self, rec: RealtimeResponse) -> RealtimeUsage:
        chars = len(self.instructions or "")
        audio_seconds = 0.0
        for item in self._chat_ctx.items:
            if item.id == rec.message_id:
                continue
            if isinstance(item, llm.ChatMessage):
                chars += len(_message_text(item))
                audio_seconds += self._audio_items.get(item.id, 0.0)
            elif isinstance(item, llm.FunctionCall):
                chars += len(item.name) + len(item.arguments)
            elif isinstance(item, llm.FunctionCallOutput):
                chars += len(str(item.output))
        input_text = max(1, chars // 4)
        input_audio = round(audio_seconds * INPUT_AUDIO_TOKENS_PER_SECOND)
        last = self._last_usage
        calls_chars = sum(len(c.name) + len(json.dumps(c.arguments)) for c in rec.reply.tool_calls)
        sent_calls = len(rec.call_ids) == len(rec.reply.tool_calls)
        output_text = (math.ceil(len(rec.text_sent) / 4) if rec.text_sent else 0) + (
            math.ceil(calls_chars / 4) if calls_chars and sent_calls else 0
        )
        output_audio = round(rec.frames_sent * FRAME_SECONDS * OUTPUT_AUDIO_TOKENS_PER_SECOND)
        return RealtimeUsage(
            input_text_tokens=input_text,
            input_audio_tokens=input_audio,
            cached_text_tokens=min(last.input_text_tokens, input_text) if last else 0,
            cached_audio_tokens=min(last.input_audio_tokens, input_audio) if last else 0,
            output_text_tokens=output_text,
            output_audio_tokens=output_audio,
        )

    def _response_metrics(self, rec: RealtimeResponse) -> RealtimeModelMetrics:
        usage = rec.usage or RealtimeUsage()
        assert rec.done_at is not None
        duration = rec.done_at - rec.created_at
        first = rec.first_audio_at
        if first is None and rec.reply.frame_count == 0:
            first = rec.first_text_at  # a text-only message: its first text
        # every field is given: 1.3 has no defaults
        return RealtimeModelMetrics(
            label=self._scripted.label,
            request_id=rec.response_id,
            timestamp=rec.created_at,
            duration=duration,
            ttft=first - rec.created_at if first is not None else -1,
            cancelled=rec.cancelled,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            tokens_per_second=usage.output_tokens / duration if duration > 0 else 0.0,
            input_token_details=RealtimeModelMetrics.InputTokenDetails(
                audio_tokens=usage.input_audio_tokens,
                text_tokens=usage.input_text_tokens,
                image_tokens=0,
                cached_tokens=usage.cached_tokens,
                cached_tokens_details=RealtimeModelMetrics.CachedTokenDetails(
                    audio_tokens=usage.cached_audio_tokens,
                    text_tokens=usage.cached_text_tokens,
                    image_tokens=0,
                ),
            ),
            output_token_details=RealtimeModelMetrics.OutputTokenDetails(
                text_tokens=usage.output_text_tokens,
                audio_tokens=usage.output_audio_tokens,
                image_tokens=0,
            ),
            metadata=Metadata(
                model_name=self._scripted.model, model_provider=self._scripted.provider
            ),
        )

    def _emit_transcription_metrics(self, utt: RealtimeUtterance) -> None:
        metadata = Metadata(
            model_name=self._scripted.transcription_model,
            model_provider=self._scripted.provider,
        )
        kwargs: dict[str, Any] = {
            "label": self._scripted.label,
            "request_id": self._scripted.next_id("event"),
            "timestamp": time.time(),
            "duration": 0.0,
            "audio_duration": 0.0,
            "streamed": True,
            "metadata": metadata,
        }
        if FEATURES.stt_token_usage:
            audio_tokens = round(utt.speech_duration * INPUT_AUDIO_TOKENS_PER_SECOND)
            text_tokens = max(1, math.ceil(len(utt.text) / 4))
            kwargs.update(
                input_tokens=audio_tokens,
                output_tokens=text_tokens,
                total_tokens=audio_tokens + text_tokens,
                input_audio_tokens=audio_tokens,
            )
        else:
            kwargs["audio_duration"] = utt.speech_duration
        self.emit("metrics_collected", STTMetrics(**kwargs))


# -- the session's audio output ---------------------------------------------------------


class RealtimeAudioOutput(ScriptedAudioOutput):
    """The scripted speaker, telling the model when each response's first frame arrives."""

    def __init__(
        self,
        model: ScriptedRealtimeModel,
        *,
        playback_speed: float = 20.0,
        label: str = "scripted-realtime-audio-out",
    ) -> None:
        super().__init__(playback_speed=playback_speed, label=label)
        self._model = model

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        self._model.frame_handed(frame, time.time())
        await super().capture_frame(frame)


# -- the driver -------------------------------------------------------------------------


def _input_frame() -> rtc.AudioFrame:
    samples = 480  # 20 ms at 24 kHz
    return rtc.AudioFrame(bytes(2 * samples), SAMPLE_RATE, 1, samples)


@dataclass
class RealtimeRun:
    """What one scripted realtime session produced."""

    session: AgentSession
    model: ScriptedRealtimeModel
    history: list[dict[str, Any]]
    """`session.history` items as plain dicts, after the session closed."""
    metrics: list[Any]
    """Every metrics object of the session's `metrics_collected` events, in order."""
    responses: list[RealtimeResponse]
    """Every response, in creation order, with its stamps and final usage."""
    utterances: list[RealtimeUtterance]
    truncations: list[RealtimeTruncation]
    speech_handles: list[SpeechHandle]
    errors: list[Any]
    """The session's `error` events."""
    events: list[tuple[float, str, Any]]
    """`(time.time(), name, event)` for the session's `metrics_collected`,
    `speech_created`, `user_state_changed`, `agent_state_changed`,
    `user_input_transcribed`, `conversation_item_added` and `function_tools_executed`
    events, in order."""
    agent_text: list[str]
    """The transcription output's segments."""
    audio_output: RealtimeAudioOutput
    timeline: list[RealtimeStamp]
    elapsed: float
    """Seconds from session start to the end of its close."""

    @property
    def response_ids(self) -> list[str]:
        return [r.response_id for r in self.responses]

    @property
    def realtime_metrics(self) -> list[RealtimeModelMetrics]:
        """The per-response `RealtimeModelMetrics` (connection metrics excluded), in order."""
        return [m for m in self.metrics if isinstance(m, RealtimeModelMetrics) and m.request_id]

    @property
    def connection_metrics(self) -> list[RealtimeModelMetrics]:
        """The `RealtimeModelMetrics` with `request_id == ""` (releases that report them)."""
        return [m for m in self.metrics if isinstance(m, RealtimeModelMetrics) and not m.request_id]

    def metrics_for(self, response_id: str) -> RealtimeModelMetrics | None:
        return next((m for m in self.realtime_metrics if m.request_id == response_id), None)

    def response(self, response_id: str) -> RealtimeResponse:
        return next(r for r in self.responses if r.response_id == response_id)

    def stamps(self, name: str) -> list[RealtimeStamp]:
        return [s for s in self.timeline if s.name == name]

    def events_named(self, name: str) -> list[Any]:
        """The recorded session events called `name`, in order."""
        return [ev for _, n, ev in self.events if n == name]


_RECORDED_EVENTS = (
    "metrics_collected",
    "speech_created",
    "user_state_changed",
    "agent_state_changed",
    "user_input_transcribed",
    "conversation_item_added",
    "function_tools_executed",
)


def _done_future(handle: SpeechHandle) -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _done(_: Any) -> None:
        if not fut.done():
            fut.set_result(None)

    if handle.done():
        fut.set_result(None)
    else:
        handle.add_done_callback(_done)
    return fut


class RealtimeConversation:
    """A real `AgentSession` on a `ScriptedRealtimeModel`; turns one at a time.

    Create it inside a running event loop. `start()`, then any of `greet()`,
    `user_speaks()` (server VAD, audio in, transcript, a server-started response),
    `user_types()` (text in), `barge_in()`; `aclose()` returns the `RealtimeRun`.
    Each call returns once LiveKit is idle again (every reply played, every response
    done), except for a reply `until_interrupted`, which is left streaming for the next
    `user_speaks()` (or `barge_in()` / `aclose()`) to interrupt.
    """

    def __init__(
        self,
        *,
        agent: Agent | None = None,
        model: ScriptedRealtimeModel | None = None,
        playback_speed: float = 20.0,
        session_options: dict[str, Any] | None = None,
        turn_timeout: float = 10.0,
        input_frames: int = 5,
    ) -> None:
        self.model = model if model is not None else ScriptedRealtimeModel()
        self.agent = agent if agent is not None else ScriptedAgent()
        self.audio_input = ScriptedAudioInput()
        self.audio_output = RealtimeAudioOutput(self.model, playback_speed=playback_speed)
        self.text_output = ScriptedTextOutput()
        self.turn_timeout = turn_timeout
        self.input_frames = input_frames
        options = realtime_session_options()
        options.update(session_options or {})
        self.session = AgentSession(llm=self.model, **options)
        self.metrics: list[Any] = []
        self.errors: list[Any] = []
        self.speech_handles: list[SpeechHandle] = []
        self._frames_pushed = 0
        self._started_at = 0.0
        self._listen("metrics_collected", lambda ev: self.metrics.append(ev.metrics))
        self._listen("error", self.errors.append)
        self._listen("speech_created", self._on_speech_created)
        self.events: list[tuple[float, str, Any]] = []
        for name in _RECORDED_EVENTS:
            self._listen(name, functools.partial(self._record_event, name))

    def _listen(self, event: str, callback: Callable[[Any], None]) -> None:
        # the base emitter's `on`: AgentSession.on logs a deprecation for metrics_collected
        rtc.EventEmitter[Any].on(self.session, event, callback)

    def _record_event(self, name: str, ev: Any) -> None:
        self.events.append((time.time(), name, ev))

    def _on_speech_created(self, ev: Any) -> None:
        self.speech_handles.append(ev.speech_handle)
        rec = self.model.emitting
        if rec is not None and not rec.user_initiated and rec.speech_id is None:
            rec.speech_id = ev.speech_handle.id

    @property
    def rt_session(self) -> ScriptedRealtimeSession:
        """The realtime session LiveKit opened (the newest)."""
        return self.model.active_session

    async def _wait(self, aw: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(aw, self.turn_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"realtime session: no {what} after {self.turn_timeout}s") from None

    async def start(self) -> AgentSession:
        """Attach the scripted I/O and start the session."""
        self.session.input.audio = self.audio_input
        self.session.output.audio = self.audio_output
        self.session.output.transcription = self.text_output
        self._started_at = time.perf_counter()
        await self.session.start(self.agent)
        await asyncio.sleep(0)  # the connection metrics (call_soon) go out
        return self.session

    def _held(self) -> RealtimeResponse | None:
        return next((r for r in self.model.responses if r.held), None)

    async def _settle(self) -> None:
        """Until every reply is played and every response done (a held one excepted)."""

        async def idle() -> None:
            quiet = 0
            while quiet < 3:  # a few loop turns with nothing going on
                busy = any(not h.done() for h in self.speech_handles) or any(
                    not r.done and not r.held for r in self.model.responses
                )
                busy = busy or any(s._pending_replies for s in self.model.sessions)
                quiet = 0 if busy else quiet + 1
                await asyncio.sleep(0.001 if busy else 0)

        await self._wait(idle(), "idle session")

    async def _until_heard(self, rec: RealtimeResponse) -> None:
        """Until a held response streamed all it has and its first frame reached the output."""

        async def heard() -> None:
            while not rec.done and (rec.first_frame_handed_at is None or not rec.held):
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.005)  # a little of it plays

        await self._wait(heard(), f"audio of {rec.response_id}")

    async def _interrupt_held(self, held: RealtimeResponse) -> None:
        try:
            await asyncio.wait_for(held.wait_done(), 2.0)
        except asyncio.TimeoutError:
            logger.warning("the held response was not interrupted; releasing it")
            self.rt_session.release()

    async def _push_audio(
        self, utt: RealtimeUtterance, frames: int, tone: float | None = None
    ) -> None:
        pieces = (
            tone_frames(tone, frames * 0.02, SAMPLE_RATE)
            if tone is not None
            else [_input_frame() for _ in range(frames)]
        )
        for frame in pieces:
            self.audio_input.push_frame(frame)
        self._frames_pushed += frames
        utt.frames_pushed = frames
        if not await self.rt_session.wait_for_audio(self._frames_pushed):
            logger.warning("LiveKit did not forward all of the user's audio to the model")

    async def greet(
        self, reply: ReplyLike | None = None, *, instructions: str | None = None
    ) -> SpeechHandle:
        """`session.generate_reply()` with no user input; `reply` answers it."""
        if reply is not None:
            self.rt_session.queue_reply(reply)
        kwargs: dict[str, Any] = {}
        if instructions is not None:
            kwargs["instructions"] = instructions
        handle = self.session.generate_reply(**kwargs)
        await self._wait(_done_future(handle), "end of the greeting")
        await self._settle()
        return handle

    async def user_speaks(
        self,
        text: str,
        *,
        reply: ReplyLike | None = None,
        follow_up: ReplyLike | None = None,
        transcript: TranscriptTiming = "before",
        speech_duration: float = 1.0,
        respond: bool = True,
        tone: float | None = None,
    ) -> RealtimeUtterance:
        """One utterance through the server's turn detection.

        `input_speech_started` (interrupting whatever plays), the user's audio into the
        session's input, `input_speech_stopped`, then the server's response (`reply`,
        default an echo; none with `respond=False`) and the final transcript at the
        `transcript` moment. `follow_up` answers LiveKit's `generate_reply()` after the
        reply's tools ran. `tone`: the user's audio (`input_frames` frames of 20 ms) is a
        sine of this many Hz instead of silence.
        """
        rt = self.rt_session
        held = self._held()
        utt = rt.speech_started(text, speech_duration=speech_duration)
        if held is not None:
            await self._interrupt_held(held)
        await self._push_audio(utt, self.input_frames, tone)
        rt.speech_ended(utt)
        wait = self.model.silence_window + self.model.stop_delay
        if wait > 0:  # the server's silence window, then its message on the way
            await asyncio.sleep(wait)
        rt.speech_stopped(utt)
        if not text:
            transcript = "none"
        if transcript == "before":
            rt.transcribe(utt)
        if not respond:
            if transcript in ("during", "after"):
                rt.transcribe(utt)
            await self._settle()
            return utt
        chosen = as_reply(reply) if reply is not None else RealtimeReply(f"You said: {text}.")
        if chosen.tool_calls and follow_up is not None:
            rt.queue_reply(follow_up)
        await asyncio.sleep(self.model.response_delay)
        rec = rt.respond(chosen)
        utt.response_id = rec.response_id
        if transcript == "during":
            await self._wait(self._first_output(rec), f"output of {rec.response_id}")
            rt.transcribe(utt)
        if chosen.until_interrupted:
            await self._until_heard(rec)
            if transcript == "after":
                logger.warning("a held response has no end: its transcript comes now")
                rt.transcribe(utt)
            return utt
        await self._wait(rec.wait_done(), f"end of {rec.response_id}")
        if transcript == "after":
            rt.transcribe(utt)
        await self._settle()
        return utt

    async def _first_output(self, rec: RealtimeResponse) -> None:
        while rec.first_audio_at is None and rec.first_text_at is None and not rec.done:
            if rec.call_ids:
                break
            await asyncio.sleep(0.001)

    async def user_types(
        self,
        text: str,
        *,
        reply: ReplyLike | None = None,
        follow_up: ReplyLike | None = None,
        via: Literal["run", "generate_reply"] = "run",
    ) -> SpeechHandle | Any:
        """Text in: `session.run(user_input=...)` (returns the RunResult) or
        `session.generate_reply(user_input=...)` (returns the SpeechHandle).

        A reply `until_interrupted` is interrupted with `session.interrupt()` once heard.
        """
        rt = self.rt_session
        chosen = as_reply(reply) if reply is not None else None
        if chosen is not None:
            rt.queue_reply(chosen)
            if chosen.tool_calls and follow_up is not None:
                rt.queue_reply(follow_up)
        known = len(self.model.responses)
        outcome: Any
        if via == "run":
            outcome = self.session.run(user_input=text)
            waiter: Awaitable[Any] = _await(outcome)
        else:
            outcome = self.session.generate_reply(user_input=text)
            waiter = _done_future(outcome)
        waiting = asyncio.ensure_future(waiter)
        if chosen is not None and chosen.until_interrupted:
            rec = await self._wait(self._new_response(known), "response to the text input")
            await self._until_heard(rec)
            self.session.interrupt()
        result = await self._wait(waiting, "reply to the text input")
        await self._settle()
        return result if via == "run" else outcome

    async def _new_response(self, known: int) -> RealtimeResponse:
        while len(self.model.responses) <= known:
            await asyncio.sleep(0.001)
        return self.model.responses[known]

    async def barge_in(self) -> RealtimeUtterance:
        """A wordless barge-in: server VAD start and stop, no transcript, no response."""
        return await self.user_speaks("", respond=False)

    async def aclose(self) -> RealtimeRun:
        """Barge in on a held reply, wait for every reply, close the session."""
        if self._held() is not None:
            await self.barge_in()
        await self._settle()
        await self.session.aclose()
        self.audio_input.close()
        return RealtimeRun(
            session=self.session,
            model=self.model,
            history=list(self.session.history.to_dict()["items"]),
            metrics=list(self.metrics),
            responses=list(self.model.responses),
            utterances=list(self.model.utterances),
            truncations=list(self.model.truncations),
            speech_handles=list(self.speech_handles),
            errors=list(self.errors),
            events=list(self.events),
            agent_text=list(self.text_output.segments),
            audio_output=self.audio_output,
            timeline=list(self.model.timeline),
            elapsed=time.perf_counter() - self._started_at,
        )


async def _await(aw: Awaitable[T]) -> T:
    return await aw


async def run_realtime_session(
    script: Sequence[RealtimeTurn | str],
    *,
    mode: Literal["audio", "text"] = "audio",
    greeting: ReplyLike | None = None,
    agent: Agent | None = None,
    model: ScriptedRealtimeModel | None = None,
    playback_speed: float = 20.0,
    session_options: dict[str, Any] | None = None,
    on_session: Callable[[AgentSession], Awaitable[None] | None] | None = None,
) -> RealtimeRun:
    """Run a whole scripted realtime conversation on a real `AgentSession` and close it.

    `mode="audio"`: each turn through the server's turn detection (`user_speaks`);
    `mode="text"`: `session.run(user_input=...)` (`user_types`). `greeting`: the agent
    speaks first. `on_session` is called with the session before it starts.
    """
    conv = RealtimeConversation(
        agent=agent, model=model, playback_speed=playback_speed, session_options=session_options
    )
    if on_session is not None:
        maybe = on_session(conv.session)
        if inspect.isawaitable(maybe):
            await maybe
    await conv.start()
    try:
        if greeting is not None:
            await conv.greet(greeting)
        for turn in script:
            turn = RealtimeTurn(turn) if isinstance(turn, str) else turn
            if mode == "audio":
                await conv.user_speaks(
                    turn.text,
                    reply=turn.reply,
                    follow_up=turn.follow_up,
                    transcript=turn.transcript,
                    speech_duration=turn.speech_duration,
                )
            else:
                await conv.user_types(turn.text, reply=turn.reply, follow_up=turn.follow_up)
    except BaseException:
        await conv.session.aclose()
        conv.audio_input.close()
        raise
    return await conv.aclose()
