-- KEYS: cp, blobs, wv, nss. Everything a copy or a prune reads, in one slot and one step.
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
        redis.call('SMEMBERS', KEYS[4])}
