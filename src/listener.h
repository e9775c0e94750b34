/*
 * listener: the descriptor budget and the connection caps of the peer,
 * control and metrics listeners.
 *
 * At start relayd raises its soft RLIMIT_NOFILE to the hard limit
 * (listener_fd_init) and derives every cap left at 0 in relayd.conf from
 * that limit, keeping a reserve of max(64, 5 %) descriptors that no cap
 * may use: the listeners themselves, the store directory, the temp files
 * of control-socket PUTs, outbound peer links, the loop's own descriptors
 * and the one a refused connection holds while it is closed.  With
 *   avail = limit - reserve - npeers - 2 * max_control_clients
 *           - max_metrics_clients
 * the derived caps are max_connections = avail / 2, max_streams = avail
 * - max_connections (each inbound stream holds at most one temp file)
 * and max_handshakes = max_connections / 4, each at least 1.  So
 * inbound links + their temp files + clients stay under limit - reserve
 * whatever peers do.
 *
 * A connection over a cap is accepted and closed at once, counted
 * by reason (listener_refused), and logged at most once a second per
 * reason with the number of refusals not logged since.
 *
 * Everything here runs on the loop thread.
 */
#ifndef RELAYD_LISTENER_H
#define RELAYD_LISTENER_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct sockaddr;

/* What is counted against a cap. */
enum listener_slot {
	LSLOT_CONNECTION,	/* inbound peer link, any state */
	LSLOT_HANDSHAKE,	/* inbound link not yet through HELLO */
	LSLOT_STREAM,		/* inbound PUT stream from a peer */
	LSLOT_CONTROL,		/* control-socket client */
	LSLOT_METRICS,		/* metrics HTTP client */
	LSLOT_MAX
};

/* Why a connection or stream was refused or closed. */
enum listener_refusal {
	LREF_CONNECTIONS,	/* max_connections */
	LREF_HANDSHAKES,	/* max_handshakes */
	LREF_PER_SOURCE,	/* max_connections_per_source */
	LREF_STREAMS,		/* max_streams */
	LREF_CONTROL,		/* max_control_clients */
	LREF_METRICS,		/* max_metrics_clients */
	LREF_CONTROL_TIMEOUT,	/* control_request_timeout */
	LREF_METRICS_TIMEOUT,	/* metrics_header_timeout */
	LREF_MAX
};

/* Raise the soft descriptor limit to the hard one and log both. */
void		 listener_fd_init(void);
/* The descriptor limit caps derive from, and the reserve kept. */
unsigned int	 listener_fd_limit(void);
unsigned int	 listener_fd_reserve(void);
/* The cap of a slot under cf (derived where cf says 0). */
unsigned int	 listener_cap(const struct config *cf, enum listener_slot);

/*
 * The config the caps below follow: the current generation, borrowed
 * (relayd sets it at start and on every reload, before the old one goes).
 */
void		 listener_config(const struct config *cf);

/* Take a slot under the current config's cap: 0, or -1 at the cap. */
int		 listener_take(enum listener_slot);
void		 listener_put(enum listener_slot);
unsigned int	 listener_used(enum listener_slot);

/*
 * Count an unauthenticated connection from sa's address: 0, or -1 when
 * max_connections_per_source are already in handshake from there.
 */
int		 listener_source_take(const struct sockaddr *sa);
void		 listener_source_put(const struct sockaddr *sa);

/* Count a refusal and log it (rate-limited); who: address or client. */
void		 listener_refused(enum listener_refusal, const char *who);
uint64_t	 listener_refused_count(enum listener_refusal);
const char	*listener_refusal_name(enum listener_refusal);
const char	*listener_slot_name(enum listener_slot);

/*
 * When accept() fails on l (out of descriptors, most likely), log it as
 * "what: accept" and pause l for a second: re-polling at once would spin
 * the loop on a socket that stays readable.  Unguard before freeing l.
 */
struct evconnlistener;
int		 listener_guard(struct evconnlistener *l, const char *what);
void		 listener_unguard(struct evconnlistener *l);

/*
 * relayd -n: bind host:port as the listeners would (SO_REUSEADDR), then
 * close it at once.  0, or -1 with why (address in use, not local, ...).
 */
int		 listener_check_bind(const char *host, const char *port,
		    char *why, size_t whylen);

#endif
