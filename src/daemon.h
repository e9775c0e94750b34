/*
 * daemon.h: the one daemon context, shared by the modules that run a
 * relay.  It names the other modules' types only as pointers and list
 * heads, so it includes nothing of theirs and sits at the bottom of the
 * module graph: any module may read it without reaching up into main.
 *
 * Ownership: main() (relayd.c) owns the context and defines env; the
 * unit tests and the fuzzer that stand in for main define their own.
 * conf is the current generation (one reference held here).
 */
#ifndef RELAYD_DAEMON_H
#define RELAYD_DAEMON_H

#include <sys/queue.h>
#include <stdint.h>

/* Set by the Makefile (VERSION, and SAN/TSAN/TEST_HOOKS). */
#ifndef RELAYD_VERSION
#define RELAYD_VERSION		"unknown"
#endif
#ifndef RELAYD_BUILD_OPTS
#define RELAYD_BUILD_OPTS	""
#endif

struct event_base;
struct config;
struct store;
struct route_seen;
struct peer;
struct session;

TAILQ_HEAD(peer_list, peer);
TAILQ_HEAD(session_list, session);

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

#endif
