"""A whole deployment of the app on its own: a throw-away PostgreSQL (`testing.postgres`), a
private Redis (`testing.cluster.RedisServer`), a media folder and one Daphne process
(`testing.daphne`), with users already signed in. The outage tests and the outage campaign
(bench/outage_campaign.py) stop, kill and restart its parts.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from testing.cluster import RedisServer, WsClient
from testing.daphne import DaphneServer, app_env
from testing.peers import HttpApi
from testing.postgres import ThrowawayPostgres, seed_app_database


class AppStack:
    def __init__(
        self,
        folder: Path,
        users: list[str],
        friendships: list[tuple[str, str]],
        *,
        pg: ThrowawayPostgres | None = None,
        **settings: str,
    ) -> None:
        """`pg`: a cluster to share (a fresh database in it); without it, one of its own."""
        self.folder = folder
        self.media = folder / "media"
        self.media.mkdir(parents=True, exist_ok=True)
        self._own_pg = pg is None
        self.pg = pg or ThrowawayPostgres()
        self.redis = RedisServer(folder)
        try:
            self.redis.start()
            self.env = app_env("", self.media, REDIS_URL=self.redis.url, **{"LOG_LEVEL": "INFO", **settings})
            self.env["DATABASE_URL"] = self.pg.app_database(self.env)
            self.sessions = seed_app_database(self.env, users, friendships)
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            self.close()
            raise
        self.daphne = DaphneServer(self.env, folder / "daphne.log")
        self.others: list[DaphneServer] = []

    def another_daphne(self) -> DaphneServer:
        """A second (third...) process of the same deployment, not started yet."""
        server = DaphneServer(self.env, self.folder / f"daphne{len(self.others) + 2}.log")
        self.others.append(server)
        return server

    def api(self, user: str, server: DaphneServer | None = None) -> HttpApi:
        return HttpApi((server or self.daphne).base_url, self.sessions[user])

    async def socket(
        self, user: str, path: str = "/ws/presence/", server: DaphneServer | None = None
    ) -> WsClient:
        port = (server or self.daphne).port
        return await WsClient.connect(port, path, f"sessionid={self.sessions[user]}")

    def statuses(self) -> list[int]:
        """Every HTTP status in Daphne's access log, in order."""
        statuses = []
        for line in self.daphne.log_path.read_text(errors="replace").splitlines():
            _, sep, tail = line.rpartition('" ')
            if sep and tail[:3].isdigit():
                statuses.append(int(tail[:3]))
        return statuses

    def close(self) -> None:
        if hasattr(self, "daphne"):
            for server in (self.daphne, *self.others):
                server.kill()
        self.redis.stop()
        if self._own_pg:
            self.pg.close()
        elif not self.pg.running():  # a shared cluster a test stopped: up again for the next
            self.pg.start()


async def until(check: Any, within: float, what: str, interval: float = 0.1) -> float:
    """Poll `check()` (sync or async; another process gives no event) until true; returns the
    seconds it took. Raises AssertionError naming `what` after `within` seconds."""
    began = time.monotonic()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - began
        if time.monotonic() - began > within:
            raise AssertionError(f"{what}: not within {within:g} s")
        await asyncio.sleep(interval)
