/*
** Token last-use recording (DESIGN §3): auth plugins report each use with
** host->token_touch; the core remembers at most one pending write per token
** per minute and a background thread writes them through its own storage
** connection, so the request path never waits on a write.
*/
#ifndef SG_TOUCH_H
#define SG_TOUCH_H

#include <stdbool.h>

struct sg_plugins;

/* Note a use. Thread-safe, O(1), never blocks on storage. */
void sg_touch_note(const char *token_id, const char *addr);
/* Start the writer thread (serve only). Without it notes are dropped. */
bool sg_touch_start(struct sg_plugins *p);
/* Write what is pending and stop the thread. */
void sg_touch_stop(void);

#endif
