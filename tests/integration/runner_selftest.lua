-- Tests of the test runner itself (`scimgate test`); none needs a gateway.
-- Run: scimgate test tests/integration/runner_selftest.lua

-- A port on which nothing listens: bind a socket is not possible from Lua,
-- so use port 1 (tcpmux, privileged, never served on a test machine).
local DEAD_URL = "http://127.0.0.1:1/healthz"

test("expect.eq compares tables deeply", function()
  expect.eq({ a = 1, b = { c = "x", d = { 1, 2, 3 } } },
            { b = { d = { 1, 2, 3 }, c = "x" }, a = 1 })
  expect.eq(json.null, cjson.null)
  expect.eq(1, 1.0) -- same number
  expect.ne({ a = 1 }, { a = 1, b = 2 })
  expect.ne({ a = 1, b = 2 }, { a = 1 })
  expect.ne({ 1, 2 }, { 2, 1 })
  expect.ne(json.null, nil)
end)

test("expect.eq tells arrays from objects", function()
  local v = json.decode('{"arr":[],"obj":{}}')
  expect.ne(v.arr, v.obj, "[] and {} differ")
  expect.eq(v.arr, json.array(), "[] equals an empty marked table")
  expect.eq(v.obj, {}, "{} equals an empty plain table")
  -- a plain Lua sequence is an array, as sg_lua_to_json would encode it
  expect.eq(json.decode("[1,2]"), { 1, 2 })
end)

test("expect.eq reports the path and both values", function()
  local msg = expect.error(function()
    expect.eq({ a = { 1, { b = "x" } } }, { a = { 1, { b = "y" } } }, "my message")
  end)
  expect.match(msg, "my message", "user message kept")
  expect.match(msg, "%$%.a%[2%]%.b", "path of the difference")
  expect.match(msg, '"x" vs "y"', "both values")
  expect.match(msg, '{"a":%[1,{"b":"x"}%]}', "whole value as JSON")
  expect.match(msg, "runner_selftest.lua:%d+:", "position of the caller")
  msg = expect.error(function() expect.eq(json.array(), {}) end)
  expect.match(msg, "%[%] vs {}")
end)

