"""Lua for the Redis backend: one script for settlements and admissions (any number of each),
one each for release, renewal and sweep.

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
* A plan travels packed with MessagePack (``redis_wire``; its numbers are exact doubles) and
  a lease body keeps it exactly as Python packed it, so settlement unpacks the same integers
  that admission reserved. Lease bodies written as JSON by earlier versions are still read.
* Counters go through a write-back cache (``hash``/``hset``, ``tat``/``set_tat``, ``flush``):
  the Lua around each ``redis.call`` costs more than the command, and a batch's requests share
  most of their counters. Every write of a call (counters, leases, sightings) is made by
  ``flush`` at its end, so a script that fails halfway writes nothing: Redis itself would
  keep the writes made before the error.

Admission reply (flat array). Admitted: '1', probe, transition, then per rate bucket key,
kind, limit, remaining (integers), reset_s. Refused: '0', refusal, refused_key, retry_after
('' = never), spent, reserved, cap, first_refusal, trip_reason, probe, transition, then the
refusing bucket's 5 fields if a rate refused it. An admitted request's reply is the one every
request pays for, so it carries only what an admission needs.
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

-- A plan as sent (MessagePack), or as a lease body of a version before 2026-12 kept it (JSON).
local function decode_plan(raw)
  if string.byte(raw, 1) == 123 then return cjson.decode(raw) end  -- '{'
  return cmsgpack.unpack(raw)
end

-- Write-back cache of the call's counters: each hash and rate bucket is read once and written
-- once per script call, however many of the call's requests touch it (a batch's requests share
-- the global, team and user budgets, the key's rate buckets and velocity state). Every read and
-- write of a counter goes through it; ``flush`` writes what changed, then the TTLs.
local hashes, dirty, ttls, tats, tat_ttls = {}, {}, {}, {}, {}

local function hash(k)
  local h = hashes[k]
  if h == nil then
    h = {}
    local flat = redis.call('HGETALL', k)
    for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
    hashes[k] = h
  end
  return h
end

-- hset(key, field, value, field, value, ...): values are strings, as Redis returns them.
local function hset(k, ...)
  local h, d, a = hash(k), dirty[k], {...}
  if d == nil then d = {}; dirty[k] = d end
  for i = 1, #a, 2 do h[a[i]] = a[i + 1]; d[a[i]] = true end
end

local function exists(k) return next(hash(k)) ~= nil end

-- A rate bucket's theoretical arrival time, or false when it has none.
local function tat(k)
  local t = tats[k]
  if t == nil then t = tonumber(redis.call('GET', k)) or false; tats[k] = t end
  return t
end

local function set_tat(k, t, now)
  tats[k] = t
  tat_ttls[k] = math.max(1, math.ceil((t - now) * 1000) + 1000)
end

-- Lease bodies are strings: state ('r' reserved, 'e' expired), probe flag, then the plan.
-- Written, listed, unlisted and deleted at flush: ``written`` and ``gone`` show what the call
-- did to them until then.
local new_leases, finished, unlisted, gone, written, lease_ttls = {}, {}, {}, {}, {}, {}

local function write_lease(id, body, ttl)
  written[id] = body
  lease_ttls[id] = ttl
end

local function read_lease(id)
  if gone[id] then return nil end
  local lk = P .. 'lease:' .. id
  local v = written[id] or redis.pcall('GET', lk)
  if type(v) == 'table' then  -- a hash, as written by versions before 2026-12: still read
    local f = redis.call('HMGET', lk, 'st', 'p', 'pr')
    if not f[1] or f[1] == 'd' then return nil end
    return f[1], f[3] or '0', f[2]
  end
  if not v then return nil end
  return string.sub(v, 1, 1), string.sub(v, 2, 2), string.sub(v, 3)
end

local function finish(id)
  gone[id] = true
  finished[#finished + 1] = id
end

-- Loop detection's sightings (a sorted set per session and fingerprint): added, trimmed and
-- given their TTL at flush; ``sightings`` counts those of this call.
local sightings, fp_ttls, fp_trims = {}, {}, {}

local function seen(fp) local s = sightings[fp]; if s then return #s / 2 end return 0 end

local function sight(fp, now, member, ttl)
  local s = sightings[fp]
  if s == nil then s = {}; sightings[fp] = s end
  s[#s + 1] = fstr(now)
  s[#s + 1] = member
  fp_ttls[fp] = ttl
end

-- call(...) with the items 500 at a time: unpack takes at most a few thousand values.
local function in_chunks(items, call)
  for i = 1, #items, 500 do call(unpack(items, i, math.min(i + 499, #items))) end
end

-- Every write of the call happens here, at its end: a call that fails before (a bad plan, a
-- bug) has written nothing, so it cannot leave a lease without its reservation or a
-- reservation without its lease.
local function flush()
  for k, d in pairs(dirty) do
    local h, args = hashes[k], {}
    for f in pairs(d) do args[#args + 1] = f; args[#args + 1] = h[f] end
    redis.call('HSET', k, unpack(args))
  end
  for k, seconds in pairs(ttls) do redis.call('EXPIRE', k, seconds) end
  for k, ms in pairs(tat_ttls) do redis.call('SET', k, fstr(tats[k]), 'PX', ms) end
  for id, body in pairs(written) do
    redis.call('SET', P .. 'lease:' .. id, body, 'EX', lease_ttls[id])
  end
  for fp, cutoff in pairs(fp_trims) do redis.call('ZREMRANGEBYSCORE', fp, '-inf', cutoff) end
  for fp, added in pairs(sightings) do
    in_chunks(added, function(...) redis.call('ZADD', fp, ...) end)
    redis.call('EXPIRE', fp, fp_ttls[fp])
  end
  in_chunks(new_leases, function(...) redis.call('ZADD', LEASES, ...) end)
  in_chunks(unlisted, function(...) redis.call('ZREM', LEASES, ...) end)
  local keys = {}
  for i, id in ipairs(finished) do keys[i] = P .. 'lease:' .. id end
  in_chunks(keys, function(...) redis.call('DEL', ...) end)
  in_chunks(finished, function(...) redis.call('ZREM', LEASES, ...) end)
end

local function unreserve(lp, probe)
  for _, s in ipairs(lp.scopes) do
    if exists(s[1]) then
      hset(s[1], 'r', istr(math.max(0, num(hash(s[1]).r, 0) - lp.amt)))
    end
  end
  if probe == '1' and lp.vel and exists(lp.vel.k) then
    hset(lp.vel.k, 'pi', istr(math.max(0, num(hash(lp.vel.k).pi, 0) - 1)))
  end
end

-- Expired leases give back their reservations and are remembered for RETENTION seconds, for a
-- settle that arrives late.
local function sweep(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', fstr(now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local st, probe, raw = read_lease(id)
    if st == 'r' then
      unreserve(decode_plan(raw), probe)
      write_lease(id, 'e' .. probe .. raw, RETENTION)
    end
    unlisted[#unlisted + 1] = id
  end
  return #ids
end

local function correct_tokens(lp, actual, now)
  for _, r in ipairs(lp.rates) do
    if r[2] == 'tokens' then
      local t = tat(r[1])
      if t then set_tat(r[1], t + (actual - r[4]) * (r[5] / r[3]), now) end
    end
  end
end
"""

