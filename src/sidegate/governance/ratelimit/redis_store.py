"""The `redis://` rate-limit store: buckets shared by every sidegate replica using the same Redis.

Same semantics as the memory store (`store`, read its doc first: admission by the input
estimate, an output expectation bounded by half the room left, waits from the buckets' contents),
as two Lua scripts so that a reservation is one atomic round trip (EVALSHA) however many buckets it
touches, and a settlement another. Time is Redis' own clock (`TIME`), so replicas with skewed
clocks still agree. A bucket is a sorted set (member "cost:rid", score = time in ms) plus a running
total at "<key>|t" (a key part never contains "|", so no bucket's key is another's total key); both
expire one window after their last entry, so idle buckets vanish by themselves.

URL: `redis://[user:pass@]host:6379/0` (or `rediss://`), with the usual redis-py query options
and `key_prefix` (default "sidegate:rl:") to separate deployments sharing one Redis. Defaults,
each overridable in the URL: `max_connections=64`, `timeout=2` (wait for a free connection),
`socket_connect_timeout=1`, `socket_timeout=1` (seconds); past them the call counts as an outage.
Keys derived with a suffix are not declared to Redis, so Redis Cluster is not supported (one
Redis, or a primary with replicas, is).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidegate.governance.ratelimit.store import WINDOW_S, Store, StoreUnavailable, Verdict

DEFAULT_PREFIX = "sidegate:rl:"
_DEFAULTS = {"max_connections": 64, "timeout": 2.0, "socket_connect_timeout": 1.0, "socket_timeout": 1.0}

_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local rid = ARGV[2]
local function cost_of(member) return tonumber(string.match(member, '^(%d+):')) end
"""

# KEYS: the buckets. ARGV: window_ms, rid, n_mandatory, n_groups, need, cap, the group sizes, then
# (limit, 1 for a token bucket or 0 for a request bucket) for each key. Returns
# {1, group, (remaining, taken, reset_ms) for each bucket charged} or {0, wait_ms, fired, remaining, reset_ms}.
RESERVE = _COMMON + """
local cutoff = now - window
local n_mandatory = tonumber(ARGV[3])
local n_groups = tonumber(ARGV[4])
local need, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local base = 6 + n_groups
local totals = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local total = tonumber(redis.call('GET', key .. '|t') or '0')
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', cutoff)
  if #old > 0 then
    for _, member in ipairs(old) do total = total - cost_of(member) end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
    redis.call('SET', key .. '|t', total, 'KEEPTTL')
  end
  totals[i] = total
end
local function limit_of(i) return tonumber(ARGV[base + 2 * i - 1]) end
local function is_tokens(i) return ARGV[base + 2 * i] == '1' end
local function cost_of_request(i) if is_tokens(i) then return need end return 1 end
local function wait(i)
  local limit = limit_of(i)
  local excess = totals[i] + math.min(cost_of_request(i), limit) - limit
  if excess <= 0 then return 0 end
  local freed, start = 0, 0
  while true do
    local chunk = redis.call('ZRANGE', KEYS[i], start, start + 63, 'WITHSCORES')
    if #chunk == 0 then return window end
    for j = 1, #chunk, 2 do
      freed = freed + cost_of(chunk[j])
      if freed >= excess then return math.max(tonumber(chunk[j + 1]) + window - now, 0.001) end
    end
    start = start + 64
  end
end
local function reset(i)
  local newest = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(math.ceil(tonumber(newest[2]) + window - now), 0)
end
local worst, fired = 0, 0
for i = 1, n_mandatory do
  local w = wait(i)
  if w > worst then worst, fired = w, i end
end
local chosen, first = 0, n_mandatory + 1
if n_groups > 0 then
  local group_wait, group_fired = 0, 0
  for g = 1, n_groups do
    local size = tonumber(ARGV[6 + g])
    local gw, gf = 0, 0
    for i = first, first + size - 1 do
      local w = wait(i)
      if w > gw then gw, gf = w, i end
    end
    if gw == 0 then chosen = g break end
    if group_fired == 0 or gw < group_wait then group_wait, group_fired = gw, gf end
    first = first + size
  end
  if chosen == 0 and group_wait > worst then worst, fired = group_wait, group_fired end
end
if fired > 0 then
  return {0, math.ceil(worst), fired - 1, limit_of(fired) - totals[fired], reset(fired)}
end
local reply = {1, chosen - 1}
local function charge(i)
  local limit, take = limit_of(i), 1
  if is_tokens(i) then
    local half = math.floor((limit - totals[i] - need) / 2)
    take = need + math.max(math.min(cap, half), 0)
  end
  local reset_ms = tonumber(ARGV[1])
  if take > 0 then
    redis.call('ZADD', KEYS[i], now, take .. ':' .. rid)
    redis.call('INCRBY', KEYS[i] .. '|t', take)
    redis.call('PEXPIRE', KEYS[i], window)
    redis.call('PEXPIRE', KEYS[i] .. '|t', window)
  else
    reset_ms = reset(i)
  end
  reply[#reply + 1] = limit - totals[i] - take
  reply[#reply + 1] = take
  reply[#reply + 1] = reset_ms
end
for i = 1, n_mandatory do charge(i) end
if chosen > 0 then
  for i = first, first + tonumber(ARGV[6 + chosen]) - 1 do charge(i) end
end
return reply
"""

