"""Waveform peaks of recordings: which file, whether its peaks may be cached, and the cache's removal.

Who may see them is what `recordings.recording_file` allows for the denoised audio. The peaks
themselves are computed and cached by `streams.peaks`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction
from django.db.models.signals import post_delete

from streams import peaks, recordings
from streams.exceptions import NotFound
from streams.models import Recording
from users.models import User

log = logging.getLogger(__name__)


def peaks_source(viewer: User, recording_id: int) -> tuple[Path, bool]:
    """(denoised file, finished); NotFound as for the audio file itself."""
    path = recordings.recording_file(viewer, recording_id, raw=False).path
    finished = Recording.objects.filter(pk=recording_id).values_list("finished", flat=True).first()
    if finished is None:  # deleted since the line above
        raise NotFound(f"No recording with id {recording_id}.")
    return path, finished


def connect() -> None:
    """Called once from StreamsConfig.ready()."""
    post_delete.connect(remove_cache, sender=Recording, dispatch_uid="recording_peaks.remove_cache")


def remove_cache(sender: type[Recording], instance: Recording, using: str, **kwargs: object) -> None:
    """post_delete: the cached peaks go once the deletion commits, as the audio file does
    (`recordings.remove_files`, which knows nothing of them)."""
    # The same path check as the audio file's, so nothing outside the recordings folder is touched.
    audio = recordings._safe_path(instance.audio_path)
    if audio is not None:
        transaction.on_commit(lambda: _unlink(peaks.cache_path(audio)), using=using)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # only wasted space
        log.error("Could not remove the peaks cache %s: %s", path, exc)
