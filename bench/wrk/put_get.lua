-- The SDK sequence: token PUT, then credentials GET, alternating on each connection's thread.
-- The GET carries a token the daemon issued before the run (verifying it costs what verifying a
-- fresh one does); with BENCH_CLOSE=1 every request opens a new connection, as short-lived
-- processes do.
local close = os.getenv("BENCH_CLOSE") == "1"
local headers_put = {["X-aws-ec2-metadata-token-ttl-seconds"] = "21600"}
local headers_get = {["X-aws-ec2-metadata-token"] = os.getenv("BENCH_TOKEN")}
if close then
  headers_put["Connection"] = "close"
  headers_get["Connection"] = "close"
end
local put, get
local n = 0
init = function(args)
  -- wrk.headers carries Host only from here on
  headers_put["Host"] = wrk.headers["Host"]
  headers_get["Host"] = wrk.headers["Host"]
  put = wrk.format("PUT", "/latest/api/token", headers_put)
  get = wrk.format("GET", os.getenv("BENCH_PATH"), headers_get)
end
request = function()
  n = n + 1
  if n % 2 == 1 then return put end
  return get
end
