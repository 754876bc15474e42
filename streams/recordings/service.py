"""Recordings: the rows and files of live streams, and who may see them.

Sync functions (ORM and file work); async callers wrap them with `database_sync_to_async`.
Files live at MEDIA_ROOT/recordings/<username>/<UTC timestamp>-<id>.wav (+ `-raw.wav`);
rows store paths relative to MEDIA_ROOT.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.signals import post_delete
from django.utils import timezone

from fc25_denoise.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from streams.models import Recording
from streams.recordings import peaks
from streams.recordings.recorder import Recorder
from streams.recordings.wav_file import RecordingStats, WavError, repair_wav
from users.friendships import are_friends, find_user
from users.models import User

log = logging.getLogger(__name__)

RECORDINGS_DIR = "recordings"
TITLE_MAX = 100
PAGE_MAX = 100
_MAX_ID = 2**63 - 1  # bigint primary keys; larger numbers would overflow the database driver


@dataclass(frozen=True)
class RecordingFile:
    path: Path
    filename: str  # what a browser should save it as
    finished: bool  # False while its stream is still writing it


def _dir_name(user: User) -> str:
    """The user's folder: the username, made safe for any filesystem path."""
    name = re.sub(r"[^\w.@+-]", "_", user.username)
    return name if name.strip(".") else f"user-{user.pk}"


def _safe_path(relative: str) -> Path | None:
    """Absolute path of a stored relative path, or None if it points outside the recordings folder."""
    root = (Path(settings.MEDIA_ROOT) / RECORDINGS_DIR).resolve()
    path = (Path(settings.MEDIA_ROOT) / relative).resolve()
    return path if relative and path.is_relative_to(root) else None


def _check_id(recording_id: int) -> None:
    if not 0 < recording_id <= _MAX_ID:
        raise NotFound(f"No recording with id {recording_id}.")


def create_recording(user: User, *, denoise: bool, atten_lim_db: float, record_raw: bool) -> Recording:
    """A new unfinished row with its file paths; the user's folder is created."""
    try:
        with transaction.atomic():
            rec = Recording.objects.create(owner=user, denoise=denoise, atten_lim_db=atten_lim_db)
            stem = f"{RECORDINGS_DIR}/{_dir_name(user)}/{rec.started_at:%Y%m%dT%H%M%SZ}-{rec.pk}"
            rec.audio_path = f"{stem}.wav"
            rec.raw_path = f"{stem}-raw.wav" if record_raw else ""
            rec.save(update_fields=["audio_path", "raw_path"])
            (Path(settings.MEDIA_ROOT) / stem).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("Cannot create the recordings folder for %s: %s", user.username, exc)
        raise Unavailable("Recording storage is not available right now.") from exc
    return rec


