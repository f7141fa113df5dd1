"""Scripted LLM, STT, TTS and VAD: real subclasses of LiveKit's base classes, no network.

Each one runs through LiveKit's own stream classes, so LiveKit's metrics code
(`LLMMetrics`, `STTMetrics`, `TTSMetrics`, `VADMetrics`) runs unchanged.

Known delays and the script's clock (all opt-in; the defaults are fast and stamp nothing):

- `ScriptedLLM(ttft=, tool_ttft=, chunk_delay=, chunks=, timeline=)`: `ttft` before the
  first chunk of a text reply, `tool_ttft` (default: `ttft`) before the tool calls of a
  tool step, so the step that calls tools and the step that speaks can differ. A reply
  wrapped in `TimedReply(reply, ttft=, chunk_delay=, chunks=)` overrides them for that
  one inference; `chunks` may be the exact text pieces, e.g. a long reply whose first
  sentence only ends after several slow chunks. Stamps `llm.request`, `llm.first_chunk`,
  `llm.end`.
- `ScriptedTTS(first_byte_delay=, timeline=)`: non-streaming, so LiveKit wraps it in its
  sentence-by-sentence `StreamAdapter`: `synthesize()` is called once per whole sentence
  and stamps `tts.synthesize` (the text sent to synthesis); the stream stamps
  `tts.first_audio` when it pushes its audio, `first_byte_delay` later.
- `ScriptedStreamingTTS`: the same with `capabilities.streaming=True`: LiveKit pushes the
  LLM's text into its `SynthesizeStream` as it comes (`push_text`, first one stamped
  `tts.push_text`); audio starts `first_byte_delay` after the first text of a segment.
- `ScriptedVAD(timeline=)`: stamps every event it sends (`vad.<event type>`);
  `emit_event` returns the event's `time.time()` timestamp.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from livekit.agents import llm, stt, tts, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from .media import tone_pcm
from .timeline import ScriptTimeline

_LANGUAGE: Any = "en"  # a LanguageCode from 1.6 (converted from str), a str before

__all__ = [
    "Reply",
    "ScriptedChunkedStream",
    "ScriptedLLM",
    "ScriptedLLMStream",
    "ScriptedRecognizeStream",
    "ScriptedSTT",
    "ScriptedStreamingTTS",
    "ScriptedSynthesizeStream",
    "ScriptedTTS",
    "ScriptedVAD",
    "ScriptedVADStream",
    "TimedReply",
    "ToolCall",
    "default_reply",
]


@dataclass(frozen=True)
class ToolCall:
    """One tool call the scripted LLM makes: a tool name and its arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    """The call id; `None` lets the LLM number it (`call_<request>_<index>`)."""


@dataclass(frozen=True)
class TimedReply:
    """A reply with its own timing, for one inference (the LLM's settings otherwise).

    `chunks` is how many pieces a text reply is streamed in, or the exact pieces (they
    must join to `reply`): e.g. a long reply whose first sentence ends only after
    several pieces `chunk_delay` apart.
    """

    reply: str | ToolCall | Sequence[ToolCall]
    ttft: float | None = None
    """Seconds before the first chunk (the text or the tool calls)."""
    chunk_delay: float | None = None
    """Seconds between the pieces of a text reply."""
    chunks: int | Sequence[str] | None = None

    def __post_init__(self) -> None:
        pieces = self.chunks
        if (
            pieces is not None
            and not isinstance(pieces, int)
            and (not isinstance(self.reply, str) or "".join(pieces) != self.reply)
        ):
            raise ValueError("TimedReply: the pieces must join to the text reply")


Reply = str | ToolCall | Sequence[ToolCall] | TimedReply
"""What one LLM inference answers: text, one tool call, or several parallel tool calls
(optionally wrapped in a `TimedReply` to time that one inference)."""

Script = Sequence[Reply] | Callable[[llm.ChatContext], Reply | None] | None


def _item_text(item: Any) -> str:
    kind = getattr(item, "type", "")
    if kind == "message":
        return " ".join(c for c in item.content if isinstance(c, str))
    if kind == "function_call":
        return f"{item.name} {item.arguments}"
    if kind == "function_call_output":
        return str(item.output)
    return ""


