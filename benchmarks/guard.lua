-- wrk script for benchmarks/guard.py: GET with a bearer token from a pool, cycled.
--
-- BENCH_TOKENS  a file of tokens, one a line (the pool)
-- BENCH_THREADS wrk's -t (the pool size must be a multiple of it)
-- BENCH_OFFSET  where in the pool this run starts: where the last run stopped
--
-- Thread t sends the tokens at offset+t, offset+t+T, offset+t+2T, ... (mod the
-- pool size, T threads), so no two threads send the same token and each
-- cycles its own share. The requests are built once, in init, so that wrk,
-- which shares the cores with the server, spends little per request.
-- done() prints one machine-readable line, with the most requests any thread
-- built (sent_max): the next run starts past every token this one used.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local pool = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    pool[#pool + 1] = line
  end
  local step = tonumber(os.getenv("BENCH_THREADS"))
  local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
  local n = #pool
  prepared = {}
  for k = 0, n / step - 1 do
    local token = pool[(offset + id + k * step) % n + 1]
    prepared[k + 1] = wrk.format("GET", nil, { Authorization = "Bearer " .. token })
  end
  count = #prepared
  sent = 0
end

function request()
  sent = sent + 1
  return prepared[(sent - 1) % count + 1]
end

done = function(summary, latency, requests)
  local most = 0
  for _, thread in ipairs(threads) do
    local n = thread:get("sent")
    if n > most then most = n end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"sent_max":%d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, most))
end
