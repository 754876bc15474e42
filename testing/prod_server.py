"""A production-mode (DEBUG=0) copy of the app for the deploy tests: its own PostgreSQL
database and redis-server, collected static files, a self-signed certificate (`make cert`),
and Daphne subprocesses, all in temporary folders and removed afterwards.

Also a tiny HTTPS client (http.client, verifying the test certificate) and a one-message
WebSocket client, since no WebSocket library is a dependency.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings

from deploy.render import render
from testing.processes import BASE_DIR, die_with_parent, wait_until

PYTHON = sys.executable
DAPHNE = str(Path(sys.executable).parent / "daphne")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CERT_NAME = "localhost"
ADMIN = ("ops", "ops-password-0123456789")
START_TIMEOUT_S = 90.0


def postgres_admin_dsn() -> dict[str, Any]:
    """How to reach the PostgreSQL server the tests use (the unix socket by default)."""
    db = settings.DATABASES["default"]
    if db.get("ENGINE") == "django.db.backends.postgresql":
        keys = {
            "host": db.get("HOST"),
            "port": db.get("PORT"),
            "user": db.get("USER"),
            "password": db.get("PASSWORD"),
        }
        return {k: v for k, v in keys.items() if v}
    return {"host": "/var/run/postgresql", "user": "postgres"}


def database_url(dsn: dict[str, Any], name: str) -> str:
    host = str(dsn.get("host", "")).replace("/", "%2F")
    auth = dsn.get("user", "postgres") + (f":{dsn['password']}" if dsn.get("password") else "")
    port = f":{dsn['port']}" if dsn.get("port") else ""
    return f"postgres://{auth}@{host}{port}/{name}"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    dsn = postgres_admin_dsn()
    name = f"deploy_prod_{secrets.token_hex(4)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(dsn, name)
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_redis(folder: Path) -> Iterator[str]:
    """A throw-away redis-server on a unix socket (its URL)."""
    sock = folder / "redis.sock"
    args = ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        [*args, "--dir", str(folder)], stdout=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    try:
        wait_until(lambda: sock.exists() or server.poll() is not None, 10, "redis-server")
        yield f"unix://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def base_env() -> dict[str, str]:
    """The process environment without anything the settings read."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "RD_NETNS_ADDR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([PYTHON, "manage.py", *args], env)


@dataclass
class Production:
    """A prepared DEBUG=0 installation: migrated database, collected static, certificate."""

    env: dict[str, str]
    folder: Path
    cert: Path
    key: Path
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A child process on this install (with `env` added to its environment), its output in
        FOLDER/NAME.log; stopped by stop_all."""
        with (self.folder / f"{name}.log").open("wb") as log:
            server = subprocess.Popen(
                args,
                cwd=BASE_DIR,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.servers.append(server)
        self.names.append(name)
        return server

    def start_daphne(self, *options: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Daphne as the systemd units run it, with these listening options (behind nginx, the
        unit's BEHIND_PROXY=1 goes in `env`)."""
        return self.start(
            f"daphne-{len(self.servers)}", [DAPHNE, *options, "fc25_denoise.asgi:application"], env
        )

    def log_of(self, server: subprocess.Popen[bytes]) -> str:
        name = self.names[self.servers.index(server)]
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for server in self.servers:
            stop(server)


