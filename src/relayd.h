/*
 * relayd.h: the daemon's shared context and the declarations that tie the
 * modules together (peer, pipe, session, control).
 */
#ifndef RELAYD_RELAYD_H
#define RELAYD_RELAYD_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct event;
struct store;
struct route_seen;
struct peer;
struct session;
struct ctl_client;

TAILQ_HEAD(peer_list, peer);
TAILQ_HEAD(session_list, session);

/*
 * The one daemon context.  Owned by main(); modules reach it through `env`.
 * conf is the current generation (one reference held here).
 */
struct relayd {
	struct event_base	*base;
	struct config		*conf;
	struct store		*store;
	struct route_seen	*seen;
	struct peer_list	 peers;		/* every connection, in and out */
	struct session_list	 sessions;	/* every PUT in flight here */
	uint64_t		 next_session_id;
	double			 start_time;	/* monotonic seconds */
	int			 draining;
};

extern struct relayd	*env;

/*
 * Load the config file again as a new generation (SIGHUP, relayctl
 * reload).  Streams in flight keep the generation they started with.
 * 0, or -1 with the reason in err and the old config still in place.
 */
int		 relayd_reload(const char *by, char *err, size_t errlen);
/* Start a graceful drain; returns the streams still in flight. */
unsigned int	 relayd_drain(const char *by);

#endif
