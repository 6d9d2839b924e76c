-- The admin portal's server side (issue 8): its files under /admin/ with
-- strict headers and no way out of the directory; sign-in with a password
-- to a session cookie (HttpOnly, SameSite=Strict, Secure behind HTTPS); the
-- CSRF token every change must carry; a tenant admin kept to its tenant;
-- sign-out, idle timeout and the sign-in rate limit.

local gw = gateway.start{config = {trusted_proxies = "127.0.0.1"}}
local ADMIN = gw.base .. "/admin/v1"

local function create_admin(g, tenant, login)
  local r = tenant and g:run("admin", "create", tenant, login)
            or g:run("admin", "create", "--operator", login)
  expect.eq(r.status, 0, r.stderr)
  return json.decode(r.stdout:match("([^\n]+)\n?$"))
end

local function sign_in(g, login, password, tenant, headers)
  local h = {["Content-Type"] = "application/json"}
  for k, v in pairs(headers or {}) do h[k] = v end
  return http.request{method = "POST", url = g.base .. "/admin/v1/session", headers = h,
                      body = json.encode{login = login, password = password, tenant = tenant},
                      raw = true}
end

-- The cookie's name=value from a sign-in answer.
local function cookie_of(r)
  local sc = r.headers["set-cookie"] or ""
  return sc:match("^(scimgate_session=[^;]+)")
end

local function call(method, url, cookie, csrf, body)
  local h = {Cookie = cookie}
  if csrf then h["X-CSRF-Token"] = csrf end
  if body then h["Content-Type"] = "application/json" end
  return http.request{method = method, url = url, headers = h, body = body and json.encode(body),
                      raw = true}
end

local alice, other, bob, cookie, csrf

test("setup: a tenant admin, another tenant with its admin and a user", function()
  alice = create_admin(gw, gw.tenant, "alice")
  local r = gw:run("tenant", "create", "other")
  expect.eq(r.status, 0, r.stderr)
  other = r.stdout:match("/scim/v2/(%x+)%s*$")
  expect.truthy(other, r.stdout)
  bob = create_admin(gw, other, "bob")
  r = gw:run("token", "generate", other)
  expect.eq(r.status, 0, r.stderr)
  local tok = r.stdout:match("(sgt_%S+)%s*$")
  expect.status(http.post(gw.base .. "/scim/v2/" .. other .. "/Users", {userName = "x@other.example"},
                          {Authorization = "Bearer " .. tok}), 201)
end)

test("the portal's files: types, cache headers and a strict policy", function()
  local r = http.get(gw.base .. "/admin/")
  expect.status(r, 200)
  expect.header(r, "content-type", "^text/html; charset=utf%-8$")
  expect.match(r.body, "<!doctype html>")
  expect.header(r, "content-security-policy", "default%-src 'none'")
  expect.header(r, "content-security-policy", "script%-src 'self'")
  expect.header(r, "content-security-policy", "frame%-ancestors 'none'")
  expect.header(r, "x-frame-options", "^DENY$")
  expect.header(r, "x-content-type-options", "^nosniff$")
  expect.header(r, "cache-control", "^no%-cache$")
  local etag = r.headers.etag
  expect.truthy(etag, "an ETag")
  expect.status(http.get(gw.base .. "/admin", {["If-None-Match"] = etag}), 304)
  expect.header(http.get(gw.base .. "/admin/app.js"), "content-type", "^text/javascript")
  expect.header(http.get(gw.base .. "/admin/style.css"), "content-type", "^text/css")
  local head = http.request{method = "HEAD", url = gw.base .. "/admin/index.html"}
  expect.status(head, 200)
  expect.eq(head.body, "", "HEAD has no body")
  -- The API answers carry the same headers.
  expect.header(http.get(ADMIN .. "/session"), "x-frame-options", "^DENY$")
end)

test("no path leaves the portal directory", function()
  for _, p in ipairs{"/admin/../README.md", "/admin/%2e%2e/README.md", "/admin/..%2fREADME.md",
                     "/admin/x/app.js", "/admin/.app.js", "/admin/app.js.bak", "/admin/APP.JS",
                     "/admin/%2fetc%2fpasswd", "/admin/nothing.js", "/admin/portal.lua"} do
    local r = http.get(gw.base .. p)
    expect.truthy(r.status == 404, p .. " answered " .. r.status)
    expect.eq(r.body:find("scimgate: a multi", 1, true), nil, p)
  end
  expect.status(http.post(gw.base .. "/admin/index.html", "x"), 405)
end)