def _last_user_text(chat_ctx: llm.ChatContext) -> str:
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            return _item_text(item)
    return ""


def default_reply(chat_ctx: llm.ChatContext) -> Reply:
    """The reply used when the script has none: summarize a tool output, else echo the user."""
    items = chat_ctx.items
    if items and getattr(items[-1], "type", "") == "function_call_output":
        outputs: list[llm.FunctionCallOutput] = []
        for item in reversed(items):
            if not isinstance(item, llm.FunctionCallOutput):
                break
            outputs.insert(0, item)
        parts = [
            f"{o.name} failed: {o.output}." if o.is_error else f"{o.output}".rstrip(".") + "."
            for o in outputs
        ]
        return "Here is what I found. " + " ".join(parts)
    return f"You said: {_last_user_text(chat_ctx) or 'nothing'}. Anything else?"


def _stamp(timeline: ScriptTimeline | None, name: str, **data: Any) -> None:
    if timeline is not None:
        timeline.stamp(name, **data)


def _split_text(text: str, pieces: int) -> list[str]:
    words = re.findall(r"\S+\s*", text) or [text]
    size = max(1, -(-len(words) // max(1, pieces)))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class ScriptedLLM(llm.LLM):
    """An LLM whose replies come from a script, streamed with small delays, with usage.

    `script` is a sequence of replies (one per inference, a tool follow-up excepted),
    a callable `chat_ctx -> Reply | None`, or `None`. Where the script gives nothing
    (`None`, an exhausted sequence, or the inference right after a tool output when
    the script is a sequence), `default_reply` answers.

    `ttft` is the delay before the first chunk of a text reply, `tool_ttft` (default
    `ttft`) before the tool calls of a tool step; a `TimedReply` overrides both for its
    inference. With a `timeline`, each inference stamps `llm.request`, `llm.first_chunk`
    and `llm.end` (in the reply's speech).
    """

    def __init__(
        self,
        script: Script = None,
        *,
        ttft: float = 0.002,
        chunk_delay: float = 0.0005,
        chunks: int = 3,
        cached_fraction: float = 0.5,
        model: str = "scripted-llm-1",
        provider: str = "scripted",
        tool_ttft: float | None = None,
        timeline: ScriptTimeline | None = None,
    ) -> None:
        super().__init__()
        self._script = script
        self._position = 0
        self._requests = itertools.count(1)
        self.ttft = ttft
        self.tool_ttft = tool_ttft
        self.timeline = timeline
        self.chunk_delay = chunk_delay
        self.chunks = chunks
        self.cached_fraction = cached_fraction
        self._model = model
        self._provider = provider
        self.calls: list[Reply] = []
        """Every reply given, in order (for checks; a `TimedReply` as its inner reply)."""
        self._chars: dict[str, int] = {}

    def _item_chars(self, item: Any) -> int:
        # memoized by item id: the context is re-sent whole and grows every turn
        key = getattr(item, "id", None)
        if not isinstance(key, str):
            return len(_item_text(item))
        if key not in self._chars:
            self._chars[key] = len(_item_text(item))
        return self._chars[key]

    @property
    def model(self) -> str:
        """The fixed model name."""
        return self._model

    @property
    def provider(self) -> str:
        """The fixed provider name."""
        return self._provider

    def next_reply(self, chat_ctx: llm.ChatContext) -> Reply:
        """Pick the reply to the given context from the script (consuming it if a sequence)."""
        reply: Reply | None = None
        after_tool = bool(chat_ctx.items) and chat_ctx.items[-1].type == "function_call_output"
        if callable(self._script):
            reply = self._script(chat_ctx)
        elif self._script is not None and not after_tool and self._position < len(self._script):
            reply = self._script[self._position]
            self._position += 1
        if reply is None:
            reply = default_reply(chat_ctx)
        self.calls.append(reply.reply if isinstance(reply, TimedReply) else reply)
        return reply

    def _timing(
        self, reply: Reply
    ) -> tuple[str | ToolCall | Sequence[ToolCall], float, float, int | Sequence[str]]:
        """(the inner reply, ttft, chunk delay, chunks) for one inference."""
        timed: TimedReply | None = None
        inner: str | ToolCall | Sequence[ToolCall]
        if isinstance(reply, TimedReply):
            timed, inner = reply, reply.reply
        else:
            inner = reply
        ttft = self.ttft
        if not isinstance(inner, str) and self.tool_ttft is not None:
            ttft = self.tool_ttft
        if timed is not None and timed.ttft is not None:
            ttft = timed.ttft
        delay = self.chunk_delay
        if timed is not None and timed.chunk_delay is not None:
            delay = timed.chunk_delay
        chunks: int | Sequence[str] = self.chunks
        if timed is not None and timed.chunks is not None:
            chunks = timed.chunks
        return inner, ttft, delay, chunks

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **kwargs: Any,
    ) -> ScriptedLLMStream:
        """Start one scripted inference."""
        return ScriptedLLMStream(
            self,
            chat_ctx=chat_ctx,
            tools=list(tools or []),
            conn_options=conn_options,
            reply=self.next_reply(chat_ctx),
            request_id=f"scripted-llm-req-{next(self._requests)}",
        )


class ScriptedLLMStream(llm.LLMStream):
    """Streams one scripted reply: text in a few chunks, or tool calls, then usage."""

    def __init__(
        self,
        llm_: ScriptedLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any],
        conn_options: APIConnectOptions,
        reply: Reply,
        request_id: str,
    ) -> None:
        super().__init__(llm_, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._scripted = llm_
        self._reply, self._ttft, self._chunk_delay, self._chunks = llm_._timing(reply)
        self._request_id = request_id

    async def _run(self) -> None:
        opts, rid = self._scripted, self._request_id
        reply, timeline = self._reply, opts.timeline
        kind = "text" if isinstance(reply, str) else "tools"
        _stamp(timeline, "llm.request", request_id=rid, kind=kind)
        await asyncio.sleep(self._ttft)
        if isinstance(reply, str):
            chunks = self._chunks
            pieces = _split_text(reply, chunks) if isinstance(chunks, int) else list(chunks)
            for i, piece in enumerate(pieces):
                if i and self._chunk_delay > 0:
                    await asyncio.sleep(self._chunk_delay)
                delta = llm.ChoiceDelta(role="assistant", content=piece)
                self._event_ch.send_nowait(llm.ChatChunk(id=rid, delta=delta))
                if i == 0:
                    _stamp(timeline, "llm.first_chunk", request_id=rid, kind=kind)
            completion_chars = len(reply)
        else:
            calls = [reply] if isinstance(reply, ToolCall) else list(reply)
            fcalls = [
                llm.FunctionToolCall(
                    name=c.name,
                    arguments=json.dumps(c.arguments),
                    call_id=c.call_id or f"call_{rid.rsplit('-', 1)[-1]}_{i}",
                )
                for i, c in enumerate(calls)
            ]
            delta = llm.ChoiceDelta(role="assistant", tool_calls=fcalls)
            self._event_ch.send_nowait(llm.ChatChunk(id=rid, delta=delta))
            _stamp(timeline, "llm.first_chunk", request_id=rid, kind=kind)
            completion_chars = sum(len(c.name) + len(c.arguments) for c in fcalls)
        prompt = max(1, sum(opts._item_chars(i) for i in self._chat_ctx.items) // 4)
        completion = max(1, completion_chars // 4)
        usage = llm.CompletionUsage(
            completion_tokens=completion,
            prompt_tokens=prompt,
            prompt_cached_tokens=int(prompt * opts.cached_fraction),
            total_tokens=prompt + completion,
        )
        self._event_ch.send_nowait(llm.ChatChunk(id=rid, usage=usage))
        _stamp(timeline, "llm.end", request_id=rid, kind=kind)


_S = TypeVar("_S")


class _OpenStreams(Generic[_S]):
    """The streams LiveKit opened on a scripted STT or VAD, newest last."""

    def __init__(self) -> None:
        self._streams: list[_S] = []
        self._ready = asyncio.Event()

    def add(self, stream: _S) -> _S:
        self._streams.append(stream)
        self._ready.set()
        return stream

    def forget(self, stream: _S) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
        if not self._streams:
            self._ready.clear()

    async def newest(self) -> _S:
        await self._ready.wait()
        return self._streams[-1]


def _push(channel: Any, event: Any) -> None:
    """Send one event down a stream's channel, unless the stream is closed."""
    if not channel.closed:
        channel.send_nowait(event)


class ScriptedSTT(stt.STT):
    """A streaming STT whose transcripts are pushed by the driver (`emit_transcript`)."""

    def __init__(self, *, model: str = "scripted-stt-1", provider: str = "scripted") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self._model = model
        self._provider = provider
        self.streams: _OpenStreams[ScriptedRecognizeStream] = _OpenStreams()
        self._utterances = itertools.count(1)
        self._request_id: str | None = None
        self._last_request_id: str | None = None

    @property
    def model(self) -> str:
        """The fixed model name."""
        return self._model

    @property
    def provider(self) -> str:
        """The fixed provider name."""
        return self._provider

    async def _recognize_impl(self, buffer: Any, **kwargs: Any) -> stt.SpeechEvent:
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=_LANGUAGE, text="")],
        )

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **kwargs: Any
    ) -> ScriptedRecognizeStream:
        """Open a recognition stream (LiveKit's STT node does this)."""
        return self.streams.add(ScriptedRecognizeStream(stt=self, conn_options=conn_options))

    async def wait_for_stream(self) -> ScriptedRecognizeStream:
        """The newest open recognition stream, waiting for LiveKit to open one."""
        return await self.streams.newest()

    def _request(self) -> str:
        if self._request_id is None:
            self._request_id = f"scripted-stt-req-{next(self._utterances)}"
        return self._request_id

    async def emit_interim(self, text: str) -> None:
        """Emit an interim transcript of the current utterance."""
        stream = await self.wait_for_stream()
        stream.push_event(
            self._event(stt.SpeechEventType.INTERIM_TRANSCRIPT, text, self._request())
        )

    async def emit_transcript(
        self, text: str, *, audio_duration: float, confidence: float = 0.95, usage: bool = True
    ) -> None:
        """Emit the utterance's final transcript, then its usage (`audio_duration` seconds).

        With `usage=False` the usage is left for `emit_usage`, to report it later.
        """
        stream = await self.wait_for_stream()
        request_id, self._request_id = self._request(), None
        self._last_request_id = request_id
        stream.push_event(
            self._event(stt.SpeechEventType.FINAL_TRANSCRIPT, text, request_id, confidence)
        )
        if usage:
            await self.emit_usage(audio_duration=audio_duration)

    async def emit_usage(self, *, audio_duration: float) -> None:
        """Emit the usage (`audio_duration` seconds) of the last utterance transcribed."""
        stream = await self.wait_for_stream()
        stream.push_event(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=self._last_request_id or self._request(),
                recognition_usage=stt.RecognitionUsage(audio_duration=audio_duration),
            )
        )

    @staticmethod
    def _event(
        kind: stt.SpeechEventType, text: str, request_id: str, confidence: float = 0.8
    ) -> stt.SpeechEvent:
        data = stt.SpeechData(language=_LANGUAGE, text=text, confidence=confidence)
        return stt.SpeechEvent(type=kind, request_id=request_id, alternatives=[data])


