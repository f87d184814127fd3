-- Shared by the scripts of an owner: KEYS[first .. first + 6] are the owner's session family (session, history,
-- legacy seq, task, conversations, conversation) and its meta, which live and expire together.
local function refresh(first, ttl)
  for i = first, first + 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
-- The highest stream seq: the meta's, or (data written before the meta existed) the legacy counter's.
local function seq_of(meta, legacy)
  local s = redis.call('HGET', meta, 's')
  if s then return tonumber(s) end
  return tonumber(redis.call('GET', legacy) or '0')
end
local function session_fields(key)
  return redis.call('HGETALL', key)
end
-- The archived flag of a call: '0' (no cold tier), '1' (archived, no epoch: a cluster) or, on plain Redis, the key
-- of the namespace's epoch hash. Archived, an owner without meta is unknown (CKUNKNOWN), and one whose meta was
-- written before the server's current run began may be older than the archive (CKSTALE: restarted from an older
-- snapshot); both send the caller to the archive first.
local function stale(meta, flag)
  if flag == '0' or flag == '1' then return false end
  local cur = redis.call('HGET', flag, 'e')
  return cur ~= false and tonumber(redis.call('HGET', meta, 'e') or '0') < tonumber(cur)
end
local function guard(meta, flag)
  if flag == '0' then return nil end
  if redis.call('EXISTS', meta) == 0 then return 'CKUNKNOWN' end
  if stale(meta, flag) then return 'CKSTALE' end
  return nil
end
-- Mark the meta as written in the server's current run.
local function stamp(meta, flag)
  if flag ~= '0' and flag ~= '1' then
    local cur = redis.call('HGET', flag, 'e')
    if cur then redis.call('HSET', meta, 'e', cur) end
  end
end
