-- pipeline.lua: wrk sends PIPELINE requests (default 16) in one write per
-- connection and waits for all their answers before the next batch.
--   wrk -s pipeline.lua ... -- 16
local depth = 16
init = function(args)
  if args[1] then depth = tonumber(args[1]) end
  local r = {}
  for i = 1, depth do r[i] = wrk.format() end
  req = table.concat(r)
end
request = function()
  return req
end
