package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Lua twins of rateStep and budgetStep (limits.go): one script call,
// one round trip, per step. A rate record is the hash
// RedisRatePrefix+ORIGIN with the fields tat, interval (µs) and burst; a
// budget record the hash RedisBudgetPrefix+ORIGIN with win (ms), f, r, pf,
// pr, percent, min and window (ms). Each write sets the key's expiry: a
// rate's a second after its TAT, a budget's when its current bucket
// leaves the window.

// Prefixes of the limit records in Redis.
const (
	RedisRatePrefix   = "refetch:v2:rate:"
	RedisBudgetPrefix = "refetch:v2:budget:"
)

// luaNowMicros sets now, in microseconds: ARGV[1] when the caller's clock
// decides (RedisConfig.CallerClock), else Redis's TIME.
const luaNowMicros = `
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

const luaLimitPrelude = `
if redis.replicate_commands then redis.replicate_commands() end
local k = KEYS[1]
local function int(x) return string.format('%d', x) end
-- int0 and num read stored numbers as the breaker's script does.
local function int0(v)
  if type(v) ~= 'string' or not string.match(v, '^%-?%d+$') then return 0 end
  local x = tonumber(v)
  if not x or x > 9007199254740992 or x < -9007199254740992 then return 0 end
  return x
end
local function num(f) return int0(redis.call('HGET', k, f)) end
local typ = redis.call('TYPE', k)['ok']
if typ ~= 'hash' and typ ~= 'none' then redis.call('DEL', k) end
`

// redisRateScript runs rateStep. ARGV: now_us (” for TIME), interval_us,
// burst, max_wait_us. Reply: {reserved 1|0, wait_us, tat_us set (0: none)}.
var redisRateScript = lazyScript(luaLimitPrelude + luaNowMicros + `
local interval = math.max(tonumber(ARGV[2]), 1)
local burst = math.max(tonumber(ARGV[3]), 1)
local maxwait = tonumber(ARGV[4])
local oldtat, oldinterval = num('tat'), num('interval')
-- A record a second past its TAT reads as none (rateState.Expires), even
-- if the key has not expired yet by Redis's own clock.
if oldtat + ` + "1000000" + ` < now then oldtat, oldinterval = 0, 0 end
local prev = oldinterval
if prev <= 0 then prev = interval end
local tat = math.max(oldtat - prev + math.min(prev, interval), now)
local wait = math.max(tat - (burst - 1) * interval - now, 0)
if wait > maxwait then return {0, wait, 0} end
tat = tat + interval
redis.call('HSET', k, 'tat', int(tat), 'interval', int(interval), 'burst', int(burst))
redis.call('PEXPIRE', k, int(math.floor((tat + ` + "1000000" + ` - now) / 1000) + 1))
return {1, wait, tat, oldtat, oldinterval}
`)

// redisRefundRateScript runs rateRefundStep. ARGV: now_us (” for TIME),
// the tat_us the reservation set, the tat_us and interval_us before it.
// Reply: 1 refunded, 0 not.
var redisRefundRateScript = lazyScript(luaLimitPrelude + luaNowMicros + `
local tat, prevtat, previnterval = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if tat <= 0 or redis.call('EXISTS', k) == 0 or num('tat') ~= tat or tat + ` + "1000000" + ` < now then return 0 end
redis.call('HSET', k, 'tat', int(prevtat), 'interval', int(previnterval))
redis.call('PEXPIRE', k, int(math.max(math.floor((prevtat + ` + "1000000" + ` - now) / 1000) + 1, 1)))
return 1
`)

// redisBudgetScript runs budgetStep. ARGV: now_ms (” for TIME), retry
// ('1' or '0'), percent, min, window_ms. Reply: {allowed 1|0, firsts ×
// window, retries × window}, the counts before the step.
var redisBudgetScript = lazyScript(luaLimitPrelude + `
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local retry = ARGV[2] == '1'
local percent, minimum, window = tonumber(ARGV[3]), tonumber(ARGV[4]), math.max(tonumber(ARGV[5]), 1)
local win, f, r, pf, pr = num('win'), num('f'), num('r'), num('pf'), num('pr')
if num('window') ~= window then win, f, r, pf, pr = 0, 0, 0, 0, 0 end
local bucket = now - (now % window)
if win ~= bucket then
  if win + window == bucket then pf, pr = f, r else pf, pr = 0, 0 end
  f, r, win = 0, 0, bucket
end
local weight = window - (now - win)
local fw, rw = f * window + pf * weight, r * window + pr * weight
local allowed = 0
if not retry then
  f = f + 1
  allowed = 1
elseif (rw + window) * 100 <= minimum * window * 100 + percent * fw then
  r = r + 1
  allowed = 1
end
redis.call('HSET', k, 'win', int(win), 'f', int(f), 'r', int(r), 'pf', int(pf), 'pr', int(pr),
  'percent', int(percent), 'min', int(minimum), 'window', int(window))
