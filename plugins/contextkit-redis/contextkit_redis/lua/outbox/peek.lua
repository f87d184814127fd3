-- KEYS: stream, lease. ARGV: token, lease_ms, count, start ('-', or '(' and the last id handed out), max_bytes
-- (0: no bound). Returns {holder?, length, entries, full}: entries stop before their values would pass max_bytes
-- (one entry at least); full = 1 when a bound (count or bytes) ended them.
local holder = redis.call('GET', KEYS[2])
local length = redis.call('XLEN', KEYS[1])
if holder and holder ~= ARGV[1] then return {0, length, {}, 0} end
if length == 0 then
  if holder then redis.call('DEL', KEYS[2]) end
  return {1, 0, {}, 0}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local want = tonumber(ARGV[3])
local limit = tonumber(ARGV[5])
if limit == 0 then
  local entries = redis.call('XRANGE', KEYS[1], ARGV[4], '+', 'COUNT', want)
  return {1, length, entries, #entries >= want and 1 or 0}
end
-- Bounded by bytes: read in chunks sized by the entries seen so far (16 at first), so a run of big entries is
-- not all loaded for one batch and small ones still take few calls.
local entries, total, start = {}, 0, ARGV[4]
while #entries < want do
  local n = math.min(want - #entries, 16)
  if #entries > 0 then
    local average = math.max(1, math.floor(total / #entries))
    n = math.min(want - #entries, math.max(1, math.floor((limit - total) / average) + 1))
  end
  local chunk = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', n)
  if #chunk == 0 then return {1, length, entries, 0} end
  for _, entry in ipairs(chunk) do
    local fields, size = entry[2], 0
    for i = 2, #fields, 2 do size = size + #fields[i] end
    if #entries > 0 and total + size > limit then return {1, length, entries, 1} end
    total = total + size
    entries[#entries + 1] = entry
    start = '(' .. entry[1]
  end
  if total >= limit then return {1, length, entries, 1} end
end
return {1, length, entries, 1}
