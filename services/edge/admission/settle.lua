-- Settle one admitted request: replace its reservation with what it really used, release its lease.
--
-- KEYS[1] tokens-per-minute hash, KEYS[2] concurrency leases zset, KEYS[3] budget counter base name,
-- KEYS[4] the account's wallet hash, KEYS[5] its holds hash
-- ARGV: bucket_second token_delta lease_id window_start cost_delta_micros hold_id ('' = no hold)
--
-- A prepaid hold becomes the request's real cost and stays until billing charges it (billing deletes
-- it with the charge, atomically with the new balance); a hold billing already removed is not
-- re-created, and a request that cost nothing lets go of its hold at once.
-- A delta lands in the bucket (and budget window) the reservation was made in, and only while that
-- bucket/window still exists: settling never resurrects an expired counter. Counters never go below 0.

local bucket, token_delta = ARGV[1], tonumber(ARGV[2])
local lease_id, window_start, cost_delta = ARGV[3], ARGV[4], tonumber(ARGV[5])
local hold_id = ARGV[6]

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
if hold_id ~= '' and cost_delta ~= 0 then
  local held = redis.call('HGET', KEYS[5], hold_id)
  if held then
    local settled = tonumber(held) + cost_delta
    if settled <= 0 then
      redis.call('HDEL', KEYS[5], hold_id)
      cost_delta = -tonumber(held)
    else
      redis.call('HSET', KEYS[5], hold_id, settled)
    end
    redis.call('HINCRBY', KEYS[4], 'pending', cost_delta)
  end
end
return 1
