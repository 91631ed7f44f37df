-- POST a 1 KiB body to the URL's path (or to paths from KELP_PATHS, one per line).
wrk.method = "POST"
wrk.body = string.rep("k", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