class ScriptedRecognizeStream(stt.RecognizeStream):
    """Discards the audio it is fed; emits the events the driver pushes."""

    def __init__(self, *, stt: ScriptedSTT, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options)
        self._scripted = stt

    async def _run(self) -> None:
        async for _ in self._input_ch:
            pass

    def push_event(self, event: stt.SpeechEvent) -> None:
        """Emit one speech event to LiveKit (ignored once the stream is closed)."""
        _push(self._event_ch, event)

    async def aclose(self) -> None:
        """Close the stream and unregister it from its STT."""
        self._scripted.streams.forget(self)
        await super().aclose()


class ScriptedTTS(tts.TTS):
    """A non-streaming TTS producing silence: `seconds_per_char` of audio per character.

    LiveKit wraps it in its sentence-by-sentence `StreamAdapter`, which calls
    `synthesize()` once per whole sentence. With a `timeline`, `synthesize()` stamps
    `tts.synthesize` (the text sent to synthesis) and the stream stamps
    `tts.first_audio` when it pushes its audio, `first_byte_delay` later.
    """

    STREAMING = False
    """Whether LiveKit sees a streaming TTS (`capabilities.streaming`)."""

    def __init__(
        self,
        *,
        first_byte_delay: float = 0.002,
        seconds_per_char: float = 0.02,
        sample_rate: int = 16000,
        model: str = "scripted-tts-1",
        provider: str = "scripted",
        timeline: ScriptTimeline | None = None,
        tones: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=self.STREAMING),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.first_byte_delay = first_byte_delay
        self.seconds_per_char = seconds_per_char
        self.timeline = timeline
        self.tones = dict(tones or {})
        """Text to tone: a synthesis whose text contains a key is a sine of that many Hz."""
        self._model = model
        self._provider = provider
        self._requests = itertools.count(1)

    @property
    def model(self) -> str:
        """The fixed model name."""
        return self._model

    @property
    def provider(self) -> str:
        """The fixed provider name."""
        return self._provider

    def audio_for(self, text: str, seconds: float) -> bytes:
        """``seconds`` of audio for ``text``: its tone (see ``tones``), else silence."""
        for key, frequency in self.tones.items():
            if key in text:
                return tone_pcm(frequency, seconds, self.sample_rate)
        return bytes(2 * int(self.sample_rate * seconds))

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ScriptedChunkedStream:
        """Synthesize `text` as silence."""
        _stamp(self.timeline, "tts.synthesize", text=text)
        return ScriptedChunkedStream(
            tts=self,
            input_text=text,
            conn_options=conn_options,
            request_id=f"scripted-tts-req-{next(self._requests)}",
        )


