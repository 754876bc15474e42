"""Production mode (DEBUG=0), as docs/deploy.md runs it: subprocesses with a real environment.

`check --deploy` is clean; a missing PostgreSQL, Redis, secret key or host list stops start-up
with a clear sentence; deploy/env.example is valid for both systemd and a shell; and Daphne
alone with its TLS endpoint serves collected static files with cache headers, health, secure
cookies and a wss:// presence socket.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing import prod_server
from testing.processes import BASE_DIR, free_port
from testing.prod_server import ADMIN, Production

# The three silenced: HSTS includeSubDomains and preload, off by default (opt-in, docs/deploy.md),
# and axes' advice to count per address too (django-ratelimit does, users/throttling.py).
SLOW_S = 2.0  # the request guard's head and body timeouts for the Daphne-TLS server here
CLEAN = "System check identified no issues (3 silenced).\n"


@pytest.fixture(scope="module")
def daphne_tls(production: Production) -> Iterator[tuple[str, str]]:
    """Daphne alone: its TLS endpoint plus a plain one (which only redirects); both base URLs."""
    tls_port, plain_port = free_port(), free_port()
    server = production.start_daphne(
        "-e",
        f"guard:ssl:{tls_port}:privateKey={production.key}:certKey={production.cert}:interface=127.0.0.1",
        "-e",
        f"guard:tcp:{plain_port}:interface=127.0.0.1",
        env={"REQUEST_HEAD_TIMEOUT_S": str(SLOW_S), "REQUEST_BODY_TIMEOUT_S": str(SLOW_S)},
    )
    https = f"https://localhost:{tls_port}"
    prod_server.wait_healthy(https, production.cert, server)
    yield https, f"http://localhost:{plain_port}"
    server.send_signal(signal.SIGTERM)
    # A clean stop (the reactor's shutdown hooks ran) exits 0.
    assert server.wait(timeout=30) == 0, production.log_of(server)[-3000:]


def test_check_deploy_is_clean(production: Production) -> None:
    result = prod_server.manage(production.env, "check", "--deploy")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (CLEAN, "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": None}, "DEBUG=0 needs PostgreSQL: set DATABASE_URL=postgres://"),
        ({"DATABASE_URL": "sqlite:////tmp/x.sqlite3"}, "DEBUG=0 needs PostgreSQL"),
        ({"REDIS_URL": None}, "DEBUG=0 needs Redis for the channel layer and presence: set REDIS_URL="),
        ({"SECRET_KEY": None}, "SECRET_KEY must be set when DEBUG=0"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS must list the site's host names when DEBUG=0"),
    ],
)
def test_missing_requirement_stops_manage_py(
    production: Production, change: dict[str, str | None], message: str
) -> None:
    env = {k: v for k, v in {**production.env, **change}.items() if v is not None}
    result = prod_server.manage(env, "check")
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_daphne_refuses_to_start_without_postgres_or_redis(production: Production, missing: str) -> None:
    env = {k: v for k, v in production.env.items() if k != missing}
    result = prod_server.run(
        [prod_server.DAPHNE, "-p", str(free_port()), "fc25_denoise.asgi:application"], env
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG=0 needs" in result.stderr.splitlines()[-1]


def test_env_example_loads_in_a_shell(production: Production) -> None:
    """deploy/env.example, sourced as docs/deploy.md does, yields valid production settings."""
    script = (
        "set -a; . deploy/env.example; set +a; "
        f"export SECRET_KEY={secrets.token_urlsafe(50)} DATABASE_URL={production.env['DATABASE_URL']}; "
        'exec "$0" -c "import fc25_denoise.settings as s; '
        'print(s.DEBUG, s.ALLOWED_HOSTS, s.ICE_SERVERS, s.TURN_URLS, s.TURN_TTL_S, s.MEDIA_ROOT)"'
    )
    result = subprocess.run(
        ["bash", "-c", script, prod_server.PYTHON],
        cwd=BASE_DIR,
        env=prod_server.base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" [{")[0] == "False ['talk.example.org', '127.0.0.1']"
    assert "[{'urls': 'stun:talk.example.org:3478'}]" in result.stdout
    assert (
        "'turn:talk.example.org:3478?transport=tcp'] 21600 /var/lib/realtime-denoise/media" in result.stdout
    )


def test_static_files_are_served_by_whitenoise_with_cache_headers(
    production: Production, daphne_tls: tuple[str, str]
) -> None:
    https, _ = daphne_tls
    manifest = Path(production.env["STATIC_ROOT"]) / "staticfiles.json"
    hashed = json.loads(manifest.read_text())["paths"]["css/style.css"]
    assert hashed != "css/style.css"

    versioned = prod_server.request(https, f"/static/{hashed}", cert=production.cert)
    assert versioned.status == 200
    assert versioned.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert versioned.body == (BASE_DIR / "static" / "css" / "style.css").read_bytes()

    plain = prod_server.request(https, "/static/css/style.css", cert=production.cert)
    assert plain.status == 200
    assert plain.headers["Cache-Control"] == "max-age=60, public"

    gzipped = prod_server.request(
        https, f"/static/{hashed}", cert=production.cert, headers={"Accept-Encoding": "gzip"}
    )
    assert gzipped.headers["Content-Encoding"] == "gzip"


def test_health_and_security_headers_over_https(production: Production, daphne_tls: tuple[str, str]) -> None:
    https, _ = daphne_tls
    health = prod_server.request(https, "/healthz", cert=production.cert)
    assert health.json()["checks"] == {"database": "ok", "channel_layer": "ok", "presence": "ok"}
    page = prod_server.request(https, "/accounts/login/", cert=production.cert)
    assert page.status == 200
    # includeSubDomains and preload are opt-in: a LAN name or a shared parent domain stays usable.
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.cookies()["csrftoken"]["secure"] is True


def test_plain_http_redirects_except_monitoring(daphne_tls: tuple[str, str]) -> None:
    _, plain = daphne_tls
    page = prod_server.request(plain, "/accounts/login/")
    assert page.status == 301
    assert page.headers["Location"].startswith("https://localhost:")
    assert prod_server.request(plain, "/healthz").status == 200
    # Daphne serving clients itself: a client's own X-Forwarded-Proto is not believed.
    forged = prod_server.request(plain, "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert forged.status == 301


def test_sign_in_sets_a_secure_http_only_session_cookie_and_wss_works(
    production: Production, daphne_tls: tuple[str, str]
) -> None:
    https, _ = daphne_tls
    answer = prod_server.login(https, production.cert, *ADMIN)
    assert answer.status == 302, answer.body[:500]
    session = answer.cookies()["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    cookie = f"sessionid={session.value}"
    first = prod_server.websocket_first_message(https, production.cert, "/ws/presence/", cookie)
    assert first["type"] == "snapshot"


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    lengths = re.findall(rb"content-length: *(\d+)", head.lower())
    return bool(sep) and bool(lengths) and len(body) >= int(lengths[0])


def _raw(
    https: str, cert: Path, data: bytes, *, more: bytes = b"", wait_s: float = 10, to_eof: bool = False
) -> tuple[float, bytes, int]:
    """Send `data` (then keep sending `more`, up to 100 MiB, while the server listens) over TLS;
    the seconds until the server closed, what it answered, and how much of `more` went out."""
    host, port = https.removeprefix("https://").split(":")
    started = time.monotonic()
    with (
        socket.create_connection((host, int(port)), timeout=wait_s) as raw,
        prod_server.tls_context(cert).wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(data)
        sent = 0
        try:
            while more and sent < 100 * 2**20:
                conn.sendall(more)
                sent += len(more)
        except OSError:  # the server closed while we were still sending
            pass
        answer = b""
        try:
            while (to_eof or not _complete(answer)) and (chunk := conn.recv(65536)):
                answer += chunk
        except OSError:
            pass
    return time.monotonic() - started, answer, sent


def test_daphne_alone_refuses_a_huge_body_by_its_length_before_reading_it(
    production: Production, daphne_tls: tuple[str, str]
) -> None:
    https, _ = daphne_tls
    head = "POST /api/stream/start/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    elapsed, answer, _ = _raw(https, production.cert, f"{head}Content-Length: {10**12}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert elapsed < SLOW_S  # answered at once, not after a timeout
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"].startswith("The request body is over")
    # 100 MiB announced and being sent: refused from the head, long before the last byte.
    _, answer, sent = _raw(
        https, production.cert, f"{head}Content-Length: {100 * 2**20}\r\n\r\n".encode(), more=b"x" * 2**20
    )
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent < 50 * 2**20  # the connection was closed while the body was still coming


def test_daphne_alone_times_out_slow_heads_and_bodies(
    production: Production, daphne_tls: tuple[str, str]
) -> None:
    https, _ = daphne_tls
    slow_body = b"POST /api/stream/start/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"
    elapsed, answer, _ = _raw(https, production.cert, slow_body)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert SLOW_S - 0.5 < elapsed < SLOW_S + 3
    _, answer, _ = _raw(https, production.cert, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    chunked = (
        b"POST /api/stream/start/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
    )
    assert _raw(https, production.cert, chunked)[1].startswith(b"HTTP/1.1 411 ")
    # Two requests on one connection, the second in the same packet, still pass untouched.
    one = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
    two = one + b"\r\n" + one + b"Connection: close\r\n\r\n"
    assert _raw(https, production.cert, two, to_eof=True)[1].count(b"HTTP/1.1 200 OK") == 2
