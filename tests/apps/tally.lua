-- wrk script: tally every response by status and by the release it names (X-Release-Id), per thread,
-- and print one JSON line at the end. Also counts answers from an older release after a newer one was seen.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  releases = {}
  statuses = {}
  order = {}      -- releases in the order this thread first saw them
  last = "-"
  flips = 0
end

function response(status, headers, body)
  local release = headers["X-Release-Id"] or headers["x-release-id"] or "-"
  if releases[release] == nil then
    releases[release] = 0
    table.insert(order, release)
  end
  releases[release] = releases[release] + 1
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if release ~= last then flips = flips + 1 end
  last = release
end

local function encode(map)
  local parts = {}
  for key, value in pairs(map) do table.insert(parts, string.format('"%s": %d', key, value)) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local releases_all, statuses_all, lasts, flips_all = {}, {}, {}, 0
  for _, thread in ipairs(threads) do
    for key, value in pairs(thread:get("releases")) do releases_all[key] = (releases_all[key] or 0) + value end
    for key, value in pairs(thread:get("statuses")) do statuses_all[key] = (statuses_all[key] or 0) + value end
    table.insert(lasts, '"' .. thread:get("last") .. '"')
    flips_all = flips_all + thread:get("flips")
  end
  local e = summary.errors
  io.write(string.format(
    'TALLY {"requests": %d, "seconds": %.3f, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"releases": %s, "statuses": %s, "last": [%s], "flips": %d}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    encode(releases_all), encode(statuses_all), table.concat(lasts, ", "), flips_all))
end
