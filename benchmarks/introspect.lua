-- wrk script for benchmarks/run.py --introspection: POST RFC 7662 introspection
-- requests that cycle through a pool of tokens, as resource servers see many
-- clients' tokens, each again and again. BENCH_BODIES holds the form bodies,
-- one a line; each wrk thread starts at its own place in the pool.
-- done() prints one machine-readable line, as token.lua's does.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"

local prepared = {}
n = 0  -- global: setup() gives each thread its own start

-- In init, not at load: wrk adds the Host header just before init runs.
init = function(args)
  for body in string.gmatch(os.getenv("BENCH_BODIES") or "", "[^\n]+") do
    prepared[#prepared + 1] = wrk.format(nil, nil, nil, body)
  end
end
local counter = 1

setup = function(thread)
  thread:set("n", counter * 7)
  counter = counter + 1
end

request = function()
  n = n + 1
  return prepared[(n % #prepared) + 1]
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
