"""RedisStore: presence state in Redis, shared by every process, and the Lua scripts it runs.

Redis layout, every key under one prefix P:
  P:procs            set of live process ids         P:alive:<pid>    heartbeat, expires (TTL)
  P:conns:<pid>      hash user -> sockets on <pid>   P:count          hash user -> sockets anywhere
  P:online           set of users friends were told are online
  P:grace            zset user -> deadline (ms, Redis clock) for users whose last socket closed
  P:stream:<uid>     hash pid, started_at, denoise, atten_lim_db, listeners
  P:streams:<pid>    set of users whose stream <pid> owns
  P:seq              hash "p:<uid>" / "s:<uid>" -> event sequence number
Every multi-key change is one Lua script, so concurrent processes never see half a change.
A process whose heartbeat key expired is reaped by whichever live process looks first: its
sockets are subtracted (users left with none enter the grace period) and its streams end.
The rules themselves (and the one-process MemoryStore) are in `streams.presence.store`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from streams.presence.store import Reaped, StreamState

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# Event sequence numbers: the Redis clock in microseconds (kept increasing per key), so they
# keep rising even after Redis lost its data while sockets stayed open (a counter would restart
# at 1 and every consumer would drop the new events as stale).
_SEQ = """
local function nextseq(P, field)
  local t = redis.call('TIME')
  local seq = math.max(tonumber(redis.call('HGET', P..':seq', field) or '0') + 1, t[1] * 1000000 + t[2])
  redis.call('HSET', P..':seq', field, string.format('%d', seq))
  return seq
end
"""

_BEAT = """
local P, pid = ARGV[1], ARGV[2]
redis.call('SET', P..':alive:'..pid, '1', 'PX', ARGV[3])
return redis.call('SADD', P..':procs', pid)
"""

_ONLINE = (
    _SEQ
    + """
local function online(P, uid)
  redis.call('ZREM', P..':grace', uid)
  if redis.call('SADD', P..':online', uid) == 1 then return nextseq(P, 'p:'..uid) end
  return 0
end
"""
)

_CONNECT = (
    _ONLINE
    + """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
redis.call('HINCRBY', P..':conns:'..pid, uid, 1)
redis.call('HINCRBY', P..':count', uid, 1)
return online(P, uid)
"""
)

# Sets this process's counts to what it really holds (after it was reaped while alive, e.g. a
# long pause); returns {uid, seq, ...} for users that became online again.
_RESTORE = (
    _ONLINE
    + """
local P, pid, out = ARGV[1], ARGV[2], {}
for i = 3, #ARGV, 2 do
  local uid, want = ARGV[i], tonumber(ARGV[i + 1])
  local delta = want - tonumber(redis.call('HGET', P..':conns:'..pid, uid) or '0')
  redis.call('HINCRBY', P..':conns:'..pid, uid, delta)
  redis.call('HINCRBY', P..':count', uid, delta)
  local seq = online(P, uid)
  if seq > 0 then table.insert(out, uid) table.insert(out, seq) end
end
return out
"""
)

_DISCONNECT = (
    _NOW
    + """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
local mine = redis.call('HINCRBY', P..':conns:'..pid, uid, -1)
if mine <= 0 then redis.call('HDEL', P..':conns:'..pid, uid) end
if mine < 0 then return 0 end
if redis.call('HINCRBY', P..':count', uid, -1) > 0 then return 0 end
redis.call('HDEL', P..':count', uid)
redis.call('ZADD', P..':grace', now + tonumber(ARGV[4]), uid)
return 1
"""
)

_EXPIRE = (
    _SEQ
    + """
local P, uid = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', P..':grace', uid) then return 0 end
redis.call('ZREM', P..':grace', uid)
if tonumber(redis.call('HGET', P..':count', uid) or '0') > 0 then return 0 end
if redis.call('SREM', P..':online', uid) == 1 then return nextseq(P, 'p:'..uid) end
return 0
"""
)

_DUE = _NOW + "return redis.call('ZRANGEBYSCORE', ARGV[1]..':grace', '-inf', now)"

# Reaps every registered process whose heartbeat key is gone (ARGV[3], if given, is this
# process leaving on purpose). Returns {{uid in grace...}, {uid, seq, ...} of ended streams}.
_REAP = (
    _NOW
    + _SEQ
    + """
