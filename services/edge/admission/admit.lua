-- Admission of one request for one API key, atomically, in one round trip (EVALSHA).
--
-- KEYS[1] requests-per-minute hash   {bucket second -> requests}
-- KEYS[2] tokens-per-minute hash     {bucket second -> reserved/settled tokens}
-- KEYS[3] concurrency leases zset    {lease id -> expiry ms}
-- KEYS[4] budget counter base name   (the window start is appended: one string per window)
-- KEYS[5] the account's wallet hash  {balance, version, pending}   (prepaid accounts)
-- KEYS[6] the account's holds hash   {request id -> micro-USD held}
-- All share the hash tag {<account id>}, so they live in one Redis Cluster slot.
--
-- ARGV: rpm_limit tpm_limit concurrency_limit budget_limit_micros budget_window_seconds
--       reserve_tokens reserve_cost_micros lease_id lease_ttl_ms        (a limit < 0 means "none")
--       prepaid (1|0) hold_id (the request id)
--
-- Sliding windows are 60 one-second buckets: a request counts against the limit for exactly 60 s
-- after the second it was admitted in. The clock is Redis's own (TIME), so every edge agrees.
-- Returns {admitted, reason, retry_after_ms, rpm_remaining, rpm_reset_ms, tpm_remaining,
--          tpm_reset_ms, bucket_second, window_start, budget_remaining_micros, wallet_available_micros}
-- reason: 0 admitted, 1 requests, 2 tokens, 3 concurrency, 4 budget, 5 prepaid balance;
-- -1 means "no such limit" or "never".
--
-- A prepaid wallet's available credit is balance - pending: billing writes the ledger's balance, the
-- edges hold the worst case of each request in flight (and its settled cost until billing charges it).
-- No balance written yet means none: a prepaid account starts at zero.

local WINDOW = 60
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)

local rpm_limit = tonumber(ARGV[1])
local tpm_limit = tonumber(ARGV[2])
local conc_limit = tonumber(ARGV[3])
local budget_limit = tonumber(ARGV[4])
local budget_window = tonumber(ARGV[5])
local want_tokens = tonumber(ARGV[6])
local want_cost = tonumber(ARGV[7])
local lease_id = ARGV[8]
local lease_ttl = tonumber(ARGV[9])
local prepaid = ARGV[10] == '1'
local hold_id = ARGV[11]

-- Live buckets of a sliding window, oldest first; stale ones are deleted on the way.
local function live_buckets(key)
  local fields = redis.call('HGETALL', key)
  local live, stale, used = {}, {}, 0
  for i = 1, #fields, 2 do
    local second, amount = tonumber(fields[i]), tonumber(fields[i + 1])
    if second <= now_s - WINDOW then
      stale[#stale + 1] = fields[i]
    elseif amount > 0 then
      live[#live + 1] = {second, amount}
      used = used + amount
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  return live, used
end

-- Milliseconds until enough of the window has slid past for `need` more to fit under `limit`.
local function wait_for(live, used, need, limit)
  if need > limit then return -1 end
  for _, bucket in ipairs(live) do
    used = used - bucket[2]
    if used + need <= limit then return (bucket[1] + WINDOW) * 1000 - now_ms end
  end
  return 0
end

local function reset_ms(live)
  if #live == 0 then return 0 end
  return (live[#live][1] + WINDOW) * 1000 - now_ms
end

local reason, retry = 0, 0
local rpm_live, rpm_used, tpm_live, tpm_used = {}, 0, {}, 0

if rpm_limit >= 0 then rpm_live, rpm_used = live_buckets(KEYS[1]) end
if tpm_limit >= 0 then tpm_live, tpm_used = live_buckets(KEYS[2]) end
if rpm_limit >= 0 and rpm_used + 1 > rpm_limit then
  reason, retry = 1, wait_for(rpm_live, rpm_used, 1, rpm_limit)
elseif tpm_limit >= 0 and tpm_used + want_tokens > tpm_limit then
  reason, retry = 2, wait_for(tpm_live, tpm_used, want_tokens, tpm_limit)
end
if reason == 0 and conc_limit >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[3]) + 1 > conc_limit then
    reason = 3
    if conc_limit == 0 then retry = -1 else retry = 1000 end
  end
end
local window_start, budget_key, spent = -1, nil, 0
if budget_limit >= 0 then
  window_start = now_s - (now_s % budget_window)
  budget_key = KEYS[4] .. ':' .. window_start
  spent = tonumber(redis.call('GET', budget_key) or '0')
  if reason == 0 and spent + want_cost > budget_limit then
    reason = 4
    if want_cost > budget_limit then retry = -1 else retry = (window_start + budget_window) * 1000 - now_ms end
  end
end
local available = -1
if prepaid then
  local wallet = redis.call('HMGET', KEYS[5], 'balance', 'pending')
  available = tonumber(wallet[1] or '0') - tonumber(wallet[2] or '0')
  if reason == 0 and available < want_cost then reason, retry = 5, -1 end
end

if reason == 0 then
  if rpm_limit >= 0 then
    redis.call('HINCRBY', KEYS[1], now_s, 1)
    redis.call('EXPIRE', KEYS[1], WINDOW * 2)
    rpm_used = rpm_used + 1
    rpm_live[#rpm_live + 1] = {now_s, 1}
  end
  if tpm_limit >= 0 then
    redis.call('HINCRBY', KEYS[2], now_s, want_tokens)
    redis.call('EXPIRE', KEYS[2], WINDOW * 2)
    tpm_used = tpm_used + want_tokens
    if want_tokens > 0 then tpm_live[#tpm_live + 1] = {now_s, want_tokens} end
  end
  if conc_limit >= 0 then
    redis.call('ZADD', KEYS[3], now_ms + lease_ttl, lease_id)
    redis.call('PEXPIRE', KEYS[3], lease_ttl * 2)
  end
  if budget_key ~= nil then
    redis.call('INCRBY', budget_key, want_cost)
    redis.call('EXPIRE', budget_key, budget_window + 86400)
    spent = spent + want_cost
  end
  if prepaid and want_cost > 0 then
    redis.call('HINCRBY', KEYS[5], 'pending', want_cost)
    redis.call('HSET', KEYS[6], hold_id, want_cost)
    available = available - want_cost
  end
end

local rpm_remaining, tpm_remaining, budget_remaining = -1, -1, -1
if rpm_limit >= 0 then rpm_remaining = math.max(0, rpm_limit - rpm_used) end
if tpm_limit >= 0 then tpm_remaining = math.max(0, tpm_limit - tpm_used) end
if budget_limit >= 0 then budget_remaining = math.max(0, budget_limit - spent) end
return {reason == 0 and 1 or 0, reason, retry, rpm_remaining, reset_ms(rpm_live), tpm_remaining,
        reset_ms(tpm_live), now_s, window_start, budget_remaining, math.max(available, -1)}
