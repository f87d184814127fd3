-- Drop a seed checkpoint thread from its index once its keys are gone. KEYS: thread index [, cp_docs, cp_writes].
-- With the thread's keys (plain Redis) the check and the removal are atomic, so a concurrent put wins.
if KEYS[2] and (redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
