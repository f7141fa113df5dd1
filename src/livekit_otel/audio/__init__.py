"""Audio of a call: per-turn clips and the whole recording, encoded and stored off the loop.

This room imports nothing else of livekit-otel: the recording room feeds it frames and
moments, and gets back, on a worker thread, what to write on each span
(:class:`~.session.AudioResult`). Frames are referenced, never copied, on the event loop;
encoding (mono Ogg/Opus with PyAV), storing and uploading happen in threads with bounded
queues, so a call never waits for its audio.
"""