def stop(server: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then wait; the exit code."""
    if server.poll() is None:
        server.terminate()
    return server.wait(timeout=30)


NGINX_MAIN = """daemon off;
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder}/nginx-access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
"""


def nginx_config(prod: Production, upstream: str | list[str], http_port: int, https_port: int) -> Path:
    """The shipped site template, rendered, inside a minimal main config of the test's own
    (one process, no daemon, every path in a temporary folder); checked with `nginx -t`.
    `upstream`: the Daphne address, or a list of them (one per process)."""
    folder = prod.folder / "nginx"
    folder.mkdir(exist_ok=True)
    values = {
        "SERVER_NAME": CERT_NAME,
        "HTTP_PORT": str(http_port),
        "HTTPS_PORT": str(https_port),
        "UPSTREAM_SERVERS": "".join(
            f"    server {address};\n" for address in ([upstream] if isinstance(upstream, str) else upstream)
        ),
        "CERT": str(prod.cert),
        "KEY": str(prod.key),
    }
    site = render((BASE_DIR / "deploy" / "nginx" / "realtime-denoise.conf").read_text(), values)
    (folder / "site.conf").write_text(site)
    main = folder / "nginx.conf"
    main.write_text(NGINX_MAIN.format(folder=folder))
    checked = run([*nginx_args(main), "-t"], base_env())
    assert checked.returncode == 0, checked.stderr
    return main


def nginx_args(main: Path) -> list[str]:
    return [NGINX, "-p", str(main.parent), "-c", str(main), "-e", str(main.parent / "nginx-error.log")]


def prepare(folder: Path, database: str, redis: str) -> Production:
    env = {
        **base_env(),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": f"{CERT_NAME},127.0.0.1",
        "DATABASE_URL": database,
        "REDIS_URL": redis,
        "STATIC_ROOT": str(folder / "static"),
        "MEDIA_ROOT": str(folder / "media"),
        "CACHE_PREFIX": f"t-cache-{secrets.token_hex(4)}",  # its own throttling counters
    }
    certs = folder / "certs"
    made = run(["make", "-s", "cert", f"NAME={CERT_NAME}", f"CERT_DIR={certs}"], env)
    assert made.returncode == 0, made.stderr
    for step in (("migrate", "--noinput"), ("collectstatic", "--noinput")):
        result = manage(env, *step)
        assert result.returncode == 0, f"{step}: {result.stderr[-3000:]}"
    admin = {**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN[1]}
    result = manage(
        admin, "createsuperuser", "--noinput", "--username", ADMIN[0], "--email", "ops@example.org"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Production(env, folder, certs / f"{CERT_NAME}.crt", certs / f"{CERT_NAME}.key")


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def cookies(self) -> SimpleCookie:
        jar: SimpleCookie = SimpleCookie()
        for value in self.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return jar

    def json(self) -> Any:
        return json.loads(self.body)


def tls_context(cert: Path) -> ssl.SSLContext:
    """Trusts only the test certificate, and checks the host name against it."""
    return ssl.create_default_context(cafile=str(cert))


def request(
    base: str,
    path: str,
    *,
    cert: Path | None = None,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    scheme, _, hostport = base.partition("://")
    host, _, port = hostport.partition(":")
    conn: http.client.HTTPConnection
    if scheme == "https":
        assert cert is not None
        conn = http.client.HTTPSConnection(host, int(port), context=tls_context(cert), timeout=30)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def wait_healthy(base: str, cert: Path, server: subprocess.Popen[bytes]) -> None:
    def up() -> bool:
        if server.poll() is not None:
            return True
        try:
            return request(base, "/healthz", cert=cert).status == 200
        except (OSError, http.client.HTTPException):
            return False

    wait_until(up, START_TIMEOUT_S, f"daphne at {base}")
    assert server.poll() is None, f"daphne exited with {server.returncode}"


def login(base: str, cert: Path, username: str, password: str) -> Answer:
    """Sign in through the login form, as a browser would (CSRF cookie, Origin, Referer)."""
    page = request(base, "/accounts/login/", cert=cert)
    token = page.cookies()["csrftoken"].value
    form = f"username={username}&password={password}&csrfmiddlewaretoken={token}".encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"csrftoken={token}",
        "Origin": base,
        "Referer": f"{base}/accounts/login/",
    }
    return request(base, "/accounts/login/", cert=cert, method="POST", body=form, headers=headers)


def websocket_first_message(base: str, cert: Path, path: str, cookie: str) -> dict[str, Any]:
    """Open a wss:// socket, check the 101 handshake, return the server's first JSON message."""
    host, _, port = base.partition("://")[2].partition(":")
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    handshake = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {base}\r\nCookie: {cookie}\r\n\r\n"
    )
    with (
        socket.create_connection((host, int(port)), timeout=30) as raw,
        tls_context(cert).wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(handshake.encode())
        reader = conn.makefile("rb")
        status = reader.readline()
        assert b" 101 " in status, status
        while reader.readline() not in (b"\r\n", b""):
            pass
        first, second = reader.read(2)
        assert first & 0x0F == 1, f"expected a text frame, got opcode {first & 0x0F}"
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(reader.read(2), "big")
        elif length == 127:
            length = int.from_bytes(reader.read(8), "big")
        return json.loads(reader.read(length))
