package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Lua twins of quotaLearnStep and quotaPaceStep (quota.go): one
// script call on one key, the hash RedisQuotaPrefix+ORIGIN, whose fields
// are per identity: ID|limit, ID|r, ID|window (µs), ID|reset and ID|tat
// (µs by the server's TIME) and ID|policy. Each write sets the key to
// expire at the latest reset it holds; an identity whose reset passed
// reads as none, and a learn step drops it.

// RedisQuotaPrefix prefixes the learned quota records in Redis.
const RedisQuotaPrefix = "refetch:v2:quota:"

// maxQuotaIDsLua is maxQuotaIDs in the learn script.
var maxQuotaIDsLua = strconv.Itoa(maxQuotaIDs)

// maxRollWindowLua is maxRollWindow in the scripts.
var maxRollWindowLua = strconv.FormatInt(maxRollWindow, 10)

var luaQuotaPrelude = luaLimitPrelude + luaNowMicros + `
local id = ARGV[2]
local function f(name) return id .. '|' .. name end
-- rollend is quotaID.end: a record that rolls lives a window past its reset.
local function rollend(reset, limit, window)
  if limit > 0 and window > 0 and window <= ` + maxRollWindowLua + ` then return reset + window end
  return reset
end
`

// redisLearnQuotaScript runs quotaLearnStep. ARGV: now_us (” for TIME),
// identity, limit, remaining, window_us, reset_in_us, policy.
var redisLearnQuotaScript = lazyScript(luaQuotaPrelude + `
local limit, remaining, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local left = math.max(tonumber(ARGV[6]), 1)
local reset = now + left
local oldreset = num(f('reset'))
if window == 0 and limit > 0 then
  window = left
  if oldreset > now then window = math.max(window, num(f('window'))) end
end
local r, tat = remaining, 0
if oldreset > now then
  r = math.min(num(f('r')), remaining)
  tat = num(f('tat'))
  if remaining ~= 0 or reset < oldreset then reset = oldreset end
end
redis.call('HSET', k, f('limit'), int(limit), f('r'), int(r), f('window'), int(window), f('reset'), int(reset),
  f('tat'), int(tat), f('policy'), ARGV[7])
-- Drop identities whose reset passed, then the earliest past the bound;
-- expire the key at the latest reset.
local function drop(p)
  redis.call('HDEL', k, p .. '|limit', p .. '|r', p .. '|window', p .. '|reset', p .. '|tat', p .. '|policy')
end
local all = redis.call('HGETALL', k)
local h = {}
for i = 1, #all, 2 do h[all[i]] = all[i + 1] end
local live = {}
for name, v in pairs(h) do
  if string.sub(name, -6) == '|reset' then
    local p = string.sub(name, 1, -7)
    local e = rollend(int0(v), int0(h[p .. '|limit']), int0(h[p .. '|window']))
    if e <= now then drop(p) else table.insert(live, {p, e}) end
  end
end
table.sort(live, function(a, b) return a[2] > b[2] end)
for i = ` + maxQuotaIDsLua + ` + 1, #live do drop(live[i][1]) end
local latest = rollend(reset, limit, window)
if #live > 0 then latest = math.max(latest, live[1][2]) end
redis.call('PEXPIRE', k, int(math.floor((latest - now) / 1000) + 1))
return 1
`)

// redisPaceQuotaScript runs quotaPaceStep. ARGV: now_us (” for TIME),
// identity, max_wait_us. Reply: {known, reserved, wait_us, remaining,
// and for a reservation the tat set, the tat before, reset, r left}.
var redisPaceQuotaScript = lazyScript(luaQuotaPrelude + `
local maxwait = tonumber(ARGV[3])
local reset = num(f('reset'))
local limit, window = num(f('limit')), num(f('window'))
if reset <= now and rollend(reset, limit, window) > now then
  -- A new window of a known limit (quotaPaceStep's roll).
  redis.call('HSET', k, f('tat'), int(reset), f('reset'), int(reset + window), f('r'), int(limit))
  reset = reset + window
  local want = math.floor((reset + window - now) / 1000) + 1
  if redis.call('PTTL', k) < want then redis.call('PEXPIRE', k, int(want)) end
end
if reset <= now then return {0, 1, 0, 0} end
local r = num(f('r'))
if r <= 0 then return {1, 0, reset - now, r} end
local tat = math.max(num(f('tat')), now)
if tat - now > maxwait then return {1, 0, tat - now, r} end
local prev = num(f('tat'))
local set = tat + math.floor((reset - tat) / r)
redis.call('HSET', k, f('tat'), int(set), f('r'), int(r - 1))
return {1, 1, tat - now, r, set, prev, reset, r - 1}
`)

