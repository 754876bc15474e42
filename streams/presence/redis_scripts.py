"""The Lua scripts `streams.presence.redis_store.RedisStore` runs: every multi-key change is one
script, so concurrent processes never see half a change. ARGV[1] is always the key prefix P.
"""

from __future__ import annotations

NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# Event sequence numbers: the Redis clock in microseconds (kept increasing per key), so they
# keep rising even after Redis lost its data while sockets stayed open (a counter would restart
# at 1 and every consumer would drop the new events as stale).
SEQ = """
local function nextseq(P, field)
  local t = redis.call('TIME')
  local seq = math.max(tonumber(redis.call('HGET', P..':seq', field) or '0') + 1, t[1] * 1000000 + t[2])
  redis.call('HSET', P..':seq', field, string.format('%d', seq))
  return seq
end
"""

# The live process holding a user's stream (or its claim while it starts), or false. A key left
# by a dead process (heartbeat expired) holds nothing, even before the reaper has run.
HOLDER = """
local function holder(P, uid)
  local claim = redis.call('GET', P..':claim:'..uid)
  if claim and redis.call('EXISTS', P..':alive:'..claim) == 1 then return claim end
  local owner = redis.call('HGET', P..':stream:'..uid, 'pid')
  if owner and redis.call('EXISTS', P..':alive:'..owner) == 1 then return owner end
  return false
end
"""

# ARGV: P, pid, ttl ms, first ("1" on a process's first beat). Returns {1 if newly registered
# (state to restore) else 0, store age ms}. P:since is when this Redis started keeping state
# under running processes: younger than a TTL (right after Redis lost its data), it may not
# yet hold every live process's state, so nothing is concluded from absences. A process's
# first beat on an empty Redis is a fresh start (nobody has state to restore): old at once.
BEAT = (
    NOW
    + """
local P, pid = ARGV[1], ARGV[2]
redis.call('SET', P..':alive:'..pid, '1', 'PX', ARGV[3])
redis.call('SET', P..':since', ARGV[4] == '1' and 0 or now, 'NX')
return {redis.call('SADD', P..':procs', pid), now - tonumber(redis.call('GET', P..':since'))}
"""
)

ONLINE = (
    SEQ
    + """
local function online(P, uid)
  redis.call('ZREM', P..':grace', uid)
  if redis.call('SADD', P..':online', uid) == 1 then return nextseq(P, 'p:'..uid) end
  return 0
end
"""
)

CONNECT = (
    ONLINE
    + """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
redis.call('HINCRBY', P..':conns:'..pid, uid, 1)
redis.call('HINCRBY', P..':count', uid, 1)
return online(P, uid)
"""
)

# Sets this process's counts to what it really holds (after it was reaped while alive, e.g. a
# long pause, or after Redis lost its data); returns {uid, seq, ...} for users online again.
RESTORE = (
    ONLINE
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

DISCONNECT = (
    NOW
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

EXPIRE = (
    SEQ
    + """
local P, uid = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', P..':grace', uid) then return 0 end
redis.call('ZREM', P..':grace', uid)
if tonumber(redis.call('HGET', P..':count', uid) or '0') > 0 then return 0 end
if redis.call('SREM', P..':online', uid) == 1 then return nextseq(P, 'p:'..uid) end
return 0
"""
)

DUE = NOW + "return redis.call('ZRANGEBYSCORE', ARGV[1]..':grace', '-inf', now)"

# Reaps every registered process whose heartbeat key is gone (ARGV[3], if given, is this
# process leaving on purpose). Returns {{pid...}, {uid in grace...}, {uid, seq, ...} of ended
# streams}.
REAP = (
    NOW
    + SEQ
    + """
local P, grace, leaving = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local pids, in_grace, ended = {}, {}, {}
if leaving then redis.call('DEL', P..':alive:'..leaving) end
for _, pid in ipairs(redis.call('SMEMBERS', P..':procs')) do
  if redis.call('EXISTS', P..':alive:'..pid) == 0 then
    redis.call('SREM', P..':procs', pid)
    table.insert(pids, pid)
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
return {pids, in_grace, ended}
"""
)

# ARGV: P, pid, uid, claim ms, young ms. 1: this process may start the user's stream; 0: a live
# process holds it; -1: Redis restarted too recently to know (live processes restore their
# streams on their next heartbeat). The claim keeps other processes out until stream_start
# turns it into the stream.
CLAIM = (
    NOW
    + HOLDER
    + """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
local since = redis.call('GET', P..':since')
if not since or now - tonumber(since) < tonumber(ARGV[5]) then return -1 end
local held = holder(P, uid)
if held and held ~= pid then return 0 end
redis.call('SET', P..':claim:'..uid, pid, 'PX', ARGV[4])
return 1
"""
)

RELEASE = """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', P..':claim:'..uid) == pid then redis.call('DEL', P..':claim:'..uid) end
return 0
"""

# ARGV: P, uid... Returns the users whose stream (or claim) a live process holds.
HELD = (
    HOLDER
    + """
local out = {}
for i = 2, #ARGV do
  if holder(ARGV[1], ARGV[i]) then table.insert(out, ARGV[i]) end
end
return out
"""
)

STREAM_START = (
    SEQ
    + """
local P, pid, uid = ARGV[1], ARGV[2], ARGV[3]
local key = P..':stream:'..uid
local old = redis.call('HGET', key, 'pid')
if old then redis.call('SREM', P..':streams:'..old, uid) end
redis.call('DEL', key, P..':claim:'..uid)
redis.call('HSET', key, 'pid', pid, 'started_at', ARGV[4], 'denoise', ARGV[5], 'atten_lim_db', ARGV[6],
  'listeners', '0')
redis.call('SADD', P..':streams:'..pid, uid)
return nextseq(P, 's:'..uid)
"""
)

STREAM_END = (
    SEQ
    + """
local P, uid = ARGV[1], ARGV[2]
local key = P..':stream:'..uid
local owner = redis.call('HGET', key, 'pid')
if owner then redis.call('SREM', P..':streams:'..owner, uid) end
redis.call('DEL', key, P..':claim:'..uid)
return nextseq(P, 's:'..uid)
"""
)

STREAM_UPDATE = """
local key = ARGV[1]..':stream:'..ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
return 1
"""

# ARGV: P, key ("p:<uid>" / "s:<uid>"): a fresh sequence number for a correction the
# reconciler sends (a stale flag in the database), newer than anything sent before.
NEXT_SEQ = SEQ + "return nextseq(ARGV[1], ARGV[2])"

# ARGV: P, pid, lease ms. 1 while this process holds the reconciler's lease (one sweeper at a
# time across processes; a dead one's lease runs out).
LEASE = """
local P, pid = ARGV[1], ARGV[2]
local key = P..':sweeper'
local holder = redis.call('GET', key)
if holder and holder ~= pid then return 0 end
redis.call('SET', key, pid, 'PX', ARGV[3])
return 1
"""