def open_recorder(recording: Recording, on_stopped: Callable[[str], None] | None = None) -> Recorder:
    """The recording's files, open for writing; `on_stopped(reason)` (from the writer thread)
    if a disk error stops the recording while the stream goes on. Unavailable (503) when the
    files cannot even be started (a full disk): the start is refused."""
    audio = _safe_path(recording.audio_path)
    if audio is None:
        raise Unavailable("This recording has no valid file path.")
    try:
        return Recorder(audio, _safe_path(recording.raw_path), on_stopped=on_stopped)
    except OSError as exc:
        log.error("Cannot open the files of recording %s: %s", recording.pk, exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise Unavailable("Recording storage is full; the stream cannot start.") from exc
        raise Unavailable("Recording storage is not available right now.") from exc


def discard_recording(recording_id: int) -> None:
    """A refused start's row goes, and its files with it (`remove_files`): nothing is left."""
    Recording.objects.filter(pk=recording_id).delete()


def finalize_recording(recording_id: int, stats: RecordingStats) -> Recording:
    """Mark the row finished with the closed files' figures; NotFound if it was deleted meanwhile."""
    updated = Recording.objects.filter(pk=recording_id).update(
        ended_at=timezone.now(), duration_s=stats.duration_s, size_bytes=stats.size_bytes, finished=True
    )
    if not updated:
        raise NotFound(f"No recording with id {recording_id}.")
    return Recording.objects.get(pk=recording_id)


def _repair(relative: str, recording_id: int) -> RecordingStats:
    path = _safe_path(relative)
    try:
        if path is None:
            raise FileNotFoundError(relative)
        return repair_wav(path)
    except FileNotFoundError:
        log.warning("Recording %s: file %r is missing; kept with no audio.", recording_id, relative)
    except WavError as exc:
        log.warning("Recording %s: %s is not a repairable WAV (%s).", recording_id, path, exc)
    except OSError as exc:
        log.error("Recording %s: cannot repair %s: %s", recording_id, path, exc)
    return RecordingStats(duration_s=0.0, size_bytes=0)


def recover_unfinished(
    *, owners: Collection[int] | None = None, skip_live_owners: bool = False
) -> list[Recording]:
    """Finish rows a crash left open, repairing their files' headers.

    Only for rows nobody is writing: at start-up (with `skip_live_owners` when other processes
    may be writing their users' live streams), or for the `owners` whose process was found dead.
    Never raises for bad or missing files: such rows end up finished with what could be measured.
    """
    rows = Recording.objects.filter(finished=False)
    if owners is not None:
        rows = rows.filter(owner_id__in=owners)
    if skip_live_owners:
        rows = rows.exclude(owner__is_streaming=True)
    recovered = []
    for rec in rows.order_by("pk"):
        audio = _repair(rec.audio_path, rec.pk)
        raw = _repair(rec.raw_path, rec.pk) if rec.raw_path else RecordingStats(0.0, 0)
        duration = audio.duration_s or raw.duration_s
        fields = {
            "ended_at": rec.started_at + dt.timedelta(seconds=duration),
            "duration_s": duration,
            "size_bytes": audio.size_bytes + raw.size_bytes,
            "finished": True,
            "recovered": True,
        }
        # Conditional update: a row finished meanwhile keeps its own figures.
        if Recording.objects.filter(pk=rec.pk, finished=False).update(**fields):
            for name, value in fields.items():
                setattr(rec, name, value)
            recovered.append(rec)
            log.info("Recovered recording %s of user %s: %.1f s.", rec.pk, rec.owner_id, duration)
    return recovered


def find_owner(username: str) -> User:
    return find_user(username)


def recordings_visible_to(viewer: User, owner: User) -> QuerySet[Recording]:
    """The owner's recordings, newest first, live ones included; Forbidden unless self or friend."""
    if viewer.pk != owner.pk and not are_friends(viewer, owner):
        raise Forbidden(f"Only {owner.username}'s friends can see their recordings.")
    return Recording.objects.filter(owner=owner).order_by("-started_at", "-id")


@dataclass(frozen=True)
class Page:
    rows: list[Recording]
    total: int  # recordings that pass the filter (all pages)
    short: int  # finished recordings left out for being shorter than min_s
    next_offset: int | None


def page_of(rows: QuerySet[Recording], *, limit: int, offset: int, min_s: float) -> Page:
    """One page of `rows` (newest first) without the finished ones shorter than `min_s`; a
    running recording is never left out (its duration is 0 until it ends)."""
    short = Q(finished=True, duration_s__lt=min_s)
    kept = rows.exclude(short)
    total = kept.count()
    page = list(kept[offset : offset + limit])
    more = offset + len(page) < total
    return Page(page, total, rows.filter(short).count(), offset + len(page) if more else None)


def file_sizes(rec: Recording) -> tuple[int, int]:
    """Bytes on disk of the denoised and the raw file (0 when missing): each download's size."""
    sizes = []
    for relative in (rec.audio_path, rec.raw_path):
        path = _safe_path(relative) if relative else None
        try:
            sizes.append(path.stat().st_size if path else 0)
        except OSError:
            sizes.append(0)
    return sizes[0], sizes[1]


def check_owner(user: User, recording_id: int) -> None:
    """NotFound unless `user` owns that recording (the API asks before reading a change's body)."""
    _check_id(recording_id)
    if not Recording.objects.filter(pk=recording_id, owner=user).exists():
        raise NotFound(f"No recording with id {recording_id}.")


def rename_recording(user: User, recording_id: int, title: object) -> Recording:
    """Owner only; "" resets the title (the page shows the date). BadRequest for a bad title."""
    _check_id(recording_id)
    if not isinstance(title, str):
        raise BadRequest('"title" must be a string.')
    title = " ".join(title.split())  # no newlines or tabs: a title is one line
    if len(title) > TITLE_MAX:
        raise BadRequest(f"A title can be at most {TITLE_MAX} characters.")
    if not Recording.objects.filter(pk=recording_id, owner=user).update(title=title):
        raise NotFound(f"No recording with id {recording_id}.")
    return Recording.objects.get(pk=recording_id)


def recording_file(viewer: User, recording_id: int, *, raw: bool) -> RecordingFile:
    """The file to serve; NotFound when the viewer may not see the recording (existence is not revealed)."""
    _check_id(recording_id)
    rec = Recording.objects.select_related("owner").filter(pk=recording_id).first()
    if rec is None or (rec.owner_id != viewer.pk and not are_friends(viewer, rec.owner_id)):
        raise NotFound(f"No recording with id {recording_id}.")
    relative = rec.raw_path if raw else rec.audio_path
    path = _safe_path(relative)
    if path is None:
        raise NotFound("This recording has no raw file." if raw else "This recording has no audio file.")
    return RecordingFile(path=path, filename=f"{rec.owner.username}-{path.name}", finished=rec.finished)


def delete_recording(user: User, recording_id: int) -> None:
    """Owner only: the row now, the files once the transaction has committed (`remove_files`)."""
    _check_id(recording_id)
    with transaction.atomic():
        rec = Recording.objects.select_for_update().filter(pk=recording_id, owner=user).first()
        if rec is None:
            raise NotFound(f"No recording with id {recording_id}.")
        if not rec.finished:
            raise Conflict("This recording is still being written; end the stream first.")
        rec.delete()


def connect() -> None:
    """Called once from StreamsConfig.ready()."""
    post_delete.connect(remove_files, sender=Recording, dispatch_uid="recordings.remove_files")


def remove_files(sender: type[Recording], instance: Recording, using: str, **kwargs: object) -> None:
    """post_delete: however the row went (the API, a user's deletion cascading, the admin), its
    files go once that commits; a rollback keeps them.

    An unfinished row's files go too: its Recorder writes through handles opened at the start and
    never reopens the paths, so nothing recreates them (the space is freed when the stream ends,
    whose finalize then finds no row). Kept, they would be orphans no row or recovery ever sees.
    """
    recording_id = instance.pk  # read now: Django clears the pk once the deletion is done
    audio, raw = _safe_path(instance.audio_path), _safe_path(instance.raw_path)
    # The waveform cached beside the audio file (streams.recordings.peaks) goes with it.
    paths = [p for p in (audio, raw, audio and peaks.cache_path(audio)) if p is not None]
    transaction.on_commit(lambda: _unlink(paths, recording_id), using=using)


def _unlink(paths: list[Path], recording_id: int) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # the row is gone; a leftover file is only wasted space
            log.error("Recording %s deleted but %s could not be removed: %s", recording_id, path, exc)
