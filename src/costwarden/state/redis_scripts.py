"""Lua for the Redis backend: one script per admission, settlement, release, renewal, sweep.

Each script mirrors ``memory.py`` (the two backends pass the same tests). Conventions:

* ``ARGV[1]`` is the key prefix ``"{<prefix>}:"``. One hash tag puts every key in one cluster
  slot, which is what lets one script touch any set of counters atomically on Redis Cluster.
  Scripts reach lease bodies and, when sweeping, other leases' counters through that prefix;
  those keys are in the same slot, so this holds on a cluster as well as on a single node.
* Money is integer units (1e-8 USD). Lua numbers are doubles, exact below 2**53; every write
  goes through ``istr`` (``%d``) because Redis would format a bare number with ``%.14g``.
* Times are caller-supplied epoch seconds (replicas need roughly synchronised clocks; skew only
  shifts when leases expire and when rate buckets refill). Floats are written with ``%.17g``.
  Key TTLs are set relative to that clock (EXPIRE, never EXPIREAT) so they agree with it.
* A lease body keeps the plan JSON exactly as Python encoded it (cjson would re-encode numbers
  with 14 digits), so settlement decodes the same integers that admission reserved.

Admission reply (flat array): admitted, refusal, refused_key, retry_after ('' = never),
spent, reserved, cap, first_refusal, trip_reason, probe, transition, then 5 fields per rate
bucket: key, kind, limit, remaining, reset_s.
"""

from __future__ import annotations

_COMMON = """
local P = ARGV[1]
local LEASES = P .. 'leases'
local RETENTION = %(retention)d
local BUCKET = %(bucket)d
local SLACK = %(slack)s

local function istr(n) return string.format('%%d', n) end
local function fstr(x) return string.format('%%.17g', x) end
local function num(v, default) if v then return tonumber(v) end return default end

local function unreserve(lp, probe)
  for _, s in ipairs(lp.scopes) do
    if redis.call('EXISTS', s[1]) == 1 then
      local r = num(redis.call('HGET', s[1], 'r'), 0) - lp.amt
      if r < 0 then r = 0 end
      redis.call('HSET', s[1], 'r', istr(r))
    end
  end
  if probe == '1' and lp.vel and redis.call('EXISTS', lp.vel.k) == 1 then
    local pi = num(redis.call('HGET', lp.vel.k, 'pi'), 0) - 1
    if pi < 0 then pi = 0 end
    redis.call('HSET', lp.vel.k, 'pi', istr(pi))
  end
end

local function sweep(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', fstr(now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local lk = P .. 'lease:' .. id
    local f = redis.call('HMGET', lk, 'st', 'p', 'pr')
    if f[1] == 'r' then
      unreserve(cjson.decode(f[2]), f[3])
      redis.call('HSET', lk, 'st', 'e')
      redis.call('EXPIRE', lk, RETENTION)
    end
    redis.call('ZREM', LEASES, id)
  end
  return #ids
end

local function correct_tokens(lp, actual, now)
  for _, r in ipairs(lp.rates) do
    if r[2] == 'tokens' then
      local tat = redis.call('GET', r[1])
      if tat then
        local nt = tonumber(tat) + (actual - r[4]) * (r[5] / r[3])
        local ttl_ms = math.max(1, math.ceil((nt - now) * 1000) + 1000)
        redis.call('SET', r[1], fstr(nt), 'PX', ttl_ms)
      end
    end
  end
end

-- A settled or released lease is forgotten at once, as in process: a second settle or release
-- of an unknown lease is a no-op either way. (Kept for the retention period, as they were,
-- settled leases held ~900 s x the request rate of plan bodies: gigabytes at 2,000 req/s.)
-- Only an *expired* lease is remembered (sweep), for a settle that arrives late.
local function finish(lk, id)
  redis.call('DEL', lk)
  redis.call('ZREM', LEASES, id)
end
"""