local P, grace, leaving = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local in_grace, ended = {}, {}
if leaving then redis.call('DEL', P..':alive:'..leaving) end
for _, pid in ipairs(redis.call('SMEMBERS', P..':procs')) do
  if redis.call('EXISTS', P..':alive:'..pid) == 0 then
    redis.call('SREM', P..':procs', pid)
    local conns = redis.call('HGETALL', P..':conns:'..pid)
    for i = 1, #conns, 2 do
      local uid = conns[i]
      if redis.call('HINCRBY', P..':count', uid, -tonumber(conns[i + 1])) <= 0 then
        redis.call('HDEL', P..':count', uid)
        redis.call('ZADD', P..':grace', now + grace, uid)
        table.insert(in_grace, uid)
      end
    end
    redis.call('DEL', P..':conns:'..pid)
    for _, uid in ipairs(redis.call('SMEMBERS', P..':streams:'..pid)) do
      if redis.call('HGET', P..':stream:'..uid, 'pid') == pid then
        redis.call('DEL', P..':stream:'..uid)
        table.insert(ended, uid)
        table.insert(ended, nextseq(P, 's:'..uid))
      end
    end
    redis.call('DEL', P..':streams:'..pid)
  end
end
return {in_grace, ended}
"""
)

_STREAM_START = (
    _SEQ
    + """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
local key = P..':stream:'..uid
local old = redis.call('HGET', key, 'pid')
if old then redis.call('SREM', P..':streams:'..old, uid) end
redis.call('DEL', key)
redis.call('HSET', key, 'pid', pid, 'started_at', ARGV[4], 'denoise', ARGV[5], 'atten_lim_db', ARGV[6],
  'listeners', '0')
redis.call('SADD', P..':streams:'..pid, uid)
return nextseq(P, 's:'..uid)
"""
)

_STREAM_END = (
    _SEQ
    + """
local P, uid = ARGV[1], ARGV[2]
local key = P..':stream:'..uid
local owner = redis.call('HGET', key, 'pid')
if owner then redis.call('SREM', P..':streams:'..owner, uid) end
redis.call('DEL', key)
return nextseq(P, 's:'..uid)
"""
)

_STREAM_UPDATE = """
local key = ARGV[1]..':stream:'..ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
return 1
"""


def _pairs(flat: list) -> list[tuple[int, int]]:
    return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


class RedisStore:
    """Shared state in Redis; `pid` names this process in the per-process keys."""

    def __init__(self, url: str, prefix: str, pid: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.prefix, self.pid = prefix, pid
        self._scripts = {
            name: self.redis.register_script(lua)
            for name, lua in {
                "beat": _BEAT,
                "restore": _RESTORE,
                "connect": _CONNECT,
                "disconnect": _DISCONNECT,
                "expire": _EXPIRE,
                "due": _DUE,
                "reap": _REAP,
                "stream_start": _STREAM_START,
                "stream_end": _STREAM_END,
                "stream_update": _STREAM_UPDATE,
            }.items()
        }

    async def _run(self, name: str, *args: object) -> object:
        return await self._scripts[name](args=[self.prefix, *args])

    async def beat(self, ttl_ms: int) -> bool:
        return bool(await self._run("beat", self.pid, ttl_ms))

    async def restore(self, conns: dict[int, int], streams: dict[int, StreamState]) -> list[tuple[int, int]]:
        for uid, state in streams.items():
            await self._run("stream_start", self.pid, uid, *_stream_args(state))
            await self.stream_update(uid, listeners=state.listeners)
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
        in_grace, ended = await self._run("reap", *args)  # type: ignore[misc]
        return Reaped(in_grace=[int(uid) for uid in in_grace], ended=_pairs(ended))

    async def leave(self, grace_ms: int) -> Reaped:
        return await self.reap(grace_ms, leaving=self.pid)

    async def count(self, uid: int) -> int:
        return int(await self.redis.hget(f"{self.prefix}:count", str(uid)) or 0)

    async def online(self, uids: list[int]) -> set[int]:
        if not uids:
            return set()
        flags = await self.redis.smismember(f"{self.prefix}:online", [str(uid) for uid in uids])
        return {uid for uid, flag in zip(uids, flags, strict=True) if flag}

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
    )
