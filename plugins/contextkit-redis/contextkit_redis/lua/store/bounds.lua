--! uses: owner
-- KEYS: history, legacy seq, meta. ARGV: archived. Returns {oldest kept message or false, highest seq}.
local bad = guard(KEYS[3], ARGV[1])
if bad then return redis.error_reply(bad) end
return {redis.call('LINDEX', KEYS[1], 0), seq_of(KEYS[3], KEYS[2])}