class ScriptedChunkedStream(tts.ChunkedStream):
    """Pushes silent 16-bit PCM after the TTS's first-byte delay."""

    def __init__(
        self, *, tts: ScriptedTTS, input_text: str, conn_options: APIConnectOptions, request_id: str
    ) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._scripted = tts
        self._request_id = request_id

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        opts = self._scripted
        await asyncio.sleep(opts.first_byte_delay)
        output_emitter.initialize(
            request_id=self._request_id,
            sample_rate=opts.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        seconds = max(0.01, len(self.input_text) * opts.seconds_per_char)
        _stamp(opts.timeline, "tts.first_audio", request_id=self._request_id)
        output_emitter.push(opts.audio_for(self.input_text, seconds))
        output_emitter.flush()


class ScriptedStreamingTTS(ScriptedTTS):
    """A streaming TTS producing silence (`capabilities.streaming=True`).

    LiveKit pushes the LLM's text into its `SynthesizeStream` as it comes, with no
    sentence adapter. Each segment's audio starts `first_byte_delay` after its first
    text, then follows the text (`seconds_per_char` per character). With a `timeline`,
    the first `push_text` of a stream is stamped `tts.push_text` and the first audio
    of a segment `tts.first_audio`.
    """

    STREAMING = True

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **kwargs: Any
    ) -> ScriptedSynthesizeStream:
        """Open a streaming synthesis (LiveKit's TTS node does this)."""
        return ScriptedSynthesizeStream(
            tts=self,
            conn_options=conn_options,
            request_id=f"scripted-tts-req-{next(self._requests)}",
        )


