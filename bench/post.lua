-- POST with a fixed body and headers from the environment (BENCH_BODY, BENCH_AUTH, BENCH_TYPE).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE") or "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
dofile(os.getenv("BENCH_DIR") .. "/report.lua")
