"""Lua scripts that make each registry change atomic, so replicas never double-emit a transition.

Every key is built inside the script from the hash-tagged root passed as ARGV[1]; all of them share
that tag and therefore one Redis Cluster slot.
"""

from __future__ import annotations

# Emits one transition onto the events stream; expects `root`, `id` and `now_s` (ms as a string).
_EMIT = """
local function emit(kind, reason)
  redis.call('XADD', root .. ':events', 'MAXLEN', '~', maxlen, '*',
             'type', kind, 'worker', id, 'reason', reason, 't', now_s)
end
"""

# Pops the commands queued for `id` that are still PENDING and unexpired; marks them DELIVERED.
_DELIVER = """
local function deliver(max_commands)
  local out = {}
  local qkey = root .. ':cmdq:' .. id
  local ids = redis.call('LRANGE', qkey, 0, max_commands - 1)
  if #ids == 0 then return out end
  redis.call('LTRIM', qkey, #ids, -1)
  for _, cid in ipairs(ids) do
    local ckey = root .. ':cmd:' .. cid
    local c = redis.call('HMGET', ckey, 'status', 'exp', 'type', 'job', 'reason')
    if c[1] == 'PENDING' and tonumber(c[2]) > now then
      redis.call('HSET', ckey, 'status', 'DELIVERED', 'delivered', now_s)
      out[#out + 1] = cid
      out[#out + 1] = c[3]
      out[#out + 1] = c[4] or ''
      out[#out + 1] = c[5] or ''
    end
  end
  return out
end
"""

# Sets the online deadline of `id` in every queue index it is listed in.
_QUEUE_SCORES = """
local function set_queue_scores(queues, score)
  if not queues then return end
  for q in string.gmatch(queues, '[^\\n]+') do
    redis.call('ZADD', root .. ':q:' .. q, 'XX', score, id)
  end
end
"""