_VELOCITY = """
local function vel_rate(h, now)
  local b = num(h.b, nil)
  if b == nil then return 0 end
  local idx = math.floor(now / BUCKET)
  local w = 1 - (now - idx * BUCKET) / BUCKET
  local c, p = num(h.c, 0), num(h.p, 0)
  if idx == b then return p * w + c end
  if idx == b + 1 then return c * w end
  return 0
end

-- A settled request's spend, and the end of its probe if it was one.
local function vel_settle(v, units, now, probe)
  local h = hash(v.k)
  if not h.st then return end  -- the key's velocity state expired: nothing to add to
  local idx = math.floor(now / BUCKET)
  local b, c, p = num(h.b, idx), num(h.c, 0), num(h.p, 0)
  if idx == b + 1 then p = c; c = 0 elseif idx ~= b then p = 0; c = 0 end
  hset(v.k, 'b', istr(idx), 'c', istr(c + units), 'p', istr(p))
  if probe then
    hset(v.k, 'pi', istr(math.max(0, num(h.pi, 0) - 1)), 'pd', istr(num(h.pd, 0) + 1))
  end
  ttls[v.k] = math.ceil(v.ttl)
end
"""

_ADMIT_ONE = """
-- The plan being admitted (as sent, and unpacked) and its clock: set by the entry point.
local raw, plan, now

-- A reply: its head, then each rate bucket's state (5 fields), flattened.
local function with_rates(out, rates)
  for _, r in ipairs(rates) do
    for _, v in ipairs(r) do out[#out + 1] = v end
  end
  return out
end

-- A refusal's reply.
local function reply(t)
  local out = {'0', t.refusal or '', t.key or '', t.retry or '', istr(t.spent or 0),
    istr(t.reserved or 0), istr(t.cap or 0), t.first or '0', t.trip or '', t.probe or '0',
    t.tr or ''}
  return with_rates(out, t.rates or {})
end

-- Limit and remaining go as Lua numbers (integer replies: no parsing on the client side).
local function rate_state(r, t)
  local interval = r[5] / r[3]
  local used = math.max(0, t - now)
  local slack = math.min(interval / 2, SLACK)
  local remaining = math.max(0, math.floor((r[5] - used + slack) / interval))
  return {r[1], r[2], r[3], remaining, fstr(used)}
end

local function trip(s, reason)
  hset(s.k, 'tu', fstr(now + s.trip), 'tr', reason)
  ttls[s.k] = math.ceil(math.max(s.ttl, s.trip))
  return reply({refusal = reason, key = s.k, retry = fstr(s.trip), trip = reason})
end

local function check_session(s)
  local h = hash(s.k)
  local tu = num(h.tu, 0)
  if tu > now then
    return reply({refusal = 'session_open', key = s.k, retry = fstr(tu - now), trip = h.tr})
  end
  if s.max > 0 and num(h.n, 0) >= s.max then return trip(s, 'max_steps') end
  -- Sightings older than the window are counted out (and trimmed) only when they could make
  -- a loop: a fingerprint seen fewer than K-1 times (nearly every one) costs one ZCARD.
  if s.fp ~= '' and s.kk > 0 and redis.call('ZCARD', s.fp) + seen(s.fp) + 1 >= s.kk then
    local cutoff = fstr(now - s.win)
    fp_trims[s.fp] = cutoff
    if redis.call('ZCOUNT', s.fp, '(' .. cutoff, '+inf') + seen(s.fp) + 1 >= s.kk then
      return trip(s, 'loop')
    end
  end
  return nil
end

local function vel_open(v)
  hset(v.k, 'st', 'open', 'ou', fstr(now + v.cool), 'c', '0', 'p', '0')
  return reply({refusal = 'velocity_open', key = v.k, retry = fstr(v.cool), tr = 'open'})
end

-- Returns refusal reply or nil, the transition, and whether to admit as a probe.
local function check_velocity(v)
  local h = hash(v.k)
  if not h.st then hset(v.k, 'st', 'closed') end
  ttls[v.k] = math.ceil(v.ttl)
  local st, tr = h.st, ''
  if st == 'open' then
    local ou = num(h.ou, 0)
    if now < ou then
      return reply({refusal = 'velocity_open', key = v.k, retry = fstr(ou - now)}), '', '0'
    end
    st, tr = 'half_open', 'half_open'
    hset(v.k, 'st', st, 'pi', '0', 'pd', '0')
  end
  if st == 'half_open' then
    local pi, pd = num(h.pi, 0), num(h.pd, 0)
    if pd < v.probes then
      if pi + pd >= v.probes then
        return reply({refusal = 'probe_busy', key = v.k, retry = '1', tr = tr}), tr, '0'
      end
      return nil, tr, '1'
    end
    if vel_rate(h, now) > v.thr then return vel_open(v), 'open', '0' end
    hset(v.k, 'st', 'closed')
    tr = 'closed'
  end
  if vel_rate(h, now) > v.thr then return vel_open(v), 'open', '0' end
  return nil, tr, '0'
end

local function check_rates()
  local planned = {}
  for i, r in ipairs(plan.rates) do
    local t = tat(r[1]) or now
    local interval = r[5] / r[3]
    local new_tat = math.max(t, now) + r[4] * interval
    local over = (new_tat - now) - r[5] - math.min(interval / 2, SLACK)
    if over > 0 then
      local retry = fstr(over)
      if r[4] > r[3] then retry = '' end
      return nil, reply({refusal = 'rate', key = r[1], retry = retry, rates = {rate_state(r, t)}})
    end
    planned[i] = new_tat
  end
  return planned, nil
end

-- TTLs are relative to the caller's clock (not EXPIREAT), so they agree with its timestamps.
local function expire_counter(s)
  if s[3] > 0 then ttls[s[1]] = math.max(1, math.ceil(s[3] - now)) end
end

local function check_scopes()
  for _, s in ipairs(plan.scopes) do
    local h = hash(s[1])
    local spent, reserved = num(h.s, 0), num(h.r, 0)
    if spent + reserved + plan.amt > s[2] then
      local first = '1'
      if h.x == '1' then first = '0' end
      if plan.tent ~= 1 then
        hset(s[1], 'x', '1')
        expire_counter(s)
      end
      return reply({refusal = 'budget', key = s[1], spent = spent, reserved = reserved,
        cap = s[2], first = first})
    end
  end
  return nil
end

local function apply(planned, probe)
  for _, s in ipairs(plan.scopes) do
    local h = hash(s[1])
    -- A counter's TTL ('e': its expiry as last set) is pushed out only to a later expiry.
    if s[3] > num(h.e, 0) then
      hset(s[1], 'e', fstr(s[3]))
      expire_counter(s)
    end
    hset(s[1], 'r', istr(num(h.r, 0) + plan.amt))
  end
  local states = {}
  for i, r in ipairs(plan.rates) do
    set_tat(r[1], planned[i], now)
    states[i] = rate_state(r, planned[i])
  end
  local s = plan.sess
  if s then
    hset(s.k, 'n', istr(num(hash(s.k).n, 0) + 1))
    ttls[s.k] = math.ceil(s.ttl)
    if s.fp ~= '' and s.kk > 0 then
      sight(s.fp, now, plan.lease, math.ceil(s.win) + 1)
    end
  end
  if probe == '1' then hset(plan.vel.k, 'pi', istr(num(hash(plan.vel.k).pi, 0) + 1)) end
  write_lease(plan.lease, 'r' .. probe .. raw, math.ceil(plan.exp - now) + RETENTION)
  new_leases[#new_leases + 1] = fstr(plan.exp)
  new_leases[#new_leases + 1] = plan.lease
  return states
end

local function admit_one()
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
  return with_rates({'1', probe, tr}, states)
end
"""

