/*
 * metrics: the optional Prometheus endpoint (the `metrics` option).
 * GET /metrics answers the text exposition format (0.0.4) from the
 * counters in env, peer_totals(), stream_total_held() and
 * session_count(); other paths answer 404, other methods 405.  Plain
 * HTTP through libevent's evhttp on env's loop: a request is answered
 * from memory in one callback and written out by the loop, so it never
 * blocks it.
 *
 * Ownership: one endpoint per process, owned by this module from
 * metrics_open() to metrics_close().  It stays up while draining, so the
 * drain can be watched; metrics_close() must run before the event base
 * is freed.  The address is read at start-up only: a reload does not
 * move it.
 */
#ifndef RELAYD_METRICS_H
#define RELAYD_METRICS_H

#include <stddef.h>

struct event_base;

/*
 * Listen on host:port (numeric port).  0, or -1 with
 * "metrics HOST:PORT: reason" in err and nothing left open.
 */
int		 metrics_open(struct event_base *, const char *host,
		    const char *port, char *err, size_t errlen);
/* Close the listener and every metrics connection; harmless if closed. */
void		 metrics_close(void);

#endif
