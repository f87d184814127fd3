--! uses: side owner
-- KEYS: session family (6), meta [, index shard (4)]. ARGV: side, cap, ttl_ms, archived, then (seq, message
-- JSON) pairs in ascending seq. Inserts, at the head, the messages older than every kept one, at most the room
-- the cap leaves (the newest of them). Returns how many were inserted.
local bad = guard(KEYS[7], ARGV[4])
if bad then return redis.error_reply(bad) end
local length = redis.call('LLEN', KEYS[2])
local room = tonumber(ARGV[2]) - length
if room <= 0 then return 0 end
local floor
if length > 0 then
  floor = tonumber(cjson.decode(redis.call('LINDEX', KEYS[2], 0))['seq'])
else
  floor = seq_of(KEYS[7], KEYS[3]) + 1
end
local picked = {}
for i = 5, #ARGV, 2 do
  if tonumber(ARGV[i]) < floor then picked[#picked + 1] = ARGV[i + 1] end
end
local start = math.max(1, #picked - room + 1)
local inserted = 0
for i = #picked, start, -1 do
  redis.call('LPUSH', KEYS[2], picked[i])
  inserted = inserted + 1
end
if inserted > 0 then
  refresh(1, ARGV[3])
  if ARGV[1] == '1' then side(side_keys(8), 'none', '', 0, '', inserted, 0) end
end
return inserted
