-- The script python -m benchmarks runs wrk with (benchmarks/lib/wrk.py fills in $names, $bodies,
-- $version, $method and $expect): POSTs 2026-07-28 requests of one method (tools/call unless told),
-- counts every answer that is not HTTP 200 with the expected text (a non-error result unless told),
-- prints one machine-readable line at the end.
local names = {$names}
local bodies = {$bodies}
local n = #bodies
local i = 0
bad = 0  -- globals: done() reads them from every thread with thread:get
sample = ""
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "$version"
wrk.headers["Mcp-Method"] = "$method"
wrk.headers["Mcp-Name"] = names[1]
wrk.body = bodies[1]

function setup(thread)
  table.insert(threads, thread)
end

if n > 1 then
  -- every request formatted once, when the thread starts: the load generator's cost per request is then
  -- the same whatever the number of bodies (wrk.format per request costs it a third of its CPU)
  local formatted = {}
  function init(args)
    for k = 1, n do
      wrk.headers["Mcp-Name"] = names[k]
      formatted[k] = wrk.format(nil, nil, nil, bodies[k])
    end
    wrk.headers["Mcp-Name"] = names[1]
  end
  function request()
    i = i % n + 1
    return formatted[i]
  end
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, $expect, 1, true) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local b = 0
  local s = ""
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    if s == "" then s = t:get("sample") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bad":%d,"socket_errors":%d,"timeouts":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, b, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  io.write("WRK_SAMPLE " .. s .. "\n")
end
