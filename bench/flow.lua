-- wrk script: the full flow on test numbers (fixed code 123456; bench/run.sh configures them):
-- send to number k, then check number k - LAG, so the send being checked finished long ago (at
-- most `connections` requests are in flight per thread). Every check approves and issues a
-- session (Ed25519 JWT + refresh token). Requests alternate send, check.
-- `first` is a global: `thread:set` writes the thread's globals, a local would hide it.
local counter, sends = 0, 0
first = 0
local LAG = 256
local thread_index = 0
local per_thread = tonumber(os.getenv("BENCH_NUMBERS_PER_THREAD") or "40000")

function setup(thread)
  thread:set("first", thread_index * per_thread)
  thread_index = thread_index + 1
end

-- wrk calls the first thread's request() once more than it sends: after init and before the
-- thread starts, script_verify_request counts the requests one call returns (for pipelining) and
-- discards it. Taken as a send, it was never made, and the check of that number 256 sends later
-- answered 404: the one non-2xx of every flow run. That call gets a request that counts nothing.
local verify_call = false

function init(args)
  first = tonumber(first) or 0
  verify_call = first == 0
end

-- Must match bench/run.sh: +1 415 (200 + n / 10000 % 800) (n % 10000).
local function number(k)
  local n = first + k
  return string.format("+1415%03d%04d", 200 + math.floor(n / 10000) % 800, n % 10000)
end

function request()
  if verify_call then
    verify_call = false
    return wrk.format("GET", "/healthz")
  end
  counter = counter + 1
  if counter % 2 == 1 or sends <= LAG then
    sends = sends + 1
    return wrk.format("POST", "/v1/verifications", { ["Content-Type"] = "application/json" },
      string.format('{"phone":"%s"}', number(sends)))
  end
  return wrk.format("POST", "/v1/verifications/check", { ["Content-Type"] = "application/json" },
    string.format('{"phone":"%s","code":"123456"}', number(sends - LAG)))
end
