"""Scripted LLM, STT, TTS and VAD: real subclasses of LiveKit's base classes, no network.

Each one runs through LiveKit's own stream classes, so LiveKit's metrics code
(`LLMMetrics`, `STTMetrics`, `TTSMetrics`, `VADMetrics`) runs unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from livekit.agents import llm, stt, tts, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

_LANGUAGE: Any = "en"  # a LanguageCode from 1.6 (converted from str), a str before

__all__ = [
    "Reply",
    "ScriptedChunkedStream",
    "ScriptedLLM",
    "ScriptedLLMStream",
    "ScriptedRecognizeStream",
    "ScriptedSTT",
    "ScriptedTTS",
    "ScriptedVAD",
    "ScriptedVADStream",
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


Reply = str | ToolCall | Sequence[ToolCall]
"""What one LLM inference answers: text, one tool call, or several parallel tool calls."""

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
    ) -> None:
        super().__init__()
        self._script = script
        self._position = 0
        self._requests = itertools.count(1)
        self.ttft = ttft
        self.chunk_delay = chunk_delay
        self.chunks = chunks
        self.cached_fraction = cached_fraction
        self._model = model
        self._provider = provider
        self.calls: list[Reply] = []
        """Every reply given, in order (for checks)."""
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
        self.calls.append(reply)
        return reply

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
        self._reply = reply
        self._request_id = request_id

    async def _run(self) -> None:
        opts, rid = self._scripted, self._request_id
        await asyncio.sleep(opts.ttft)
        reply = self._reply
        if isinstance(reply, str):
            for i, piece in enumerate(_split_text(reply, opts.chunks)):
                if i and opts.chunk_delay > 0:
                    await asyncio.sleep(opts.chunk_delay)
                delta = llm.ChoiceDelta(role="assistant", content=piece)
                self._event_ch.send_nowait(llm.ChatChunk(id=rid, delta=delta))
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
    """A non-streaming TTS producing silence: `seconds_per_char` of audio per character."""

    def __init__(
        self,
        *,
        first_byte_delay: float = 0.002,
        seconds_per_char: float = 0.02,
        sample_rate: int = 16000,
        model: str = "scripted-tts-1",
        provider: str = "scripted",
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.first_byte_delay = first_byte_delay
        self.seconds_per_char = seconds_per_char
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

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ScriptedChunkedStream:
        """Synthesize `text` as silence."""
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
        output_emitter.push(bytes(2 * int(opts.sample_rate * seconds)))
        output_emitter.flush()


class ScriptedVAD(vad.VAD):
    """A VAD whose events are pushed by the driver; one `VADMetrics` per inference event."""

    def __init__(
        self,
        *,
        update_interval: float = 1.0,
        model: str = "scripted-vad-1",
        provider: str = "scripted",
    ) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=update_interval))
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
    ) -> None:
        """Emit one VAD event with the given (simulated) durations, in seconds."""
        stream = await self.wait_for_stream()
        speaking = kind != vad.VADEventType.END_OF_SPEECH
        stream.push_event(
            vad.VADEvent(
                type=kind,
                samples_index=0,
                timestamp=time.time(),
                speech_duration=speech_duration,
                silence_duration=silence_duration,
                probability=1.0 if speaking else 0.0,
                inference_duration=inference_duration,
                speaking=speaking,
                raw_accumulated_speech=speech_duration if speaking else 0.0,
                raw_accumulated_silence=0.0 if speaking else silence_duration,
            )
        )


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
