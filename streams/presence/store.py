"""What presence state is, the rules every store keeps, and the store for one process.

`StreamState` and `Reaped` are what stores hand back; `PresenceStore` is the protocol `Presence`
talks to; `MemoryStore` keeps the state in dicts when there is no REDIS_URL (one process).
The Redis store shared by several processes is `streams.presence.redis_store.RedisStore`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class StreamState:
    started_at: str
    denoise: bool
    atten_lim_db: float
    listeners: int = 0
    recording: str = "on"  # "on", or why it stopped while the stream goes on ("storage_full")


@dataclass
class Reaped:
    in_grace: list[int] = field(default_factory=list)
    ended: list[tuple[int, int]] = field(default_factory=list)  # (user id, stream seq)
    processes: list[str] = field(default_factory=list)  # the dead processes' ids


class PresenceStore(Protocol):
    age_ms: int  # how long the store has been keeping state (young: absences prove nothing yet)

    async def ping(self) -> None: ...
    async def beat(self, ttl_ms: int) -> bool: ...  # True: (re-)registered, local state to restore
    async def restore(
        self, conns: dict[int, int], streams: dict[int, StreamState]
    ) -> list[tuple[int, int]]: ...
    async def connect(self, uid: int) -> int: ...  # presence seq if friends must hear "online", else 0
    async def disconnect(self, uid: int, grace_ms: int) -> bool: ...  # True: last socket anywhere
    async def expire(self, uid: int) -> int: ...  # presence seq if friends must hear "offline", else 0
    async def due(self) -> list[int]: ...
    async def reap(self, grace_ms: int) -> Reaped: ...
    async def leave(self, grace_ms: int) -> Reaped: ...
    async def count(self, uid: int) -> int: ...
    async def online(self, uids: list[int]) -> set[int]: ...
    # False: a live process holds the user's stream; None: the store cannot tell yet.
    async def claim(self, uid: int, young_ms: int = 0) -> bool | None: ...
    async def release(self, uid: int) -> None: ...
    async def held(self, uids: list[int]) -> set[int]: ...  # streams (or claims) of live processes
    async def stream_start(self, uid: int, state: StreamState) -> int: ...
    async def stream_end(self, uid: int) -> int: ...
    async def stream_update(self, uid: int, **fields: object) -> None: ...
    async def streams(self, uids: list[int]) -> dict[int, StreamState]: ...
    async def next_seq(self, key: str) -> int: ...
    async def lease(self, ms: int) -> bool: ...  # True: this process runs the reconciler now
    async def aclose(self) -> None: ...


class MemoryStore:
    """One process, no Redis: the same rules with dicts (there are no other processes to reap)."""

    age_ms = 2**62  # nothing outlives this process's store: it always knows everything

    def __init__(self) -> None:
        self._claims: set[int] = set()
        self._count: dict[int, int] = {}
        self._online: set[int] = set()
        self._grace: dict[int, float] = {}
        self._streams: dict[int, StreamState] = {}
        self._seq: dict[str, int] = {}

    def _next(self, key: str) -> int:
        self._seq[key] = self._seq.get(key, 0) + 1
        return self._seq[key]

    async def ping(self) -> None:
        return None

    async def beat(self, ttl_ms: int) -> bool:
        return False

    async def restore(self, conns: dict[int, int], streams: dict[int, StreamState]) -> list[tuple[int, int]]:
        return []

    async def connect(self, uid: int) -> int:
        self._count[uid] = self._count.get(uid, 0) + 1
        self._grace.pop(uid, None)
        if uid in self._online:
            return 0
        self._online.add(uid)
        return self._next(f"p:{uid}")

    async def disconnect(self, uid: int, grace_ms: int) -> bool:
        if uid not in self._count:
            return False
        left = self._count[uid] - 1
        if left > 0:
            self._count[uid] = left
            return False
        self._count.pop(uid, None)
        self._grace[uid] = time.monotonic() + grace_ms / 1000
        return True

    async def expire(self, uid: int) -> int:
        if self._grace.pop(uid, None) is None or self._count.get(uid, 0) > 0 or uid not in self._online:
            return 0
        self._online.discard(uid)
        return self._next(f"p:{uid}")

    async def due(self) -> list[int]:
        now = time.monotonic()
        return [uid for uid, deadline in self._grace.items() if deadline <= now]

    async def reap(self, grace_ms: int) -> Reaped:
        return Reaped()

    async def leave(self, grace_ms: int) -> Reaped:
        ended = [(uid, self._next(f"s:{uid}")) for uid in self._streams]
        self._streams.clear()
        for uid in list(self._count):
            self._count.pop(uid)
            self._grace[uid] = time.monotonic()
        return Reaped(in_grace=list(self._grace), ended=ended)

    async def count(self, uid: int) -> int:
        return self._count.get(uid, 0)

    async def online(self, uids: list[int]) -> set[int]:
        return self._online.intersection(uids)

    async def claim(self, uid: int, young_ms: int = 0) -> bool | None:
        # The only process: its registry already knows whether the user is live here.
        self._claims.add(uid)
        return True

    async def release(self, uid: int) -> None:
        self._claims.discard(uid)

    async def held(self, uids: list[int]) -> set[int]:
        return {uid for uid in uids if uid in self._claims or uid in self._streams}

    async def stream_start(self, uid: int, state: StreamState) -> int:
        self._claims.discard(uid)
        self._streams[uid] = state
        return self._next(f"s:{uid}")

    async def stream_end(self, uid: int) -> int:
        self._claims.discard(uid)
        self._streams.pop(uid, None)
        return self._next(f"s:{uid}")

    async def stream_update(self, uid: int, **fields: object) -> None:
        state = self._streams.get(uid)
        if state is not None:
            for name, value in fields.items():
                setattr(state, name, value)

    async def streams(self, uids: list[int]) -> dict[int, StreamState]:
        return {uid: self._streams[uid] for uid in uids if uid in self._streams}

    async def next_seq(self, key: str) -> int:
        return self._next(key)

    async def lease(self, ms: int) -> bool:
        return True

    async def aclose(self) -> None:
        return None
