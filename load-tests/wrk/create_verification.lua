-- wrk script: POST /v1/verifications, each request with a key picked at random from the file
-- named by $NAMASKAH_KEYS_FILE (one API key with the write scope per line), so that many
-- accounts order at once as they do in production (one account's orders serialise on its
-- balance row). Used for the measurements in docs/benchmarks.md:
--   scripts/bench-api runs it; by hand: NAMASKAH_KEYS_FILE=keys.txt wrk -t2 -c64 -d20s --latency \
--       -s load-tests/wrk/create_verification.lua http://127.0.0.1:8080
local path = os.getenv("NAMASKAH_KEYS_FILE") or error("set NAMASKAH_KEYS_FILE to a file of API keys")
local keys = {}
for line in io.lines(path) do
    if #line > 0 then keys[#keys + 1] = "Bearer " .. line end
end
if #keys == 0 then error(path .. " holds no keys") end

local body = '{"service":"telegram","country":"us"}'
local headers = { ["Content-Type"] = "application/json" }

function request()
    headers["Authorization"] = keys[math.random(#keys)]
    return wrk.format("POST", "/v1/verifications", headers, body)
end

-- wrk prints "Non-2xx or 3xx responses: N" when any request failed; a valid run has none.