# Records a batch of beats in order. Arguments: root, now (ms), online deadline (ms), retention (s),
# events max length, commands per beat, number of beats, history length (points), this minute (ms);
# then per beat: worker id, serialized report, fingerprint, instance id, host, queues
# (newline-separated), history point (empty: none), number of acks, and three values per ack.
# The first beat of a worker in a minute that carries a history point appends it to the worker's
# history list `wh:<id>` (trimmed to the history length, expiring with the worker) and notes the
# minute in the worker hash (`hm`, read by the HMGET every beat makes anyway): the list is written at
# most once a minute per worker, in time order, whatever the number of replicas; each write is O(1).
# A steady beat (online, same fingerprint) writes only what moves: the report when it differs, the
# deadline, last-seen time, key expiry and queue scores; the identity fields, the id index, `first`,
# `off` and dropped queues are written only when the worker is new, back, or its fingerprint changed.
# Per beat it answers {identity written (0/1), report written (0/1), commands as flat fields}, or
# {'error', message} when that beat failed (a damaged key, say): the beats around it still count.
BEAT = (
    """
local root, now_s, deadline, retention = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(now_s)
local maxlen, max_commands, n_beats = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local history_max, minute_s = tonumber(ARGV[8]), ARGV[9]
local minute = tonumber(minute_s)
local id
"""
    + _EMIT
    + _DELIVER
    + """
local function settle(i, n_acks)
  for _ = 1, n_acks do
    local ckey = root .. ':cmd:' .. ARGV[i]
    local c = redis.call('HMGET', ckey, 'worker', 'status', 'exp')
    if c[1] == id and (c[2] == 'DELIVERED' or c[2] == 'PENDING') and tonumber(c[3]) > now then
      local status = 'FAILED'
      if ARGV[i + 1] == '1' then status = 'ACKED' elseif ARGV[i + 1] == 'u' then status = 'UNSUPPORTED' end
      redis.call('HSET', ckey, 'status', status, 'result', ARGV[i + 2], 'done', now_s)
    end
    i = i + 3
  end
  return i
end

local function beat(i)
  id = ARGV[i]
  local info, fp, inst, host, queues = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local point = ARGV[i + 6]
  local wkey = root .. ':w:' .. id
  local old = redis.call('ZSCORE', root .. ':deadline', id)
  local prev = redis.call('HMGET', wkey, 'fp', 'inst', 'queues', 'info', 'hm')
  local online = false
  if not old then
    emit('ONLINE', 'first beat')
  else
    old = tonumber(old)
    if old <= now then
      if old > 0 then emit('OFFLINE', 'missed beats') end
      emit('ONLINE', 'back online')
    else
      online = true
      if prev[1] ~= fp then
        if prev[2] ~= inst then emit('UPDATED', 'restarted') else emit('UPDATED', 'changed') end
      end
    end
  end
  local identity = not old or prev[1] ~= fp
  local report = identity or prev[4] ~= info
  local hm = {}
  -- Only a minute after the last one written: a replica whose clock lags another's neither repeats a
  -- minute nor writes one out of order.
  if point ~= '' and history_max > 0 and (not prev[5] or tonumber(prev[5]) < minute) then
    local hkey = root .. ':wh:' .. id
    redis.call('RPUSH', hkey, minute_s .. ':' .. point)
    redis.call('LTRIM', hkey, -history_max, -1)
    redis.call('EXPIRE', hkey, retention)
    hm = {'hm', minute_s}
  end
  redis.call('ZADD', root .. ':deadline', deadline, id)
  redis.call('ZADD', root .. ':lastseen', now, id)
  if identity then
    redis.call('ZADD', root .. ':ids', 0, id)
    redis.call('HSET', wkey, 'info', info, 'fp', fp, 'inst', inst, 'host', host, 'queues', queues,
               'last', now_s, unpack(hm))
    redis.call('HSETNX', wkey, 'first', now_s)
  elseif report then
    redis.call('HSET', wkey, 'info', info, 'last', now_s, unpack(hm))
  else
    redis.call('HSET', wkey, 'last', now_s, unpack(hm))
  end
  -- Only GOODBYE and SWEEP set `off`, and both take the deadline to 0: an online worker has none.
  if not online then redis.call('HDEL', wkey, 'off') end
  redis.call('EXPIRE', wkey, retention)
  local current = {}
  for q in string.gmatch(queues, '[^\\n]+') do
    current[q] = true
    local qkey = root .. ':q:' .. q
    redis.call('ZADD', qkey, deadline, id)
    redis.call('EXPIRE', qkey, retention)
    redis.call('ZADD', root .. ':queues', 'GT', deadline, q)
  end
  if identity and prev[3] and prev[3] ~= queues then
    for q in string.gmatch(prev[3], '[^\\n]+') do
      if not current[q] then redis.call('ZREM', root .. ':q:' .. q, id) end
    end
  end
  local after = settle(i + 8, tonumber(ARGV[i + 7]))
  return after, {identity and 1 or 0, report and 1 or 0, deliver(max_commands)}
end

local replies, i = {}, 10
for k = 1, n_beats do
  local ok, after, reply = pcall(beat, i)
  if ok then
    replies[k] = reply
    i = after
  else
    if type(after) == 'table' then after = after.err end
    replies[k] = {'error', tostring(after)}
    i = i + 8 + 3 * tonumber(ARGV[i + 7])
  end
end
return replies
"""
)

DELIVER = (
    """
local root, id, now_s = ARGV[1], ARGV[2], ARGV[3]
local now, max_commands = tonumber(ARGV[3]), tonumber(ARGV[4])
"""
    + _DELIVER
    + """
return deliver(max_commands)
"""
)

GOODBYE = (
    """
local root, id, inst, now_s, reason, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
"""
    + _EMIT
    + _QUEUE_SCORES
    + """
local wkey = root .. ':w:' .. id
local w = redis.call('HMGET', wkey, 'inst', 'queues')
if inst ~= '' and w[1] and w[1] ~= inst then return 0 end
local old = redis.call('ZSCORE', root .. ':deadline', id)
if not old or tonumber(old) == 0 then return 0 end
redis.call('ZADD', root .. ':deadline', 0, id)
set_queue_scores(w[2], 0)
local why = 'goodbye'
if reason ~= '' then why = 'goodbye: ' .. reason end
redis.call('HSET', wkey, 'off', why)
emit('OFFLINE', why)
return 1
"""
)

