-- POST a 1 KiB file to the master's /submit (assign + upload in one request) as multipart/form-data.
local boundary = "kelpbenchboundary7f3a"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"file\"; filename=\"b.bin\"\r\n" ..
  "Content-Type: application/octet-stream\r\n\r\n" ..
  string.rep("k", 1024) .. "\r\n--" .. boundary .. "--\r\n"
