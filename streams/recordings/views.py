"""Recordings API: the list of a user's recordings, their files (with Range), waveforms, deletion.

Errors are JSON `{"error": ...}`. The list includes a running recording (`"finished": false`,
0 duration and size until it ends) so its owner and friends can see a stream is being kept.

Files are streamed by an async iterator reading chunks off the loop: Django's FileResponse
has no Range support and, under ASGI, reads a whole file into memory before sending it.
Range: one `bytes=` range (first-last, first-, -suffix) gives 206; a syntactically invalid
header, several ranges, or any `If-Range` (we publish no validators) give the whole file
with 200, which RFC 9110 allows; a well-formed range outside the file gives 416.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from streams.exceptions import BadRequest, NotFound, StreamError
from streams.models import Recording
from streams.recordings import peaks
from streams.recordings import service as recordings
from users.models import User

# At most 30 digits: int() refuses very long digit strings, and no file is that large anyway.
_RANGE = re.compile(r"bytes=([0-9]{0,30})-([0-9]{0,30})", re.IGNORECASE)
_CHUNK = 256 * 1024


class RangeNotSatisfiable(Exception):
    pass


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single-range header; None means "send the whole file"."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # suffix range: the final N bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(size - int(last), 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(int(last), size - 1) if last else size - 1


class _FileSlice(StreamingHttpResponse):
    """Sends `length` bytes of an open file from `start`; reads run in a thread, one chunk at a time."""

    def __init__(self, fh: BinaryIO, start: int, length: int, **kwargs: Any) -> None:
        self._fh = fh
        super().__init__(self._chunks(start, start + length), **kwargs)

    async def _chunks(self, pos: int, end: int) -> AsyncIterator[bytes]:
        while pos < end:
            data = await asyncio.to_thread(os.pread, self._fh.fileno(), min(_CHUNK, end - pos), pos)
            if not data:  # the file shrank under us; the client sees a short body
                return
            pos += len(data)
            yield data

    def close(self) -> None:
        self._fh.close()
        super().close()


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


def _open(path: Path) -> tuple[BinaryIO, int]:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the response
    return fh, os.fstat(fh.fileno()).st_size


async def _viewer(request: HttpRequest, methods: str) -> User | JsonResponse:
    """The signed-in caller, or the refusal to send when the method or the caller won't do."""
    if request.method not in methods.split(", "):
        return _error(405, f"Method {request.method} is not allowed here.", Allow=methods)
    user = await request.auser()
    if not user.is_authenticated:
        return _error(401, "Authentication credentials were not provided.")
    return user


async def recording_file(request: HttpRequest, recording_id: int, raw: bool) -> HttpResponseBase:
    """GET/HEAD /api/recordings/<id>/audio/ or /raw/: owner and owner's friends."""
    user = await _viewer(request, "GET, HEAD")
    if isinstance(user, JsonResponse):
        return user
    try:
        target = await database_sync_to_async(recordings.recording_file)(user, recording_id, raw=raw)
        fh, size = await asyncio.to_thread(_open, target.path)
    except StreamError as exc:
        return _error(exc.status_code, str(exc))
    except OSError:
        return _error(404, "The recording's file is missing.")
    header = request.headers.get("Range", "")
    try:
        span = byte_range(header, size) if header and "If-Range" not in request.headers else None
    except RangeNotSatisfiable:
        fh.close()
        return _error(
            416, f"Range {header[:100]!r} is outside the file.", **{"Content-Range": f"bytes */{size}"}
        )
    start, end = span or (0, size - 1)
    headers = {
        "Content-Type": "audio/wav",
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
        "Content-Disposition": content_disposition_header(False, target.filename),
        "Cache-Control": "private, no-cache",  # a running recording grows
    }
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    status = 206 if span else 200
    if request.method == "HEAD":
        fh.close()
        return HttpResponse(status=status, headers=headers)
    return _FileSlice(fh, start, end - start + 1, status=status, headers=headers)


