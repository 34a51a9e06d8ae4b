-- Settle one admitted request: replace its reservation with what it really used, release its lease.
--
-- KEYS[1] tokens-per-minute hash, KEYS[2] concurrency leases zset, KEYS[3] budget counter base name
-- ARGV: bucket_second token_delta lease_id window_start cost_delta_micros
-- A delta lands in the bucket (and budget window) the reservation was made in, and only while that
-- bucket/window still exists: settling never resurrects an expired counter. Counters never go below 0.

local bucket, token_delta = ARGV[1], tonumber(ARGV[2])
local lease_id, window_start, cost_delta = ARGV[3], ARGV[4], tonumber(ARGV[5])

if token_delta ~= 0 and redis.call('HEXISTS', KEYS[1], bucket) == 1 then
  if redis.call('HINCRBY', KEYS[1], bucket, token_delta) < 0 then redis.call('HSET', KEYS[1], bucket, 0) end
end
if lease_id ~= '' then redis.call('ZREM', KEYS[2], lease_id) end
if cost_delta ~= 0 and window_start ~= '-1' then
  local budget_key = KEYS[3] .. ':' .. window_start
  if redis.call('EXISTS', budget_key) == 1 then
    if redis.call('INCRBY', budget_key, cost_delta) < 0 then redis.call('SET', budget_key, 0, 'KEEPTTL') end
  end
end
return 1
