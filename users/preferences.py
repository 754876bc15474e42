"""A user's remembered noise removal choice: what the main page starts a stream with."""

from __future__ import annotations

from typing import Any

from denoise.engine import validate_atten_lim
from denoise.exceptions import InvalidSettingError
from fc25_denoise.errors import BadRequest
from users.models import User

FIELDS = {"denoise", "atten_lim_db"}


def noise_of(user: User) -> dict[str, Any]:
    return {"denoise": user.noise_denoise, "atten_lim_db": user.noise_atten_lim_db}


def update_noise(user: User, change: object) -> dict[str, Any]:
    """Apply a partial {"denoise", "atten_lim_db"} change; BadRequest (nothing saved) if bad."""
    if not isinstance(change, dict) or not change or set(change) - FIELDS:
        raise BadRequest('Send a JSON object with "denoise" and/or "atten_lim_db".')
    fields = {}
    if "denoise" in change:
        if not isinstance(change["denoise"], bool):
            raise BadRequest('"denoise" must be true or false.')
        fields["noise_denoise"] = change["denoise"]
    if "atten_lim_db" in change:
        try:
            fields["noise_atten_lim_db"] = validate_atten_lim(change["atten_lim_db"])
        except InvalidSettingError as exc:
            raise BadRequest('"atten_lim_db" must be a number from 0 to 100.') from exc
    User.objects.filter(pk=user.pk).update(**fields)
    for name, value in fields.items():
        setattr(user, name, value)
    return noise_of(user)
