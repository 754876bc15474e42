"""The one launcher of a real `daphne` subprocess serving the app, for every test, bench and
script that needs a server of its own (crash and presence tests, the pages, the benches, the demo).

It shares the caller's database (pass the test database's URL) and media folder, and reports
its own CPU time and memory from /proc, so figures are the server's alone.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from testing.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
DAPHNE = Path(sys.executable).parent / "daphne"
_TICKS = os.sysconf("SC_CLK_TCK")


def database_url(db: dict[str, Any]) -> str:
    """A DATABASE_URL for Django's connection settings `db` (SQLite file or PostgreSQL)."""
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host = quote(db.get("HOST") or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{host}{port}/{db['NAME']}"


def url_of_test_database() -> str:
    """The DATABASE_URL of the test database pytest-django created (call after django_db_setup);
    refuses anything else, so a server is never pointed at a development database by mistake."""
    from django.db import connection

    db = connection.settings_dict
    name = str(db["NAME"])
    if db["ENGINE"].endswith("sqlite3"):
        if name == ":memory:" or name.startswith("file:") or not name.startswith(tempfile.gettempdir()):
            raise RuntimeError(f"expected a file-based SQLite test database, got {name!r}")
    elif not name.startswith("test_"):
        raise RuntimeError(f"expected pytest-django's test database, got {name!r}")
    return database_url(db)


def app_env(database: str, media_root: Path, **extra: str) -> dict[str, str]:
    """What `make run` gives the server, on the given database and media folder, with its own
    channel-layer and presence key prefixes so servers never see each other's state."""
    return {
        "DATABASE_URL": database,
        "MEDIA_ROOT": str(media_root),
        "DEBUG": "1",
        "CHANNELS_PREFIX": f"t-{secrets.token_hex(4)}",
        "PRESENCE_REDIS_PREFIX": f"t-presence-{secrets.token_hex(4)}",
        "LOG_LEVEL": "WARNING",
        # Its own throttling counters, and room for the many sign-ups of a test module.
        "CACHE_PREFIX": f"t-cache-{secrets.token_hex(4)}",
        "SIGNUP_RATE_PER_IP": "1000/m",
        "LOGIN_RATE_PER_IP": "1000/m",
        **extra,
    }


class DaphneServer:
    """`daphne -b 127.0.0.1 -p <free port> fc25_denoise.asgi:application` with extra env.

    start() = spawn() + wait_ready(); several servers can be spawned first and awaited together."""

    def __init__(self, env: dict[str, str], log_path: Path, root: Path = ROOT) -> None:
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "fc25_denoise.settings", **env}
        self.log_path = log_path
        self.root = root  # the checkout whose code it serves (the live bench compares two)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    url = base_url

    def spawn(self) -> None:
        self.port = free_port()
        args = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(self.port), "fc25_denoise.asgi:application"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /healthz answers 200 (a starting process offers no event to wait on: poll)."""
        if self.proc is None:
            raise RuntimeError("wait_ready() before spawn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.proc.returncode}:\n{self.log()}")
            if self._healthy():
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"daphne did not answer /healthz within {timeout} s:\n{self.log()}")

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (Daphne's clean shutdown), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    # --- what the end-to-end tests read off the running server ---
    def metrics(self) -> dict[str, float]:
        """The live path's counters (rd_*) from /metrics, which answers loopback clients."""
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("rd_") and "_bucket" not in name and "_created" not in name:
                values[name] = float(value)
        return values

    def access_log_count(self, request_line: str) -> int:
        """How often Daphne's access log shows `request_line`, e.g. '"POST /api/x/" 200'."""
        return self.log_path.read_text(errors="replace").count(request_line)

    def wait_for_access(self, request_line: str, count: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.access_log_count(request_line) < count:  # a log file offers no event: poll
            if time.monotonic() > deadline:
                raise AssertionError(f"{request_line} was not served {count} times:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""
