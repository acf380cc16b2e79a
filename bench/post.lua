-- wrk: POST the same body (the environment's WRK_BODY) on every request.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
