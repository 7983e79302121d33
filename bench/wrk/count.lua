-- Token PUTs (with BENCH_CLOSE=1 each on a new connection), for the memory phase: run.py repeats
-- runs until the wanted number of tokens or connections is reached.
wrk.method = "PUT"
wrk.path = "/latest/api/token"
wrk.headers["X-aws-ec2-metadata-token-ttl-seconds"] = "60"
if os.getenv("BENCH_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
