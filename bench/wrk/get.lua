-- Credentials GET with a valid IMDSv2 token (what SDKs do once they hold a token).
wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH")
wrk.headers["X-aws-ec2-metadata-token"] = os.getenv("BENCH_TOKEN")
if os.getenv("BENCH_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