test("sign-in: a JSON body, a wrong password is a 401, the right one a session", function()
  local r = http.request{method = "POST", url = ADMIN .. "/session",
                         headers = {["Content-Type"] = "application/x-www-form-urlencoded"},
                         body = "login=alice&password=" .. alice.password, raw = true}
  expect.status(r, 415, "a cross-site form cannot sign anyone in")
  expect.status(sign_in(gw, "alice", "wrong", gw.tenant), 401)
  expect.status(sign_in(gw, "alice", alice.password, other), 401, "alice is not other's admin")
  expect.status(sign_in(gw, "alice", alice.password, nil), 401, "nor an operator")
  expect.status(sign_in(gw, "nobody", alice.password, gw.tenant), 401)
  r = sign_in(gw, "alice", alice.password, "test") -- the tenant's name works too
  expect.status(r, 201)
  local sc = r.headers["set-cookie"]
  expect.match(sc, "^scimgate_session=%x+%.[%w_%-]+;")
  expect.match(sc, "; HttpOnly")
  expect.match(sc, "; SameSite=Strict")
  expect.match(sc, "; Path=/admin;")
  expect.eq(sc:find("Secure", 1, true), nil, "no Secure over plain HTTP")
  expect.eq(r.json.login, "alice")
  expect.eq(r.json.tenant, gw.tenant)
  expect.eq(r.json.tenantName, "test")
  expect.eq(r.json.tenantUrl, gw.url)
  expect.eq(r.json.operator, false)
  expect.match(r.json.csrfToken, "^[%w_%-]+$")
  cookie, csrf = cookie_of(r), r.json.csrfToken
  local log = gw:logtail(200)
  expect.eq(log:find(alice.password, 1, true), nil, "a password in the log")
  expect.match(log, "failed sign%-in of \\\"alice\\\"")
  -- The session describes itself, and nothing in it is the password.
  local s = call("GET", ADMIN .. "/session", cookie)
  expect.status(s, 200)
  expect.eq(s.json.csrfToken, csrf)
  expect.eq(s.body:find(alice.password, 1, true), nil)
end)

test("behind a TLS proxy the cookie is Secure", function()
  local r = sign_in(gw, "alice", alice.password, gw.tenant, {["X-Forwarded-Proto"] = "https"})
  expect.status(r, 201)
  expect.match(r.headers["set-cookie"], "; Secure")
end)

test("the session acts as alice: reads freely, changes only with the CSRF token", function()
  expect.status(call("GET", ADMIN .. "/" .. gw.tenant .. "/users", cookie), 200)
  expect.status(call("POST", ADMIN .. "/" .. gw.tenant .. "/tokens", cookie, nil, {}), 403)
  expect.status(call("POST", ADMIN .. "/" .. gw.tenant .. "/tokens", cookie, csrf .. "x", {}), 403)
  expect.status(call("POST", ADMIN .. "/" .. gw.tenant .. "/tokens", cookie, "", {}), 403)
  local r = call("PATCH", ADMIN .. "/" .. gw.tenant .. "/settings", cookie, nil, {auto_invite = "true"})
  expect.status(r, 403)
  expect.match(r.json.detail, "X%-CSRF%-Token")
  expect.eq(call("GET", ADMIN .. "/" .. gw.tenant .. "/settings", cookie).json.settings.auto_invite,
            nil, "the refused PATCH changed nothing")
  r = call("POST", ADMIN .. "/" .. gw.tenant .. "/tokens", cookie, csrf, {expiresOldIn = "1h"})
  expect.status(r, 201)
  expect.match(r.json.token, "^sgt_")
  expect.status(http.get(gw.url .. "/Users", {Authorization = "Bearer " .. r.json.token}), 200)
  -- The audit trail names alice.
  local ev = call("GET", ADMIN .. "/" .. gw.tenant .. "/changes?limit=1000", cookie)
  expect.status(ev, 200)
  -- A bearer token needs no CSRF token: it is no ambient credential.
  expect.status(http.request{method = "PATCH", url = ADMIN .. "/" .. gw.tenant .. "/settings",
                             headers = {Authorization = "Bearer " .. alice.token},
                             body = json.encode{auto_invite = "false"}, raw = true}, 200)
end)

