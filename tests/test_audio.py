"""Audio of a call: each turn's clip and the whole recording, with known truth.

The scripted kit speaks a distinct tone per utterance (``UserTurn.tone``, after
``TONE_LEAD`` s of silence) and per reply (``ScriptedTTS(tones=...)``); its audio output
records how much of each reply it played. Each clip is decoded with PyAV and checked
against the script: its length, its tone, and for the call recording where each tone sits.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from livekit_otel_dev.audio import decode, dominant_frequency, tone_start
from livekit_otel_dev.langfuse_media import LangfuseMediaServer, derive_media_id
from livekit_otel_dev.scripted import ScriptedTTS, ScriptTimeline, UserTurn, run_scripted_session
from livekit_otel_dev.scripted.driver import TONE_LEAD

from livekit_otel.audio import runtime
from livekit_otel.audio.langfuse import LangfuseMedia
from support.tracing import SpanTree, Tracing, attributes

TOLERANCE = 0.040
USER_TONES = (440.0, 660.0, 880.0)
REPLY_TONES = {"Alpha": 300.0, "Beta": 500.0, "Gamma": 700.0}
TURNS = [
    UserTurn("first question", tone=440.0, speech_duration=0.5, reply="Alpha answers you."),
    UserTurn("second question", tone=660.0, speech_duration=0.8, reply="Beta says this."),
    UserTurn("third question", tone=880.0, speech_duration=0.3, reply="Gamma is last."),
]


def tones_tts() -> ScriptedTTS:
    return ScriptedTTS(tones=REPLY_TONES)


def settled(tracing: Tracing) -> SpanTree:
    """The spans once every span waiting for its audio has ended."""
    assert runtime.shared_worker().drain(10.0), "the audio worker did not finish"
    return tracing.tree()


def audio_keys(tree: SpanTree) -> list[str]:
    return sorted(
        {k for span in tree for k in attributes(span) if k.startswith(("lk.audio", "lk.rec"))}
    )


def tone_of(uri: str, channel: int = 0) -> float:
    decoded = decode(uri)
    return dominant_frequency(decoded.channel(channel), decoded.sample_rate)


# -- per-turn clips ---------------------------------------------------------------------------
async def test_each_user_turn_clip_holds_its_utterance_from_the_lead_in(
    instrument: Any, tmp_path: Path
) -> None:
    tracing = instrument(audio="turns", audio_store=str(tmp_path))
    await run_scripted_session(TURNS, tts=tones_tts())
    tree = settled(tracing)
    user_turns = sorted(tree.named("user_turn"), key=lambda s: s.start_time or 0)
    assert len(user_turns) == len(TURNS)
    for span, turn in zip(user_turns, TURNS, strict=True):
        values = attributes(span)
        decoded = decode(values["lk.audio.uri"])
        expected = TONE_LEAD + turn.speech_duration
        assert decoded.duration == pytest.approx(expected, abs=TOLERANCE)
        assert values["lk.audio.duration"] == pytest.approx(expected, abs=TOLERANCE)
        assert values["lk.audio.mime_type"] == "audio/ogg"
        assert tone_of(values["lk.audio.uri"]) == pytest.approx(turn.tone, rel=0.03)


async def test_each_agent_turn_clip_holds_its_reply_as_played(
    instrument: Any, tmp_path: Path
) -> None:
    tracing = instrument(audio="turns", audio_store=str(tmp_path))
    run = await run_scripted_session(TURNS, tts=tones_tts())
    tree = settled(tracing)
    played = {seg.speech_id: seg.played for seg in run.audio_output.segments}
    replies = [s for s in tree.named("agent_turn") if "lk.audio.uri" in attributes(s)]
    assert len(replies) == len(TURNS)
    for span in replies:
        values = attributes(span)
        truth = played[values["lk.speech_id"]]
        assert decode(values["lk.audio.uri"]).duration == pytest.approx(truth, abs=TOLERANCE)
        said = values.get("langfuse.observation.output", "")
        word = next(key for key in REPLY_TONES if key in said)
        assert tone_of(values["lk.audio.uri"]) == pytest.approx(REPLY_TONES[word], rel=0.03)


async def test_an_interrupted_reply_clip_ends_where_playback_stopped(
    instrument: Any, tmp_path: Path
) -> None:
    tracing = instrument(audio="turns", audio_store=str(tmp_path))
    story = "Alpha " + "tells a long story. " * 12
    turns = [
        UserTurn("tell me a story", tone=440.0, reply=story, interrupt_after=0.05),
        UserTurn("stop", tone=660.0, reply="Beta stops."),
    ]
    run = await run_scripted_session(turns, tts=tones_tts(), playback_speed=1.0)
    tree = settled(tracing)
    cut = next(seg for seg in run.audio_output.segments if seg.interrupted)
    assert cut.played < cut.pushed - 0.5  # the story really was cut short
    span = next(
        s for s in tree.named("agent_turn") if attributes(s)["lk.speech_id"] == cut.speech_id
    )
    values = attributes(span)
    assert values["lk.turn.interrupted"] is True
    clip = decode(values["lk.audio.uri"])
    assert clip.duration == pytest.approx(cut.played, abs=TOLERANCE)
    assert values["lk.audio.duration"] == pytest.approx(
        values["lk.turn.played_duration"], abs=0.001
    )


# -- the call recording -------------------------------------------------------------------------
async def test_the_call_recording_holds_each_tone_where_the_script_played_it(
    instrument: Any, tmp_path: Path
) -> None:
    tracing = instrument(audio="call", audio_store=str(tmp_path))
    timeline = ScriptTimeline()
    turns = [
        UserTurn("first question", tone=440.0, speech_duration=0.4, reply="Alpha answers."),
        UserTurn("second question", tone=660.0, speech_duration=0.4, reply="Beta answers."),
    ]
    await run_scripted_session(
        turns, tts=tones_tts(), playback_speed=1.0, real_time_audio=True, timeline=timeline
    )
    tree = settled(tracing)
    root = tree.one("agent_session")
    values = attributes(root)
    assert "lk.recording.unavailable" not in values
    recording = decode(values["lk.audio.uri"])
    assert recording.samples.shape[0] == 2  # user left, agent right
    first_sample = (root.start_time or 0) / 1e9 + values["lk.recording.start_offset"]
    user_starts = [s for s in timeline.stamps if s.name == "user.tone_start"]
    assert [s.data["frequency"] for s in user_starts] == [440.0, 660.0]
    for stamp in user_starts:
        found = tone_start(recording.channel(0), recording.sample_rate, stamp.data["frequency"])
        assert found is not None
        assert found == pytest.approx(stamp.time - first_sample, abs=TOLERANCE)
    first_frames = [s for s in timeline.stamps if s.name == "output.first_frame"]
    assert len(first_frames) == 2
    for stamp, tone in zip(first_frames, (300.0, 500.0), strict=True):
        found = tone_start(recording.channel(1), recording.sample_rate, tone)
        assert found is not None
        assert found == pytest.approx(stamp.time - first_sample, abs=TOLERANCE)


async def test_no_audio_and_no_audio_attribute_when_audio_is_off(
    instrument: Any, tmp_path: Path
) -> None:
    tracing = instrument(audio_store=str(tmp_path))
    await run_scripted_session(TURNS[:1], tts=tones_tts())
    assert audio_keys(settled(tracing)) == []
    assert list(tmp_path.iterdir()) == []


async def test_no_audio_and_no_audio_attribute_when_content_capture_is_off(
    instrument: Any, tmp_path: Path
) -> None:
    tracing = instrument(audio="turns,call", audio_store=str(tmp_path), capture_content=False)
    await run_scripted_session(TURNS[:1], tts=tones_tts())
    assert audio_keys(settled(tracing)) == []
    assert list(tmp_path.iterdir()) == []


async def test_a_callable_store_gets_each_clip_and_names_its_uri(instrument: Any) -> None:
    kept: dict[str, bytes] = {}

    def store(data: bytes, name: str) -> str:
        kept[name] = data
        return f"s3://bucket/{name}"

    tracing = instrument(audio="turns", audio_store=store)
    await run_scripted_session(TURNS[:1], tts=tones_tts())
    tree = settled(tracing)
    uris = sorted(attributes(s)["lk.audio.uri"] for s in tree if "lk.audio.uri" in attributes(s))
    assert uris == sorted(f"s3://bucket/{name}" for name in kept)
    assert len(kept) == 2  # the utterance and the reply


# -- Langfuse's media API ---------------------------------------------------------------------
@pytest.fixture
def langfuse_media() -> Any:
    with LangfuseMediaServer() as server:
        media = LangfuseMedia(server.url, server.authorization)
        runtime.use_langfuse(media)
        try:
            yield server, media
        finally:
            runtime.use_langfuse(None)


async def test_clips_are_uploaded_to_langfuse_and_referenced_beside_the_text(
    instrument: Any, langfuse_media: Any
) -> None:
    server, media = langfuse_media
    tracing = instrument(audio="turns,call")
    await run_scripted_session(TURNS[:2], tts=tones_tts())
    spans = uploaded_and_referenced(settled(tracing), server, media)
    assert (
        sorted(s.name for s in spans) == ["agent_session"] + ["agent_turn"] * 2 + ["user_turn"] * 2
    )
    for span in spans:
        if span.name == "agent_turn":  # the words the agent said stay, the sound beside them
            said = attributes(span)["langfuse.observation.output"]
            assert any(word in said for word in REPLY_TONES)


async def test_a_realtime_sessions_clips_are_uploaded_to_langfuse(
    instrument: Any, langfuse_media: Any
) -> None:
    from livekit_otel_dev.realtime import RealtimeConversation, RealtimeReply

    server, media = langfuse_media
    tracing = instrument(audio="turns,call")
    conversation = RealtimeConversation(input_frames=10)
    await conversation.start()
    await conversation.user_speaks(
        "hello model", tone=440.0, reply=RealtimeReply("Hi.", tone=300.0)
    )
    await conversation.aclose()
    spans = uploaded_and_referenced(settled(tracing), server, media)
    assert sorted(s.name for s in spans) == ["agent_session", "agent_turn", "user_turn"]


def uploaded_and_referenced(tree: SpanTree, server: Any, media: Any) -> list[Any]:
    """The spans with audio, each checked against what Langfuse's media API received."""
    assert media.drain(10.0)
    assert server.errors == []
    spans = [s for s in tree if "lk.audio.duration" in attributes(s)]
    for span in spans:
        values = attributes(span)
        field = "input" if span.name == "user_turn" else "output"
        text = values[f"langfuse.observation.{field}"]
        reference = text.rsplit("\n", 1)[-1]
        assert reference.startswith("@@@langfuseMedia:type=audio/ogg|id=")
        assert reference.endswith("|source=bytes@@@")
        media_id = reference.split("|id=")[1].split("|")[0]
        record = server.records[media_id]
        assert record.request["traceId"] == f"{span.context.trace_id:032x}"
        assert record.request["observationId"] == f"{span.context.span_id:016x}"
        assert record.request["field"] == field
        assert record.request["contentType"] == "audio/ogg"
        assert record.data is not None
        assert record.request["contentLength"] == len(record.data)
        digest = base64.b64encode(hashlib.sha256(record.data).digest()).decode()
        assert derive_media_id(digest) == media_id
        assert decode(record.data).duration == pytest.approx(values["lk.audio.duration"], abs=0.03)
        assert record.patches[-1]["uploadHttpStatus"] == 200
        assert isinstance(record.patches[-1]["uploadTimeMs"], int)
    assert media.uploaded == len(spans) and media.failed == 0
    return spans


