"""A throw-away PostgreSQL cluster a test starts, stops and restarts (initdb and pg_ctl from
/usr/lib/postgresql/*/bin), never the machine's own: its own folder, reached only on a unix
socket there, no TCP. As root it runs as the `postgres` user (initdb refuses root).

`app_database` hands out a fresh database of the app: the first one is migrated (in a child
process, `testing.seed`, so the test process's own Django database stays untouched) and kept
as the template of the next ones. `seed_app_database` creates users, friendships and sessions
in one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class ThrowawayPostgres:
    """`start()` / `stop()` (fast: connections refused until the next start) / `kill()`."""

    def __init__(self) -> None:
        # Not under pytest's tmp folders: those are private to root, and the server runs as
        # the postgres user. Short, too: a unix socket's path is limited to 107 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix="rd-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._databases = 0
        self._template = False
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"]
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = ''\nunix_socket_directories = '{self.folder}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def _run(self, args: list[str]) -> None:
        subprocess.run(_as_postgres(args), check=True, capture_output=True, cwd=self.folder)

    def url(self, database: str) -> str:
        """A DATABASE_URL (dj-database-url reads a percent-encoded socket folder as the host)."""
        return f"postgres://postgres@{quote(str(self.folder), safe='')}/{database}"

    def running(self) -> bool:
        done = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]), capture_output=True
        )
        return done.returncode == 0

    def start(self) -> None:
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"]
        )

    def stop(self) -> None:
        """A fast shutdown: open connections are ended, new ones refused."""
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def kill(self) -> None:
        """An immediate shutdown, as in a crash (recovery runs at the next start)."""
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def create_database(self, name: str, template: str | None = None) -> str:
        extra = ["-T", template] if template else []
        self._run([str(PG_BIN / "createdb"), "-h", str(self.folder), "-U", "postgres", *extra, name])
        return self.url(name)

    def app_database(self, env: dict[str, str]) -> str:
        """A new, migrated database of the app (`env`: the server's environment)."""
        if not self.running():  # e.g. a test that stopped it failed before starting it again
            self.start()
        if not self._template:
            url = self.create_database("app_template")
            _seed({**env, "DATABASE_URL": url}, {"migrate": True, "users": [], "friendships": []})
            self._template = True
        self._databases += 1
        return self.create_database(f"app_{self._databases}", template="app_template")

    def close(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def seed_app_database(
    env: dict[str, str], users: list[str], friendships: list[tuple[str, str]]
) -> dict[str, str]:
    """Create `users` and `friendships` in the app's database (env's DATABASE_URL, made by
    `app_database`) and return each user's session key."""
    return _seed(env, {"migrate": False, "users": users, "friendships": friendships})


def _seed(env: dict[str, str], spec: dict[str, object]) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "testing.seed", json.dumps(spec)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "fc25_denoise.settings", **env},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
