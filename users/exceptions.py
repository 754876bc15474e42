"""Domain errors of the friend graph; the API maps each to its HTTP status."""


class FriendshipError(Exception):
    status_code = 400


class InvalidRequest(FriendshipError):
    status_code = 400


class NotAllowed(FriendshipError):
    status_code = 403


class NotFound(FriendshipError):
    status_code = 404


class Conflict(FriendshipError):
    status_code = 409
