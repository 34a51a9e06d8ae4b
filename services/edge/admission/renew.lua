-- Extend the leases an edge still holds (requests still in flight) by another TTL.
-- KEYS[1] concurrency leases zset; ARGV: lease_ttl_ms lease_id...
-- XX: a lease that was released or already reclaimed is never brought back.
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return renewed
