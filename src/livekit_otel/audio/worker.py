"""One thread that does a process's audio work, behind a bounded queue that never blocks."""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("livekit_otel")

DEFAULT_QUEUE_SIZE = 256
"""Jobs waiting at most: batches of the call recording's frames (16 frames, about 0.3 s,
each) and clips to encode; at 48 kHz that bounds the audio waiting at about 10 MB."""

_workers: weakref.WeakSet[AudioWorker] = weakref.WeakSet()


class AudioWorker:
    """Runs jobs in a daemon thread, in order; a job that does not fit is dropped and counted.

    ``submit`` never waits, so the event loop never does either. A job that raises is
    counted and logged once; the worker goes on.
    """

    def __init__(self, max_queue: int = DEFAULT_QUEUE_SIZE, name: str = "livekit-otel-audio"):
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue(
            max_queue
        )
        self.dropped = 0
        self.failed = 0
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reported = False
        _workers.add(self)

    def submit(self, job: Callable[..., Any], *args: Any) -> bool:
        """Queue ``job(*args)``; ``False`` (and counted) when the queue is full."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((job, args))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def idle(self) -> bool:
        """Whether every job submitted so far has run."""
        return self._queue.unfinished_tasks == 0

    def drain(self, timeout: float) -> bool:
        """Wait (in a thread that is not the event loop's) until idle, at most ``timeout`` s."""
        return wait_until_idle(self._queue, timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job, args = self._queue.get()
            try:
                job(*args)
            except Exception:
                self.failed += 1
                if not self._reported:
                    self._reported = True
                    logger.warning(
                        "livekit-otel: an audio job failed; the call is unaffected and its "
                        "audio may be missing",
                        exc_info=True,
                    )
            finally:
                self._queue.task_done()


def all_idle() -> bool:
    """Whether every audio worker of this process has finished its jobs."""
    return all(worker.idle() for worker in list(_workers))


def wait_until_idle(jobs: queue.Queue[Any], timeout: float) -> bool:
    """Wait until every job put on ``jobs`` was taken and done, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while jobs.unfinished_tasks:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True
