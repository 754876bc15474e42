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
        self, folder: Path, users: list[str], friendships: list[tuple[str, str]], **settings: str
    ) -> None:
        self.folder = folder
        self.media = folder / "media"
        self.media.mkdir(exist_ok=True)
        self.pg = ThrowawayPostgres()
        self.redis = RedisServer(folder)
        try:
            self.pg.start()
            database = self.pg.create_database("app")
            self.redis.start()
            self.env = app_env(database, self.media, REDIS_URL=self.redis.url, LOG_LEVEL="INFO", **settings)
            self.sessions = seed_app_database(self.env, users, friendships)
        except BaseException:
            self.close()
            raise
        self.daphne = DaphneServer(self.env, folder / "daphne.log")

    def api(self, user: str) -> HttpApi:
        return HttpApi(self.daphne.base_url, self.sessions[user])

    async def socket(self, user: str, path: str = "/ws/presence/") -> WsClient:
        return await WsClient.connect(self.daphne.port, path, f"sessionid={self.sessions[user]}")

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
            self.daphne.kill()
        self.redis.stop()
        self.pg.close()


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
