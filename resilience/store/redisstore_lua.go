package store

import (
	"sync"

	"github.com/redis/go-redis/v9"
)

// The Lua twin of machine.go: admitStep and recordStep as Redis scripts,
// so that every step is one atomic command on the server and no client
// retries a compare-and-swap. A record is a hash (see RedisStore for its
// fields); fields a script does not know are left as they are, so records
// are forward compatible. Times are milliseconds since the epoch by the
// server's clock (TIME), unless the caller passes its own now (tests).
//
// Both scripts return {admission, from_state, now_ms, corrupt, fields}
// where fields is HGETALL of the record after the step.

// luaPrelude is shared by both scripts: reading and writing the record,
// the transitions, and the record's expiry.
const luaPrelude = `
if redis.replicate_commands then redis.replicate_commands() end
local k = KEYS[1]
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[2])
local corrupt = ''
local typ = redis.call('TYPE', k)['ok']
if typ ~= 'hash' and typ ~= 'none' then
  redis.call('DEL', k)
  corrupt = 'a ' .. typ .. ', not a hash'
end
-- int formats a number for HSET: Lua's own formatting ("%.14g") would
-- round large ones.
local function int(x) return string.format('%d', x) end
-- int0 is a stored number: an integer of at most 2^53 (what Go's
-- recordFromHash reads), else 0, so that no stored value ("1e400", "inf",
-- "nan", a fraction) can make a comparison hold for ever.
local function int0(v)
  if type(v) ~= 'string' or not string.match(v, '^%-?%d+$') then return 0 end
  local x = tonumber(v)
  if not x or x > 9007199254740992 or x < -9007199254740992 then return 0 end
  return x
end
local function num(f)
  return int0(redis.call('HGET', k, f))
end
-- state is the record's state: closed when it has none; a name this
-- version does not know (a newer version's) as it is, which admits and
-- which no outcome changes.
local function state()
  local s = redis.call('HGET', k, 'state')
  if not s or s == '' then return 'closed' end
  return s
end
-- delprefix removes every field whose name starts with p.
local function delprefix(p)
  local names = redis.call('HKEYS', k)
  for _, f in ipairs(names) do
    if string.sub(f, 1, #p) == p then redis.call('HDEL', k, f) end
  end
end
-- countprefix counts the fields starting with p whose value is at least min.
local function countprefix(p, min)
  local all = redis.call('HGETALL', k)
  local n = 0
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, #p) == p and int0(all[i+1]) >= min then n = n + 1 end
  end
  return n
end
local function transition(to, reset, trial)
  -- A new trial of the same half-open period keeps the nodes whose
  -- trials failed in it; any other change starts afresh.
  if state() ~= 'half-open' or to ~= 'half-open' then delprefix('tf:') end
  redis.call('HSET', k, 'state', to, 'gen', int(num('gen') + 1))
  redis.call('HDEL', k, 'trial_until')
  if to == 'closed' then
    redis.call('HSET', k, 'failures', 0)
    redis.call('HDEL', k, 'opened_at', 'retry_at', 'last_error')
    delprefix('n:')
  elseif to == 'open' then
    redis.call('HSET', k, 'opened_at', int(now), 'retry_at', int(now + reset))
  else
    redis.call('HSET', k, 'trial_until', int(now + trial))
  end
end
-- save stamps the record and sets its expiry: ttl after this write, and
-- not before its retry_at or the end of its last hold.
local function save()
  redis.call('HSETNX', k, 'state', 'closed')
  redis.call('HSET', k, 'updated_at', int(now))
  local all = redis.call('HGETALL', k)
  local till = now + ttl
  for i = 1, #all, 2 do
    local f = all[i]
    if f == 'retry_at' or string.sub(f, 1, 2) == 'h:' then
      local v = int0(all[i+1])
      if v > till then till = v end
    end
  end
  redis.call('PEXPIRE', k, int(till - now))
end
`

// redisAdmitScriptFlagged is redisAdmitScript declared with Redis 7's
// script flags (none: a script that may write and needs memory), so that
// a server that takes no writes refuses it before it runs.
var redisAdmitScriptFlagged = lazyScript("#!lua\n" + redisAdmitSource)

