-- KEYS: thread index shard, the thread's lg:all [, its lg:ids]. ARGV: thread_id. Drops the entry of a thread that
-- expired (neither of its checkpoint indexes is left).
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