_VELOCITY = """
local function vel_rate(h, now)
  local b = num(h[1], nil)
  if b == nil then return 0 end
  local idx = math.floor(now / BUCKET)
  local w = 1 - (now - idx * BUCKET) / BUCKET
  local c, p = num(h[2], 0), num(h[3], 0)
  if idx == b then return p * w + c end
  if idx == b + 1 then return c * w end
  return 0
end

-- A settled request's spend, and the end of its probe if it was one: one read, one write.
local function vel_settle(v, units, now, probe)
  local h = redis.call('HMGET', v.k, 'st', 'b', 'c', 'p', 'pi', 'pd')
  if not h[1] then return end  -- the key's velocity state expired: nothing to add to
  local idx = math.floor(now / BUCKET)
  local b, c, p = num(h[2], idx), num(h[3], 0), num(h[4], 0)
  if idx == b + 1 then p = c; c = 0 elseif idx ~= b then p = 0; c = 0 end
  if probe then
    redis.call('HSET', v.k, 'b', istr(idx), 'c', istr(c + units), 'p', istr(p),
      'pi', istr(math.max(0, num(h[5], 0) - 1)), 'pd', istr(num(h[6], 0) + 1))
  else
    redis.call('HSET', v.k, 'b', istr(idx), 'c', istr(c + units), 'p', istr(p))
  end
  redis.call('EXPIRE', v.k, math.ceil(v.ttl))
end
"""