async def test_a_failing_upload_is_retried_then_counted_never_raised(
    langfuse_media: Any,
) -> None:
    server, media = langfuse_media
    from livekit_otel.audio.stores import Placement

    server.fail_puts = 2
    placement = Placement("a" * 32, "b" * 16, "output", "x.ogg")
    assert media.attach(b"first bytes", "audio/ogg", placement) is not None
    assert media.drain(10.0)
    assert media.uploaded == 1
    unreachable = LangfuseMedia("http://127.0.0.1:9", server.authorization, retries=1)
    reference = unreachable.attach(b"other bytes", "audio/ogg", placement)
    assert reference is not None and reference.startswith("@@@langfuseMedia:")
    assert unreachable.drain(10.0)
    assert unreachable.failed == 1 and unreachable.uploaded == 0


# -- realtime sessions ------------------------------------------------------------------------
async def test_a_realtime_session_has_each_utterance_and_reply_clip(
    instrument: Any, tmp_path: Path
) -> None:
    from livekit_otel_dev.realtime import RealtimeConversation, RealtimeReply

    tracing = instrument(audio="turns", audio_store=str(tmp_path))
    conversation = RealtimeConversation(input_frames=15)  # 0.3 s of each utterance
    await conversation.start()
    script = [("hello model", 440.0, "Alpha says hi.", 300.0), ("and you", 660.0, "Beta.", 500.0)]
    for text, user_tone, answer, reply_tone in script:
        await conversation.user_speaks(
            text, tone=user_tone, reply=RealtimeReply(answer, frames=4, tone=reply_tone)
        )
    run = await conversation.aclose()
    tree = settled(tracing)
    user_turns = sorted(tree.named("user_turn"), key=lambda s: s.start_time or 0)
    assert len(user_turns) == len(script)
    for span, (_, user_tone, _, _) in zip(user_turns, script, strict=True):
        uri = attributes(span)["lk.audio.uri"]
        assert decode(uri).duration == pytest.approx(15 * 0.02, abs=TOLERANCE)
        assert tone_of(uri) == pytest.approx(user_tone, rel=0.03)
    played = {seg.speech_id: seg.played for seg in run.audio_output.segments}
    replies = sorted(
        (s for s in tree.named("agent_turn") if "lk.audio.uri" in attributes(s)),
        key=lambda s: s.start_time or 0,
    )
    assert len(replies) == len(script)
    for span, (_, _, _, reply_tone) in zip(replies, script, strict=True):
        values = attributes(span)
        truth = played[values["lk.speech_id"]]
        assert truth == pytest.approx(0.4, abs=0.001)  # four 100 ms frames, all played
        assert decode(values["lk.audio.uri"]).duration == pytest.approx(truth, abs=TOLERANCE)
        assert tone_of(values["lk.audio.uri"]) == pytest.approx(reply_tone, rel=0.03)


