"""Drive a real `AgentSession` offline with scripted components, turn by turn.

By default a user turn's VAD durations are simulated (nothing waits for them) and the
endpointing delay is zero: fast and deterministic. For latency tests with known truth,
opt in to real time:

- `ScriptedConversation(real_silence=True)` (or `UserTurn(real_silence=True)` for one
  turn): after the speech, the driver sends a last INFERENCE_DONE with speech (the TRUE
  end of the user's speech, stamped `user.speech_end`), really waits the turn's
  `silence_duration`, then sends END_OF_SPEECH whose `silence_duration` is the real
  time elapsed since that end of speech (`inference_duration` 0), so LiveKit dates the
  end of speech at the true moment on every release (1.6+ from END_OF_SPEECH, earlier
  releases from the last INFERENCE_DONE with speech).
- `UserTurn(transcript_delay=...)`: real seconds between END_OF_SPEECH and the final
  transcript (stamped `stt.final`).
- `endpointing_delay=...` (here, in `run_scripted_session` or
  `scripted_session_options`): LiveKit's minimum endpointing delay, so the commit comes
  at about `max(end of speech + endpointing_delay, END_OF_SPEECH, final transcript)`.
- `timeline=ScriptTimeline()`: every scripted component of the run stamps the moments
  that matter (see `timeline`); the driver stamps the user's side (`user.speech_start`,
  `user.speech_end`, `stt.final`) and links each user turn to its reply with LiveKit's
  `EOUMetrics` (`livekit.eou`). `ScriptedRun.expected_latencies()` then gives each
  reply's perceived latency and parts from these stamps alone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    tone_frames,
)
from .models import Reply, ScriptedLLM, ScriptedSTT, ScriptedTTS, ScriptedVAD, _last_user_text
from .timeline import ExpectedLatency, ScriptTimeline, expected_latencies
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

TONE_LEAD = 0.2
"""Seconds of silence the user's audio input gets before a turn's tone."""

_BARGE_IN_TIMEOUT = 2.0
"""How long a barge-in waits for LiveKit to interrupt the held reply before releasing it."""


@dataclass(frozen=True)
class UserTurn:
    """One user utterance and, optionally, what the LLM answers to it.

    Durations are simulated: they shape the VAD events LiveKit sees, nothing waits for
    them, unless the turn is played with real-time silence (`real_silence`, or the
    conversation's `real_silence`): then the driver really waits `silence_duration`
    after the end of the speech.
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
    transcript_delay: float = 0.0
    """Real seconds between END_OF_SPEECH and the final transcript."""
    real_silence: bool | None = None
    """Wait `silence_duration` in real time (see the module docstring); `None`: the
    conversation's setting."""
    tone: float | None = None
    """Speak a sine of this many Hz for `speech_duration` seconds (after `TONE_LEAD`
    seconds of silence), frame by frame through the audio input, so the audio the agent
    received is known: START_OF_SPEECH comes after the silence, END_OF_SPEECH after the
    tone; with a timeline, `user.tone_start` stamps when LiveKit took its first frame.
    `None`: a few silent frames, as before."""


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
    timeline: ScriptTimeline | None = None
    """The script's clock, when the run was given one."""

    def expected_latencies(self) -> list[ExpectedLatency]:
        """Each heard reply's perceived latency and parts from the run's timeline (none
        without a timeline; only turns played with real-time silence)."""
        return expected_latencies(self.timeline) if self.timeline is not None else []

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


_DEFAULT_MAX_ENDPOINTING_DELAY = 2.5
"""The smallest default maximum endpointing delay of the supported releases."""


def scripted_session_options(
    *,
    preemptive_generation: bool = False,
    allow_interruptions: bool = True,
    min_interruption_duration: float = 0.5,
    endpointing_delay: float | None = None,
) -> dict[str, Any]:
    """`AgentSession` keyword options for a fast, deterministic offline session.

    VAD-based end of turn (no turn-detector model), zero minimum endpointing delay
    (or `endpointing_delay` seconds), interruptions by VAD (not the adaptive detector)
    and without pause-and-resume, no AEC warm-up, no user-away timer, no wait for a
    last transcript at close. Options are feature-detected on the installed release:
    `turn_handling` where it exists (1.5+: `endpointing.min_delay`), else the older flat
    options (`min_endpointing_delay`). The maximum delay is raised to the minimum when
    needed.
    """
    min_delay = 0.0 if endpointing_delay is None else endpointing_delay
    opts: dict[str, Any] = {}
    if "turn_handling" in _SESSION_PARAMS:
        endpointing: dict[str, float] = {"min_delay": min_delay}
        if min_delay > _DEFAULT_MAX_ENDPOINTING_DELAY:
            endpointing["max_delay"] = min_delay
        opts["turn_handling"] = {
            "turn_detection": "vad",
            "endpointing": endpointing,
            "interruption": {
                "enabled": allow_interruptions,
                "mode": "vad",
                "min_duration": min_interruption_duration,
                "resume_false_interruption": False,
            },
            "preemptive_generation": {"enabled": preemptive_generation},
        }
    else:
        flat: dict[str, Any] = {
            "turn_detection": "vad",
            "min_endpointing_delay": min_delay,
            "allow_interruptions": allow_interruptions,
            "min_interruption_duration": min_interruption_duration,
            "resume_false_interruption": False,
            "preemptive_generation": preemptive_generation,
        }
        if min_delay > _DEFAULT_MAX_ENDPOINTING_DELAY:
            flat["max_endpointing_delay"] = min_delay
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

    Opt-in real time and stamps: `timeline` is given to every scripted component that has
    none (the LLM, TTS, VAD, audio output and a `ScriptedAgent`), `real_silence` plays
    every turn's silence in real time, `endpointing_delay` sets LiveKit's minimum
    endpointing delay (see the module docstring). `llm_options` are keyword options of
    the conversation's own `ScriptedLLM` (e.g. `{"ttft": 0.04, "tool_ttft": 0.05}`), which
    answers with the turns' replies; not with an `llm` of your own.
    """

    def __init__(
        self,
        *,
        agent: Agent | None = None,
        llm: lk_llm.LLM | None = None,
        tts: ScriptedTTS | None = None,
        stt: ScriptedSTT | None = None,
        playback_speed: float = 100.0,
        preemptive_generation: bool = False,
        session_options: dict[str, Any] | None = None,
        turn_timeout: float = 10.0,
        timeline: ScriptTimeline | None = None,
        real_silence: bool = False,
        endpointing_delay: float | None = None,
        llm_options: Mapping[str, Any] | None = None,
        real_time_audio: bool = False,
    ) -> None:
        self._replies: dict[str, Reply] = {}
        self.real_time_audio = real_time_audio
        self.timeline = timeline
        self.real_silence = real_silence
        if llm is None:
            llm = ScriptedLLM(self._script, **dict(llm_options or {}))
        elif llm_options:
            raise ValueError("llm_options are for the conversation's own LLM: give no llm")
        self.llm = llm
        self.stt = stt if stt is not None else ScriptedSTT()
        self.tts = tts if tts is not None else ScriptedTTS()
        self.vad = ScriptedVAD()
        self.agent = agent if agent is not None else ScriptedAgent()
        self.audio_input = ScriptedAudioInput()
        self.audio_output = ScriptedAudioOutput(playback_speed=playback_speed)
        self.text_output = ScriptedTextOutput()
        self.turn_timeout = turn_timeout
        if timeline is not None:
            for part in (self.llm, self.tts, self.vad, self.agent, self.audio_output):
                if hasattr(part, "timeline") and part.timeline is None:
                    part.timeline = timeline
        options = scripted_session_options(
            preemptive_generation=preemptive_generation, endpointing_delay=endpointing_delay
        )
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
        self._turns = 0
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

    def _stamp(self, name: str, **data: Any) -> None:
        if self.timeline is not None:
            self.timeline.stamp(name, speech_id=None, **data)

    async def _push_audio(self, frames: Sequence[rtc.AudioFrame]) -> float:
        """Push frames (paced in real time with `real_time_audio`) until LiveKit took them
        all; returns when the first one was pushed (`time.time()`)."""
        started = time.time()
        elapsed = 0.0
        for frame in frames:
            if self.real_time_audio:
                await asyncio.sleep(max(0.0, started + elapsed - time.time()))
            self.audio_input.push_frame(frame)
            elapsed += frame.duration
        await self._wait(self.audio_input.drained(), "audio input to be read")
        return started

    async def _vad_speech(self, turn: UserTurn, index: int | None = None) -> None:
        speaking = self._expect("user_state_changed", self._state_is("speaking"))
        if turn.tone is not None:
            silence = [silence_frame() for _ in range(round(TONE_LEAD / 0.02))]
            await self._push_audio(silence)
        else:
            for _ in range(turn.frames):
                self.audio_input.push_frame(silence_frame())
        started = await self.vad.emit_event(
            VADEventType.START_OF_SPEECH, speech_duration=turn.speech_duration
        )
        if index is not None and self.timeline is not None:
            self.timeline.stamp(
                "user.speech_start", at=started, speech_id=None, turn=index, text=turn.text
            )
        await self.vad.emit_event(VADEventType.INFERENCE_DONE, speech_duration=turn.speech_duration)
        await self._wait(speaking, "user start of speech")
        if turn.tone is not None:
            tone = tone_frames(turn.tone, turn.speech_duration)
            self.audio_input.watch(tone[0])
            pushed = await self._push_audio(tone)
            # when LiveKit took the tone's first frame: the moment the agent received it
            at = self.audio_input.taken_at(tone[0]) or pushed
            if self.timeline is not None:
                self.timeline.stamp(
                    "user.tone_start", at=at, speech_id=None, turn=index, frequency=turn.tone
                )
        if self._held is not None:  # this speech barges in on a held reply
            held, self._held = self._held, None
            try:
                await asyncio.wait_for(asyncio.shield(held.finished), _BARGE_IN_TIMEOUT)
            except asyncio.TimeoutError:
                logger.warning("the held reply was not interrupted; letting it play out")
            self.audio_output.release()

    async def _vad_end(self, turn: UserTurn, index: int | None = None) -> None:
        listening = self._expect("user_state_changed", self._state_is("listening"))
        real = self.real_silence if turn.real_silence is None else turn.real_silence
        if real:
            # the last inference with speech: the true end of the user's speech
            ended = await self.vad.emit_event(
                VADEventType.INFERENCE_DONE, speech_duration=turn.speech_duration
            )
            if self.timeline is not None:
                self.timeline.stamp(
                    "user.speech_end", at=ended, speech_id=None, turn=index, text=turn.text
                )
            await asyncio.sleep(turn.silence_duration)
            await self.vad.emit_event(
                VADEventType.END_OF_SPEECH,
                speech_duration=turn.speech_duration,
                inference_duration=0.0,
                silence_since=ended,
            )
        else:
            await self.vad.emit_event(
                VADEventType.END_OF_SPEECH,
                speech_duration=turn.speech_duration,
                silence_duration=turn.silence_duration,
            )
        heard = await self._wait(listening, "user end of speech")
        if real and index is not None and self.timeline is not None:
            self.timeline.stamp(
                "livekit.speech_end_heard",
                at=float(getattr(heard, "created_at", None) or time.time()),
                speech_id=None,
                turn=index,
            )

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
        await self._handoff_done()
        index, self._turns = self._turns, self._turns + 1
        hold = self.audio_output.hold_next_segment() if turn.interrupt_after is not None else None
        await self._vad_speech(turn, index)
        words = turn.text.split()
        if len(words) > 1:
            interim = self._expect("user_input_transcribed", lambda ev: not ev.is_final)
            await self.stt.emit_interim(" ".join(words[: len(words) // 2]))
            await self._wait(interim, "interim transcript")
        await self._vad_end(turn, index)
        if turn.transcript_delay > 0:
            await asyncio.sleep(turn.transcript_delay)
        eou = self._expect("metrics_collected", lambda ev: isinstance(ev.metrics, EOUMetrics))
        if self.timeline is not None:
            eou.add_done_callback(lambda fut: self._stamp_eou(fut, index))
            self._stamp("stt.final", turn=index, text=turn.text)
        await self.stt.emit_transcript(turn.text, audio_duration=turn.speech_duration)
        speech_id = (await self._wait(eou, f"end of turn for {turn.text!r}")).metrics.speech_id
        handle = self._handles[speech_id]
        if hold is None:
            await self._wait(_done_future(handle), f"end of the reply to {turn.text!r}")
        elif await self._until_captured(hold, _done_future(handle)):
            await asyncio.sleep(turn.interrupt_after or 0.0)
            self._held = hold
        return handle

    async def _handoff_done(self) -> None:
        """Wait for an agent handoff in flight: the new agent's activity opens new STT and
        VAD streams, which must get the next turn's events."""
        task = getattr(self.session, "_update_activity_atask", None)
        if isinstance(task, asyncio.Task) and not task.done():
            await self._wait(asyncio.shield(task), "end of the agent handoff")

    def _stamp_eou(self, fut: asyncio.Future[Any], index: int) -> None:
        if self.timeline is None or fut.cancelled() or fut.exception() is not None:
            return
        m = fut.result().metrics
        self.timeline.stamp(
            "livekit.eou",
            at=m.timestamp,
            speech_id=m.speech_id,
            turn=index,
            end_of_utterance_delay=m.end_of_utterance_delay,
            transcription_delay=m.transcription_delay,
            on_user_turn_completed_delay=m.on_user_turn_completed_delay,
        )

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
            timeline=self.timeline,
        )


