"""The one error hierarchy of the domain code (users, streams): each error carries the HTTP status
the API answers with (fc25_denoise.api); the message is a plain sentence meant for the client."""

from __future__ import annotations


class DomainError(Exception):
    """A rule refused what the client asked for; nothing changed."""

    status_code = 400


class BadRequest(DomainError):
    status_code = 400


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Unavailable(DomainError):
    """A part the request needs is down or full; trying again later may work."""

    status_code = 503
