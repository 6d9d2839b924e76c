-- A strict reader of the Prometheus text exposition format 0.0.4, for the
-- integration tests (loaded with dofile; not a test file itself).
--
--   local prom = dofile(runner.dir .. "/lib/prometheus.lua")
--   local m = prom.parse(text)       -- raises on any malformed line
--   prom.value(m, "name", {label = "value"})   -- the sample, or nil
--   m.types[family], m.help[family], m.samples (in order)
--
-- Checked: every line is "# HELP", "# TYPE" or a sample; each family has
-- one HELP and one TYPE, before its samples, and its samples are together;
-- names and label names are valid; label values are quoted with only the
-- \\ \" \n escapes; no sample repeats; values are numbers. For histograms:
-- buckets are cumulative in le order, end with le="+Inf", and _count equals
-- the +Inf bucket.

local P = {}

local METRIC = "^[%a_:][%w_:]*$"
local LABEL = "^[%a_][%w_]*$"
local TYPES = {counter = true, gauge = true, histogram = true, summary = true, untyped = true}

local function number(s)
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  return tonumber(s)
end

-- {a="x",b="y"} -> table, or raises
local function parse_labels(s, lineno)
  local labels, i = {}, 2
  local function fail(why) error(("line %d: %s in %s"):format(lineno, why, s), 0) end
  while i < #s do
    local name, after = s:match("^([%a_][%w_]*)=\"()", i)
    if not name then fail("bad label name") end
    if labels[name] then fail("label " .. name .. " twice") end
    local value, j = {}, after
    while true do
      local c = s:sub(j, j)
      if c == "" then fail("unterminated label value") end
      if c == '"' then break end
      if c == "\\" then
        local e = s:sub(j + 1, j + 1)
        if e == "n" then value[#value + 1] = "\n"
        elseif e == "\\" or e == '"' then value[#value + 1] = e
        else fail("bad escape \\" .. e) end
        j = j + 2
      elseif c == "\n" then
        fail("raw newline in a label value")
      else
        value[#value + 1] = c
        j = j + 1
      end
    end
    labels[name] = table.concat(value)
    i = j + 1
    local sep = s:sub(i, i)
    if sep == "," then i = i + 1 elseif sep ~= "}" then fail("expected , or }") end
  end
  return labels
end

local function key(name, labels)
  local names = {}
  for k in pairs(labels or {}) do names[#names + 1] = k end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. labels[k] end
  return name .. "{" .. table.concat(parts, ",") .. "}"
end
P.key = key

-- The family a sample name belongs to, given the declared types.
local function family_of(name, types)
  if types[name] then return name end
  for _, suffix in ipairs{"_bucket", "_sum", "_count"} do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and (types[base] == "histogram" or types[base] == "summary") then
      return base
    end
  end
end

local function check_histograms(m)
  local series = {} -- family + labels without le -> {buckets, count}
  for _, s in ipairs(m.samples) do
    local fam = s.family
    if m.types[fam] == "histogram" then
      local labels = {}
      for k, v in pairs(s.labels) do if k ~= "le" then labels[k] = v end end
      local id = key(fam, labels)
      local h = series[id] or {buckets = {}, id = id}
      series[id] = h
      if s.name == fam .. "_bucket" then
        local le = number(s.labels.le or "")
        assert(le, id .. ": a bucket without a numeric le")
        h.buckets[#h.buckets + 1] = {le = le, v = s.value}
      elseif s.name == fam .. "_count" then
        h.count = s.value
      elseif s.name == fam .. "_sum" then
        h.sum = s.value
      end
    end
  end
  for id, h in pairs(series) do
    assert(#h.buckets > 0 and h.count and h.sum, id .. ": incomplete histogram")
    for i = 2, #h.buckets do
      assert(h.buckets[i].le > h.buckets[i - 1].le, id .. ": le not ascending")
      assert(h.buckets[i].v >= h.buckets[i - 1].v, id .. ": buckets not cumulative")
    end
    assert(h.buckets[#h.buckets].le == math.huge, id .. ': the last bucket is not le="+Inf"')
    assert(h.buckets[#h.buckets].v == h.count, id .. ": _count differs from the +Inf bucket")
  end
  m.histograms = series
end

function P.parse(text)
  local m = {types = {}, help = {}, samples = {}, by_key = {}}
  assert(text:sub(-1) == "\n", "the exposition does not end with a newline")
  local current, closed = nil, {}
  local lineno = 0
  for line in text:gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local function fail(why) error(("line %d: %s: %s"):format(lineno, why, line), 0) end
    if line:sub(1, 1) == "#" then
      local kind, name, rest = line:match("^# (%u+) (%S+) (.*)$")
      if kind == "HELP" then
        if not name:match(METRIC) then fail("bad metric name") end
        if m.help[name] then fail("second HELP") end
        if rest:gsub("\\[\\n]", ""):find("\\", 1, true) then fail("bad escape in HELP") end
        m.help[name] = rest
      elseif kind == "TYPE" then
        if not name:match(METRIC) then fail("bad metric name") end
        if m.types[name] then fail("second TYPE") end
        if not TYPES[rest] then fail("unknown type") end
        if closed[name] then fail("TYPE after the family's samples") end
        m.types[name] = rest
      else
        fail("a comment line that is neither HELP nor TYPE")
      end
    else
      local name, labels, value = line:match("^([%a_:][%w_:]*)(%b{}) (%S+)$")
      if not name then
        name, value = line:match("^([%a_:][%w_:]*) (%S+)$")
        labels = nil
      end
      if not name then fail("not a sample") end
      local v = number(value)
      if not v then fail("value is not a number") end
      local l = labels and parse_labels(labels, lineno) or {}
      for k in pairs(l) do if not k:match(LABEL) then fail("bad label name") end end
      local fam = family_of(name, m.types)
      if not fam then fail("a sample before its family's TYPE") end
      if not m.help[fam] then fail("a family without HELP") end
      if current ~= fam then
        if closed[fam] then fail("the family's samples are not together") end
        if current then closed[current] = true end
        current = fam
      end
      local k = key(name, l)
      if m.by_key[k] then fail("a repeated sample") end
      local s = {name = name, family = fam, labels = l, value = v}
      m.samples[#m.samples + 1] = s
      m.by_key[k] = s
    end
  end
  check_histograms(m)
  return m
end

function P.value(m, name, labels)
  local s = m.by_key[key(name, labels)]
  return s and s.value
end

-- The sum of every sample of `name` whose labels include `match`.
function P.sum(m, name, match)
  local total = 0
  for _, s in ipairs(m.samples) do
    if s.name == name then
      local ok = true
      for k, v in pairs(match or {}) do if s.labels[k] ~= v then ok = false end end
      if ok then total = total + s.value end
    end
  end
  return total
end

return P
