--! uses: checkpoint
-- A DeltaChannel history walk, next to the data (see RedisCheckpoints.cp_delta_history).
-- KEYS: ids, all, cp, blobs, wk, wv. ARGV: pfx, cid ('' = the newest of the namespace), inclusive ('1' | '0'),
-- max steps, the empty blob's type as text and as its one-byte code (_pack_typed in Python), the id to stop at
-- once visited ('' = none), '1' to also return the start checkpoint's bundle (as get does), channel...
-- Returns the start id, the id to resume at (nil: none), '1' when the walk stopped at max steps (that ancestor
-- is here), '2' when it stopped at the stop id with channels left, or '0', then per ancestor visited, nearest
-- first: its id, the number of its write values
-- and those values (its packed values, whose writes the caller filters to the channels still walking, and the
-- old layout's writes to those channels), the number of seeds and (channel, blob value) pairs.
local function parent_of(rec, id)
  -- '' (none), '=' id, '+', the byte count shared with the record's own id and the rest, or '*', the same over
  -- both ids as 16 bytes (ids of LangGraph's 8-4-4-4-12 form; _parent_part in Python)
  local p = rpart(rec, 5)
  if #p == 0 then return nil end
  local mark = string.sub(p, 1, 1)
  if mark == '+' then return string.sub(id, 1, string.byte(p, 2)) .. string.sub(p, 3) end
  if mark == '*' then
    -- the id's first shared bytes are its first 2 * shared hex digits: only the parent's own bytes are formatted
    -- (a gsub with a function per byte took ~12 us a step, a fifth of a long walk's server time)
    local rest = string.sub(p, 3)
    local h = string.sub(string.gsub(id, '-', ''), 1, 2 * string.byte(p, 2)) ..
      string.format(string.rep('%02x', #rest), string.byte(rest, 1, -1))
    return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-' .. string.sub(h, 13, 16) .. '-' ..
      string.sub(h, 17, 20) .. '-' .. string.sub(h, 21, 32)
  end
  return string.sub(p, 2)
end
local pfx, cid = ARGV[1], ARGV[2]
if cid == '' then
  local top = redis.call('ZREVRANGEBYLEX', KEYS[1], '[' .. pfx .. '\255', '[' .. pfx, 'LIMIT', 0, 1)
  if #top == 0 then return false end
  cid = string.sub(top[1], #pfx + 1)
end
local rec = redis.call('HGET', KEYS[3], pfx .. cid)
if not rec then return false end
local max_steps, empty, empty_code, stop = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local with_bundle, start_rec = ARGV[8] == '1', rec
local left, nleft = {}, 0
for i = 9, #ARGV do
  if not left[ARGV[i]] then
    left[ARGV[i]] = true
    nleft = nleft + 1
  end
end
local out = {cid, false, '0'}
local seen = {}
local cursor = cid
if ARGV[3] ~= '1' then
  seen[cid] = true
  cursor = parent_of(rec, cid)
  rec = nil
end
local steps = 0
while cursor and nleft > 0 and not seen[cursor] do
  if steps >= max_steps then
    out[2] = cursor
    out[3] = '1'
    break
  end
  if not rec then rec = redis.call('HGET', KEYS[3], pfx .. cursor) end
  if not rec then
    -- not in this tier (archived, expired, pruned): the caller reads on elsewhere
    out[2] = cursor
    break
  end
  seen[cursor] = true
  steps = steps + 1
  out[#out + 1] = cursor
  -- the packed values whole (the caller keeps the writes of the channels still walking: the checkpoint's and
  -- its spilled tasks'), then the writes of the old layout to those channels
  local writes = {}
  local packed = redis.call('HGET', KEYS[6], pfx .. cursor)
  if packed then writes[1] = packed end
  for _, w in ipairs(side_values(KEYS, side_members(KEYS, pfx .. cursor))) do
    if string.sub(w, 1, 1) == WMARK or left[rpart(w, 3)] then writes[#writes + 1] = w end
  end
  put_all(out, writes)
  local v = versions(rec)
  local chs, fields = {}, {}
  for i = 1, #v, 2 do
    if left[v[i]] then
      chs[#chs + 1] = v[i]
      fields[#fields + 1] = pfx .. v[i] .. '\0' .. v[i + 1]
    end
  end
  local seeds = {}
  if #fields > 0 then
    local blobs = hmget(KEYS[4], fields)
    for i = 1, #fields do
      local b = blobs[i]
      if b then
        local kind = blob_typed(b)
        if kind ~= empty and kind ~= empty_code then
          seeds[#seeds + 1] = chs[i]
          seeds[#seeds + 1] = b
        end
      end
    end
  end
  out[#out + 1] = #seeds / 2
  for i = 1, #seeds, 2 do
    out[#out + 1] = seeds[i]
    out[#out + 1] = seeds[i + 1]
    left[seeds[i]] = nil
    nleft = nleft - 1
  end
  if cursor == stop and nleft > 0 then
    out[3] = '2'
    break
  end
  cursor = parent_of(rec, cursor)
  rec = nil
end
if with_bundle then
  -- {walk, bundle}: the checkpoint and its walk read in one step (ContextKitSaver reads a DeltaChannel thread so)
  local b = {}
  bundle(b, KEYS, pfx, cid, start_rec, cid)
  return {out, b}
end
return out
