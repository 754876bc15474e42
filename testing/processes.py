"""Helpers of the deploy tests: free ports, waiting for a child process, the coturn config.

coturn is started by the tests inside scripts/netns-run (its addresses, never the machine's),
from the shipped template with a temporary folder for its config, log and pid file.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import hmac
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from aioice import stun

from deploy.render import render

BASE_DIR = Path(__file__).resolve().parents[1]
DEPLOY = BASE_DIR / "deploy"
TURN_SECRET = "test-turn-secret-0123456789abcdef"
START_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """preexec_fn for test servers: the kernel stops them if the test process dies abruptly,
    so a killed run leaves no coturn, nginx or Daphne behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(kind: int = socket.SOCK_STREAM, also: int | None = None) -> int:
    """A port free for `kind` (and for `also`, when given) on every address."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        if also is None:
            return port
        with socket.socket(socket.AF_INET, also) as other:
            try:
                other.bind(("", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def wait_until(predicate: object, timeout: float, what: str) -> None:
    """Poll a condition no event reports (a child process starting to listen)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:g} s")
        time.sleep(0.05)


def stun_answers(addr: tuple[str, int]) -> bool:
    """True once a STUN Binding request to `addr` gets a response."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        sock.sendto(bytes(request), addr)
        try:
            data = sock.recv(2048)
        except (TimeoutError, ConnectionRefusedError):
            return False
    return stun.parse_message(data).transaction_id == request.transaction_id


@dataclass(frozen=True)
class Coturn:
    host: str
    port: int
    secret: str
    log: Path  # the log-file of its test config

    def urls(self) -> list[str]:
        return [
            f"turn:{self.host}:{self.port}?transport=udp",
            f"turn:{self.host}:{self.port}?transport=tcp",
        ]


def coturn_config(port: int, peers: list[str], folder: Path) -> str:
    """The shipped template, with the test's only changes: log to a file (verbose, so each
    allocation is logged), no syslog."""
    config = render(
        (DEPLOY / "coturn" / "turnserver.conf").read_text(),
        {
            "TURN_PORT": str(port),
            "REALM": "deploy-test",
            "TURN_SECRET": TURN_SECRET,
            "RELAY_MIN_PORT": "50000",
            "RELAY_MAX_PORT": "50999",
            "APP_SERVER_IP": peers[0],
        },
    )
    extra = [f"allowed-peer-ip={peer}" for peer in peers[1:]]
    extra += [f"log-file={folder / 'turn.log'}", "simple-log", "verbose", f"pidfile={folder / 'turn.pid'}"]
    assert "\nsyslog\n" in config
    return config.replace("\nsyslog\n", "\n") + "\n".join(extra) + "\n"


# coturn's REST-API password: base64(HMAC-SHA1(secret, username)).
def expected_password(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
