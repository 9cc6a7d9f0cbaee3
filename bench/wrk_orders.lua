-- wrk: POST the seed README's order, each one for a random customer (orders of one
-- customer queue up on the outbox's per-key lock, so one customer would measure that lock).
-- Usage: wrk -s wrk_orders.lua URL -- RUN_LABEL TOKEN ; prints one line "WRK_RESULT {json}".

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local run = "closed-loop"
local body = [[{"customer_id": "%s", "email": "customer@example.com",
 "items": [{"product_id": "456e7890-e89b-12d3-a456-426614174001", "name": "Test Product",
            "price": 49.99, "quantity": 3}],
 "currency": "USD", "metadata": {"source": "bench", "run": "%s"},
 "shipping_address": {"street": "Main St, 1", "city": "Minsk", "state": "MI", "country": "BY", "zip_code": "220030"},
 "billing_address": {"street": "Main St, 1", "city": "Minsk", "state": "MI", "country": "BY", "zip_code": "220030"}}]]

function init(args)
  if args[1] then run = args[1] end
  math.randomseed(os.time() * 97 + id * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] then wrk.headers["Authorization"] = "Bearer " .. args[2] end
end

local function hex4()
  return string.format("%04x", math.random(0, 65535))
end

function request()
  local customer = hex4() .. hex4() .. "-" .. hex4() .. "-4" .. string.sub(hex4(), 2) .. "-a"
    .. string.sub(hex4(), 2) .. "-" .. hex4() .. hex4() .. hex4()
  return wrk.format(nil, "/api/v1/orders", nil, string.format(body, customer, run))
end

status_counts = {}

function response(status, headers, body)
  status_counts[status] = (status_counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("status_counts")
    for code, n in pairs(counts) do
      statuses[tostring(code)] = (statuses[tostring(code)] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(statuses) do
    table.insert(parts, string.format('"%s": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, "latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p95": %d, ' ..
    '"p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ", "),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
