/* The hook runtime: sandbox, limits, refusals and reloads under load. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_host.h"

static char dir[64];

static void write_script(const char *name, const char *text)
{
    char path[256], tmp[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(rename(tmp, path), 0); /* whole files only, as an editor saves */
}

static void start(void)
{
    snprintf(dir, sizeof dir, "/tmp/sgluaXXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    write_script("mapping.lua", "return { inbound = function(r, ctx) return r end }\n");
    sg_lua_config cfg = {.dir = dir,
                         .spool_dir = "/tmp",
                         .instructions = 100000,
                         .memory = 4 * 1024 * 1024,
                         .json_depth = 64};
    char err[256];
    cr_assert(sg_scripts_start(&cfg, err, sizeof err), "%s", err);
}

static void stop(void)
{
    sg_scripts_stop();
}

TestSuite(lua_host, .init = start, .fini = stop);

static const sg_hook_ctx ctx = {.tenant = "t1",
                                .token_id = "tok",
                                .method = "POST",
                                .resource_type = "User",
                                .request_id = "r1",
                                .entra_mode = "default"};

/* Run mapping.inbound on {"userName": "a"} and return the result's title. */
static sg_status run(sg_lua *L, char *title, size_t n, sg_error *err)
{
    json_t *r = json_pack("{ss}", "userName", "a");
    sg_lua_request_start(L);
    sg_status s = sg_lua_map(L, SG_HOOK_INBOUND, &ctx, &r, err);
    const char *t = json_string_value(json_object_get(r, "title"));
    snprintf(title, n, "%s", t ? t : "");
    json_decref(r);
    return s;
}

Test(lua_host, sandbox_globals_are_allow_listed)
{
    write_script("mapping.lua",
                 "return { inbound = function(r, ctx)\n"
                 "  local found = {}\n"
                 "  for _, n in ipairs{'io','os','debug','load','loadfile','dofile','package',\n"
                 "                     'collectgarbage','loadstring','module','_G'} do\n"
                 "    if _ENV[n] ~= nil then found[#found + 1] = n end\n"
                 "  end\n"
                 "  if string.dump or getmetatable('') ~= false then found[#found+1] = 'dump' end\n"
                 "  for _, n in ipairs{'string','table','math','utf8','cjson','scimgate','pcall',\n"
                 "                     'require','print','setmetatable'} do\n"
                 "    if _ENV[n] == nil then found[#found + 1] = 'missing ' .. n end\n"
                 "  end\n"
                 "  r.title = table.concat(found, ',')\n"
                 "  return r end }\n");
    sg_scripts_reload();
    sg_lua *L = sg_lua_new();
    char title[256];
    sg_error err;
    cr_assert_eq(run(L, title, sizeof title, &err), SG_OK, "%s", err.detail);
    cr_assert_str_eq(title, "");
    sg_lua_free(L);
}

Test(lua_host, bytecode_is_refused)
{
    write_script("mapping.lua", "\x1bLua\x54\x00 not really bytecode");
    sg_scripts_reload();
    sg_buf b = {0};
    sg_scripts_status(&b);
    cr_assert(strstr(b.data, "attempt to load a binary chunk"), "%s", b.data);
    sg_buf_free(&b);
}

Test(lua_host, budget_and_memory_limits_hold_and_the_state_recovers)
{
    write_script("mapping.lua",
                 "local n = 0\n"
                 "return { inbound = function(r, ctx)\n"
                 "  n = n + 1\n"
                 "  if n == 1 then while true do end end\n"
                 "  if n == 2 then local s = 'x'; for i = 1, 40 do s = s .. s end end\n"
                 "  r.title = 'call ' .. n\n"
                 "  return r end }\n");
    sg_scripts_reload();
    sg_lua *L = sg_lua_new();
    char title[64];
    sg_error err;
    cr_assert_eq(run(L, title, sizeof title, &err), SG_ESCRIPT);
    cr_assert(strstr(err.detail, "mapping.inbound"), "%s", err.detail);
    cr_assert_eq(run(L, title, sizeof title, &err), SG_ESCRIPT, "memory cap");
    cr_assert_eq(run(L, title, sizeof title, &err), SG_OK, "%s", err.detail);
    cr_assert_str_eq(title, "call 3");
    sg_lua_free(L);
}

Test(lua_host, refusal_and_bad_results)
{
    write_script("mapping.lua",
                 "return { inbound = function(r, ctx)\n"
                 "  return nil, {status = 409, scimType = 'uniqueness', detail = 'taken'} end }\n");
    sg_scripts_reload();
    sg_lua *L = sg_lua_new();
    char title[64];
    sg_error err;
    cr_assert_eq(run(L, title, sizeof title, &err), SG_ECONFLICT);
    cr_assert_str_eq(err.detail, "taken");
    cr_assert_str_eq(err.scim_type, "uniqueness");
    write_script("mapping.lua", "return { inbound = function(r, ctx) return 42 end }\n");
    sg_scripts_reload();
    cr_assert_eq(run(L, title, sizeof title, &err), SG_ESCRIPT);
    sg_lua_free(L);
}

Test(lua_host, broken_script_keeps_the_old_version)
{
    write_script("mapping.lua", "return { inbound = function(r) r.title = 'v1'; return r end }\n");
    sg_scripts_reload();
    sg_lua *L = sg_lua_new();
    char title[64];
    sg_error err;
    cr_assert_eq(run(L, title, sizeof title, &err), SG_OK);
    cr_assert_str_eq(title, "v1");
    write_script("mapping.lua", "return { inbound = function(r) r.title = 'v2' return r }\n");
    sg_scripts_reload();
    cr_assert_eq(run(L, title, sizeof title, &err), SG_OK);
    cr_assert_str_eq(title, "v1");
    sg_buf b = {0};
    sg_scripts_status(&b);
    cr_assert(strstr(b.data, "mapping.lua:1:"), "%s", b.data);
    cr_assert(sg_scripts_ready());
    sg_buf_free(&b);
    sg_lua_free(L);
}

/* Each version defines two values that must agree; a request that saw half
 * of a version, or went back to an older one, would show it. */
typedef struct worker_arg {
    volatile int *stop;
    int calls, errors, last;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    sg_lua *L = sg_lua_new();
    while (!*a->stop) {
        char title[64];
        sg_error err;
        if (run(L, title, sizeof title, &err) != SG_OK) {
            a->errors++;
            continue;
        }
        int x, y;
        if (sscanf(title, "%d-%d", &x, &y) != 2 || x != y || x < a->last) a->errors++;
        a->last = x;
        a->calls++;
    }
    sg_lua_free(L);
    return NULL;
}

Test(lua_host, reload_under_concurrent_calls_never_mixes_versions)
{
    write_script("mapping.lua", "return { inbound = function(r) r.title = '0-0'; return r end }\n");
    sg_scripts_reload();
    volatile int stop = 0;
    worker_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){&stop, 0, 0, 0};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    for (int v = 1; v <= 30; v++) {
        char text[256];
        snprintf(text, sizeof text,
                 "local A, B = %d, %d\n"
                 "return { inbound = function(r) r.title = A .. '-' .. B; return r end }\n",
                 v, v);
        write_script("mapping.lua", text);
        sg_scripts_reload();
        usleep(5000);
    }
    stop = 1;
    int calls = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].errors, 0, "thread %d saw a mixed or older version", i);
        calls += args[i].calls;
    }
    cr_assert_gt(calls, 30);
}
