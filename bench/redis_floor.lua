-- A lower bound for the STEP script (bench/redis_replay.py --floor), not a working script:
-- the same calls' arguments, every Redis command the real script makes for them, batched as
-- it batches them (each counter read once and written once per call, leases added and deleted
-- in one command), and the same MessagePack decoding; none of the checks or arithmetic, fixed
-- replies, and fewer TTL updates (a budget counter's when its period moves). Whatever the
-- Lua's logic, a script with this data model cannot cost less.
local P = ARGV[1]
local LEASES = P .. 'leases'
local first_plan = 3 + 4 * tonumber(ARGV[2])
local read, dirty, ttl = {}, {}, {}

local function hash(k)
  if not read[k] then read[k] = redis.call('HGETALL', k) end
end

local function touch(k, seconds)
  hash(k)
  dirty[k] = true
  if seconds then ttl[k] = seconds end
end

local settled, gone = {}, {}
for i = 3, first_plan - 1, 4 do
  local body = redis.call('GET', P .. 'lease:' .. ARGV[i])
  if body then
    local lp = cmsgpack.unpack(string.sub(body, 3))
    for _, s in ipairs(lp.scopes) do touch(s[1]) end
    if lp.vel then touch(lp.vel.k) end
    gone[#gone + 1] = ARGV[i]
  end
  settled[#settled + 1] = {1}
end

local admitted, tats, fps, leases, bodies = {}, {}, {}, {}, {}
for i = first_plan, #ARGV do
  local plan = cmsgpack.unpack(ARGV[i])
  if i == first_plan then
    redis.call('ZRANGEBYSCORE', LEASES, '-inf', plan.now, 'LIMIT', 0, 100)
  end
  if plan.sess then
    touch(plan.sess.k, 86400)
    if plan.sess.fp ~= '' then
      redis.call('ZCARD', plan.sess.fp)
      fps[plan.sess.fp] = plan.lease
    end
  end
  if plan.vel then touch(plan.vel.k, 240) end
  for _, s in ipairs(plan.scopes) do touch(s[1]) end  -- (a TTL only when it moves: left out)
  for _, r in ipairs(plan.rates) do
    if tats[r[1]] == nil then tats[r[1]] = redis.call('GET', r[1]) or '0' end
  end
  bodies[plan.lease] = 'r0' .. ARGV[i]
  leases[#leases + 1] = string.format('%.17g', plan.exp)
  leases[#leases + 1] = plan.lease
  admitted[#admitted + 1] = {'1', '0', ''}  -- admitted, no probe, no transition, no rates
end

for k in pairs(dirty) do redis.call('HSET', k, 'r', '0', 's', '0') end
for k, seconds in pairs(ttl) do redis.call('EXPIRE', k, seconds) end
for k, v in pairs(tats) do redis.call('SET', k, v, 'PX', 60000) end
for id, body in pairs(bodies) do redis.call('SET', P .. 'lease:' .. id, body, 'EX', 3720) end
for fp, member in pairs(fps) do
  redis.call('ZADD', fp, '1', member)
  redis.call('EXPIRE', fp, 61)
end
if #leases > 0 then redis.call('ZADD', LEASES, unpack(leases)) end
if #gone > 0 then
  local keys = {}
  for j, id in ipairs(gone) do keys[j] = P .. 'lease:' .. id end
  redis.call('DEL', unpack(keys))
  redis.call('ZREM', LEASES, unpack(gone))
end
return {settled, admitted}