async def test_livekits_own_recording_is_attached_with_its_start_offset(
    instrument: Any, tmp_path: Path
) -> None:
    from livekit.agents.voice.recorder_io import RecorderIO
    from livekit_otel_dev.scripted import ScriptedConversation

    tracing = instrument(audio="call", audio_store=str(tmp_path / "store"))
    conversation = ScriptedConversation(tts=tones_tts())
    session = await conversation.start()
    # what AgentSession.start(record=True) does inside a LiveKit job
    recorder = RecorderIO(agent_session=session)
    session._recorder_io = recorder
    session.input.audio = recorder.record_input(session.input.audio)
    session.output.audio = recorder.record_output(session.output.audio)
    await recorder.start(output_path=tmp_path / "livekit" / "audio.ogg")
    for turn in TURNS[:2]:
        await conversation.user_says(turn)
    await conversation.aclose()
    tree = settled(tracing)
    root = tree.one("agent_session")
    values = attributes(root)
    assert "lk.recording.unavailable" not in values
    started = recorder.recording_started_at
    assert started is not None
    assert values["lk.recording.start_offset"] == pytest.approx(
        started - (root.start_time or 0) / 1e9, abs=0.001
    )
    stored = decode(values["lk.audio.uri"])
    assert (
        Path(values["lk.audio.uri"].removeprefix("file://")).read_bytes()
        == (tmp_path / "livekit" / "audio.ogg").read_bytes()
    )
    assert values["lk.audio.duration"] == pytest.approx(stored.duration, abs=0.05)
    assert stored.samples.shape[0] == 2


