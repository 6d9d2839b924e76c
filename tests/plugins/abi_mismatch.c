/*
** A test-only plugin that claims the next ABI major version, to check that
** the loader refuses it with a message naming the file and both versions.
** Built only for the unit tests; never installed.
*/
#include "scimgate/plugin.h"

static const sg_auth_vtab vtab = {
    .abi_major = SG_ABI_MAJOR + 1,
    .abi_minor = 0,
    .size = sizeof(sg_auth_vtab),
    .name = "abi_mismatch",
};

SG_PLUGIN_EXPORT sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out)
{
    (void)host;
    out->abi_major = SG_ABI_MAJOR + 1;
    out->abi_minor = 0;
    out->size = sizeof *out;
    out->kind = SG_PLUGIN_AUTH;
    out->name = "abi_mismatch";
    out->vtab = &vtab;
    return SG_OK;
}
