"""The Lua scripts of the Redis state (`bot.state.redis_store`): what SQLite did in a
transaction, Redis runs atomically as one script.

Those that need the time read it from the Redis server (`NOW`), so every
machine's heartbeats are judged by one clock.  Keys come in KEYS; `ARGV` ends with the
key prefix where a script builds keys of its own.
"""

__all__ = [
    "BEAT",
    "CANCEL",
    "CLAIM",
    "END_WAITING",
    "FINISH",
    "NOW",
    "PRUNE",
    "RECEIVE",
    "RECORD",
    "REQUEUE",
    "SET_IF_EXISTS",
    "STALE",
    "START",
    "TAKE_STALE",
    "WATCHED",
]

NOW = """
local t = redis.call('TIME')
local now = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
"""

RECORD = (
    NOW
    + """
if ARGV[7] ~= '' and redis.call('HGET', KEYS[5], 'state') ~= 'waiting' then
  return {'refused', 'build ' .. ARGV[7] .. ' no longer waits'}
end
if ARGV[5] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then
    local build = ARGV[6] .. 'build:' .. existing
    if redis.call('HGET', build, 'status') == 'queued' then
      return {'again', redis.call('HGET', build, 'job')}
    end
    return {'refused', 'duplicate delivery'}
  end
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'delivery', ARGV[5])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'job', ARGV[2], 'repo', ARGV[3], 'sha', ARGV[4],
           'status', 'queued', 'attempts', 0, 'created', now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return false
"""
)

START = (
    NOW
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'heartbeat', now)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
)

BEAT = (
    NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'heartbeat', now) end
"""
)

TAKE_STALE = (
    NOW
    + """
local fields = redis.call('HMGET', KEYS[1], 'status', 'heartbeat')
if fields[1] ~= 'running' or not fields[2] then return 0 end
if tonumber(fields[2]) >= tonumber(now) - tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'heartbeat', now)
return 1
"""
)

SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return end
redis.call('HSET', KEYS[1], 'status', 'done', 'state', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
if ARGV[2] == 'waiting' then
  local fields = redis.call('HMGET', KEYS[1], 'repo', 'job', 'created')
  local number = cjson.decode(fields[2])['number']
  if type(number) == 'number' then
    local key = ARGV[3] .. 'waiting:' .. fields[1] .. ':' .. string.format('%d', number)
    redis.call('ZADD', key, fields[3], ARGV[1])
    redis.call('EXPIRE', key, tonumber(ARGV[4]))
  end
end
"""

END_WAITING = """
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
"""

REQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker', 'run_id')
redis.call('SREM', KEYS[2], ARGV[1])
"""

WATCHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local previous = redis.call('HGET', KEYS[1], 'watched')
redis.call('HSET', KEYS[1], 'watched', ARGV[1])
return previous
"""

RECEIVE = (
    NOW
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('ZADD', KEYS[4], now, ARGV[2])
if ARGV[3] == 'success' then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
end
return 1
"""
)

PRUNE = (
    NOW
    + """
local cutoff = tonumber(now) - tonumber(ARGV[1])
local prefix = ARGV[3]
local forgotten = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local fields = redis.call('HMGET', prefix .. 'build:' .. id, 'status', 'delivery')
  if fields[1] == 'done' or not fields[1] then
    if fields[2] and redis.call('GET', prefix .. 'delivery:' .. fields[2]) == id then
      redis.call('DEL', prefix .. 'delivery:' .. fields[2])
    end
    redis.call('DEL', prefix .. 'build:' .. id)
    redis.call('ZREM', KEYS[1], id)
    forgotten = forgotten + 1
  end
end
local runs = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for _, run in ipairs(runs) do
  local text = redis.call('GET', prefix .. 'event:' .. run)
  if text then
    local event = cjson.decode(text)
    redis.call('ZREM', prefix .. 'green:' .. event['pipeline'], run)
    redis.call('ZREM', prefix .. 'green:' .. event['pipeline'] .. ':' .. event['ref'], run)
    redis.call('DEL', prefix .. 'event:' .. run)
  end
  redis.call('ZREM', KEYS[2], run)
end
return forgotten
"""
)

CLAIM = (
    NOW
    + """
local jobs = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  local build = ARGV[3] .. 'build:' .. id
  local fields = redis.call('HMGET', build, 'status', 'job')
  if fields[1] == 'queued' then
    redis.call('ZADD', KEYS[1], tonumber(now) + tonumber(ARGV[2]), id)
    table.insert(jobs, {fields[2], redis.call('HINCRBY', build, 'announces', 1)})
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return jobs
"""
)

STALE = (
    NOW
    + """
local found = {}
local cutoff = tonumber(now) - tonumber(ARGV[1])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HMGET', ARGV[2] .. 'build:' .. id, 'status', 'heartbeat')
  if fields[1] == 'running' and fields[2] and tonumber(fields[2]) < cutoff then
    table.insert(found, id)
  end
end
return found
"""
)

CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'done' then redis.call('HSETNX', KEYS[1], 'cancel', ARGV[1]) end
return status
"""