// redisAdmitScript runs admitStep. ARGV: now_ms (” for TIME), ttl_ms,
// identity, trial_ms.
var redisAdmitScript = lazyScript(redisAdmitSource)

const redisAdmitSource = luaPrelude + `
local id, trial = ARGV[3], tonumber(ARGV[4])
local from = state()
local verdict = 'admitted'
local hold = num('h:' .. id)
if hold > now then
  verdict = 'held'
elseif from == 'open' then
  if now < num('retry_at') then verdict = 'rejected' else verdict = 'trial' end
elseif from == 'half-open' then
  if now < num('trial_until') then verdict = 'rejected' else verdict = 'trial' end
end
if verdict == 'trial' then
  transition('half-open', 0, trial)
  save()
end
return {verdict, from, now, corrupt, redis.call('HGETALL', k)}
`

// redisRecordScript runs recordStep. ARGV: now_ms (” for TIME), ttl_ms,
// identity, node, generation, effect ('f' failure, 's' success, ” other),
// error text, hold_ms, failures, quorum, reset_ms, max nodes, max holds.
var redisRecordScript = lazyScript(luaPrelude + `
local id, node, gen, effect, err = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local hold, failures, quorum = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local reset, maxnodes, maxholds = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local from = state()
local changed = false
if hold > 0 and now + hold > num('h:' .. id) then
  -- Drop the holds that ended, then, past maxholds, the ones ending first.
  local all = redis.call('HGETALL', k)
  local holds = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'h:' and all[i] ~= 'h:' .. id then
      local v = int0(all[i+1])
      if v <= now then redis.call('HDEL', k, all[i]) else table.insert(holds, {all[i], v}) end
    end
  end
  table.sort(holds, function(a, b) if a[2] == b[2] then return a[1] < b[1] end return a[2] < b[2] end)
  for i = 1, #holds - (maxholds - 1) do redis.call('HDEL', k, holds[i][1]) end
  redis.call('HSET', k, 'h:' .. id, int(now + hold))
  changed = true
end
if num('gen') == gen then
  if from == 'closed' and effect == 'f' then
    local fails = num('failures') + 1
    redis.call('HSET', k, 'failures', int(fails), 'last_error', err)
    local nf = 'n:' .. node
    if redis.call('HEXISTS', k, nf) == 1 or countprefix('n:', -1e300) < maxnodes then
      redis.call('HSET', k, nf, int(num(nf) + 1))
    end
    local open
    if quorum <= 1 then open = fails >= failures else open = countprefix('n:', failures) >= quorum end
    if open then transition('open', reset, 0) end
    changed = true
  elseif from == 'closed' and effect == 's' then
    if num('failures') ~= 0 or (redis.call('HGET', k, 'last_error') or '') ~= '' or countprefix('n:', -1e300) > 0 then
      redis.call('HSET', k, 'failures', 0)
      redis.call('HDEL', k, 'last_error')
      delprefix('n:')
      changed = true
    end
  elseif from == 'half-open' and effect == 's' then
    transition('closed', 0, 0)
    changed = true
  elseif from == 'half-open' and effect == 'f' then
    redis.call('HSET', k, 'failures', int(num('failures') + 1), 'last_error', err)
    local tf = 'tf:' .. node
    if redis.call('HEXISTS', k, tf) == 1 or countprefix('tf:', -1e300) < maxnodes then
      redis.call('HSET', k, tf, 1)
    end
    if quorum <= 1 or countprefix('tf:', -1e300) >= quorum then
      transition('open', reset, 0)
    else
      redis.call('HSET', k, 'trial_until', int(now))
    end
    changed = true
  elseif from == 'half-open' then
    redis.call('HSET', k, 'trial_until', int(now))
    changed = true
  end
end
if changed then save() end
return {'', from, now, corrupt, redis.call('HGETALL', k)}
`)

// lazyScript is a script whose digest (a SHA-1 of its text) is computed
// when it is first run: a package variable is made at every start, and
// most runs use the files, not Redis.
func lazyScript(src string) func() *redis.Script {
	return sync.OnceValue(func() *redis.Script { return redis.NewScript(src) })
}
