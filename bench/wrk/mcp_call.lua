-- wrk script: POST MCP tools/call with a UNIQUE JSON-RPC id per request.
--
-- Environment:
--   MCP_SESSION_ID   Mcp-Session-Id header (omitted if empty)
--   MCP_TOKEN        bearer token for Authorization (omitted if empty)
--   MCP_TOOL         tool name (default "echo"; "bench__echo" through aigw)
--   MCP_MESSAGE      echo argument (default "hello")
--   MCP_PROTOCOL     MCP-Protocol-Version (default 2025-11-25)
--
-- Ids are thread_index * 1e9 + per-thread counter, so no two requests of a
-- run share one: servers route answers by id, and duplicates stall.
-- A reply counts as good only when its status is 2xx AND its body holds a
-- JSON-RPC "result" (JSON or an SSE "data:" line); done() prints one line
--   WRKRESULT {json}
-- with requests, rps, latency percentiles (us), non-2xx, socket errors and
-- bad (non-result) replies, for bench/run.py to parse.

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("tindex", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

local counter = 0
local base = 0
bad = 0  -- global: done() reads it with thread:get
local prefix, suffix

function init(args)
  base = (tindex + 1) * 1000000000
  local tool = os.getenv("MCP_TOOL") or "echo"
  if tool == "" then tool = "echo" end
  local message = os.getenv("MCP_MESSAGE") or "hello"
  prefix = '{"jsonrpc":"2.0","id":'
  suffix = ',"method":"tools/call","params":{"name":"' .. tool ..
           '","arguments":{"message":"' .. message .. '"}}}'
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
  local body = prefix .. string.format("%.0f", base + counter) .. suffix
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 or body == nil
     or not string.find(body, '"result"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (tonumber(t:get("bad")) or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1000000
  io.write(string.format(
    'WRKRESULT {"requests":%d,"duration_s":%.6f,"rps":%.3f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"bad_replies":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout, total_bad))
end
