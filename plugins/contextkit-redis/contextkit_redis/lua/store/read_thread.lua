-- KEYS: cp_docs, cp_order, cp_writes. Returns {ids in insertion order, docs (HGETALL), writes (HGETALL)}.
return {redis.call('LRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[3])}