// redisRefundQuotaScript runs quotaRefundStep. ARGV: now_us (” for
// TIME), identity, tat set, tat before, reset, r left. Reply: 1 refunded,
// 0 not.
var redisRefundQuotaScript = lazyScript(luaQuotaPrelude + `
local set, prev, reset, left = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if set <= 0 or reset <= now or num(f('tat')) ~= set or num(f('reset')) ~= reset or num(f('r')) ~= left then return 0 end
redis.call('HSET', k, f('tat'), int(prev), f('r'), int(left + 1))
return 1
`)

// LearnQuota implements Limiter: redisLearnQuotaScript(), by the server's
// clock.
func (s *RedisStore) LearnQuota(ctx context.Context, p QuotaParams, o QuotaObservation, now time.Time) (QuotaDecision, error) {
	nowArg := s.nowArgUS(now)
	_, err := call(ctx, s, func(ctx context.Context) (int64, error) {
		return redisLearnQuotaScript().Run(ctx, s.client, []string{RedisQuotaPrefix + p.Origin}, nowArg, p.Identity,
			o.Limit, o.Remaining, int64(o.Window/time.Microsecond), int64(o.Reset/time.Microsecond), cleanPolicy(o.Policy)).Int64()
	})
	if err != nil {
		return QuotaDecision{}, s.wrap(ctx, "write", err)
	}
	return QuotaDecision{}, nil
}

// PaceQuota implements Limiter: redisPaceQuotaScript(), by the server's
// clock.
func (s *RedisStore) PaceQuota(ctx context.Context, p QuotaParams, now time.Time) (QuotaDecision, error) {
	nowArg := s.nowArgUS(now)
	res, err := call(ctx, s, func(ctx context.Context) ([]int64, error) {
		return redisPaceQuotaScript().Run(ctx, s.client, []string{RedisQuotaPrefix + p.Origin}, nowArg, p.Identity,
			usDur(p.MaxWait)).Int64Slice()
	})
	if err != nil {
		return QuotaDecision{}, s.wrap(ctx, "write", err)
	}
	if len(res) != 4 && len(res) != 8 {
		return QuotaDecision{}, s.wrap(ctx, "write", fmt.Errorf("unexpected quota script reply %v", res))
	}
	d := QuotaDecision{Known: res[0] == 1, Reserved: res[1] == 1, Wait: time.Duration(res[2]) * time.Microsecond,
		Remaining: res[3]}
	if len(res) == 8 {
		d.Slot = QuotaSlot{TAT: res[4], Prev: res[5], Reset: res[6], Remaining: res[7]}
	}
	return d, nil
}

// RefundQuota implements Limiter: redisRefundQuotaScript().
func (s *RedisStore) RefundQuota(ctx context.Context, p QuotaParams, slot QuotaSlot, now time.Time) (bool, error) {
	nowArg := s.nowArgUS(now)
	n, err := call(ctx, s, func(ctx context.Context) (int64, error) {
		return redisRefundQuotaScript().Run(ctx, s.client, []string{RedisQuotaPrefix + p.Origin}, nowArg, p.Identity,
			slot.TAT, slot.Prev, slot.Reset, slot.Remaining).Int64()
	})
	if err != nil {
		return false, s.wrap(ctx, "write", err)
	}
	return n == 1, nil
}

// quotaState decodes a quota hash (HGETALL) of origin.
func redisQuotaState(origin string, m map[string]string) quotaState {
	st := quotaState{Origin: origin, IDs: map[string]*quotaID{}}
	for name, v := range m {
		id, field, ok := cutLast(name, "|")
		if !ok {
			continue
		}
		q := st.IDs[id]
		if q == nil {
			q = &quotaID{}
			st.IDs[id] = q
		}
		n, _ := hashInt(v)
		switch field {
		case "limit":
			q.Limit = n
		case "r":
			q.Remaining = n
		case "window":
			q.Window = n
		case "reset":
			q.Reset = n
		case "tat":
			q.TAT = n
		case "policy":
			q.Policy = cleanPolicy(v)
		}
	}
	return st
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
