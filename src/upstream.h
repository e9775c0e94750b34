/*
 * upstream: what a session says to whoever sent it its PUT, as plain
 * types with no code behind them.  The session (forwarding) calls these
 * ops; the upstreams implement them: a peer's inbound stream (peer_in.c,
 * in the link layer) and a relayctl upload (control.c).  They sit here,
 * in the base layer, so that the link can answer a session without
 * including session.h.
 *
 * struct session is only named here: to an upstream it is an opaque
 * handle that it is given back in every call.
 */
#ifndef RELAYD_UPSTREAM_H
#define RELAYD_UPSTREAM_H

#include <stdint.h>

#include "config.h"

struct session;

#define SESSION_REASON_MAX	200

/*
 * One hop's outcome.  node is the name the entry gives (what that hop, or
 * whoever reported it, claims); via is who vouches for it here: this
 * relay's node id for its own entry and for failures it saw itself, else
 * the configured name of the next-hop link its RESULT came in on (the
 * authenticated peer on a TLS link).  via is not sent on the wire: the
 * relay upstream labels everything it gets from here with this relay.
 */
struct session_entry {
	uint8_t		status;		/* enum wire_result_status */
	uint8_t		depth;
	char		node[CONFIG_NAME_MAX + 1];
	char		via[CONFIG_NAME_MAX + 1];
	uint64_t	bytes;
	uint64_t	first_us;
	uint64_t	last_us;
	char		reason[SESSION_REASON_MAX + 1];
};

/* What the upstream hears.  Each is called at most once, except credit. */
struct session_upstream_ops {
	/* Final outcome: entries[0..n) (this hop's first).  ok as in ctl.h. */
	void	(*result)(void *up, struct session *,
		    const struct session_entry *, unsigned int n, int ok);
	/* The session failed on its own (timeout, size...): tell upstream. */
	void	(*abort)(void *up, struct session *, uint16_t code,
		    const char *msg);
	/*
	 * The buffer released bytes: the upstream may send that much more.
	 * Called from inside a reader's stream_consume(), so it must not
	 * append payload there and then (stream refuses it); schedule it.
	 */
	void	(*credit)(void *up, struct session *, uint64_t bytes);
};

#endif
