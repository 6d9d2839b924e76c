/*
** Delivery functions of the `scimgate` Lua module: smtp, webhook, spool
** (DESIGN §4, §5). invite.on_invite uses them to hand an approved invitation
** to a mail server, an HTTP endpoint or a spool directory.
**
** Lua API. Each function takes one table of options. On success smtp and
** spool return true and webhook returns `status, body` for any HTTP response.
** A delivery failure (connection refused, timeout, TLS error, an SMTP error
** reply, an I/O error) and a value that cannot be sent safely (CR or LF in a
** header value or address, a malformed address, a URL of another scheme, a
** bad spool name) return `nil, message`; smtp adds the server's reply code as
** a third value when an error reply ended the session (4xx: try later, 5xx:
** give up).
** A programming error raises: a wrong option type, a missing required
** option, a header name the gateway sets itself, or a call while delivery is
** not allowed (see sg_lua_deliver_allow).
**
**   smtp{url = "smtp://host:port" | "smtps://host:port",
**        from = "a@b", to = "c@d" | {"c@d", ...}, subject = "...",
**        text = "...", html = "..." (optional),
**        headers = {Name = value} (optional),
**        message_id = "<key@host>"  (required: the job's idempotency key),
**        timeout = seconds, username = "...", password = "...",
**        starttls = bool (true: the session must upgrade, CURLUSESSL_ALL)}
**     The message is built here (RFC 5322/2045/2047): Date (UTC), From, To,
**     Subject, Message-ID, MIME-Version and, as UTF-8 parts in base64,
**     text/plain or multipart/alternative with text/html. A subject or
**     custom header value that is plain printable ASCII is folded at
**     spaces before column 78 (a longer single word stays whole); one
**     that is not, holds "=?", or has a run over 900 characters is sent as
**     encoded-words (=?UTF-8?B?...?=, lines within 76, never splitting a
**     character). Line endings in text and html are normalised to CRLF.
**     Addresses are bare mailboxes (local@domain, printable ASCII, no
**     spaces, quotes or angle brackets); custom header values are
**     unstructured text; From, To, Cc, Bcc, Subject, Date,
**     Message-ID, MIME-Version and Content-* are set here and refused in
**     `headers`. Dot-stuffing on the wire is libcurl's job.
**   webhook{url = "https://..." | "http://...", body = string | table,
**           headers = {Name = value} (optional),
**           idempotency_key = "..." (required; sent as Idempotency-Key),
**           timeout = seconds}
**     POSTs the body; a table is encoded as JSON (lua_json.h); one that
**     cannot be (invalid UTF-8, a function) returns nil, message.
**     Content-Type is application/json unless `headers` names one.
**     Redirects are not followed (a 3xx is returned like any status); only
**     http and https are spoken. At most SG_DELIVER_BODY_MAX bytes of the
**     response body are returned.
**   spool{name = "...", content = "..."}
**     Writes <spool_dir>/<name> atomically (temporary file, fsync, rename,
**     fsync of the directory), mode 0600, replacing a file of that name;
**     creates spool_dir (0700) when missing. `name` must match
**     ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$.
**
** Timeouts: `timeout` is in seconds (fractions allowed), cfg's default when
** absent, never more than cfg's maximum; it bounds the connection and the
** whole transfer.
**
** Logging: failures, and webhook answers other than 2xx, are logged at warn
** with the URL's scheme, host and port only (no user, password, path or
** query) and the idempotency key; never a password, an address or a body.
**
** Threads: every call uses its own curl easy handle and nothing shared, so
** lua_States on different threads may deliver at the same time. The process
** must have called curl_global_init before the first delivery. A call blocks
** its thread for up to the timeout.
*/
#ifndef SG_LUA_DELIVER_H
#define SG_LUA_DELIVER_H

#include <lua.h>

/* Response body bytes webhook returns at most; the transfer stops there. */
#define SG_DELIVER_BODY_MAX (64 * 1024)

typedef struct sg_deliver_config {
    const char *spool_dir;   /* <data>/spool: the only place spool() writes */
    long default_timeout_ms; /* 10000 */
    long max_timeout_ms;     /* 60000 */
} sg_deliver_config;

/*
** Push a table {smtp = fn, webhook = fn, spool = fn} onto L. cfg is
** borrowed and must outlive L. Delivery starts forbidden on a new state.
** Calling it again on the same state shares the allow flag and switches
** every table to the new cfg.
** [-0, +1, m]
*/
void sg_lua_push_deliver(lua_State *L, const sg_deliver_config *cfg);

/*
** Allow (non-zero) or forbid (0) delivery on this state. While forbidden the
** functions raise "delivery is only available in the outbox hooks". The
** gateway allows it only while invite.on_invite or changes.on_changes runs
** on an outbox thread, never on a request thread. Does nothing when sg_lua_push_deliver was never
*called
** on L.
** [-0, +0, -]
*/
void sg_lua_deliver_allow(lua_State *L, int allowed);

#endif
