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

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header

from fc25_denoise.api import combine, endpoint, error, reply
from fc25_denoise.errors import BadRequest, Conflict, NotFound
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


def _open(path: Path) -> tuple[BinaryIO, int]:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the response
    return fh, os.fstat(fh.fileno()).st_size


@endpoint("GET")
async def recording_file(request: HttpRequest, user: User, recording_id: int, raw: bool) -> HttpResponseBase:
    """GET/HEAD /api/recordings/<id>/audio/ or /raw/: owner and owner's friends."""
    target = await sync_to_async(recordings.recording_file)(user, recording_id, raw=raw)
    try:
        fh, size = await asyncio.to_thread(_open, target.path)
    except OSError as exc:
        raise NotFound("The recording's file is missing.") from exc
    header = request.headers.get("Range", "")
    try:
        span = byte_range(header, size) if header and "If-Range" not in request.headers else None
    except RangeNotSatisfiable:
        fh.close()
        return error(
            416, f"The range is outside the file's {size} bytes.", **{"Content-Range": f"bytes */{size}"}
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


@endpoint("GET")
async def recording_peaks(
    request: HttpRequest, user: User, recording_id: int, raw: bool = False
) -> JsonResponse:
    """GET /api/recordings/<id>/peaks/ (or /raw/peaks/): the denoised (or original) file's waveform
    (streams.recordings.peaks), for those who may fetch that file; a running recording gives the
    peaks of what is written so far."""
    file = await sync_to_async(recordings.recording_file)(user, recording_id, raw=raw)
    try:
        # Not in the database thread: a long recording takes a while to read.
        body = await asyncio.to_thread(peaks.peaks_of, file.path, cache=file.finished)
    except OSError as exc:
        raise NotFound("The recording's file is missing.") from exc
    except peaks.PeaksError as exc:
        raise Conflict("The recording's file cannot be read as audio.") from exc
    return reply(body, **{"Cache-Control": "private, no-cache"})


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


def _int_param(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    text = request.GET.get(name, "")
    if not text:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or not low <= int(text) <= high:
        raise BadRequest(f'"{name}" must be a whole number from {low} to {high}.')
    return int(text)


def _seconds_param(request: HttpRequest, name: str) -> float:
    text = request.GET.get(name, "") or "0"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # also refuses nan and inf
        raise BadRequest(f'"{name}" must be a number of seconds from 0 to 86400.')
    return value


@endpoint("GET")
async def _list(request: HttpRequest, user: User, key: str) -> JsonResponse:
    """The recordings of user <key> (self and friends). Without `limit` the whole list; with `limit`
    (1-100), `offset` and `min_s` (leave out finished recordings shorter than that) one page:
    {"recordings", "total", "short", "next_offset"} (`short`: how many were left out for being
    short; `next_offset` null at the end)."""
    return reply(await sync_to_async(_listing)(request, user, key))


def _listing(request: HttpRequest, user: User, key: str) -> Any:
    rows = recordings.recordings_visible_to(user, recordings.find_owner(key))
    if "limit" not in request.GET:
        return [_as_json(rec) for rec in rows]
    page = recordings.page_of(
        rows,
        limit=_int_param(request, "limit", 20, 1, recordings.PAGE_MAX),
        offset=_int_param(request, "offset", 0, 0, 2**31),
        min_s=_seconds_param(request, "min_s"),
    )
    return {
        "recordings": [_as_json(rec) for rec in page.rows],
        "total": page.total,
        "short": page.short,
        "next_offset": page.next_offset,
    }


async def _own(request: HttpRequest, user: User, key: str) -> None:
    await sync_to_async(recordings.check_owner)(user, _recording_id(key))


@endpoint("PATCH", json_body=True, access=_own)
async def _rename(request: HttpRequest, user: User, body: dict[str, Any], key: str) -> JsonResponse:
    """{"title"}: the caller's recording with id <key>."""
    if set(body) != {"title"}:
        raise BadRequest('Send a JSON object with "title" only.')
    rec = await sync_to_async(recordings.rename_recording)(user, _recording_id(key), body["title"])
    return reply(await sync_to_async(_as_json)(rec))


@endpoint("DELETE")
async def _delete(request: HttpRequest, user: User, key: str) -> HttpResponse:
    """The caller's recording with id <key>."""
    await sync_to_async(recordings.delete_recording)(user, _recording_id(key))
    return HttpResponse(status=204)


def _recording_id(key: str) -> int:
    # At most 19 digits: no id is larger (bigint), and int() refuses thousands of digits.
    if not (key.isascii() and key.isdigit() and len(key) <= 19):
        raise NotFound("No recording with that id.")
    return int(key)


# /api/recordings/<key>/: GET lists user <key>'s recordings; PATCH and DELETE change the caller's
# recording with id <key> (one route because a username may be all digits).
recordings_view = combine(_list, _rename, _delete)
