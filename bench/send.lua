-- wrk script: POST /v1/verifications to a new number on every request, so every request is a
-- first send through the demo provider (bench/run.sh switches the limits off). Each thread walks
-- its own range of +1 415 numbers.
-- `first` is a global: `thread:set` writes the thread's globals, a local would hide it.
local counter = 0
first = 0
local thread_index = 0

function setup(thread)
  thread:set("first", thread_index * 1000000)
  thread_index = thread_index + 1
end

function init(args)
  first = tonumber(first) or 0
end

function request()
  counter = counter + 1
  local n = first + counter
  local body = string.format('{"phone":"+1415%03d%04d"}', 200 + math.floor(n / 10000) % 800, n % 10000)
  return wrk.format("POST", "/v1/verifications", { ["Content-Type"] = "application/json" }, body)
end