class ScriptedSynthesizeStream(tts.SynthesizeStream):
    """Turns pushed text into silence: one audio segment per flushed text segment."""

    def __init__(
        self, *, tts: ScriptedStreamingTTS, conn_options: APIConnectOptions, request_id: str
    ) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._scripted = tts
        self._request_id = request_id
        self._text_seen = False

    def push_text(self, token: str) -> None:
        """Push text to synthesize (the first non-empty push is stamped `tts.push_text`)."""
        if token and not self._text_seen and not self._input_ch.closed:
            self._text_seen = True
            _stamp(self._scripted.timeline, "tts.push_text", text=token)
        super().push_text(token)

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        opts = self._scripted
        output_emitter.initialize(
            request_id=self._request_id,
            sample_rate=opts.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=20,
            stream=True,
        )
        segments = itertools.count(1)
        open_segment = False
        async for item in self._input_ch:
            if isinstance(item, self._FlushSentinel):
                if open_segment:
                    output_emitter.end_segment()
                    open_segment = False
                continue
            if not item:
                continue
            if not open_segment:
                open_segment = True
                output_emitter.start_segment(segment_id=f"{self._request_id}-{next(segments)}")
                self._mark_started()
                await asyncio.sleep(opts.first_byte_delay)
                _stamp(opts.timeline, "tts.first_audio", request_id=self._request_id)
            seconds = max(0.02, len(item) * opts.seconds_per_char)
            output_emitter.push(bytes(2 * int(opts.sample_rate * seconds)))
        if open_segment:
            output_emitter.end_segment()


