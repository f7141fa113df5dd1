"""Langfuse's media API, as its SDKs use it: the reference first, the upload after.

``POST /api/public/media`` (trace, observation, field, type, length, SHA-256) returns the
media id and a presigned upload URL (none when those bytes are stored already); the bytes
are ``PUT`` there; ``PATCH /api/public/media/{id}`` reports how the upload went. The id is
the first 22 characters of the URL-safe base64 SHA-256, so an observation can carry the
reference before the upload ends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .stores import Placement
from .worker import wait_until_idle

logger = logging.getLogger("livekit_otel")

MAX_QUEUE = 256
RETRIES = 3
TIMEOUT = 10.0


def sha256_base64(data: bytes) -> str:
    """The SHA-256 of ``data``, base64 (the form Langfuse and S3 checksums take)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def basic_authorization(public_key: str, secret_key: str) -> str:
    """The ``Authorization`` header of Langfuse's public API for a key pair."""
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return f"Basic {token}"


def media_id(sha256_b64: str) -> str:
    """Langfuse's media id for bytes of this hash: URL-safe base64, first 22 characters."""
    return sha256_b64.replace("+", "-").replace("/", "_")[:22]


def reference(content_type: str, media: str) -> str:
    """The string an observation carries for a media file."""
    return f"@@@langfuseMedia:type={content_type}|id={media}|source=bytes@@@"


def data_uri(content_type: str, data: bytes) -> str:
    """The bytes inline, for a Langfuse server that extracts data URIs itself."""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True)
class _Upload:
    data: bytes
    content_type: str
    sha256: str
    media_id: str
    placement: Placement


class RetryableError(Exception):
    """A failure worth another try (network, 5xx, 429)."""


class LangfuseMedia:
    """Uploads media to one Langfuse project from a thread of its own, a bounded queue ahead.

    ``host`` is the Langfuse base URL, ``authorization`` the header of its public API
    (:func:`basic_authorization`).

    ``attach`` returns the reference at once; a full queue drops the upload (counted), a
    failed one is retried ``retries`` times with backoff, then counted; nothing raises.
    """

    def __init__(
        self,
        host: str,
        authorization: str,
        *,
        max_queue: int = MAX_QUEUE,
        retries: int = RETRIES,
        timeout: float = TIMEOUT,
    ) -> None:
        self.host = host.rstrip("/")
        self._authorization = authorization
        self.retries = retries
        self.timeout = timeout
        self.uploaded = 0
        self.skipped = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[_Upload] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the keys
        return f"LangfuseMedia(host={self.host!r})"

    def attach(self, data: bytes, content_type: str, placement: Placement) -> str | None:
        """Queue the upload of ``data`` and return its reference (``None``: dropped)."""
        digest = sha256_base64(data)
        upload = _Upload(data, content_type, digest, media_id(digest), placement)
        self._ensure_thread()
        try:
            self._queue.put_nowait(upload)
        except queue.Full:
            self.dropped += 1
            return None
        return reference(content_type, upload.media_id)

    def idle(self) -> bool:
        """Whether every upload queued so far has been tried."""
        return self._queue.unfinished_tasks == 0

    def drain(self, timeout: float) -> bool:
        """Wait until every queued upload has been tried, at most ``timeout`` s."""
        return wait_until_idle(self._queue, timeout)

    # -- the upload thread ----------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="livekit-otel-langfuse-media", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            upload = self._queue.get()
            try:
                self._upload(upload)
            except Exception as error:
                self.failed += 1
                logger.warning(
                    "livekit-otel: uploading audio to Langfuse failed (%s); the trace keeps "
                    "its reference without the sound",
                    _describe(error),
                )
            finally:
                self._queue.task_done()

    def _upload(self, upload: _Upload) -> None:
        place = upload.placement
        answer = self._with_retries(
            lambda: self._json(
                "POST",
                f"{self.host}/api/public/media",
                {
                    "traceId": place.trace_id,
                    "observationId": place.span_id,
                    "contentType": upload.content_type,
                    "contentLength": len(upload.data),
                    "sha256Hash": upload.sha256,
                    "field": place.field,
                },
            )
        )
        upload_url = answer.get("uploadUrl")
        server_id = answer.get("mediaId")
        if server_id != upload.media_id:
            raise ValueError(f"Langfuse gave media id {server_id!r}, expected {upload.media_id!r}")
        if not upload_url:  # those bytes are stored already
            self.skipped += 1
            return
        started = time.monotonic()
        status, error = self._put(upload_url, upload)
        self._with_retries(
            lambda: self._json(
                "PATCH",
                f"{self.host}/api/public/media/{upload.media_id}",
                {
                    "uploadedAt": datetime.now(timezone.utc).isoformat(),
                    "uploadHttpStatus": status,
                    "uploadHttpError": error,
                    "uploadTimeMs": int((time.monotonic() - started) * 1000),
                },
            )
        )
        if 200 <= status < 300:
            self.uploaded += 1
        else:
            raise RuntimeError(f"the upload answered HTTP {status}")

    def _put(self, url: str, upload: _Upload) -> tuple[int, str | None]:
        headers = {"Content-Type": upload.content_type, "x-amz-checksum-sha256": upload.sha256}

        def once() -> tuple[int, str | None]:
            request = urllib.request.Request(url, upload.data, headers, method="PUT")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, None
            except urllib.error.HTTPError as error:
                if error.code >= 500 or error.code == 429:
                    raise RetryableError(f"HTTP {error.code}") from None
                return error.code, error.read().decode("utf-8", "replace")[:500]
            except (urllib.error.URLError, OSError) as error:
                raise RetryableError(_describe(error)) from None

        try:
            return self._with_retries(once)
        except RetryableError as error:
            return 599, str(error)

    def _json(self, method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            url,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": self._authorization},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise RetryableError(f"{method} {url}: HTTP {error.code}") from None
            raise RuntimeError(f"{method} {url}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            raise RetryableError(f"{method} {url}: {_describe(error)}") from None
        answer = json.loads(text) if text.strip() else {}
        return answer if isinstance(answer, dict) else {}

    def _with_retries(self, call: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except RetryableError:
                if attempt == self.retries:
                    raise
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise AssertionError("unreachable")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