async def test_the_console_marks_each_turn_with_its_audio_and_where_it_is(
    instrument: Any, tmp_path: Path
) -> None:
    from livekit_otel.terminal import span_tree

    tracing = instrument(audio="turns", audio_store=str(tmp_path))
    await run_scripted_session(TURNS[:1], tts=tones_tts())
    lines = span_tree(settled(tracing)).splitlines()
    user_line = next(line for line in lines if "user_turn" in line)
    expected = TONE_LEAD + TURNS[0].speech_duration
    assert f"audio {expected:.2f} s at file://{tmp_path.resolve()}/" in user_line
    agent_line = next(line for line in lines if "agent_turn" in line)
    assert "audio " in agent_line and "@@@" not in agent_line


def test_setup_langfuse_uploads_audio_to_the_same_project() -> None:
    from livekit_otel.audio.stores import Placement
    from livekit_otel.setup.endpoints import resolve_langfuse_target
    from livekit_otel.setup.langfuse import _upload_audio_to

    with LangfuseMediaServer("pk-lf-audio", "sk-lf-audio") as server:
        try:
            _upload_audio_to(resolve_langfuse_target(server.url, "pk-lf-audio", "sk-lf-audio", {}))
            media = runtime.langfuse_media()
            assert media is not None and media.host == server.url
            placement = Placement("c" * 32, "d" * 16, "input", "y.ogg")
            reference = media.attach(b"some audio", "audio/ogg", placement)
            assert media.drain(10.0)
            assert server.errors == [] and media.uploaded == 1
            assert reference is not None and reference.split("|id=")[1].split("|")[0] in (
                server.records
            )
        finally:
            runtime.use_langfuse(None)


