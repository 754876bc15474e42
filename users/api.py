"""Friends JSON API: validate the input, call users.friendships, shape the answer."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users import friendships, preferences
from users.exceptions import FriendshipError
from users.models import FriendRequest, User
from users.serializers import UsernameInput, request_detail, request_item, user_summary


class DomainError(APIException):
    """A friend-graph rule refused the action; carries that rule's status code."""

    def __init__(self, error: FriendshipError) -> None:
        super().__init__(detail=str(error))
        self.status_code = error.status_code


class FriendsAPIView(APIView):
    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, FriendshipError):
            exc = DomainError(exc)
        return super().handle_exception(exc)


class SearchView(FriendsAPIView):
    def get(self, request: Request) -> Response:
        found = friendships.search(request.user, request.query_params.get("q", ""))
        relation = friendships.relations(request.user, [user.pk for user in found])
        return Response([{**user_summary(user), "relation": relation[user.pk]} for user in found])


class FriendListView(FriendsAPIView):
    def get(self, request: Request) -> Response:
        return Response([user_summary(user) for user in friendships.friends_of(request.user)])


class FriendView(FriendsAPIView):
    def delete(self, request: Request, username: str) -> Response:
        friendships.unfriend(request.user, username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FriendRequestListView(FriendsAPIView):
    def get(self, request: Request) -> Response:
        incoming, outgoing = friendships.pending_requests(request.user)
        return Response(
            {
                "incoming": [request_item(item, item.from_user) for item in incoming],
                "outgoing": [request_item(item, item.to_user) for item in outgoing],
            }
        )


class FriendRequestCreateView(FriendsAPIView):
    def post(self, request: Request) -> Response:
        body = UsernameInput(data=request.data)
        body.is_valid(raise_exception=True)
        sent = friendships.send_request(request.user, body.validated_data["username"])
        # Completing a crossed request creates nothing new, hence 200 rather than 201.
        created = sent.status == FriendRequest.Status.PENDING
        return Response(
            request_detail(sent), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


DECISIONS: dict[str, Callable[[User, int], FriendRequest]] = {
    "accept": friendships.accept,
    "reject": friendships.reject,
    "cancel": friendships.cancel,
}


class FriendRequestDecisionView(FriendsAPIView):
    """accept / reject (addressee only) and cancel (sender only); the URL conf passes `decision`."""

    def post(self, request: Request, request_id: int, decision: str) -> Response:
        return Response(request_detail(DECISIONS[decision](request.user, request_id)))


class NoisePreferenceView(FriendsAPIView):
    """GET/PATCH /api/me/noise/: the caller's remembered noise choice {denoise, atten_lim_db}."""

    def get(self, request: Request) -> Response:
        return Response(preferences.noise_of(request.user))

    def patch(self, request: Request) -> Response:
        return Response(preferences.update_noise(request.user, request.data))
