-- wrk script for the soak: a fixed rotation of mixed traffic on one gateway path. Per 12 requests:
-- 6 JSON completions, 3 streams, and one each of a wrong key (401), an unknown model (404) and a
-- missing required tag (400). Refusals count as wrk "status errors"; that is expected here.
local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local requests = {}
local i = 0

function init(args)
  local json = read_file(os.getenv("BENCH_BODY"))
  local stream = read_file(os.getenv("BENCH_STREAM_BODY"))
  local unknown = string.gsub(json, '"model":"[^"]*"', '"model":"no-such-model"', 1)
  local good = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
    ["Databricks-Ai-Gateway-Request-Tags"] = os.getenv("BENCH_TAGS"),
  }
  local badkey = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-wrong",
                  ["Databricks-Ai-Gateway-Request-Tags"] = os.getenv("BENCH_TAGS")}
  local notags = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")}
  local path = wrk.path
  local ok = wrk.format("POST", path, good, json)
  local st = wrk.format("POST", path, good, stream)
  requests = {ok, st, ok, ok, st, ok, wrk.format("POST", path, badkey, json), ok, st, ok,
              wrk.format("POST", path, good, unknown), wrk.format("POST", path, notags, json)}
end

function request()
  i = i % #requests + 1
  return requests[i]
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.2f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
