--! uses: side
-- KEYS: index shard (4). ARGV: mode, id, score, status, messages delta, checkpoints delta
side(side_keys(1), ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