_SETTLE_ONE = """
-- Settle one lease: its reservation becomes ``actual`` units ('' = the reserved amount) of
-- spend; ``tokens`` ('' = none) corrects its token buckets. {0} if the lease is not live, else
-- {1, then key, cap, spent_before, spent_after per scope}.
local function settle_one(id, actual, tokens, now)
  local st, probe, raw = read_lease(id)
  if not st then return {0} end
  local lp = decode_plan(raw)
  local units = lp.amt
  if actual ~= '' then units = tonumber(actual) end
  local was_reserved = st == 'r'
  local out = {1}
  for _, s in ipairs(lp.scopes) do
    local h = hash(s[1])
    if h.s or h.r or h.x then  -- the counter still exists (its retention has not passed)
      local before, reserved = num(h.s, 0), num(h.r, 0)
      if was_reserved then reserved = math.max(0, reserved - lp.amt) end
      local after = before + units
      hset(s[1], 's', istr(after), 'r', istr(reserved))
      -- s[4]: spend from which the counter is reported (absent in older lease bodies: always)
      if s[4] == nil or after >= s[4] then
        out[#out + 1] = s[1]
        out[#out + 1] = istr(s[2])
        out[#out + 1] = istr(before)
        out[#out + 1] = istr(after)
      end
    end
  end
  if tokens ~= '' then correct_tokens(lp, tonumber(tokens), now) end
  if lp.vel then vel_settle(lp.vel, units, now, probe == '1' and was_reserved) end
  finish(id)
  return out
end
"""