test("a tenant admin's session cannot reach another tenant's users or tokens", function()
  local base = ADMIN .. "/" .. other
  expect.status(call("GET", base .. "/users", cookie), 403)
  expect.status(call("GET", base .. "/tokens", cookie), 403)
  expect.status(call("POST", base .. "/tokens", cookie, csrf, {}), 403)
  expect.status(call("GET", base .. "/timeline", cookie), 403)
  expect.status(call("GET", ADMIN .. "/scripts", cookie), 403)
  local t = call("GET", ADMIN .. "/tenants", cookie)
  expect.status(t, 200)
  expect.eq(#t.json.tenants, 1)
  expect.eq(t.json.tenants[1].id, gw.tenant)
  -- bob sees other's user, and not alice's tenant.
  local rb = sign_in(gw, "bob", bob.password, other)
  expect.status(rb, 201)
  local bc = cookie_of(rb)
  local u = call("GET", base .. "/users", bc)
  expect.status(u, 200)
  expect.eq(u.json.users[1].userName, "x@other.example")
  expect.status(call("GET", ADMIN .. "/" .. gw.tenant .. "/users", bc), 403)
  -- A session's cookie is no SCIM credential either.
  expect.status(call("GET", gw.url .. "/Users", cookie), 401)
end)

test("an operator signs in without a tenant and reaches every tenant", function()
  local op = create_admin(gw, nil, "root")
  local r = sign_in(gw, "root", op.password, nil)
  expect.status(r, 201)
  expect.eq(r.json.operator, true)
  expect.eq(r.json.tenant, json.null)
  local oc = cookie_of(r)
  expect.status(call("GET", ADMIN .. "/" .. other .. "/users", oc), 200)
  expect.status(call("GET", ADMIN .. "/scripts", oc), 200)
  expect.truthy(#call("GET", ADMIN .. "/tenants", oc).json.tenants >= 2, "every tenant")
end)

test("sign-out ends the session at once; the cookie is cleared", function()
  expect.status(call("DELETE", ADMIN .. "/session", cookie), 403, "sign-out needs the CSRF token too")
  local r = call("DELETE", ADMIN .. "/session", cookie, csrf)
  expect.status(r, 204)
  expect.match(r.headers["set-cookie"], "^scimgate_session=; .*Max%-Age=0")
  expect.status(call("GET", ADMIN .. "/" .. gw.tenant .. "/users", cookie), 401)
  expect.status(call("GET", ADMIN .. "/session", cookie), 401)
  expect.status(call("POST", ADMIN .. "/" .. gw.tenant .. "/tokens", cookie, csrf, {}), 401)
  -- A forged cookie of the right shape is refused too.
  expect.status(call("GET", ADMIN .. "/session",
                     "scimgate_session=0123456789abcdef." .. string.rep("A", 43)), 401)
  -- The audit trail has alice's sign-ins and her sign-out.
  local ev = http.get(ADMIN .. "/" .. gw.tenant .. "/events?type=admin.signed_in,admin.signed_out",
                      {Authorization = "Bearer " .. alice.token})
  expect.status(ev, 200)
  local types = {}
  for _, e in ipairs(ev.json.events) do
    types[#types + 1] = e.type
    expect.eq(e.actor, "admin:alice")
  end
  expect.eq(types, {"admin.signed_in", "admin.signed_in", "admin.signed_out"})
  -- The store keeps no secret of the cookie, only its HMAC.
  local f = assert(io.open(gw.data .. "/scimgate.db", "rb"))
  local db = f:read("a")
  f:close()
  expect.eq(db:find(cookie:match("%.(.+)$"), 1, true), nil, "the session secret in the store")
end)

test("an idle session ends", function()
  local g = gateway.start{config = {["portal.session_idle"] = "5s"}}
  local a = create_admin(g, g.tenant, "idle")
  local r = sign_in(g, "idle", a.password, g.tenant)
  expect.status(r, 201)
  local c = cookie_of(r)
  expect.status(call("GET", g.base .. "/admin/v1/" .. g.tenant .. "/users", c), 200)
  sleep(6)
  expect.status(call("GET", g.base .. "/admin/v1/" .. g.tenant .. "/users", c), 401)
end)

test("sign-in rate limit: per login, then per address, 429 with Retry-After", function()
  local g = gateway.start{config = {["portal.login_attempts"] = "2",
                                    ["portal.address_attempts"] = "4"}}
  local a = create_admin(g, g.tenant, "carol")
  expect.status(sign_in(g, "carol", "bad-1", g.tenant), 401)
  expect.status(sign_in(g, "carol", "bad-2", g.tenant), 401)
  local r = sign_in(g, "carol", a.password, g.tenant)
  expect.status(r, 429, "even the right password waits")
  expect.truthy(tonumber(r.headers["retry-after"]) >= 1, "Retry-After: " .. tostring(r.headers["retry-after"]))
  -- Other logins from the same address: two more failures reach its limit.
  expect.status(sign_in(g, "dave", "bad", g.tenant), 401)
  expect.status(sign_in(g, "erin", "bad", g.tenant), 401)
  r = sign_in(g, "frank", "bad", g.tenant)
  expect.status(r, 429, "the address waits too")
  expect.truthy(tonumber(r.headers["retry-after"]) >= 1)
  expect.match(g:logtail(100), "too many failures")
end)
