-- A lower bound for a leaner data model than the STEP script's (bench/redis_replay.py --floor),
-- not a working script: like redis_floor.lua (every command, batched; the decoding; no logic),
-- but with lease bodies kept in one hash per 256 leases of a gateway (the lease id without its
-- last two hex digits: one HSET and one HDEL per call instead of a SET, GET and DEL per lease)
-- and a session's spend counter kept in the session's hash (one key a request fewer). Loop
-- detection keeps its sorted set per fingerprint: one with a short TTL per prompt is what bounds
-- its memory. Measures what changing the data model could take off before any logic.
local P = ARGV[1]
local LEASES = P .. 'leases'
local first_plan = 3 + 4 * tonumber(ARGV[2])
local read, dirty, ttl = {}, {}, {}
local function hash(k) if not read[k] then read[k] = redis.call('HGETALL', k) end end
local function touch(k, seconds) hash(k); dirty[k] = true; if seconds then ttl[k] = seconds end end
local function group(id) return P .. 'lg:' .. string.sub(id, 1, -3) end  -- 256 leases
local settled, gone, ungroup = {}, {}, {}
for i = 3, first_plan - 1, 4 do
  local g = group(ARGV[i])
  local body = redis.call('HGET', g, ARGV[i])
  if body then
    local lp = cmsgpack.unpack(string.sub(body, 3))
    for _, s in ipairs(lp.scopes) do if not string.find(s[1], ':spend', 1, true) then touch(s[1]) end end
    if lp.sess then touch(lp.sess.k) end
    if lp.vel then touch(lp.vel.k) end
    gone[#gone + 1] = ARGV[i]
    local u = ungroup[g]; if not u then u = {}; ungroup[g] = u end
    u[#u + 1] = ARGV[i]
  end
  settled[#settled + 1] = {1}
end
local admitted, tats, fps, leases, groups = {}, {}, {}, {}, {}
for i = first_plan, #ARGV do
  local plan = cmsgpack.unpack(ARGV[i])
  if i == first_plan then redis.call('ZRANGEBYSCORE', LEASES, '-inf', plan.now, 'LIMIT', 0, 100) end
  if plan.sess then
    touch(plan.sess.k, 86400)
    if plan.sess.fp ~= '' then redis.call('ZCARD', plan.sess.fp); fps[plan.sess.fp] = plan.lease end
  end
  if plan.vel then touch(plan.vel.k, 240) end
  for _, s in ipairs(plan.scopes) do if not string.find(s[1], ':spend', 1, true) then touch(s[1]) end end
  for _, r in ipairs(plan.rates) do
    if tats[r[1]] == nil then tats[r[1]] = redis.call('GET', r[1]) or '0' end
  end
  local g = group(plan.lease)
  local f = groups[g]; if not f then f = {}; groups[g] = f end
  f[#f + 1] = plan.lease; f[#f + 1] = 'r0' .. ARGV[i]
  leases[#leases + 1] = string.format('%.17g', plan.exp); leases[#leases + 1] = plan.lease
  admitted[#admitted + 1] = {'1', '0', ''}  -- admitted, no probe, no transition, no rates
end
for k in pairs(dirty) do redis.call('HSET', k, 'r', '0', 's', '0') end
for k, seconds in pairs(ttl) do redis.call('EXPIRE', k, seconds) end
for k, v in pairs(tats) do redis.call('SET', k, v, 'PX', 60000) end
for g, f in pairs(groups) do redis.call('HSET', g, unpack(f)); redis.call('EXPIRE', g, 3720) end
for fp, member in pairs(fps) do redis.call('ZADD', fp, '1', member); redis.call('EXPIRE', fp, 61) end
if #leases > 0 then redis.call('ZADD', LEASES, unpack(leases)) end
for g, ids in pairs(ungroup) do redis.call('HDEL', g, unpack(ids)) end
if #gone > 0 then redis.call('ZREM', LEASES, unpack(gone)) end
return {settled, admitted}
