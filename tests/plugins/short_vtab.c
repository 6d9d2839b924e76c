/*
** A test-only auth plugin with the right ABI major but a vtable missing its
** authenticate method, to check the loader's completeness check.
*/
#include "scimgate/plugin.h"

static sg_status open_fn(const sg_host *host, const sg_kv *opts, size_t nopts, sg_auth **out,
                         sg_error *err)
{
    (void)host, (void)opts, (void)nopts, (void)err;
    *out = NULL;
    return SG_OK;
}

static void close_fn(sg_auth *a)
{
    (void)a;
}

static const sg_auth_vtab vtab = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_auth_vtab),
    .name = "short_vtab",
    .open = open_fn,
    .close = close_fn,
    .authenticate = NULL,
};

SG_PLUGIN_EXPORT sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out)
{
    (void)host;
    out->abi_major = SG_ABI_MAJOR;
    out->abi_minor = SG_ABI_MINOR;
    out->size = sizeof *out;
    out->kind = SG_PLUGIN_AUTH;
    out->name = "short_vtab";
    out->vtab = &vtab;
    return SG_OK;
}
