"""Request limits in front of Daphne when it serves clients itself (the Daphne-TLS unit).

Daphne (Twisted) reads a request's whole body, into memory or a temporary file, before the
application sees the request, so nothing in Django or ASGI can refuse a body by its size in
time, and a body that trickles in holds a connection for ever. This guard sits between the
listening socket and Daphne's HTTP protocol, as a Twisted endpoint wrapping another
(`daphne -e guard:ssl:443:privateKey=...`, registered in twisted/plugins/): it reads each
request's head as it passes and

  413  a declared Content-Length over DATA_UPLOAD_MAX_MEMORY_SIZE, before one byte of the body
  411  a chunked request body (browsers never send one; its size is not known in advance)
  408  a head not complete within REQUEST_HEAD_TIMEOUT_S, or a body within REQUEST_BODY_TIMEOUT_S
  431  a head over 64 KiB

answering JSON `{"error": ...}` and closing the connection. Everything else passes untouched;
a WebSocket upgrade is passed through for the rest of the connection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from twisted.internet import interfaces
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IDelayedCall, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import directlyProvides, implementer, providedBy

log = logging.getLogger(__name__)

HEAD_MAX = 64 * 1024
CLOSE_WAIT_S = 2.0
REASONS = {
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}
MESSAGES = {
    408: "The request arrived too slowly.",
    411: "Send the body with a Content-Length.",
    413: "The request body is over the limit of {limit} bytes.",
    431: "The request's headers are too large.",
}


def _limits() -> tuple[int, float, float]:
    from django.conf import settings  # Daphne has loaded the application (and settings) by now

    return (
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        settings.REQUEST_HEAD_TIMEOUT_S,
        settings.REQUEST_BODY_TIMEOUT_S,
    )


class RequestGuard(ProtocolWrapper):
    """One connection: passes bytes on to Daphne while following where each request's head ends."""

    def __init__(self, factory: GuardFactory, wrapped: Any) -> None:
        super().__init__(factory, wrapped)
        self.limit, self.head_timeout, self.body_timeout = factory.limits
        self.head = b""  # the current request's head so far
        self.body_left = 0  # bytes of the current body not yet seen
        self.passthrough = False  # after a WebSocket upgrade
        self.refused = False
        self.timer: IDelayedCall | None = None
        self.closer: IDelayedCall | None = None

    def makeConnection(self, transport: Any) -> None:
        # Look like the transport below (ProtocolWrapper's way), except for TLS: autobahn takes a
        # transport that says it is TLS for Twisted's own TLS class. Twisted's HTTP still learns
        # the connection is secure through __conform__ (isSecure adapts to ISSLTransport).
        directlyProvides(self, *[i for i in providedBy(transport) if not i.isOrExtends(ISSLTransport)])
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(self)

    def __conform__(self, interface: Any) -> Any:
        if interface is ISSLTransport and ISSLTransport.providedBy(self.transport):
            return self.transport
        return None

    def dataReceived(self, data: bytes) -> None:
        if self.refused:  # the answer is out and the connection closing: drop the rest
            return
        if self.passthrough:
            super().dataReceived(data)
            return
        forward = b""
        while data:
            if self.body_left:
                taken = data[: self.body_left]
                self.body_left -= len(taken)
                forward, data = forward + taken, data[len(taken) :]
                if not self.body_left:
                    self._stop_timer()
                continue
            if not self.head:
                if data.lstrip(b"\r\n") == b"":  # blank lines between requests are allowed
                    forward, data = forward + data, b""
                    break
                self._start_timer(self.head_timeout)
            end = (self.head + data).find(b"\r\n\r\n")
            if end < 0:
                self.head += data
                forward, data = forward + data, b""
                if len(self.head) > HEAD_MAX:
                    return self._refuse(431)
                break
            cut = end + 4 - len(self.head)
            self.head, piece, data = self.head + data[:cut], data[:cut], data[cut:]
            verdict = self._judge(self.head)
            if verdict:
                return self._refuse(verdict)
            forward += piece
            self.head = b""
            self._stop_timer()
            if self.passthrough:
                forward, data = forward + data, b""
                break
            if self.body_left:
                self._start_timer(self.body_timeout)
        if forward:
            super().dataReceived(forward)

    def _judge(self, head: bytes) -> int | None:
        """Refusal status for this head, or None (then body_left / passthrough are set)."""
        length, chunked, upgrade = None, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit() or len(value) > 15:
                    return 413
                length = int(value)
            elif name == b"transfer-encoding" and value != b"identity":
                chunked = True
            elif name == b"upgrade" and value == b"websocket":
                upgrade = True
        if chunked:
            return 411
        if length is not None and length > self.limit:
            return 413
        self.body_left = length or 0
        self.passthrough = upgrade
        return None

    def _refuse(self, status: int) -> None:
        self._stop_timer()
        if self.refused:
            return
        body = json.dumps({"error": MESSAGES[status].format(limit=self.limit)}).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        peer = self.transport.getPeer() if self.transport else None
        log.info("Request refused with %s before reaching the app (%s)", status, getattr(peer, "host", "?"))
        self.refused = True
        self.transport.write(head.encode() + body)
        self.transport.pauseProducing()  # read no more of it: the sender stalls once buffers fill
        self.transport.loseConnection()
        # Over TLS the close waits for the client's close_notify, which it may never send.
        from twisted.internet import reactor

        self.closer = reactor.callLater(CLOSE_WAIT_S, self.transport.abortConnection)  # type: ignore[attr-defined]

    def _start_timer(self, seconds: float) -> None:
        from twisted.internet import reactor

        self._stop_timer()
        self.timer = reactor.callLater(seconds, self._refuse, 408)  # type: ignore[attr-defined]

    def _stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def connectionLost(self, reason: Any) -> None:
        self._stop_timer()
        if self.closer is not None and self.closer.active():
            self.closer.cancel()
        super().connectionLost(reason)


class GuardFactory(WrappingFactory):
    protocol = RequestGuard

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self.limits = _limits()


@implementer(interfaces.IStreamServerEndpoint)
class GuardedEndpoint:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def listen(self, factory: Any) -> Any:
        return self.inner.listen(GuardFactory(factory))


def parse(reactor: Any, *args: object, **kwargs: object) -> GuardedEndpoint:
    """`guard:<any endpoint description>`, e.g. guard:ssl:443:privateKey=k.pem:certKey=c.pem."""
    inner = ":".join(
        [quoteStringArgument(str(arg)) for arg in args]
        + [f"{quoteStringArgument(str(k))}={quoteStringArgument(str(v))}" for k, v in kwargs.items()]
    )
    return GuardedEndpoint(serverFromString(reactor, inner))
