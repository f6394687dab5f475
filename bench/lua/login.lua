-- POST /auth/login, each request with a code the WeChat simulator has not
-- seen, for a user it has not seen ("<prefix>t<thread>n<n>.1"): a first
-- login every time. The prefix (first argument) differs per run, because the
-- simulator refuses a code twice.
--   wrk ... -s login.lua http://127.0.0.1:PORT -- <prefix>
local headers, prefix
local n = 0

function init(args)
  prefix = args[1]
  headers = base_headers({ ["Content-Type"] = "application/json" })
end

function request()
  n = n + 1
  return wrk.format("POST", "/auth/login", headers,
    '{"code":"' .. prefix .. "t" .. tid .. "n" .. n .. '.1"}')
end
