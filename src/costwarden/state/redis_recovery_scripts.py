"""Lua for recovering the Redis counters after Redis lost its data (redis_recovery.py).

Redis restarted without persistence, failed over to an empty replica, or was flushed: every
counter and lease is gone. The ``STEP`` script notices (no ``epoch`` key) and refuses to run;
the gateway then

* ``RESTORE``s the reservations of its own requests in flight (each replica keeps the packed
  plan of every lease it holds until it settles or releases it): written back as they were
  reserved, without checks — they were admitted before the loss;
* re-seeds the budget counters from the ledger, once across replicas: the replica holding the
  ``seeding`` lock (``SET NX``) runs ``SEED``, which raises each counter's spend to what the
  ledger holds for its scope and period and then writes the ``epoch`` key, so admissions run
  again.

``SEED`` takes the larger of the counter's spend and the ledger's (never the sum): a counter
that did not lose its data (an upgrade from a version without the epoch key, an evicted epoch
key) keeps its own, higher count, and a counter that did is raised to the ledger's. Either way
a seed can only make the cap check stricter.
"""

from __future__ import annotations

from costwarden.state.redis_scripts import COMMON

# ARGV: prefix, now, then (lease id, packed plan, lease expiry) per lease. Leases that exist
# (not lost, or restored already) are left alone. Reply: how many were restored.
RESTORE = (
    COMMON
    + """
local now = tonumber(ARGV[2])
local restored = 0
for i = 3, #ARGV, 3 do
  local id, raw, exp = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('EXISTS', P .. 'lease:' .. id) == 0 then
    local lp = decode_plan(raw)
    for _, s in ipairs(lp.scopes) do
      local h = hash(s[1])
      if s[3] > num(h.e, 0) then
        hset(s[1], 'e', fstr(s[3]))
        if s[3] > 0 then ttls[s[1]] = math.max(1, math.ceil(s[3] - now)) end
      end
      hset(s[1], 'r', istr(num(h.r, 0) + lp.amt))
    end
    write_lease(id, 'r0' .. raw, math.max(1, math.ceil(exp - now)) + RETENTION)
    new_leases[#new_leases + 1] = fstr(exp)
    new_leases[#new_leases + 1] = id
    restored = restored + 1
  end
end
flush()
return restored
"""
)

# ARGV: prefix, lock token, epoch value, now, then (counter key with prefix, spent units,
# expiry in epoch s or 0) per counter. Reply: 1, or 0 when the lock is no longer ours (it
# expired and another replica seeds: nothing is written).
SEED = """
local P = ARGV[1]
if redis.call('GET', P .. 'seeding') ~= ARGV[2] then return 0 end
local now = tonumber(ARGV[4])
for i = 5, #ARGV, 3 do
  local k, units, exp = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if units > (tonumber(redis.call('HGET', k, 's')) or 0) then
    redis.call('HSET', k, 's', string.format('%%d', units))
  end
  if exp > (tonumber(redis.call('HGET', k, 'e')) or 0) then
    redis.call('HSET', k, 'e', string.format('%%.17g', exp))
    redis.call('EXPIRE', k, math.max(1, math.ceil(exp - now)))
  end
end
redis.call('SET', P .. 'epoch', ARGV[3])
redis.call('DEL', P .. 'seeding')
return 1
"""

# ARGV: prefix, lock token. Gives the lock back if it is still ours (a seed that failed).
UNLOCK = """
local P = ARGV[1]
if redis.call('GET', P .. 'seeding') == ARGV[2] then redis.call('DEL', P .. 'seeding') end
return 1
"""

# ARGV: prefix, lock token, lock lifetime ms. Reply: 'seed' (the lock is ours: seed), 'ok'
# (the epoch exists: run again) or 'wait' (another replica is seeding).
CLAIM = """
local P = ARGV[1]
if redis.call('EXISTS', P .. 'epoch') == 1 then return 'ok' end
if redis.call('SET', P .. 'seeding', ARGV[2], 'NX', 'PX', ARGV[3]) then return 'seed' end
return 'wait'
"""
