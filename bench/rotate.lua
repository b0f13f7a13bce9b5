-- POST /token for many clients in turn; BENCH_AUTH_FILE holds one Authorization value per line.
local auths = {}
for line in io.lines(os.getenv("BENCH_AUTH_FILE")) do auths[#auths + 1] = line end
local i = 0
request = function()
  i = i % #auths + 1
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auths[i],
  }, "grant_type=client_credentials")
end
dofile(os.getenv("BENCH_DIR") .. "/report.lua")
