-- wrk script: POSTs one chat completion per request, each connection
-- pausing DELAY_MS after every answer, so that CONNECTIONS / (DELAY_MS +
-- latency) sets the rate (wrk itself sends as fast as it can). Prints the
-- latency percentiles in microseconds on one RESULT line.
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"model":"' .. (os.getenv("MODEL") or "mock-small") ..
  '","messages":[{"role":"user","content":"Say hello to the load generator."}],"max_tokens":16}'

function delay()
  return delay_ms
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
