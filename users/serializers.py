"""What the friends API accepts and returns."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from users.friendships import USERNAME_MAX
from users.models import FriendRequest, User


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and other non-strings instead of converting them."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class UsernameInput(serializers.Serializer):
    """Body of POST /api/friend-request/. DRF's CharField also refuses NUL and lone surrogates."""

    username = StrictCharField(max_length=USERNAME_MAX)


def user_summary(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "username": user.username,
        "is_online": user.is_online,
        "is_streaming": user.is_streaming,
    }


def request_detail(request: FriendRequest) -> dict[str, Any]:
    return {
        "id": request.pk,
        "status": request.status,
        "from_user": request.from_user.username,
        "to_user": request.to_user.username,
        "created_at": request.created_at,
    }


def request_item(request: FriendRequest, other: User) -> dict[str, Any]:
    return {"id": request.pk, "username": other.username, "created_at": request.created_at}