test("json round trip keeps arrays, objects and null", function()
  local text = '{"a":[],"b":{},"c":null,"d":[1,{"e":[]}]}'
  local v = json.decode(text)
  expect.array(v.a)
  expect.object(v.b)
  expect.eq(v.c, cjson.null)
  expect.array(v.d)
  expect.array(v.d[2].e)
  expect.eq(#v.a, 0)
  local again = json.decode(json.encode(v))
  expect.eq(again, v)
  expect.eq(json.encode(v, { sort = true }), text)
  expect.eq(json.encode(json.decode("[]")), "[]")
  expect.eq(json.encode({}), "{}")
end)

test("expect.array accepts a decoded empty array only", function()
  local empty = json.decode("[]")
  expect.array(empty)
  expect.eq(getmetatable(empty), "scimgate.array")
  expect.error(function() expect.array({}) end, "expected a JSON array")
  expect.error(function() expect.object(empty) end, "expected a JSON object")
  expect.error(function() expect.array(json.decode("{}")) end, "got {}")
end)

test("json numbers keep integer and float apart", function()
  local v = json.decode('{"i":3,"f":3.0,"big":9007199254740993}')
  expect.eq(math.type(v.i), "integer")
  expect.eq(math.type(v.f), "float")
  expect.eq(v.big, 9007199254740993)
  expect.eq(json.encode(v, { sort = true }), '{"big":9007199254740993,"f":3.0,"i":3}')
end)

test("json.encode refuses what JSON cannot hold", function()
  expect.error(function() json.encode({ [1] = 1, [3] = 3 }) end, "not a sequence")
  expect.error(function() json.encode({ 1, x = 2 }) end, "mixes")
  expect.error(function() json.encode({ s = "\xff" }) end, "%$%.s: string is not valid UTF%-8")
  expect.error(function() json.encode({ n = 0 / 0 }) end, "not finite")
  expect.error(function() json.encode({ f = print }) end, "function")
  local t = {}
  t.self = t
  expect.error(function() json.encode(t) end, "deeper")
  expect.error(function() json.decode("{") end, "json.decode")
end)

test("expect.status shows the body", function()
  local resp = { status = 400, method = "POST", url = "http://x/Users",
                 body = '{"detail":"' .. string.rep("z", 600) .. '"}' }
  expect.status({ status = 200 }, 200)
  local msg = expect.error(function() expect.status(resp, 201) end)
  expect.match(msg, "POST http://x/Users: expected status 201, got 400; body: {\"detail\"")
  expect.truthy(#msg < 700, "body cut at 500 bytes")
end)

test("expect.header, match, truthy", function()
  local resp = { headers = { ["content-type"] = "application/scim+json" } }
  expect.eq(expect.header(resp, "Content-Type", "scim%+json"), "application/scim+json")
  expect.error(function() expect.header(resp, "ETag") end, "no header ETag")
  expect.error(function() expect.header(resp, "Content-Type", "^text/") end, "does not match")
  expect.match("hello world", "^hello")
  expect.error(function() expect.match("hello", "^bye") end, '"hello" does not match "%^bye"')
  expect.error(function() expect.match(nil, "x") end, "expected a string")
  expect.truthy(1)
  expect.error(function() expect.truthy(false, "must hold") end, "must hold: expected a truthy")
end)

test("http.request raises when nothing listens", function()
  local msg = expect.error(function()
    http.request { method = "GET", url = DEAD_URL, timeout = 5 }
  end)
  expect.match(msg, "http.request GET " .. DEAD_URL:gsub("%p", "%%%0") .. ": ")
  expect.match(msg:lower(), "connect")
  expect.error(function() http.get(DEAD_URL, nil, { timeout = 5 }) end, "http.request GET")
  expect.error(function() http.request { url = DEAD_URL, body = { bad = "\xff" } } end,
               "body: %$%.bad")
  expect.error(function() http.request { method = "GET" } end, "url is required")
  -- spaces and quotes in a URL are percent-encoded, not refused by curl
  msg = expect.error(function() http.get(DEAD_URL .. '?filter=userName eq "a"') end)
  expect.match(msg, '%?filter=userName%%20eq%%20%%22a%%22: ')
  expect.match(msg:lower(), "connect")
end)

test("tcp.connect raises when nothing listens or the address is not one", function()
  expect.error(function() tcp.connect(DEAD_URL, 2) end, "tcp.connect http://127.0.0.1:1/healthz: ")
  expect.error(function() tcp.connect(free_port(), 2) end, "refused")
  for _, bad in ipairs{"localhost:80", "http://[::1]:80/", "127.0.0.1:0", "127.0.0.1:99999", "x"} do
    expect.error(function() tcp.connect(bad) end, "is not PORT, HOST:PORT")
  end
end)

test("http.escape and free_port", function()
  expect.eq(http.escape('userName eq "a&b+c"'), "userName%20eq%20%22a%26b%2Bc%22")
  local port = free_port()
  expect.eq(math.type(port), "integer")
  expect.truthy(port > 0 and port < 65536)
end)

test("tmpdir makes a fresh writable directory", function()
  local a, b = tmpdir(), tmpdir()
  expect.truthy(a ~= b, "two calls, two directories")
  local f = assert(io.open(a .. "/probe.txt", "w"))
  f:write("x")
  f:close()
  local ok = os.rename(a .. "/probe.txt", a .. "/probe2.txt")
  expect.truthy(ok, "the file exists")
end)

test("runner globals", function()
  expect.match(runner.dir, "^/")
  expect.match(runner.file, "runner_selftest%.lua$")
  expect.eq(type(sleep), "function")
  local t0 = os.clock()
  sleep(0.01)
  expect.truthy(os.clock() - t0 < 1)
  expect.eq(require("cjson"), cjson)
  expect.eq(package.loaded.cjson, cjson)
  expect.eq(cjson.null, json.null)
end)