# KEYS: the token buckets a reservation charged. ARGV: window_ms, rid, actual, then what each took.
SETTLE = _COMMON + """
local actual = tonumber(ARGV[3])
for i = 1, #KEYS do
  local key = KEYS[i]
  local taken = tonumber(ARGV[3 + i])
  local delta = actual - taken
  if delta > 0 then
    redis.call('ZADD', key, now, delta .. ':' .. rid .. ':s')
    redis.call('INCRBY', key .. '|t', delta)
    redis.call('PEXPIRE', key, window)
    redis.call('PEXPIRE', key .. '|t', window)
  elseif delta < 0 then
    local member = ARGV[3 + i] .. ':' .. rid
    local score = redis.call('ZSCORE', key, member)
    if score then
      redis.call('ZREM', key, member)
      if actual > 0 then redis.call('ZADD', key, score, ARGV[3] .. ':' .. rid) end
      redis.call('INCRBY', key .. '|t', delta)
    end
  end
end
return 0
"""

_WINDOW_MS = str(int(WINDOW_S * 1000))
_ERRORS = (RedisError, OSError, TimeoutError)


def split_url(url: str) -> tuple[str, str]:
    """The redis-py URL and the key prefix (our own `key_prefix` query option, removed)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "key_prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        redis_url, self.key_prefix = split_url(url)
        # Connections are bounded (a burst of requests queues for one instead of opening
        # thousands); redis-py reconnects by itself on the next command after a failure, and
        # does not retry a failed command (the limiter decides what an outage means).
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, **_DEFAULTS)
        self.client = aioredis.Redis(connection_pool=pool)
        self._reserve = self.client.register_script(RESERVE)
        self._settle = self.client.register_script(SETTLE)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(url)

    async def reserve(self, rid: str, keys: Sequence[str], limits: Sequence[int], tokens: Sequence[bool],
                      need: int, cap: int, n_mandatory: int, group_sizes: Sequence[int]) -> Verdict:
        args: list[str | int] = [_WINDOW_MS, rid, n_mandatory, len(group_sizes), need, cap, *group_sizes]
        for limit, is_tokens in zip(limits, tokens, strict=True):
            args.append(limit)
            args.append(1 if is_tokens else 0)
        try:
            reply = await self._reserve(keys=keys, args=args)
        except _ERRORS as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if reply[0] == 1:
            return Verdict(True, reply[1], reply[2::3], 0.0, -1, 0, reply[3::3], [ms / 1000.0 for ms in reply[4::3]])
        return Verdict(False, -1, (reply[3],), reply[1] / 1000.0, reply[2], reset_s=(reply[4] / 1000.0,))

    async def settle(self, rid: str, keys: Sequence[str], reserved: Sequence[int], actual: int,
                     stamp: int = 0) -> None:
        if not keys:
            return
        try:
            await self._settle(keys=keys, args=[_WINDOW_MS, rid, actual, *reserved])
        except _ERRORS as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except _ERRORS as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()
