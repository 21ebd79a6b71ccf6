-- wrk script for benchmarks/run.py --revocation: POST RFC 7009 revocation requests,
-- each for a token not revoked before. The file BENCH_BODIES_FILE holds one form
-- body per token, one a line (thousands: too many for an environment variable).
-- Thread i of T sends bodies i, i+T, i+2T, ... so no two threads revoke the same
-- token. A thread that runs out of bodies starts its share again
-- (run.py sizes the pool so that this does not happen, and flags a run where
-- the request count says it did). done() prints one machine-readable line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"

local prepared = {}
local stride = 1
index = 0  -- global: setup() gives each thread its own start

-- In init, not at load: wrk adds the Host header just before init runs.
-- BENCH_THREADS is wrk's -t, set by run.py.
init = function(args)
  stride = tonumber(os.getenv("BENCH_THREADS")) or 1
  for body in io.lines(os.getenv("BENCH_BODIES_FILE")) do
    if body ~= "" then
      prepared[#prepared + 1] = wrk.format(nil, nil, nil, body)
    end
  end
end

local started = 0
setup = function(thread)
  thread:set("index", started)
  started = started + 1
end

request = function()
  local body = prepared[(index % #prepared) + 1]
  index = index + stride
  return body
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