# Settlements and admissions (each settled or admitted on its own; settlements first, so what
# they free is available to the admissions). ARGV: prefix, the number of settlements n, then
# (lease id, actual units ('' = the reserved amount), actual tokens ('' = none), now) per
# settlement, then one packed plan per admission. KEYS: the leases set (every key shares its
# hash tag: see above). Reply: {settle_one replies, admission replies}, in order. Expired
# leases are swept once per call, at the first plan's clock.
STEP = (
    _COMMON
    + _VELOCITY
    + _SETTLE_ONE
    + _ADMIT_ONE
    + """
-- No epoch key: the counters lost their data (a restart without persistence, a failover to
-- an empty replica, FLUSHALL). Nothing is checked or written until the gateway re-seeds them
-- from the ledger (redis_recovery.py); one EXISTS here instead of a round trip of its own.
if redis.call('EXISTS', P .. 'epoch') == 0 then return 'lost' end
local first_plan = 3 + 4 * tonumber(ARGV[2])
local settled, admitted = {}, {}
for i = 3, first_plan - 1, 4 do
  settled[#settled + 1] = settle_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]))
end
for i = first_plan, #ARGV do
  raw = ARGV[i]
  plan = decode_plan(raw)
  now = plan.now
  if i == first_plan then sweep(now, %(sweep_batch)d) end
  admitted[#admitted + 1] = admit_one()
end
flush()
return {settled, admitted}
"""
)

# What every script starts with, for the recovery scripts (redis_recovery_scripts.py).
COMMON = _COMMON

# ARGV: prefix, lease id, now. Reply: 1 if the lease was live, else 0.
RELEASE = (
    _COMMON
    + """
local id, now = ARGV[2], tonumber(ARGV[3])
local st, probe, raw = read_lease(id)
if not st then return 0 end
if st == 'r' then
  local lp = decode_plan(raw)
  unreserve(lp, probe)
  correct_tokens(lp, 0, now)
end
finish(id)
flush()
return 1
"""
)

# ARGV: prefix, lease id, new expiry, now. Reply: 1 if renewed, 0 if the lease is not live.
RENEW = (
    _COMMON
    + """
local id, exp, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if read_lease(id) ~= 'r' then return 0 end
redis.call('ZADD', LEASES, fstr(exp), id)
redis.call('EXPIRE', P .. 'lease:' .. id, math.ceil(exp - now) + RETENTION)
return 1
"""
)

# ARGV: prefix, now, batch size. Reply: number of leases swept in this batch.
SWEEP = (
    _COMMON
    + """
local swept = sweep(tonumber(ARGV[2]), tonumber(ARGV[3]))
flush()
return swept
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
