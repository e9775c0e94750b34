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

#define STATS_CODES		16	/* abort codes counted (wire.h) */
#define STATS_DUR_BUCKETS	12

TAILQ_HEAD(peer_list, peer);
TAILQ_HEAD(session_list, session);

/*
 * Memory bounds against hostile peers that fired, since start
 * (relayctl show stats "memory", Prometheus relayd_memory_*).
 */
struct stats_hostile {
	uint64_t	 output_paused;	/* links paused: output over bound */
	uint64_t	 output_closed;	/* links closed: output never drained */
	uint64_t	 pongs_folded;	/* PINGs answered by a queued PONG */
	uint64_t	 reserve_refused; /* PUTs refused: max_buffered reserved */
	uint64_t	 credit_overflow; /* links closed: window above 2^31-1 */
	uint64_t	 data_never_opened; /* links closed: DATA, no such PUT */
	uint64_t	 data_discarded; /* DATA bytes of ended streams dropped */
};

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
	/* counters, since start (metrics and relayctl status) */
	uint64_t		 puts_received;	/* sessions admitted */
	uint64_t		 puts_stored;	/* outcome ok */
	uint64_t		 puts_failed;	/* outcome not ok, or aborted */
	uint64_t		 puts_forwarded; /* forks that got a RESULT */
	uint64_t		 stores_ok;	/* stored on this relay */
	uint64_t		 stores_failed;
	uint64_t		 puts_refused[STATS_CODES];	/* by abort code */
	uint64_t		 streams_aborted[STATS_CODES];	/* by abort code */
	uint64_t		 forks_aborted[STATS_CODES];	/* by abort code */
	uint64_t		 results_refused; /* RESULTs that lied */
	uint64_t		 identity_refused; /* cert or HELLO mismatch */
	uint64_t		 payload_in;	/* payload bytes received */
	uint64_t		 payload_out;	/* payload bytes forwarded */
	uint64_t		 dur_count;	/* stream durations */
	double			 dur_sum;
	uint64_t		 dur_buckets[STATS_DUR_BUCKETS];
	struct stats_hostile	 hostile;	/* memory bounds that fired */
};

/* Upper bounds (seconds) of the stream duration histogram buckets. */
extern const double	 stats_dur_bounds[STATS_DUR_BUCKETS];
void			 stats_duration(double secs);

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
