// Live updates: the tenant's change feed polled with its cursor every two
// seconds while a page listens; listeners get each batch of new events.

import { get } from './api.js';

let tenant = null, cursor = null, timer = null, busy = false;
const listeners = new Set();

async function tick() {
  if (busy || !tenant || listeners.size === 0) return;
  busy = true;
  const t = tenant;
  try {
    if (cursor === null) {
      // Start at the end of the feed: pages load their own state.
      let r = await get(`/${t}/changes?limit=1000`);
      while (r.events.length === 1000) r = await get(`/${t}/changes?limit=1000&since=${r.cursor}`);
      if (t === tenant) cursor = r.cursor;
    } else {
      const r = await get(`/${t}/changes?limit=1000&since=${encodeURIComponent(cursor)}`);
      if (t === tenant) {
        cursor = r.cursor;
        if (r.events.length) for (const fn of listeners) fn(r.events);
      }
    }
  } catch (e) {
    /* a failed poll is tried again at the next tick */
  } finally {
    busy = false;
  }
}

export function liveTenant(t) {
  if (t !== tenant) { tenant = t; cursor = null; }
}

// Call fn(events) for new change events; returns the way to stop.
export function listen(fn) {
  listeners.add(fn);
  if (!timer) { timer = setInterval(tick, 2000); tick(); }
  return () => {
    listeners.delete(fn);
    if (listeners.size === 0) { clearInterval(timer); timer = null; }
  };
}
