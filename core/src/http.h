/*
** The HTTP server: CivetWeb set-up, one request handler for every path, the
** per-worker-thread state, body limits, trusted proxies and the access log.
*/
#ifndef SG_HTTP_H
#define SG_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "scim.h"

typedef struct sg_http sg_http;

/* Start listening. OUT: *out for sg_http_stop. */
bool sg_http_start(sg_server *srv, sg_http **out, char *err, size_t errlen);
/* Stop accepting, let in-flight requests finish, join every worker. */
void sg_http_stop(sg_http *h);

/* Is `addr` in the comma-separated list of addresses/CIDRs? (tests) */
bool sg_addr_in_list(const char *list, const char *addr);

#endif
