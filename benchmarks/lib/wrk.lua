-- The script python -m benchmarks runs wrk with (benchmarks/lib/wrk.py fills in the headers every request
-- carries, each request's own headers and body, and the expected text): POSTs the requests of one load in
-- turn, counts every answer that is not HTTP 200 with the expected text (a non-error result unless told),
-- prints one machine-readable line at the end.
local extra = {$extra}
local bodies = {$bodies}
local n = #bodies
local i = 0
bad = 0  -- globals: done() reads them from every thread with thread:get
sample = ""
local threads = {}

wrk.method = "POST"
$base
for name, value in pairs(extra[1]) do wrk.headers[name] = value end
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
      for name, value in pairs(extra[k]) do wrk.headers[name] = value end
      formatted[k] = wrk.format(nil, nil, nil, bodies[k])
    end
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
