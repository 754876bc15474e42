"""Errors raised by the denoise package; callers catch `DenoiseError` for all of them."""

from __future__ import annotations


class DenoiseError(Exception):
    """Base class of every error this package raises on purpose."""


class EngineError(DenoiseError):
    """The native runtime or its model could not be loaded or used."""


class InvalidSettingError(DenoiseError, ValueError):
    """A control value (attenuation limit, enabled flag, ...) is out of range or of the wrong type."""


class StreamClosedError(DenoiseError, RuntimeError):
    """The denoiser (or engine state) was used after `close()`."""


class FormatError(DenoiseError, ValueError):
    """A frame's format cannot be handled, or differs from the stream's first frame."""


class FormatUnknownError(DenoiseError, RuntimeError):
    """A format-dependent value was asked for before the first frame fixed the stream format."""


class InputError(DenoiseError):
    """The offline tool's input is missing, unreadable, not audio or empty."""


class OutputError(DenoiseError):
    """The offline tool's output cannot be written where asked."""
