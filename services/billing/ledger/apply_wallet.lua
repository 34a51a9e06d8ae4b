-- Billing's write to an account's wallet: the ledger's balance, and the holds its charges replace.
--
-- KEYS[1] the wallet hash {balance, version, pending}, KEYS[2] the holds hash {request id -> micro-USD}
-- ARGV[1] balance_micros, ARGV[2] version (the ledger's per-account sequence number of that balance),
-- ARGV[3..] request ids whose charges that balance already includes.
--
-- The balance is written only if it is newer than what is there, so writers racing (the charge
-- consumer, the mirror loop, two replicas) can arrive in any order. The holds go in the same step:
-- at no instant does a request count both as charged (in the balance) and as held (in pending) for
-- longer than a concurrent older write can make it, and never the other way round (neither), which
-- is the side that would let a prepaid account spend money it does not have.
-- Returns the micro-USD released from pending.

local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[2]) > current then
  redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'version', ARGV[2])
end
local released = 0
for i = 3, #ARGV do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  if held then
    redis.call('HDEL', KEYS[2], ARGV[i])
    released = released + tonumber(held)
  end
end
if released ~= 0 then
  if redis.call('HINCRBY', KEYS[1], 'pending', -released) < 0 then redis.call('HSET', KEYS[1], 'pending', 0) end
end
return released
