"""Who owns each live stream, shared by every process through Redis.

    P:owner:<uid>   hash  channel (the owner process's control channel), session (live
                          session id), process (presence's process id), mountpoint (its
                          Janus mountpoint, when listeners go through Janus)

The owner writes the record when the stream starts and removes it when the stream ends; each
change checks the session id, so a late write of an ended session never touches the next one.
When the owner dies, the process that reaps it (presence's reaper, through its heartbeat
keys) takes the records of its streams with `take`: it ends those streams for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

# Change only the record of this session (ARGV[1] = session id, then field/value pairs).
_UPDATE = """
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
_TAKE = """
if redis.call('HGET', KEYS[1], 'process') ~= ARGV[1] then return {} end
local record = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return record
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


@dataclass(frozen=True)
class Owner:
    channel: str
    session_id: str
    process: str
    mountpoint: int | None = None


class Owners:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._update = redis.register_script(_UPDATE)
        self._release = redis.register_script(_RELEASE)
        self._take = redis.register_script(_TAKE)

    def _key(self, uid: int) -> str:
        return f"{self._prefix}:owner:{uid}"

    async def claim(self, uid: int, owner: Owner) -> None:
        """Record `owner` (the database's live flag already made it the only one)."""
        mapping = {"channel": owner.channel, "session": owner.session_id, "process": owner.process}
        if owner.mountpoint is not None:
            mapping["mountpoint"] = str(owner.mountpoint)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(uid))
            pipe.hset(self._key(uid), mapping=mapping)
            await pipe.execute()

    async def set_mountpoint(self, uid: int, session_id: str, mountpoint: int | None) -> bool:
        value = "" if mountpoint is None else str(mountpoint)
        return bool(await self._update(keys=[self._key(uid)], args=[session_id, "mountpoint", value]))

    async def release(self, uid: int, session_id: str) -> bool:
        return bool(await self._release(keys=[self._key(uid)], args=[session_id]))

    async def get(self, uid: int) -> Owner | None:
        return _decode(await self._redis.hgetall(self._key(uid)))

    async def take(self, uid: int, process: str) -> Owner | None:
        """Remove and return the record if `process` (a dead one) still owns the stream."""
        flat = await self._take(keys=[self._key(uid)], args=[process])
        return _decode(dict(zip(flat[::2], flat[1::2], strict=True)))


def _decode(raw: dict[bytes, bytes]) -> Owner | None:
    if not raw:
        return None
    mountpoint = raw.get(b"mountpoint") or b""
    return Owner(
        channel=raw[b"channel"].decode(),
        session_id=raw[b"session"].decode(),
        process=raw.get(b"process", b"").decode(),
        mountpoint=int(mountpoint) if mountpoint else None,
    )
