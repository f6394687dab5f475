-- POST /auth/refresh in steady state: each request rotates a live session
-- and every 200 answer's new refresh token goes to the back of this
-- thread's queue, to be used again once the other sessions had their turn.
-- The queue starts with this thread's share of the refresh tokens in a
-- file (one a line; line i goes to thread i mod <threads>), which must be
-- at least the connections per thread. A failed refresh loses its session;
-- if the queue runs dry, requests carry an invalid token and count as
-- errors, so they cannot pass unnoticed.
--   wrk ... -s refresh.lua http://127.0.0.1:PORT -- tokens.txt <threads>
local headers
local queue, head, tail = {}, 1, 0

function init(args)
  local threads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if #line > 0 then
      if i % threads == tid - 1 then
        tail = tail + 1
        queue[tail] = line
      end
      i = i + 1
    end
  end
  headers = base_headers({ ["Content-Type"] = "application/json" })
end

function request()
  local token = "queue-empty"
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", "/auth/refresh", headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, _, body)
  if status == 200 then
    local t = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if t then
      tail = tail + 1
      queue[tail] = t
    end
  end
end