_ADMIT_ONE = """
-- The plan being admitted (its JSON as sent, decoded) and its clock: set by the entry point.
local raw, plan, now

local function reply(t)
  local out = {t.ok or '0', t.refusal or '', t.key or '', t.retry or '', istr(t.spent or 0),
    istr(t.reserved or 0), istr(t.cap or 0), t.first or '0', t.trip or '', t.probe or '0',
    t.tr or ''}
  for _, r in ipairs(t.rates or {}) do
    for _, v in ipairs(r) do table.insert(out, v) end
  end
  return out
end

local function rate_state(r, tat)
  local interval = r[5] / r[3]
  local used = math.max(0, tat - now)
  local slack = math.min(interval / 2, SLACK)
  local remaining = math.max(0, math.floor((r[5] - used + slack) / interval))
  return {r[1], r[2], istr(r[3]), istr(remaining), fstr(used)}
end

local function trip(s, reason)
  redis.call('HSET', s.k, 'tu', fstr(now + s.trip), 'tr', reason)
  redis.call('EXPIRE', s.k, math.ceil(math.max(s.ttl, s.trip)))
  return reply({refusal = reason, key = s.k, retry = fstr(s.trip), trip = reason})
end

local function check_session(s)
  local h = redis.call('HMGET', s.k, 'tu', 'tr', 'n')
  local tu = num(h[1], 0)
  if tu > now then
    return reply({refusal = 'session_open', key = s.k, retry = fstr(tu - now), trip = h[2]})
  end
  if s.max > 0 and num(h[3], 0) >= s.max then return trip(s, 'max_steps') end
  -- Sightings older than the window are trimmed only when they could make a loop: a
  -- fingerprint seen fewer than K-1 times (nearly every one) costs one ZCARD.
  if s.fp ~= '' and s.kk > 0 and redis.call('ZCARD', s.fp) + 1 >= s.kk then
    redis.call('ZREMRANGEBYSCORE', s.fp, '-inf', fstr(now - s.win))
    if redis.call('ZCARD', s.fp) + 1 >= s.kk then return trip(s, 'loop') end
  end
  return nil
end

local function vel_open(v)
  redis.call('HSET', v.k, 'st', 'open', 'ou', fstr(now + v.cool), 'c', '0', 'p', '0')
  return reply({refusal = 'velocity_open', key = v.k, retry = fstr(v.cool), tr = 'open'})
end

-- Returns refusal reply or nil, the transition, and whether to admit as a probe.
local function check_velocity(v)
  local h = redis.call('HMGET', v.k, 'st', 'ou', 'pi', 'pd', 'b', 'c', 'p')
  if not h[1] then redis.call('HSET', v.k, 'st', 'closed') end
  redis.call('EXPIRE', v.k, math.ceil(v.ttl))
  local st, tr = h[1] or 'closed', ''
  if st == 'open' then
    local ou = num(h[2], 0)
    if now < ou then
      return reply({refusal = 'velocity_open', key = v.k, retry = fstr(ou - now)}), '', '0'
    end
    st, tr, h[3], h[4] = 'half_open', 'half_open', '0', '0'
    redis.call('HSET', v.k, 'st', st, 'pi', '0', 'pd', '0')
  end
  local window = {h[5], h[6], h[7]}
  if st == 'half_open' then
    local pi, pd = num(h[3], 0), num(h[4], 0)
    if pd < v.probes then
      if pi + pd >= v.probes then
        return reply({refusal = 'probe_busy', key = v.k, retry = '1', tr = tr}), tr, '0'
      end
      return nil, tr, '1'
    end
    if vel_rate(window, now) > v.thr then return vel_open(v), 'open', '0' end
    redis.call('HSET', v.k, 'st', 'closed')
    tr = 'closed'
  end
  if vel_rate(window, now) > v.thr then return vel_open(v), 'open', '0' end
  return nil, tr, '0'
end

local function check_rates()
  local planned = {}
  for i, r in ipairs(plan.rates) do
    local tat = num(redis.call('GET', r[1]), now)
    local interval = r[5] / r[3]
    local new_tat = math.max(tat, now) + r[4] * interval
    local over = (new_tat - now) - r[5] - math.min(interval / 2, SLACK)
    if over > 0 then
      local retry = fstr(over)
      if r[4] > r[3] then retry = '' end
      return nil, reply({refusal = 'rate', key = r[1], retry = retry, rates = {rate_state(r, tat)}})
    end
    planned[i] = new_tat
  end
  return planned, nil
end

-- TTLs are relative to the caller's clock (not EXPIREAT), so they agree with its timestamps.
local function expire_counter(s)
  if s[3] > 0 then redis.call('EXPIRE', s[1], math.max(1, math.ceil(s[3] - now))) end
end

-- Each scope's counter expiry as last set ('e'), read by check_scopes for apply: a counter's
-- TTL is pushed out only when the scope's expiry is later, not on every admission.
local expiries = {}

local function check_scopes()
  for i, s in ipairs(plan.scopes) do
    local h = redis.call('HMGET', s[1], 's', 'r', 'x', 'e')
    local spent, reserved = num(h[1], 0), num(h[2], 0)
    expiries[i] = num(h[4], 0)
    if spent + reserved + plan.amt > s[2] then
      local first = '1'
      if h[3] == '1' then first = '0' end
      if plan.tent ~= 1 then
        redis.call('HSET', s[1], 'x', '1')
        expire_counter(s)
      end
      return reply({refusal = 'budget', key = s[1], spent = spent, reserved = reserved,
        cap = s[2], first = first})
    end
  end
  return nil
end

local function apply(planned, probe)
  for i, s in ipairs(plan.scopes) do
    if s[3] > expiries[i] then
      redis.call('HSET', s[1], 'e', fstr(s[3]))
      expire_counter(s)
    end
    redis.call('HINCRBY', s[1], 'r', istr(plan.amt))
  end
  local states = {}
  for i, r in ipairs(plan.rates) do
    local ttl_ms = math.max(1, math.ceil((planned[i] - now) * 1000) + 1000)
    redis.call('SET', r[1], fstr(planned[i]), 'PX', ttl_ms)
    states[i] = rate_state(r, planned[i])
  end
  local s = plan.sess
  if s then
    redis.call('HINCRBY', s.k, 'n', 1)
    redis.call('EXPIRE', s.k, math.ceil(s.ttl))
    if s.fp ~= '' and s.kk > 0 then
      redis.call('ZADD', s.fp, fstr(now), plan.lease)
      redis.call('EXPIRE', s.fp, math.ceil(s.win) + 1)
    end
  end
  if probe == '1' then redis.call('HINCRBY', plan.vel.k, 'pi', 1) end
  local lk = P .. 'lease:' .. plan.lease
  redis.call('HSET', lk, 'st', 'r', 'p', raw, 'pr', probe)
  redis.call('EXPIRE', lk, math.ceil(plan.exp - now) + RETENTION)
  redis.call('ZADD', LEASES, fstr(plan.exp), plan.lease)
  return states
end

local function admit_one()
  sweep(now, %(sweep_batch)d)
  if plan.sess then
    local refused = check_session(plan.sess)
    if refused then return refused end
  end
  local tr, probe = '', '0'
  if plan.vel then
    local refused
    refused, tr, probe = check_velocity(plan.vel)
    if refused then return refused end
  end
  local planned, refused = check_rates()
  if refused then return refused end
  refused = check_scopes()
  if refused then return refused end
  local states = apply(planned, probe)
  return reply({ok = '1', probe = probe, tr = tr, rates = states})
end
"""

# ARGV: prefix, plan JSON. Reply: see the module docstring.
ADMIT = (
    _COMMON
    + _VELOCITY
    + _ADMIT_ONE
    + """
raw = ARGV[2]
plan = cjson.decode(raw)
now = plan.now
return admit_one()
"""
)

