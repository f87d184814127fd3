-- Drop index entries of a session whose record is gone. KEYS: index shard (4) [, session record].
-- With the record key (plain Redis) the check and the removal are atomic, so a concurrent re-create wins.
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
