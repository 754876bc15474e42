"""What the database says about live streams, and the checks at the live API's entry points.

`users.User.is_streaming` is the cross-process lock: turning it on is atomic, so one user can
be live on one process only. The sync functions here run through `database_sync_to_async`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from denoise.engine import validate_atten_lim
from denoise.exceptions import InvalidSettingError
from denoise.stream import Controls
from fc25_denoise.errors import BadRequest, Forbidden
from streams.models import Recording
from streams.recordings import service as recordings
from users.friendships import are_friends
from users.models import User


@dataclass(frozen=True)
class StreamStatus:
    is_streaming: bool
    started_at: dt.datetime | None
    denoise: bool | None
    atten_lim_db: float | None
    listeners: int | None  # None when the stream runs on another process
    # The session's state: live, reconnecting (its broadcaster's connection is gone and may
    # resume), ending; None when not live or not known here (only the database flag is).
    state: str | None = None
    # For the owner only (None for anyone else): a new broadcaster offer with `session_id`
    # resumes this stream (same session, recording and listeners); who listens, by name.
    resumable: bool = False
    session_id: str | None = None
    listener_names: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "is_streaming": self.is_streaming,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "denoise": self.denoise,
            "atten_lim_db": self.atten_lim_db,
            "listeners": self.listeners,
            "state": self.state,
            "resumable": self.resumable,
            "session_id": self.session_id,
            "listener_names": self.listener_names,
        }


@dataclass(frozen=True)
class ControlsChange:
    """A request's live controls, checked: what it sets (None = keep as it is)."""

    denoise: bool | None
    atten_lim_db: float | None

    @property
    def empty(self) -> bool:
        return self.denoise is None and self.atten_lim_db is None

    def applied_to(self, current: Controls) -> Controls:
        # Both sides are checked values: nothing to validate again.
        return Controls(
            current.enabled if self.denoise is None else self.denoise,
            current.atten_lim_db if self.atten_lim_db is None else self.atten_lim_db,
        )


def parse_controls(denoise: object, atten_lim_db: object) -> ControlsChange:
    """Client-supplied controls (None = not given), checked once, before anything changes."""
    if denoise is not None and not isinstance(denoise, bool):
        raise BadRequest('"denoise" must be true or false.')
    if atten_lim_db is None:
        return ControlsChange(denoise, None)
    try:
        return ControlsChange(denoise, validate_atten_lim(atten_lim_db))  # type: ignore[arg-type]
    except InvalidSettingError as exc:
        raise BadRequest('"atten_lim_db" must be a number from 0 to 100.') from exc


def usernames(user_ids: list[int]) -> list[str]:
    """The names of these users, each once, sorted."""
    return sorted(set(User.objects.filter(pk__in=user_ids).values_list("username", flat=True)))


def claim_streaming(user_id: int) -> bool:
    """Atomically turn the live flag on; False if it already was (live elsewhere)."""
    return bool(User.objects.filter(pk=user_id, is_streaming=False).update(is_streaming=True))


def set_streaming(user_id: int, value: bool) -> None:
    User.objects.filter(pk=user_id).update(is_streaming=value)


def is_streaming(user_id: int) -> bool:
    return User.objects.filter(pk=user_id, is_streaming=True).exists()


def reset_streaming_flags() -> int:
    return User.objects.filter(is_streaming=True).update(is_streaming=False)


def open_recording(user_id: int) -> Recording | None:
    return Recording.objects.filter(owner_id=user_id, finished=False).order_by("-started_at").first()


def visible_owner(viewer: User, username: str, *, friends_only: bool = False) -> User:
    owner = recordings.find_owner(username)
    if owner.pk == viewer.pk:
        if friends_only:
            raise Forbidden("You cannot listen to your own stream.")
        return owner
    if not are_friends(viewer, owner):
        raise Forbidden(f"Only {owner.username}'s friends can do that.")
    return owner
