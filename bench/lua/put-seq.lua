-- PUT a 1 KiB body to /<vid>,<key hex><cookie> with a new key on every request.
-- Keys count up from KELP_KEY_BASE (decimal) in this Lua state: run wrk with -t 1
-- so every connection shares the one counter and no key is written twice.
local vid = os.getenv("KELP_VOLUME") or "1"
local cookie = os.getenv("KELP_COOKIE") or "1234abcd"
local key = tonumber(os.getenv("KELP_KEY_BASE") or "1")
wrk.method = "PUT"
wrk.body = string.rep("k", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
request = function()
  local path = string.format("/%s,%x%s", vid, key, cookie)
  key = key + 1
  return wrk.format(nil, path)
end
