-- Token counts (/v1/messages/count_tokens) of one API key in the last minute, checked and taken in
-- one step: a sliding window of 60 one-second buckets, as admit.lua keeps requests per minute.
--
-- KEYS[1] counts hash {bucket second -> counts}   (the key's hash tag: its account)
-- ARGV[1] the limit per minute
-- Returns {taken (1|0), retry_after_ms, remaining}

local WINDOW = 60
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])

local fields = redis.call('HGETALL', KEYS[1])
local used, oldest, stale = 0, nil, {}
for i = 1, #fields, 2 do
  local second, counts = tonumber(fields[i]), tonumber(fields[i + 1])
  if second <= now_s - WINDOW then
    stale[#stale + 1] = fields[i]
  else
    used = used + counts
    if oldest == nil or second < oldest then oldest = second end
  end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end

if used >= limit then
  -- the oldest counts leave the window first: the earliest moment another one can be taken
  return {0, math.max((oldest + WINDOW) * 1000 - now_ms, 1), 0}
end
redis.call('HINCRBY', KEYS[1], tostring(now_s), 1)
redis.call('EXPIRE', KEYS[1], WINDOW + 1)
return {1, 0, limit - used - 1}
