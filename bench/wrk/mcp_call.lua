-- wrk script: POST MCP tools/call (or MCP_METHOD) with a UNIQUE JSON-RPC id per request.
--
-- Environment:
--   MCP_METHOD       "tools/call" (default) or a method sent without params
--                    (e.g. "tools/list", for bench/scale.py's fan-out)
--   MCP_SESSION_ID   Mcp-Session-Id header (omitted if empty)
--   MCP_TOKEN        bearer token for Authorization (omitted if empty)
--   MCP_TOOL         tool name (default "echo"; "bench__echo" through aigw)
--   MCP_MESSAGE      echo argument (default "hello")
--   MCP_PROTOCOL     MCP-Protocol-Version (default 2025-11-25)
--
-- Ids are (thread index + 1) * 1e9 + a per-thread counter, so no two requests
-- of a run share one: servers route answers by id, and duplicates stall.
--
-- A reply counts as good only when its status is 2xx AND its body holds a
-- JSON-RPC "result" (JSON, or an SSE "data:" line).
--
-- Latency: wrk's own percentiles are "corrected" for coordinated omission
-- (wrk adds synthetic samples for every reply slower than twice the mean
-- interval), which turns a few stalls into a p99 of hundreds of ms at
-- concurrency 1.  This script therefore also times each request itself
-- (LuaJIT FFI clock_gettime, request() to response() of the same JSON-RPC
-- id) into a per-thread histogram of microseconds; done() merges them and
-- reports those measured percentiles (p50_us, p99_us...) next to wrk's
-- (wrk_p50_us, wrk_p99_us).  Without FFI, p*_us are wrk's.
--
-- done() prints one line for bench/run.py:   WRKRESULT {json}

local ok_ffi, ffi = pcall(require, "ffi")
local now_us
if ok_ffi then
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]])
  local ts = ffi.new("bench_timespec")
  now_us = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
  end
end

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("tindex", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

-- per-thread state; globals so that done() can read them with thread:get
bad = 0
hist = {}      -- microseconds -> count
unmatched = 0

local counter = 0
local base = 0
local prefix, suffix
local started = {}   -- id -> start time (us)

function init(args)
  base = (tindex + 1) * 1000000000
  local tool = os.getenv("MCP_TOOL") or ""
  if tool == "" then tool = "echo" end
  local message = os.getenv("MCP_MESSAGE") or ""
  if message == "" then message = "hello" end
  local method = os.getenv("MCP_METHOD") or ""
  prefix = '{"jsonrpc":"2.0","id":'
  if method == "" or method == "tools/call" then
    suffix = ',"method":"tools/call","params":{"name":"' .. tool ..
             '","arguments":{"message":"' .. message .. '"}}}'
  else
    suffix = ',"method":"' .. method .. '"}'
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  local proto = os.getenv("MCP_PROTOCOL") or ""
  if proto == "" then proto = "2025-11-25" end
  wrk.headers["MCP-Protocol-Version"] = proto
  local sid = os.getenv("MCP_SESSION_ID") or ""
  if sid ~= "" then wrk.headers["Mcp-Session-Id"] = sid end
  local token = os.getenv("MCP_TOKEN") or ""
  if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
end

function request()
  counter = counter + 1
  local id = string.format("%.0f", base + counter)
  if now_us then started[id] = now_us() end
  return wrk.format(nil, nil, nil, prefix .. id .. suffix)
end

function response(status, headers, body)
  local t = now_us and now_us()
  if status < 200 or status > 299 or body == nil
     or not string.find(body, '"result"', 1, true) then
    bad = bad + 1
  end
  if t and body then
    local id = string.match(body, '"id"%s*:%s*(%d+)')
    local t0 = id and started[id]
    if t0 then
      started[id] = nil
      local us = t - t0
      hist[us] = (hist[us] or 0) + 1
    else
      unmatched = unmatched + 1
    end
  end
end

local function percentiles(merged, total, ps)
  local keys = {}
  for us in pairs(merged) do keys[#keys + 1] = us end
  table.sort(keys)
  local out, seen, i = {}, 0, 1
  for _, us in ipairs(keys) do
    seen = seen + merged[us]
    while i <= #ps and seen >= math.floor(ps[i] / 100 * total + 0.5) do
      out[i] = us
      i = i + 1
    end
  end
  for j = i, #ps do out[j] = keys[#keys] or 0 end
  return out, keys[#keys] or 0
end

function done(summary, latency, requests)
  local total_bad, total_unmatched = 0, 0
  local merged, count, sum = {}, 0, 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (tonumber(t:get("bad")) or 0)
    total_unmatched = total_unmatched + (tonumber(t:get("unmatched")) or 0)
    local h = t:get("hist") or {}
    for us, c in pairs(h) do
      merged[us] = (merged[us] or 0) + c
      count = count + c
      sum = sum + us * c
    end
  end
  local wrk_p = { latency:percentile(50), latency:percentile(90), latency:percentile(99) }
  local p, max, mean, source
  if count > 0 then
    p, max = percentiles(merged, count, { 50, 90, 99 })
    mean = sum / count
    source = "measured"
  else
    p, max, mean, source = wrk_p, latency.max, latency.mean, "wrk"
  end
  local e = summary.errors
  local secs = summary.duration / 1000000
  io.write(string.format(
    'WRKRESULT {"requests":%d,"duration_s":%.6f,"rps":%.3f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"latency_source":"%s","timed":%d,"unmatched":%d,' ..
    '"wrk_p50_us":%d,"wrk_p90_us":%d,"wrk_p99_us":%d,' ..
    '"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"bad_replies":%d}\n',
    summary.requests, secs, summary.requests / secs,
    p[1], p[2], p[3], max, mean, source, count, total_unmatched,
    wrk_p[1], wrk_p[2], wrk_p[3],
    e.status, e.connect, e.read, e.write, e.timeout, total_bad))
end
