#include <criterion/criterion.h>
#include <dlfcn.h>
#include <string.h>

#include "plugin.h"

static char err[512];

Test(plugin, loads_the_real_plugins)
{
    sg_plugin_reg reg;
    void *dl;
    cr_assert(sg_plugin_load(SG_PLUGIN_DIR "/sg_storage_sqlite.so", SG_PLUGIN_STORAGE, &reg, &dl,
                             err, sizeof err),
              "%s", err);
    cr_assert_str_eq(reg.name, "sqlite");
    dlclose(dl);
    cr_assert(sg_plugin_load(SG_PLUGIN_DIR "/sg_auth_bearer.so", SG_PLUGIN_AUTH, &reg, &dl, err,
                             sizeof err),
              "%s", err);
    cr_assert_str_eq(reg.name, "bearer");
    dlclose(dl);
}

Test(plugin, refuses_another_abi_major_naming_file_and_versions)
{
    sg_plugin_reg reg;
    void *dl;
    const char *path = SG_TEST_PLUGIN_DIR "/sg_auth_abi_mismatch.so";
    cr_assert_not(sg_plugin_load(path, SG_PLUGIN_AUTH, &reg, &dl, err, sizeof err));
    cr_assert(strstr(err, path), "%s", err);
    char want[64];
    snprintf(want, sizeof want, "ABI %d.0, this gateway has ABI %d.%d", SG_ABI_MAJOR + 1,
             SG_ABI_MAJOR, SG_ABI_MINOR);
    cr_assert(strstr(err, want), "%s", err);
}

Test(plugin, refuses_an_incomplete_vtable)
{
    sg_plugin_reg reg;
    void *dl;
    cr_assert_not(sg_plugin_load(SG_TEST_PLUGIN_DIR "/sg_auth_short_vtab.so", SG_PLUGIN_AUTH, &reg,
                                 &dl, err, sizeof err));
    cr_assert(strstr(err, "incomplete auth vtable"), "%s", err);
}

Test(plugin, refuses_the_wrong_kind_and_missing_files)
{
    sg_plugin_reg reg;
    void *dl;
    cr_assert_not(sg_plugin_load(SG_PLUGIN_DIR "/sg_auth_bearer.so", SG_PLUGIN_STORAGE, &reg, &dl,
                                 err, sizeof err));
    cr_assert(strstr(err, "is an auth plugin, expected a storage plugin"), "%s", err);
    cr_assert_not(
        sg_plugin_load("/nonexistent/sg_x.so", SG_PLUGIN_STORAGE, &reg, &dl, err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/sg_x.so"), "%s", err);
}
