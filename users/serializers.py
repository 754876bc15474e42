"""What the friends API returns."""

from __future__ import annotations

from typing import Any

from users.models import FriendRequest, User


def user_summary(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "username": user.username,
        "is_online": user.is_online,
        "is_streaming": user.is_streaming,
    }


def search_result(user: User, relation: str) -> dict[str, Any]:
    """Presence (is_online, is_streaming) only for friends: strangers learn a name, not a status."""
    if relation == "friend":
        return {**user_summary(user), "relation": relation}
    return {"id": user.pk, "username": user.username, "relation": relation}


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
