-- wrk: POST the same { hello } query on every request.
wrk.method = "POST"
wrk.body = '{"query": "{ hello }"}'
wrk.headers["Content-Type"] = "application/json"
