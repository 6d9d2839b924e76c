-- HTTPS through the example TLS proxy (examples/tls-proxy/nginx.conf), as
-- Entra reaches the gateway in production: a throw-away certificate, nginx on
-- a free port, scimgate on loopback trusting it.

-- nginx reaches the gateway from 127.0.0.2 (proxy_bind) so that the proxy's
-- address and the client's (127.0.0.1) differ.
local gw = gateway.start{config = {trusted_proxies = "127.0.0.2"}}
local dir = tmpdir()
local nginx_pid
local https_port = free_port()
local base = "https://127.0.0.1:" .. https_port

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  assert(ok, cmd .. " failed: " .. tostring(how) .. " " .. tostring(code))
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function replace(text, from, to)
  local i, j = text:find(from, 1, true)
  assert(i, "example config no longer contains: " .. from)
  return text:sub(1, i - 1) .. to .. text:sub(j + 1)
end

test("nginx starts with the example configuration", function()
  sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " .. dir
     .. "/key.pem -out " .. dir .. "/cert.pem 2>/dev/null")
  local conf = read(runner.dir .. "/../../examples/tls-proxy/nginx.conf")
  conf = replace(conf, "pid /run/scimgate-nginx.pid;", "pid " .. dir .. "/nginx.pid;")
  conf = replace(conf, "/var/log/nginx/scimgate-error.log", dir .. "/error.log")
  conf = replace(conf, "/var/log/nginx/scimgate-access.log", dir .. "/access.log")
  conf = replace(conf, "server 127.0.0.1:8080;", "server 127.0.0.1:" .. gw.port .. ";")
  conf = replace(conf, "listen 443 ssl;", "listen 127.0.0.1:" .. https_port .. " ssl;")
  conf = replace(conf, "/etc/ssl/certs/scim.example.com.pem", dir .. "/cert.pem")
  conf = replace(conf, "/etc/ssl/private/scim.example.com.key", dir .. "/key.pem")
  local temps = ""
  for _, t in ipairs{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} do
    temps = temps .. "    " .. t .. "_temp_path " .. dir .. "/" .. t .. ";\n"
  end
  conf = replace(conf, "http {\n", "http {\n" .. temps)
  conf = replace(conf, "proxy_pass http://scimgate;",
                 "proxy_pass http://scimgate;\n            proxy_bind 127.0.0.2;")
  local user = io.popen("id -u"):read("l") == "0" and "user root;\n" or ""
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(user .. conf)
  f:close()
  sh("nginx -p " .. dir .. " -c " .. dir .. "/nginx.conf -e " .. dir .. "/error.log")
  for _ = 1, 50 do
    local ok, r = pcall(http.get, base .. "/healthz", nil, {insecure = true})
    if ok and r.status == 200 then return end
    sleep(0.1)
  end
  error("nginx did not answer: " .. read(dir .. "/error.log"))
end)

local url = base .. "/scim/v2/" .. gw.tenant

test("Test connection over HTTPS", function()
  local r = http.request{method = "GET", insecure = true, headers = gw:auth(),
                         url = url .. "/Users?filter=userName+eq+%22" .. "abc" .. "%22"}
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 0)
  expect.header(r, "content-type", "^application/scim%+json")
end)

test("errors stay SCIM JSON through the proxy", function()
  local r = http.request{method = "GET", insecure = true, url = url .. "/Users"}
  expect.status(r, 401)
  expect.eq(r.json.status, "401")
end)

test("Location and meta.location name the HTTPS address the client used", function()
  local r = http.request{method = "POST", insecure = true, url = url .. "/Users",
                         headers = gw:auth(), body = {userName = "tls@contoso.com"}}
  expect.status(r, 201)
  expect.eq(r.headers.location, url .. "/Users/" .. r.json.id)
  expect.eq(r.json.meta.location, url .. "/Users/" .. r.json.id)
end)

test("the client address behind the proxy is what the gateway logs", function()
  local text = read(gw.log)
  expect.match(text, '"peer":"127%.0%.0%.1"')
  expect.eq(text:find('"peer":"127.0.0.2"', 1, true), nil, "the proxy's own address is not the peer")
end)

test("forwarded headers from an untrusted peer are ignored", function()
  local plain = gateway.start{}
  local r = http.post(plain.url .. "/Users", {userName = "spoof@contoso.com"}, {
    Authorization = "Bearer " .. plain.token, ["X-Forwarded-Proto"] = "https",
    ["X-Forwarded-Host"] = "evil.example", ["X-Forwarded-For"] = "203.0.113.9"})
  expect.status(r, 201)
  expect.eq(r.headers.location, plain.url .. "/Users/" .. r.json.id)
  expect.eq(read(plain.log):find("203.0.113.9", 1, true), nil)
  plain:stop()
end)

test("nginx stops", function()
  sh("kill $(cat " .. dir .. "/nginx.pid)")
end)
