"""RedisStore: presence state in Redis, shared by every process.

Redis layout, every key under one prefix P:
  P:procs            set of live process ids         P:alive:<pid>    heartbeat, expires (TTL)
  P:conns:<pid>      hash user -> sockets on <pid>   P:count          hash user -> sockets anywhere
  P:online           set of users friends were told are online
  P:grace            zset user -> deadline (ms, Redis clock) for users whose last socket closed
  P:stream:<uid>     hash pid, started_at, denoise, atten_lim_db, listeners, recording
  P:streams:<pid>    set of users whose stream <pid> owns
  P:claim:<uid>      pid of the process starting the user's stream (until it is live)
  P:seq              hash "p:<uid>" / "s:<uid>" -> event sequence number
  P:since            when this Redis first saw a heartbeat (ms, Redis clock)
  P:sweeper          the process holding the reconciler's lease
  P:bus              pub/sub channel of presence events (`streams.presence.bus`)
A process whose heartbeat key expired is reaped by whichever live process looks first: its
sockets are subtracted (users left with none enter the grace period) and its streams end.
The scripts are in `streams.presence.redis_scripts`; the rules themselves (and the
one-process MemoryStore) in `streams.presence.store`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from streams.presence import redis_scripts as lua
from streams.presence.store import Reaped, StreamState

# A Redis that stops answering fails presence calls within this, instead of hanging them.
SOCKET_TIMEOUT_S = 2.0
CLAIM_MS = 60_000  # a start holds its claim this long at most (a live owner's only matters)


def _pairs(flat: list) -> list[tuple[int, int]]:
    return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


class RedisStore:
    """Shared state in Redis; `pid` names this process in the per-process keys."""

    def __init__(self, url: str, prefix: str, pid: str) -> None:
        self.url = url
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
        )
        self.prefix, self.pid = prefix, pid
        self.age_ms = 0  # how long this Redis has kept state, as of the last beat
        self._beaten = False
        self._scripts = {
            name: self.redis.register_script(getattr(lua, name.upper()))
            for name in (
                "beat",
                "restore",
                "connect",
                "disconnect",
                "expire",
                "due",
                "reap",
                "claim",
                "release",
                "held",
                "stream_start",
                "stream_end",
                "stream_update",
                "next_seq",
                "lease",
            )
        }

    async def _run(self, name: str, *args: object) -> object:
        return await self._scripts[name](args=[self.prefix, *args])

    async def ping(self) -> None:
        await self.redis.ping()

    async def beat(self, ttl_ms: int) -> bool:
        first = "0" if self._beaten else "1"
        registered, age = await self._run("beat", self.pid, ttl_ms, first)  # type: ignore[misc]
        self._beaten = True
        self.age_ms = int(age)
        return bool(registered)

    async def restore(self, conns: dict[int, int], streams: dict[int, StreamState]) -> list[tuple[int, int]]:
        for uid, state in streams.items():
            await self._run("stream_start", self.pid, uid, *_stream_args(state))
            await self.stream_update(uid, listeners=state.listeners, recording=state.recording)
        flat = [x for uid, n in conns.items() for x in (uid, n)]
        return _pairs(await self._run("restore", self.pid, *flat))  # type: ignore[arg-type]

    async def connect(self, uid: int) -> int:
        return int(await self._run("connect", self.pid, uid))  # type: ignore[call-overload]

    async def disconnect(self, uid: int, grace_ms: int) -> bool:
        return bool(await self._run("disconnect", self.pid, uid, grace_ms))

    async def expire(self, uid: int) -> int:
        return int(await self._run("expire", uid))  # type: ignore[call-overload]

    async def due(self) -> list[int]:
        return [int(uid) for uid in await self._run("due")]  # type: ignore[attr-defined]

    async def reap(self, grace_ms: int, leaving: str | None = None) -> Reaped:
        args = (grace_ms, leaving) if leaving else (grace_ms,)
        pids, in_grace, ended = await self._run("reap", *args)  # type: ignore[misc]
        return Reaped(
            in_grace=[int(uid) for uid in in_grace],
            ended=_pairs(ended),
            processes=[pid.decode() for pid in pids],
        )

    async def leave(self, grace_ms: int) -> Reaped:
        return await self.reap(grace_ms, leaving=self.pid)

    async def count(self, uid: int) -> int:
        return int(await self.redis.hget(f"{self.prefix}:count", str(uid)) or 0)

    async def online(self, uids: list[int]) -> set[int]:
        if not uids:
            return set()
        flags = await self.redis.smismember(f"{self.prefix}:online", [str(uid) for uid in uids])
        return {uid for uid, flag in zip(uids, flags, strict=True) if flag}

    async def claim(self, uid: int, young_ms: int = 0) -> bool | None:
        answer = int(await self._run("claim", self.pid, uid, CLAIM_MS, young_ms))  # type: ignore[call-overload]
        return None if answer < 0 else bool(answer)

    async def release(self, uid: int) -> None:
        await self._run("release", self.pid, uid)

    async def held(self, uids: list[int]) -> set[int]:
        if not uids:
            return set()
        return {int(uid) for uid in await self._run("held", *uids)}  # type: ignore[attr-defined]

    async def stream_start(self, uid: int, state: StreamState) -> int:
        return int(await self._run("stream_start", self.pid, uid, *_stream_args(state)))  # type: ignore[call-overload]

    async def stream_end(self, uid: int) -> int:
        return int(await self._run("stream_end", uid))  # type: ignore[call-overload]

    async def stream_update(self, uid: int, **fields: object) -> None:
        flat = [x for name, value in fields.items() for x in (name, _encode(value))]
        await self._run("stream_update", uid, *flat)

    async def streams(self, uids: list[int]) -> dict[int, StreamState]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hgetall(f"{self.prefix}:stream:{uid}")
            rows = await pipe.execute()
        return {uid: _decode_stream(row) for uid, row in zip(uids, rows, strict=True) if row}

    async def next_seq(self, key: str) -> int:
        return int(await self._run("next_seq", key))  # type: ignore[call-overload]

    async def lease(self, ms: int) -> bool:
        return bool(await self._run("lease", self.pid, ms))

    async def aclose(self) -> None:
        await self.redis.aclose()


def _encode(value: object) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def _stream_args(state: StreamState) -> tuple[str, str, str]:
    return state.started_at, _encode(state.denoise), _encode(state.atten_lim_db)


def _decode_stream(row: dict[bytes, bytes]) -> StreamState:
    return StreamState(
        started_at=row[b"started_at"].decode(),
        denoise=row[b"denoise"] == b"1",
        atten_lim_db=float(row[b"atten_lim_db"]),
        listeners=int(row.get(b"listeners", b"0")),
        recording=row.get(b"recording", b"on").decode(),
    )
