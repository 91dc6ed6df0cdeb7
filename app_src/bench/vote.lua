-- wrk script for the vote benchmark: POST /api/vote, a new voter per request.
--   [WRK_RECORD=FILE] wrk -t N -c N -d 10s -s vote.lua http://127.0.0.1:PORT -- TAG [INTERVAL]
-- INTERVAL (seconds between two votes of one thread, i.e. threads / rate; absent = as fast as
-- possible) paces each thread on an absolute schedule, so a slow answer is caught up instead of
-- lowering the rate. With WRK_RECORD, every answer is written to FILE as "status sent answered"
-- (CLOCK_MONOTONIC seconds, the clock of Python's time.monotonic()) so the caller can match
-- answers with what the result API shows.
-- Pacing and recording need one connection per thread (-t N -c N): a thread then has at most one
-- request in flight, so each answer belongs to the last request the thread built.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec_t;
  int clock_gettime(int clk_id, timespec_t *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("timespec_t")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local tag, interval, next_at, sent_at
local record = os.getenv("WRK_RECORD") ~= nil
local sent = 0
answers = {} -- global: done() reads it from each thread with thread:get()

function init(args)
  tag = string.format("%s%03dx", args[1] or "wrk", id)
  interval = tonumber(args[2] or "")
  if interval then
    -- random phases spread the threads' schedules so their votes do not arrive in bursts
    math.randomseed(id)
    next_at = now() + math.random() * interval
  end
end

function delay()
  if not interval then
    return 0
  end
  next_at = next_at + interval
  local wait = (next_at - now()) * 1000
  return wait > 0 and math.floor(wait) or 0
end

function request()
  sent = sent + 1
  sent_at = now()
  local choice = (sent % 2 == 0) and "Cats" or "Dogs"
  return wrk.format("POST", "/api/vote", {
    ["Content-Type"] = "application/json",
    -- a valid voter id (8-64 characters), as a returning browser sends it
    ["Cookie"] = string.format("voter_id=%s%08d", tag, sent),
  }, '{"vote": "' .. choice .. '"}')
end

function response(status, headers, body)
  if record then
    answers[#answers + 1] = string.format("%d %.6f %.6f", status, sent_at, now())
  end
end

function done(summary, latency, requests)
  if record then
    local out = assert(io.open(os.getenv("WRK_RECORD"), "w"))
    for _, thread in ipairs(threads) do
      local got = thread:get("answers")
      if #got > 0 then
        out:write(table.concat(got, "\n"), "\n")
      end
    end
    out:close()
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
