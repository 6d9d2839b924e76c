/*
** The admin API, /admin/v1 (JSON, on admin_listen). Its principals are
** checked by the core (DESIGN §2): an operator (every tenant) or a tenant
** admin, by an admin token "sga_<id>.<secret>" hashed like SCIM tokens.
**
**   GET  /admin/v1/scripts          the hook scripts: version, last error   (operator)
**   POST /admin/v1/scripts/reload   look for changed scripts now            (operator)
*/
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include "scim.h"

void sg_admin_handle(sg_worker *w, sg_request *req, sg_response *res);

#endif
