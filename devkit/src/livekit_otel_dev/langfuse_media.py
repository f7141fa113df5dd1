"""A local stand-in for Langfuse's public media API, for tests (aiohttp on loopback).

It speaks the API as Langfuse's published definition describes it
(``fern/apis/server/definition/media.yml``; the SDKs post to ``/api/public/media``):
``POST /api/public/media`` takes traceId, observationId, contentType, contentLength,
sha256Hash and field and answers mediaId and a presigned uploadUrl (``null`` when the bytes
are stored already); ``PUT`` on that URL takes the bytes (its content type and
``x-amz-checksum-sha256`` must match what was announced); ``PATCH
/api/public/media/{mediaId}`` takes uploadedAt, uploadHttpStatus, uploadHttpError and
uploadTimeMs. The media id is derived as Langfuse derives it, from the hash (URL-safe
base64, first 22 characters), independently of the code under test. Every request is kept.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class MediaRecord:
    """One media record as the server holds it."""

    media_id: str
    request: dict[str, Any]
    """The POST body that announced it."""
    data: bytes | None = None
    put_headers: dict[str, str] = field(default_factory=dict)
    patches: list[dict[str, Any]] = field(default_factory=list)


class LangfuseMediaServer:
    """Langfuse's media endpoints on ``http://127.0.0.1:<port>``, in a thread of its own."""

    def __init__(self, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test") -> None:
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.authorization = f"Basic {token}"
        self.records: dict[str, MediaRecord] = {}
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, in order."""
        self.errors: list[str] = []
        """Requests refused, and why."""
        self.fail_puts = 0
        """Answer this many PUTs with HTTP 503 first."""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL (what ``LANGFUSE_HOST`` would be)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LangfuseMediaServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/public/media", self._announce)
        app.router.add_patch("/api/public/media/{media_id}", self._patch)
        app.router.add_put("/upload/{media_id}", self._put)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    def _refuse(self, why: str, status: int = 400) -> web.Response:
        self.errors.append(why)
        return web.json_response({"message": why}, status=status)

    async def _announce(self, request: web.Request) -> web.Response:
        self.requests.append(("POST", request.path))
        if request.headers.get("Authorization") != self.authorization:
            return self._refuse("bad authorization", 401)
        body = await request.json()
        required = ("traceId", "contentType", "contentLength", "sha256Hash", "field")
        missing = [key for key in required if key not in body]
        if missing or body.get("field") not in ("input", "output", "metadata"):
            return self._refuse(f"bad body: missing {missing}, field {body.get('field')!r}")
        media_id = derive_media_id(body["sha256Hash"])
        existing = self.records.get(media_id)
        if existing is not None and existing.data is not None:
            return web.json_response({"mediaId": media_id, "uploadUrl": None})
        self.records[media_id] = MediaRecord(media_id, body)
        return web.json_response(
            {"mediaId": media_id, "uploadUrl": f"{self.url}/upload/{media_id}"}
        )

    async def _put(self, request: web.Request) -> web.Response:
        self.requests.append(("PUT", request.path))
        record = self.records.get(request.match_info["media_id"])
        if record is None:
            return self._refuse("PUT for an unknown media id", 404)
        if self.fail_puts > 0:
            self.fail_puts -= 1
            return web.Response(status=503, text="try again")
        data = await request.read()
        announced = record.request
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if request.headers.get("Content-Type") != announced["contentType"]:
            return self._refuse("PUT content type differs from the announced one")
        if request.headers.get("x-amz-checksum-sha256") != announced["sha256Hash"]:
            return self._refuse("x-amz-checksum-sha256 differs from the announced hash")
        if checksum != announced["sha256Hash"] or len(data) != announced["contentLength"]:
            return self._refuse("the bytes differ from the announced hash or length")
        record.data = data
        record.put_headers = dict(request.headers)
        return web.Response(status=200)

    async def _patch(self, request: web.Request) -> web.Response:
        self.requests.append(("PATCH", request.path))
        if request.headers.get("Authorization") != self.authorization:
            return self._refuse("bad authorization", 401)
        record = self.records.get(request.match_info["media_id"])
        if record is None:
            return self._refuse("PATCH for an unknown media id", 404)
        body = await request.json()
        if "uploadedAt" not in body or "uploadHttpStatus" not in body:
            return self._refuse("PATCH without uploadedAt or uploadHttpStatus")
        record.patches.append(body)
        return web.Response(status=204)


def derive_media_id(sha256_b64: str) -> str:
    """Langfuse's media id for a base64 SHA-256: URL-safe alphabet, first 22 characters."""
    return sha256_b64.replace("+", "-").replace("/", "_")[:22]
