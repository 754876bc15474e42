"""Domain errors of the live path and recordings; the API maps each to its HTTP status."""

from __future__ import annotations


class StreamError(Exception):
    status_code = 400


class BadRequest(StreamError):
    status_code = 400


class Forbidden(StreamError):
    status_code = 403


class NotFound(StreamError):
    status_code = 404


class Conflict(StreamError):
    status_code = 409


class PayloadTooLarge(StreamError):
    status_code = 413


class Unavailable(StreamError):
    status_code = 503