SWEEP = (
    """
local root, now_s, cutoff, maxlen, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local now = tonumber(now_s)
local id
"""
    + _EMIT
    + _QUEUE_SCORES
    + """
local expired = redis.call('ZRANGEBYSCORE', root .. ':deadline', '(0', now, 'LIMIT', 0, limit)
for _, wid in ipairs(expired) do
  id = wid
  local wkey = root .. ':w:' .. id
  redis.call('ZADD', root .. ':deadline', 0, id)
  set_queue_scores(redis.call('HGET', wkey, 'queues'), 0)
  redis.call('HSET', wkey, 'off', 'missed beats')
  emit('OFFLINE', 'missed beats')
end
local stale = redis.call('ZRANGEBYSCORE', root .. ':lastseen', '-inf', cutoff, 'LIMIT', 0, limit)
for _, wid in ipairs(stale) do
  local wkey = root .. ':w:' .. wid
  local queues = redis.call('HGET', wkey, 'queues')
  if queues then
    for q in string.gmatch(queues, '[^\\n]+') do redis.call('ZREM', root .. ':q:' .. q, wid) end
  end
  redis.call('ZREM', root .. ':ids', wid)
  redis.call('ZREM', root .. ':deadline', wid)
  redis.call('ZREM', root .. ':lastseen', wid)
  redis.call('DEL', wkey, root .. ':cmdq:' .. wid, root .. ':wh:' .. wid)
end
redis.call('ZREMRANGEBYSCORE', root .. ':queues', '-inf', cutoff)
return {#expired, #stale}
"""
)

# Pages through the lexical worker index, applying filters, within a scan budget per call.
LIST = """
local root, cursor, page, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local status, queue, host, budget = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
-- Searched in lower case on both sides, as plain text (no Lua patterns).
local search = string.lower(ARGV[9] or '')
local rows, count, scanned, last, stop = {}, 0, 0, nil, false
local chunk = 256
while not stop do
  local ids = redis.call('ZRANGEBYLEX', root .. ':ids', cursor, '+', 'LIMIT', 0, chunk)
  for _, id in ipairs(ids) do
    scanned = scanned + 1
    last = id
    local dl = tonumber(redis.call('ZSCORE', root .. ':deadline', id) or '0')
    local ok = not ((status == '1' and dl <= now) or (status == '2' and dl > now))
    if ok and queue ~= '' then ok = redis.call('ZSCORE', root .. ':q:' .. queue, id) ~= false end
    local h
    if ok then
      h = redis.call('HMGET', root .. ':w:' .. id, 'info', 'host', 'first', 'last', 'off')
      ok = h[1] ~= false and (host == '' or h[2] == host)
      if ok and search ~= '' then
        ok = string.find(string.lower(id), search, 1, true) ~= nil
          or string.find(string.lower(h[2] or ''), search, 1, true) ~= nil
      end
    end
    if ok then
      rows[#rows + 1] = id
      rows[#rows + 1] = tostring(dl)
      rows[#rows + 1] = h[1]
      rows[#rows + 1] = h[3] or '0'
      rows[#rows + 1] = h[4] or '0'
      rows[#rows + 1] = h[5] or ''
      count = count + 1
    end
    if count >= page or scanned >= budget then stop = true; break end
  end
  if #ids < chunk then
    if not stop then last = nil end
    stop = true
  end
  if last then cursor = '(' .. last end
end
if last and #redis.call('ZRANGEBYLEX', root .. ':ids', '(' .. last, '+', 'LIMIT', 0, 1) == 0 then
  last = nil
end
return {last or '', rows}
"""

SUMMARY = """
local root, now = ARGV[1], ARGV[2]
local online = redis.call('ZCOUNT', root .. ':deadline', '(' .. now, '+inf')
local total = redis.call('ZCARD', root .. ':ids')
local out = {online, total}
for _, q in ipairs(redis.call('ZRANGE', root .. ':queues', 0, -1)) do
  out[#out + 1] = q
  out[#out + 1] = redis.call('ZCOUNT', root .. ':q:' .. q, '(' .. now, '+inf')
end
return out
"""
