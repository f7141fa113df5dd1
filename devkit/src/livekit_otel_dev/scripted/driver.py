"""Drive a real `AgentSession` offline with scripted components, turn by turn."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents import llm as lk_llm
from livekit.agents.metrics import EOUMetrics
from livekit.agents.vad import VADEventType
from livekit.agents.voice import SpeechHandle

from .media import (
    ScriptedAudioInput,
    ScriptedAudioOutput,
    ScriptedTextOutput,
    SegmentHold,
    silence_frame,
)
from .models import Reply, ScriptedLLM, ScriptedSTT, ScriptedTTS, ScriptedVAD, _last_user_text
from .tools import ScriptedAgent

__all__ = [
    "ScriptedConversation",
    "ScriptedRun",
    "UserTurn",
    "run_scripted_session",
    "scripted_session_options",
]

logger = logging.getLogger("livekit_otel_dev.scripted")

T = TypeVar("T")

_BARGE_IN_TIMEOUT = 2.0
"""How long a barge-in waits for LiveKit to interrupt the held reply before releasing it."""


@dataclass(frozen=True)
class UserTurn:
    """One user utterance and, optionally, what the LLM answers to it.

    Durations are simulated: they shape the VAD events LiveKit sees, nothing waits for them.
    """

    text: str
    reply: Reply | None = None
    """The LLM's first answer to this turn (text or tool calls); `None`: `default_reply`."""
    interrupt_after: float | None = None
    """Barge in on the reply: seconds (wall clock) after its audio was all synthesized and
    began playing. The next turn's speech interrupts it (a wordless barge-in if this is
    the last turn); in text mode `session.interrupt()` does."""
    speech_duration: float = 0.6
    silence_duration: float = 0.2
    frames: int = 3


@dataclass
class ScriptedRun:
    """What one scripted session produced."""

    session: AgentSession
    history: list[dict[str, Any]]
    """`session.history` items as plain dicts, after the session closed."""
    metrics: list[Any]
    """Every metrics object of the session's `metrics_collected` events, in order."""
    speech_handles: list[SpeechHandle]
    agent_text: list[str]
    """What the agent said, one entry per transcription segment."""
    audio_output: ScriptedAudioOutput
    elapsed: float
    """Seconds from session start to the end of its close."""

    def metrics_of(self, kind: type[T]) -> list[T]:
        """The collected metrics of one class, e.g. `run.metrics_of(LLMMetrics)`."""
        return [m for m in self.metrics if isinstance(m, kind)]

    @property
    def metric_kinds(self) -> dict[str, int]:
        """How many metrics of each class were collected."""
        counts: dict[str, int] = {}
        for m in self.metrics:
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
        return counts


_SESSION_PARAMS = inspect.signature(AgentSession.__init__).parameters


def scripted_session_options(
    *,
    preemptive_generation: bool = False,
    allow_interruptions: bool = True,
    min_interruption_duration: float = 0.5,
) -> dict[str, Any]:
    """`AgentSession` keyword options for a fast, deterministic offline session.

    VAD-based end of turn (no turn-detector model), zero minimum endpointing delay,
    interruptions by VAD (not the adaptive detector) and without pause-and-resume,
    no AEC warm-up, no user-away timer, no wait for a last transcript at close. Options
    are feature-detected on the installed release: `turn_handling` where it exists
    (1.5+), else the older flat options.
    """
    opts: dict[str, Any] = {}
    if "turn_handling" in _SESSION_PARAMS:
        opts["turn_handling"] = {
            "turn_detection": "vad",
            "endpointing": {"min_delay": 0.0},
            "interruption": {
                "enabled": allow_interruptions,
                "mode": "vad",
                "min_duration": min_interruption_duration,
                "resume_false_interruption": False,
            },
            "preemptive_generation": {"enabled": preemptive_generation},
        }
    else:
        flat = {
            "turn_detection": "vad",
            "min_endpointing_delay": 0.0,
            "allow_interruptions": allow_interruptions,
            "min_interruption_duration": min_interruption_duration,
            "resume_false_interruption": False,
            "preemptive_generation": preemptive_generation,
        }
        opts.update({k: v for k, v in flat.items() if k in _SESSION_PARAMS})
    no_waits = (
        ("aec_warmup_duration", None),
        ("user_away_timeout", None),
        ("session_close_transcript_timeout", 0.0),
    )
    for name, value in no_waits:
        if name in _SESSION_PARAMS:
            opts[name] = value
    return opts


def _done_future(handle: SpeechHandle) -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _done(_: SpeechHandle) -> None:
        if not fut.done():
            fut.set_result(None)

    if handle.done():
        fut.set_result(None)
    else:
        handle.add_done_callback(_done)
    return fut


async def _await(aw: Awaitable[T]) -> T:
    return await aw


