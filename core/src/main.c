/* scimgate: a multi-tenant SCIM 2.0 provisioning gateway. */
#include "cli.h"

int main(int argc, char **argv)
{
    return sg_cli_main(argc, argv);
}