redis.call('PEXPIRE', k, int(math.max(win + 2 * window - now, 1)))
return {allowed, fw, rw}
`)

// Rate implements Limiter: redisRateScript(), by the server's clock.
func (s *RedisStore) Rate(ctx context.Context, p RateParams, now time.Time) (RateDecision, error) {
	nowArg := s.nowArgUS(now)
	res, err := call(ctx, s, func(ctx context.Context) ([]int64, error) {
		return redisRateScript().Run(ctx, s.client, []string{RedisRatePrefix + p.Origin},
			nowArg, p.intervalUS(), max(p.Burst, 1), p.maxWaitUS()).Int64Slice()
	})
	if err != nil {
		return RateDecision{}, s.wrap(ctx, "write", err)
	}
	if len(res) != 3 && len(res) != 5 {
		return RateDecision{}, s.wrap(ctx, "write", fmt.Errorf("unexpected rate script reply %v", res))
	}
	d := RateDecision{Reserved: res[0] == 1, Wait: time.Duration(res[1]) * time.Microsecond, TAT: res[2]}
	if len(res) == 5 {
		d.PrevTAT, d.PrevInterval = res[3], res[4]
	}
	return d, nil
}

// RefundRate implements Limiter: redisRefundRateScript.
func (s *RedisStore) RefundRate(ctx context.Context, p RateParams, now time.Time) (bool, error) {
	nowArg := s.nowArgUS(now)
	n, err := call(ctx, s, func(ctx context.Context) (int64, error) {
		return redisRefundRateScript().Run(ctx, s.client, []string{RedisRatePrefix + p.Origin}, nowArg, p.TAT, p.PrevTAT, p.PrevInterval).Int64()
	})
	if err != nil {
		return false, s.wrap(ctx, "write", err)
	}
	return n == 1, nil
}

// Budget implements Limiter: redisBudgetScript(), by the server's clock.
func (s *RedisStore) Budget(ctx context.Context, p BudgetParams, now time.Time) (BudgetDecision, error) {
	retry := "0"
	if p.Kind == BudgetRetry {
		retry = "1"
	}
	window := p.windowMS()
	res, err := call(ctx, s, func(ctx context.Context) ([]int64, error) {
		return redisBudgetScript().Run(ctx, s.client, []string{RedisBudgetPrefix + p.Origin},
			s.nowArg(now), retry, p.Percent, p.Min, window).Int64Slice()
	})
	if err != nil {
		return BudgetDecision{}, s.wrap(ctx, "write", err)
	}
	if len(res) != 3 {
		return BudgetDecision{}, s.wrap(ctx, "write", fmt.Errorf("unexpected budget script reply %v", res))
	}
	w := float64(window)
	return BudgetDecision{Allowed: res[0] == 1, Firsts: float64(res[1]) / w, Retries: float64(res[2]) / w,
		Allowance: float64(p.Min) + float64(int64(p.Percent)*res[1])/(100*w)}, nil
}

// limitKeys returns the full names of every limit record (SCAN, on
// every master of a cluster).
func (s *RedisStore) limitKeys(ctx context.Context, op string) ([]string, error) {
	return s.scan(ctx, op, RedisRatePrefix, RedisBudgetPrefix, RedisQuotaPrefix)
}

// ListLimits implements Limiter, the times in the local clock.
func (s *RedisStore) ListLimits(ctx context.Context) ([]LimitRecord, error) {
	keys, err := s.limitKeys(ctx, "list")
	if err != nil {
		return nil, err
	}
	out := []LimitRecord{}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 256)]
		keys = keys[len(batch):]
		cmds, err := call(ctx, s, func(ctx context.Context) ([]redis.Cmder, error) {
			return s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Time(ctx)
				for _, k := range batch {
					pipe.HGetAll(ctx, k)
				}
				return nil
			})
		})
		if len(cmds) != len(batch)+1 {
			return nil, s.wrap(ctx, "list", err)
		}
		server, err := cmds[0].(*redis.TimeCmd).Result()
		if err != nil {
			return nil, s.wrap(ctx, "list", err)
		}
		off := time.Since(server)
		for i, c := range cmds[1:] {
			m, err := c.(*redis.MapStringStringCmd).Result()
			if err != nil && !errors.Is(err, redis.Nil) && !wrongType(err) {
				return nil, s.wrap(ctx, "list", err)
			}
			if err != nil || len(m) == 0 {
				continue
			}
			n := func(f string) int64 { v, _ := hashInt(m[f]); return v }
			if origin, ok := strings.CutPrefix(batch[i], RedisQuotaPrefix); ok {
				out = append(out, redisQuotaState(origin, m).records(usOf(server), off)...)
				continue
			}
			if origin, ok := strings.CutPrefix(batch[i], RedisRatePrefix); ok {
				st := rateState{Origin: origin, TAT: n("tat"), Interval: max(n("interval"), 1), Burst: max(n("burst"), 1)}
				out = append(out, st.record(off))
				continue
			}
			origin := strings.TrimPrefix(batch[i], RedisBudgetPrefix)
			st := budgetState{Origin: origin, Win: n("win"), F: n("f"), R: n("r"), PF: n("pf"), PR: n("pr"),
				Percent: n("percent"), Min: n("min"), Window: max(n("window"), 1)}
			out = append(out, st.record(server.UnixMilli()))
		}
	}
	sortLimits(out)
	return out, nil
}

// DeleteLimits implements Limiter.
func (s *RedisStore) DeleteLimits(ctx context.Context, origin string) (bool, error) {
	n, err := s.del(ctx, []string{RedisRatePrefix + origin, RedisBudgetPrefix + origin, RedisQuotaPrefix + origin})
	if err != nil {
		return false, s.wrap(ctx, "delete", err)
	}
	return n > 0, nil
}

// DeleteAllLimits implements Limiter.
func (s *RedisStore) DeleteAllLimits(ctx context.Context) (int, error) {
	keys, err := s.limitKeys(ctx, "delete")
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	n := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 256)]
		keys = keys[len(batch):]
		d, err := s.del(ctx, batch)
		n += int(d)
		if err != nil {
			return n, s.wrap(ctx, "delete", err)
		}
	}
	return n, nil
}
