-- GET the URL's path with "Authorization: Bearer <token>", cycling through
-- the access tokens in a file (one a line), so requests spread over many
-- sessions as real traffic does.
--   wrk ... -s bearer.lua http://127.0.0.1:PORT/api/items?page=1 -- tokens.txt
local reqs = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", nil, base_headers({ ["Authorization"] = "Bearer " .. line }))
    end
  end
  assert(#reqs > 0, "no tokens in " .. args[1])
  i = (tid * 7) % #reqs -- threads start at different sessions
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
