-- Shared list nodes (contextkit.checkpoint_lists): the blob fields a record reaches, for a prune to collect the
-- nodes no remaining record reaches.
local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
local function b64url(s)
  -- URL-safe base64 without padding (node_version in Python)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 4
    if not b then chars = 2 elseif not c then chars = 3 end
    for k = 1, chars do
      local shift = 18 - 6 * (k - 1)
      local idx = math.floor(n / 2 ^ shift) % 64
      out[#out + 1] = string.sub(B64, idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end
-- (blob_typed, lib/checkpoint.lua, gives a known type as its one-byte code: no list record or block is one of those)
local function is_record(raw)
  local kind = blob_typed(raw)
  return string.sub(kind, -5) == '+list'
end
-- Adds to reached (a set of blob fields) the nodes the record blob `raw` of `channel` reaches: its blocks, the
-- leaves those hold (read from KEYS_blobs) and its single leaves. False when the record has a format this version
-- cannot read: nothing of the channel may then go.
local function reach(blobs_key, pfx, channel, raw, reached)
  local _, data = blob_typed(raw)
  if string.byte(data, 1) ~= 1 or #data < 2 then return false end
  local pos = 3
  if bit.band(string.byte(data, 2), 1) == 1 then pos = 4 end
  local n, shift = 0, 0
  while true do
    local byte = string.byte(data, pos)
    if not byte or shift > 49 then return false end
    pos = pos + 1
    n = n + bit.band(byte, 127) * 2 ^ shift
    if byte < 128 then break end
    shift = shift + 7
  end
  local head = pfx .. channel .. '\0#'
  local size = 1
  while size * 2 <= n do size = size * 2 end
  local left = n
  while size >= 1 do
    if left >= size then
      left = left - size
      local id = string.sub(data, pos, pos + 15)
      if #id ~= 16 then return false end
      pos = pos + 16
      local field = head .. b64url(id)
      if not reached[field] then
        reached[field] = true
        if size > 1 then
          local block = redis.call('HGET', blobs_key, field)
          if block then
            local kind, ids = blob_typed(block)
            if kind == 'ck-block' then
              for i = 1, #ids - 15, 16 do reached[head .. b64url(string.sub(ids, i, i + 15))] = true end
            end
          end
        end
      end
    end
    size = size / 2
  end
  return true
end