# -- bounded: the call never waits ------------------------------------------------------------
def test_a_full_audio_queue_drops_the_job_and_counts_it() -> None:
    import threading

    from livekit_otel.audio.worker import AudioWorker

    worker = AudioWorker(max_queue=1)
    release = threading.Event()
    assert worker.submit(release.wait)  # runs, and holds the thread
    while worker._queue.qsize():  # until the thread took it
        pass
    assert worker.submit(lambda: None)  # waits in the queue
    assert worker.submit(lambda: None) is False
    assert worker.dropped == 1
    release.set()
    assert worker.drain(5.0)


async def test_the_session_span_goes_without_a_recording_not_ready_in_time(
    instrument: Any, tmp_path: Path
) -> None:
    import threading
    import time

    from livekit_otel_dev.scripted import ScriptedConversation

    from livekit_otel.audio.session import RECORDING_WAIT_SECONDS

    tracing = instrument(audio="call", audio_store=str(tmp_path))
    conversation = ScriptedConversation(tts=tones_tts())
    await conversation.start()
    await conversation.user_says(TURNS[0])
    release = threading.Event()
    runtime.shared_worker().submit(release.wait, 10.0)  # the worker is stuck behind this
    closing = time.time()
    await conversation.aclose()
    while not tracing.tree().named("agent_session") and time.time() - closing < 5.0:
        await asyncio.sleep(0.05)
    release.set()
    root = tracing.tree().one("agent_session")
    values = attributes(root)
    assert values["lk.recording.unavailable"] == "timeout"
    assert "lk.audio.uri" not in values
    waited = time.time() - closing
    assert RECORDING_WAIT_SECONDS - 0.1 <= waited <= RECORDING_WAIT_SECONDS + 1.0
    assert (root.end_time or 0) / 1e9 <= closing + 1.0  # it keeps the moment it closed
    assert runtime.shared_worker().drain(10.0)


async def test_the_per_turn_console_line_names_the_replys_audio(
    instrument: Any, tmp_path: Path
) -> None:
    import io

    from livekit_otel.terminal import attach_console

    out = io.StringIO()
    tracing = instrument(audio="turns", audio_store=str(tmp_path))
    attach_console(tracing.provider, per_turn=True, stream=out)
    run = await run_scripted_session(TURNS[:1], tts=tones_tts())
    settled(tracing)
    (played,) = [segment.played for segment in run.audio_output.segments]
    (line,) = [line for line in out.getvalue().splitlines() if "livekit-otel turn 1:" in line]
    assert f"| audio {played:.2f} s at file://{tmp_path.resolve()}/" in line
    assert "@@@" not in line
    # the session ended after the reply that waited for its clip: its table has the turn
    assert "(no agent turn)" not in out.getvalue()


def test_a_clip_longer_than_its_limit_is_cut_there_and_says_so() -> None:
    from livekit_otel_dev.scripted.media import tone_frames

    from livekit_otel.audio.clips import Clip

    clip = Clip(limit=0.1)
    for frame in tone_frames(440.0, 0.3):  # fifteen 20 ms frames
        clip.add(frame)
    assert clip.truncated
    assert clip.duration == pytest.approx(0.1)
    assert len(clip.frames) == 5


async def test_inline_audio_is_a_data_uri_a_langfuse_server_can_extract(
    instrument: Any,
) -> None:
    tracing = instrument(audio="turns", audio_inline=True, conventions="langfuse")
    await run_scripted_session(TURNS[:1], tts=tones_tts())
    (user,) = settled(tracing).named("user_turn")
    value = attributes(user)["langfuse.observation.input"]
    assert value.startswith("data:audio/ogg;base64,")
    clip = decode(base64.b64decode(value.removeprefix("data:audio/ogg;base64,")))
    assert clip.duration == pytest.approx(TONE_LEAD + TURNS[0].speech_duration, abs=TOLERANCE)


async def test_the_job_shutdown_flush_waits_for_audio_work_within_its_bound() -> None:
    import threading
    import time

    from livekit_otel.recording.registry import wait_for_audio

    loop = asyncio.get_running_loop()
    worker = runtime.shared_worker()
    assert worker.drain(10.0)
    worker.submit(time.sleep, 0.3)  # audio work that finishes in time
    started = loop.time()
    await wait_for_audio(started + 2.0)
    assert 0.25 <= loop.time() - started < 1.5 and worker.idle()
    release = threading.Event()
    worker.submit(release.wait, 10.0)  # audio work that does not
    started = loop.time()
    await wait_for_audio(started + 0.5)
    assert 0.45 <= loop.time() - started < 1.5 and not worker.idle()
    release.set()
    assert worker.drain(10.0)