async def run_scripted_session(
    turns: Sequence[UserTurn | str],
    *,
    agent: Agent | None = None,
    mode: Literal["audio", "text"] = "audio",
    llm: lk_llm.LLM | None = None,
    tts: ScriptedTTS | None = None,
    stt: ScriptedSTT | None = None,
    playback_speed: float = 100.0,
    preemptive_generation: bool = False,
    session_options: dict[str, Any] | None = None,
    on_session: Callable[[AgentSession], Awaitable[None] | None] | None = None,
    timeline: ScriptTimeline | None = None,
    real_silence: bool = False,
    endpointing_delay: float | None = None,
    llm_options: Mapping[str, Any] | None = None,
    real_time_audio: bool = False,
    turn_timeout: float = 10.0,
) -> ScriptedRun:
    """Run a whole scripted conversation on a real `AgentSession` and close it.

    `mode="audio"` plays each turn through VAD and STT, `mode="text"` sends it with
    `session.run(user_input=...)`. `on_session` is called with the session before it
    starts (to attach listeners or instrumentation). `session_options` override
    `scripted_session_options()`. `timeline`, `real_silence`, `endpointing_delay` and
    `llm_options` are as for `ScriptedConversation` (opt-in, for latency tests with
    known truth). `real_time_audio` pushes the user's audio (turns with a `tone`) at the
    pace of real time, as a microphone would. `turn_timeout` bounds each wait for LiveKit
    (seconds; a hang guard).
    """
    conv = ScriptedConversation(
        agent=agent,
        llm=llm,
        tts=tts,
        stt=stt,
        playback_speed=playback_speed,
        preemptive_generation=preemptive_generation,
        session_options=session_options,
        timeline=timeline,
        real_silence=real_silence,
        endpointing_delay=endpointing_delay,
        llm_options=llm_options,
        real_time_audio=real_time_audio,
        turn_timeout=turn_timeout,
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