async def recording_peaks(request: HttpRequest, recording_id: int, raw: bool = False) -> JsonResponse:
    """GET /api/recordings/<id>/peaks/ (or /raw/peaks/): the denoised (or original) file's waveform
    (streams.recordings.peaks), for those who may fetch that file; a running recording gives the
    peaks of what is written so far."""
    user = await _viewer(request, "GET")
    if isinstance(user, JsonResponse):
        return user
    try:
        file = await database_sync_to_async(recordings.recording_file)(user, recording_id, raw=raw)
        # Not in the database thread: a long recording takes a while to read.
        body = await asyncio.to_thread(peaks.peaks_of, file.path, cache=file.finished)
    except StreamError as exc:
        return _error(exc.status_code, str(exc))
    except OSError:
        return _error(404, "The recording's file is missing.")
    except peaks.PeaksError:
        return _error(409, "The recording's file cannot be read as audio.")
    return JsonResponse(body, headers={"Cache-Control": "private, no-cache"})


def _as_json(rec: Recording) -> dict[str, Any]:
    audio_bytes, raw_bytes = recordings.file_sizes(rec)
    return {
        "id": rec.pk,
        "title": rec.title,
        "started_at": rec.started_at,
        "duration_s": rec.duration_s,
        "size_bytes": rec.size_bytes,  # both files together
        "audio_bytes": audio_bytes,
        "raw_bytes": raw_bytes,
        "denoise": rec.denoise,
        "atten_lim_db": rec.atten_lim_db,
        "finished": rec.finished,
        "recovered": rec.recovered,
        "audio_url": reverse("recording-audio", args=[rec.pk]),
        "raw_url": reverse("recording-raw", args=[rec.pk]) if rec.raw_path else None,
        "peaks_url": reverse("recording-peaks", args=[rec.pk]),
        "raw_peaks_url": reverse("recording-raw-peaks", args=[rec.pk]) if rec.raw_path else None,
    }


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name, "")
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequest(f'"{name}" must be a whole number from {low} to {high}.')
    return int(text)


def _seconds_param(request: Request, name: str) -> float:
    text = request.query_params.get(name, "") or "0"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # also refuses nan and inf
        raise BadRequest(f'"{name}" must be a number of seconds from 0 to 86400.')
    return value


class RecordingsView(APIView):
    """/api/recordings/<key>/ — GET: the recordings of user <key> (self and friends);
    PATCH {"title"} and DELETE: the caller's recording with id <key>. One route because a
    username may be all digits.

    GET without `limit` answers the whole list; with `limit` (1-100), `offset` and `min_s` (leave
    out finished recordings shorter than that) one page: {"recordings", "total", "short",
    "next_offset"} (`short`: how many were left out for being short; `next_offset` null at the end).
    """

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, StreamError):
            return Response({"error": str(exc)}, status=exc.status_code)
        return super().handle_exception(exc)

    def get(self, request: Request, key: str) -> Response:
        owner = recordings.find_owner(key)
        rows = recordings.recordings_visible_to(request.user, owner)
        if "limit" not in request.query_params:
            return Response([_as_json(rec) for rec in rows])
        page = recordings.page_of(
            rows,
            limit=_int_param(request, "limit", 20, 1, recordings.PAGE_MAX),
            offset=_int_param(request, "offset", 0, 0, 2**31),
            min_s=_seconds_param(request, "min_s"),
        )
        return Response(
            {
                "recordings": [_as_json(rec) for rec in page.rows],
                "total": page.total,
                "short": page.short,
                "next_offset": page.next_offset,
            }
        )

    def patch(self, request: Request, key: str) -> Response:
        body = request.data
        if not isinstance(body, dict) or set(body) != {"title"}:
            raise BadRequest('Send a JSON object with "title" only.')
        rec = recordings.rename_recording(request.user, _recording_id(key), body["title"])
        return Response(_as_json(rec))

    def delete(self, request: Request, key: str) -> Response:
        recordings.delete_recording(request.user, _recording_id(key))
        return Response(status=204)


def _recording_id(key: str) -> int:
    if not (key.isascii() and key.isdigit()):
        raise NotFound(f"No recording with id {key!r}.")
    return int(key)