class ScriptedVAD(vad.VAD):
    """A VAD whose events are pushed by the driver; one `VADMetrics` per inference event.

    With a `timeline`, each event sent is stamped `vad.<event type>` with its durations.
    """

    def __init__(
        self,
        *,
        update_interval: float = 1.0,
        model: str = "scripted-vad-1",
        provider: str = "scripted",
        timeline: ScriptTimeline | None = None,
    ) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=update_interval))
        self.timeline = timeline
        self._model = model
        self._provider = provider
        self.streams: _OpenStreams[ScriptedVADStream] = _OpenStreams()

    @property
    def model(self) -> str:
        """The fixed model name."""
        return self._model

    @property
    def provider(self) -> str:
        """The fixed provider name."""
        return self._provider

    def stream(self) -> ScriptedVADStream:
        """Open a VAD stream (LiveKit's audio recognition does this)."""
        return self.streams.add(ScriptedVADStream(self))

    async def wait_for_stream(self) -> ScriptedVADStream:
        """The newest open VAD stream, waiting for LiveKit to open one."""
        return await self.streams.newest()

    async def emit_event(
        self,
        kind: vad.VADEventType,
        *,
        speech_duration: float = 0.0,
        silence_duration: float = 0.0,
        inference_duration: float = 0.001,
        silence_since: float | None = None,
    ) -> float:
        """Emit one VAD event with the given (simulated) durations, in seconds.

        Returns the event's `time.time()` timestamp. With `silence_since` (a
        `time.time()` value), the event's `silence_duration` is the real time elapsed
        since then, measured as the event is sent.
        """
        stream = await self.wait_for_stream()
        speaking = kind != vad.VADEventType.END_OF_SPEECH
        now = time.time()
        if silence_since is not None:
            silence_duration = now - silence_since
        if self.timeline is not None:
            name = str(getattr(kind, "value", kind)).lower()
            self.timeline.stamp(
                f"vad.{name}",
                at=now,
                speech_id=None,
                speech_duration=speech_duration,
                silence_duration=silence_duration,
                inference_duration=inference_duration,
            )
        stream.push_event(
            vad.VADEvent(
                type=kind,
                samples_index=0,
                timestamp=now,
                speech_duration=speech_duration,
                silence_duration=silence_duration,
                probability=1.0 if speaking else 0.0,
                inference_duration=inference_duration,
                speaking=speaking,
                raw_accumulated_speech=speech_duration if speaking else 0.0,
                raw_accumulated_silence=0.0 if speaking else silence_duration,
            )
        )
        return now


class ScriptedVADStream(vad.VADStream):
    """Discards the audio it is fed; emits the events the driver pushes."""

    def __init__(self, vad_: ScriptedVAD) -> None:
        super().__init__(vad_)
        self._scripted = vad_

    async def _main_task(self) -> None:
        async for _ in self._input_ch:
            pass

    def push_event(self, event: vad.VADEvent) -> None:
        """Emit one VAD event to LiveKit (ignored once the stream is closed)."""
        _push(self._event_ch, event)

    async def aclose(self) -> None:
        """Close the stream and unregister it from its VAD."""
        self._scripted.streams.forget(self)
        await super().aclose()