class ScriptedConversation:
    """A real `AgentSession` wired to scripted components; say turns one at a time.

    `start()` builds and starts the session, `user_says()` plays one user turn through
    the audio path (VAD, STT, end of turn) and waits for the reply, `user_types()` does
    the same through `session.run(user_input=...)`, and `aclose()` closes the session
    and returns the `ScriptedRun`. Replies of turns come from `UserTurn.reply` (keyed by
    the turn's text) unless an `llm` is given. Create it inside a running event loop.
    """

    def __init__(
        self,
        *,
        agent: Agent | None = None,
        llm: lk_llm.LLM | None = None,
        tts: ScriptedTTS | None = None,
        playback_speed: float = 100.0,
        preemptive_generation: bool = False,
        session_options: dict[str, Any] | None = None,
        turn_timeout: float = 10.0,
    ) -> None:
        self._replies: dict[str, Reply] = {}
        self.llm = llm if llm is not None else ScriptedLLM(self._script)
        self.stt = ScriptedSTT()
        self.tts = tts if tts is not None else ScriptedTTS()
        self.vad = ScriptedVAD()
        self.agent = agent if agent is not None else ScriptedAgent()
        self.audio_input = ScriptedAudioInput()
        self.audio_output = ScriptedAudioOutput(playback_speed=playback_speed)
        self.text_output = ScriptedTextOutput()
        self.turn_timeout = turn_timeout
        options = scripted_session_options(preemptive_generation=preemptive_generation)
        options.update(session_options or {})
        self.session = AgentSession(
            llm=self.llm, stt=self.stt, tts=self.tts, vad=self.vad, **options
        )
        self.metrics: list[Any] = []
        self.speech_handles: list[SpeechHandle] = []
        self._handles: dict[str, SpeechHandle] = {}
        self._held: SegmentHold | None = None
        """The hold on a reply that the next user speech is to interrupt."""
        self._started_at = 0.0
        self._listen("metrics_collected", lambda ev: self.metrics.append(ev.metrics))
        self._listen("speech_created", self._on_speech_created)

    def _script(self, chat_ctx: lk_llm.ChatContext) -> Reply | None:
        if chat_ctx.items and chat_ctx.items[-1].type == "function_call_output":
            return None
        return self._replies.get(_last_user_text(chat_ctx))

    def _listen(self, event: str, callback: Callable[[Any], None]) -> None:
        # the base emitter's `on`: AgentSession.on logs a deprecation for metrics_collected
        rtc.EventEmitter[Any].on(self.session, event, callback)

    def _on_speech_created(self, ev: Any) -> None:
        self.speech_handles.append(ev.speech_handle)
        self._handles[ev.speech_handle.id] = ev.speech_handle

    def _expect(self, event: str, predicate: Callable[[Any], bool]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def _callback(ev: Any) -> None:
            if not fut.done() and predicate(ev):
                fut.set_result(ev)

        self._listen(event, _callback)
        fut.add_done_callback(lambda _: rtc.EventEmitter[Any].off(self.session, event, _callback))
        return fut

    async def _wait(self, aw: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(aw, self.turn_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"scripted session: no {what} after {self.turn_timeout}s") from None

    async def start(self) -> AgentSession:
        """Attach the scripted I/O and start the session with the agent."""
        self.session.input.audio = self.audio_input
        self.session.output.audio = self.audio_output
        self.session.output.transcription = self.text_output
        self._started_at = time.perf_counter()
        await self.session.start(self.agent)
        return self.session

    def _state_is(self, state: str) -> Callable[[Any], bool]:
        return lambda ev: ev.new_state == state

    async def _vad_speech(self, turn: UserTurn) -> None:
        speaking = self._expect("user_state_changed", self._state_is("speaking"))
        for _ in range(turn.frames):
            self.audio_input.push_frame(silence_frame())
        await self.vad.emit_event(
            VADEventType.START_OF_SPEECH, speech_duration=turn.speech_duration
        )
        await self.vad.emit_event(VADEventType.INFERENCE_DONE, speech_duration=turn.speech_duration)
        await self._wait(speaking, "user start of speech")
        if self._held is not None:  # this speech barges in on a held reply
            held, self._held = self._held, None
            try:
                await asyncio.wait_for(asyncio.shield(held.finished), _BARGE_IN_TIMEOUT)
            except asyncio.TimeoutError:
                logger.warning("the held reply was not interrupted; letting it play out")
            self.audio_output.release()

    async def _vad_end(self, turn: UserTurn) -> None:
        listening = self._expect("user_state_changed", self._state_is("listening"))
        await self.vad.emit_event(
            VADEventType.END_OF_SPEECH,
            speech_duration=turn.speech_duration,
            silence_duration=turn.silence_duration,
        )
        await self._wait(listening, "user end of speech")

    async def _until_captured(self, hold: SegmentHold, done: Awaitable[Any]) -> bool:
        """Wait until the held reply's audio is all captured, or the reply ended first."""
        ended = asyncio.ensure_future(done)
        await self._wait(
            asyncio.wait([hold.captured, ended], return_when=asyncio.FIRST_COMPLETED),
            "reply audio",
        )
        if hold.captured.done():
            return True
        self.audio_output.release()  # the reply ended without audio: nothing to interrupt
        return False

    async def user_says(self, turn: UserTurn | str) -> SpeechHandle:
        """Play one user turn through VAD and STT; return the reply's speech handle.

        Returns once the reply finished, or, for a turn with `interrupt_after`, once it
        has played that long (the next turn's speech then interrupts it).
        """
        turn = self._register(turn)
        hold = self.audio_output.hold_next_segment() if turn.interrupt_after is not None else None
        await self._vad_speech(turn)
        words = turn.text.split()
        if len(words) > 1:
            interim = self._expect("user_input_transcribed", lambda ev: not ev.is_final)
            await self.stt.emit_interim(" ".join(words[: len(words) // 2]))
            await self._wait(interim, "interim transcript")
        await self._vad_end(turn)
        eou = self._expect("metrics_collected", lambda ev: isinstance(ev.metrics, EOUMetrics))
        await self.stt.emit_transcript(turn.text, audio_duration=turn.speech_duration)
        speech_id = (await self._wait(eou, f"end of turn for {turn.text!r}")).metrics.speech_id
        handle = self._handles[speech_id]
        if hold is None:
            await self._wait(_done_future(handle), f"end of the reply to {turn.text!r}")
        elif await self._until_captured(hold, _done_future(handle)):
            await asyncio.sleep(turn.interrupt_after or 0.0)
            self._held = hold
        return handle

    def _register(self, turn: UserTurn | str) -> UserTurn:
        turn = UserTurn(turn) if isinstance(turn, str) else turn
        if turn.reply is not None:
            self._replies[turn.text] = turn.reply
        return turn

    async def user_types(self, turn: UserTurn | str) -> Any:
        """Send one user turn as text with `session.run(user_input=...)`; return the RunResult.

        With `interrupt_after`, the reply is interrupted (`session.interrupt()`) once it
        has played that long.
        """
        turn = self._register(turn)
        if turn.interrupt_after is None:
            return await self._wait(_await(self.session.run(user_input=turn.text)), "run result")
        hold = self.audio_output.hold_next_segment()
        result: Any = self.session.run(user_input=turn.text)
        if await self._until_captured(hold, _await(result)):
            await asyncio.sleep(turn.interrupt_after)
            self.session.interrupt()
            await self._wait(asyncio.shield(hold.finished), "interrupted playback")
            self.audio_output.release()
        return await self._wait(_await(result), "run result")

    async def _barge_in(self) -> None:
        """A wordless user barge-in (VAD only) to interrupt a held reply."""
        turn = UserTurn("")
        await self._vad_speech(turn)
        await self._vad_end(turn)

    async def aclose(self) -> ScriptedRun:
        """Interrupt a held reply, wait for every reply to end, close the session."""
        if self._held is not None:
            await self._barge_in()
        self.audio_output.release()
        pending = [_done_future(h) for h in self.speech_handles]
        if pending:
            await self._wait(asyncio.gather(*pending), "end of the last replies")
        await self.session.aclose()
        self.audio_input.close()
        return ScriptedRun(
            session=self.session,
            history=list(self.session.history.to_dict()["items"]),
            metrics=list(self.metrics),
            speech_handles=list(self.speech_handles),
            agent_text=list(self.text_output.segments),
            audio_output=self.audio_output,
            elapsed=time.perf_counter() - self._started_at,
        )


async def run_scripted_session(
    turns: Sequence[UserTurn | str],
    *,
    agent: Agent | None = None,
    mode: Literal["audio", "text"] = "audio",
    llm: lk_llm.LLM | None = None,
    tts: ScriptedTTS | None = None,
    playback_speed: float = 100.0,
    preemptive_generation: bool = False,
    session_options: dict[str, Any] | None = None,
    on_session: Callable[[AgentSession], Awaitable[None] | None] | None = None,
) -> ScriptedRun:
    """Run a whole scripted conversation on a real `AgentSession` and close it.

    `mode="audio"` plays each turn through VAD and STT, `mode="text"` sends it with
    `session.run(user_input=...)`. `on_session` is called with the session before it
    starts (to attach listeners or instrumentation). `session_options` override
    `scripted_session_options()`.
    """
    conv = ScriptedConversation(
        agent=agent,
        llm=llm,
        tts=tts,
        playback_speed=playback_speed,
        preemptive_generation=preemptive_generation,
        session_options=session_options,
    )
    if on_session is not None:
        maybe = on_session(conv.session)
        if inspect.isawaitable(maybe):
            await maybe
    await conv.start()
    try:
        for turn in turns:
            if mode == "audio":
                await conv.user_says(turn)
            else:
                await conv.user_types(turn)
    except BaseException:
        await conv.session.aclose()
        conv.audio_input.close()
        raise
    return await conv.aclose()