# ARGV: prefix, then one plan JSON per admission; KEYS: every key of every plan. Reply: one
# admission reply per plan, in order, each plan admitted or refused on its own (the gateway
# batches the admissions that arrive while a round trip is in flight).
ADMIT_MANY = (
    _COMMON
    + _VELOCITY
    + _ADMIT_ONE
    + """
local replies = {}
for i = 2, #ARGV do
  raw = ARGV[i]
  plan = cjson.decode(raw)
  now = plan.now
  replies[#replies + 1] = admit_one()
end
return replies
"""
)

_SETTLE_ONE = """
-- Settle one lease: its reservation becomes ``actual`` units ('' = the reserved amount) of
-- spend; ``tokens`` ('' = none) corrects its token buckets. {0} if the lease is not live, else
-- {1, then key, cap, spent_before, spent_after per scope}.
local function settle_one(id, actual, tokens, now)
  local lk = P .. 'lease:' .. id
  local f = redis.call('HMGET', lk, 'st', 'p', 'pr')
  if not f[1] or f[1] == 'd' then return {0} end
  local lp = cjson.decode(f[2])
  local units = lp.amt
  if actual ~= '' then units = tonumber(actual) end
  local was_reserved = f[1] == 'r'
  local out = {1}
  for _, s in ipairs(lp.scopes) do
    local h = redis.call('HMGET', s[1], 's', 'r', 'x')
    if h[1] or h[2] or h[3] then  -- the counter still exists (its retention has not passed)
      local before, reserved = num(h[1], 0), num(h[2], 0)
      if was_reserved then reserved = math.max(0, reserved - lp.amt) end
      local after = before + units
      redis.call('HSET', s[1], 's', istr(after), 'r', istr(reserved))
      -- s[4]: spend from which the counter is reported (absent in older lease bodies: always)
      if s[4] == nil or after >= s[4] then
        for _, v in ipairs({s[1], istr(s[2]), istr(before), istr(after)}) do
          table.insert(out, v)
        end
      end
    end
  end
  if tokens ~= '' then correct_tokens(lp, tonumber(tokens), now) end
  if lp.vel then vel_settle(lp.vel, units, now, f[3] == '1' and was_reserved) end
  finish(lk, id)
  return out
end
"""

# ARGV: prefix, lease id, actual units ('' = the reserved amount), actual tokens ('' = none),
# now. Reply: settle_one's.
SETTLE = (
    _COMMON
    + _VELOCITY
    + _SETTLE_ONE
    + """
return settle_one(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]))
"""
)

# ARGV: prefix, now, then (lease id, actual units, actual tokens) per lease; KEYS: the leases
# set, then each lease's key. Reply: one settle_one reply per lease, in order. Many requests
# settled in one round trip (the gateway batches those that finish in one loop iteration).
SETTLE_MANY = (
    _COMMON
    + _VELOCITY
    + _SETTLE_ONE
    + """
local now = tonumber(ARGV[2])
local replies = {}
for i = 3, #ARGV, 3 do
  table.insert(replies, settle_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], now))
end
return replies
"""
)

# ARGV: prefix, lease id, now. Reply: 1 if the lease was live, else 0.
RELEASE = (
    _COMMON
    + """
local id, now = ARGV[2], tonumber(ARGV[3])
local lk = P .. 'lease:' .. id
local f = redis.call('HMGET', lk, 'st', 'p', 'pr')
if not f[1] or f[1] == 'd' then return 0 end
if f[1] == 'r' then
  local lp = cjson.decode(f[2])
  unreserve(lp, f[3])
  correct_tokens(lp, 0, now)
end
finish(lk, id)
return 1
"""
)

# ARGV: prefix, lease id, new expiry, now. Reply: 1 if renewed, 0 if the lease is not live.
RENEW = (
    _COMMON
    + """
local id, exp, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local lk = P .. 'lease:' .. id
if redis.call('HGET', lk, 'st') ~= 'r' then return 0 end
redis.call('ZADD', LEASES, fstr(exp), id)
redis.call('EXPIRE', lk, math.ceil(exp - now) + RETENTION)
return 1
"""
)

# ARGV: prefix, now, batch size. Reply: number of leases swept in this batch.
SWEEP = (
    _COMMON
    + """
return sweep(tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)


def render(
    script: str, *, retention_s: int, bucket_s: int, sweep_batch: int, slack_s: float
) -> str:
    """Fill in the constants (done once, at backend start)."""
    return script % {
        "retention": retention_s,
        "bucket": bucket_s,
        "sweep_batch": sweep_batch,
        "slack": repr(slack_s),
    }
