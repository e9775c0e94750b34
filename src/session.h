/*
 * session: one PUT on this relay.  It owns the stream buffer's writer
 * reference, the forks (one pipe per next hop), the local store job, the
 * timers that bound every wait, and the RESULT it sends upstream.
 *
 * Ownership: sessions live on env->sessions and are freed only by the
 * reaper (session_close() marks and schedules; never freed inside a
 * callback).  The upstream (a peer's inbound stream, or a control client)
 * holds a plain pointer and must call session_upstream_lost() or
 * session_detach() before it goes away; the session then never calls it
 * again.
 */
#ifndef RELAYD_SESSION_H
#define RELAYD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "upstream.h"
#include "wire.h"

struct session;
struct evbuffer;
struct peer_sink_ops;

/* What the session tells its upstream (struct session_upstream_ops) and
 * the entries of an outcome are in upstream.h. */
struct session_params {
	const struct wire_put	*put;
	const char		*upstream_name;	/* peer name or "control" */
	const struct session_upstream_ops *ops;
	void			*up;
};

/*
 * Start a session for a PUT.  Returns NULL when refused, with a wire abort
 * code in *code and a reason in err (too large, loop, no route, draining,
 * no memory).
 */
struct session	*session_new(const struct session_params *,
		    uint16_t *code, char *err, size_t errlen);
/*
 * Move len payload bytes from evb into the buffer (cut-through: forks are
 * woken at once).  Returns 0, or -1 if the payload would exceed its
 * declared size: the session is then failed and the upstream hears abort.
 */
int		 session_data(struct session *, struct evbuffer *, size_t len);
/*
 * Zero-copy receive: where the next payload bytes (at most max) may be
 * written straight from the transport, with the room there; NULL if the
 * session takes no payload now.  Then session_data_commit() the bytes
 * written (at most the room), before anything else touches the session.
 */
void		*session_data_space(struct session *, size_t max, size_t *room);
int		 session_data_commit(struct session *, size_t n);
/* END: all bytes sent.  -1 if short (failed as above). */
int		 session_end(struct session *);
/* Upstream gone or ABORTed.  Harmless once the buffer is complete. */
void		 session_upstream_lost(struct session *, const char *why);
/*
 * The above as the peer link's sink for inbound PUTs (peer.h): relayd.c
 * hands it to peer_set_sink().  Its handles are sessions.
 */
extern const struct peer_sink_ops session_sink_ops;
/*
 * A reader moved (a fork sent, the store took bytes): recompute the credit
 * owed upstream and abort forks that lag too far (slow next hop).
 */
void		 session_progress(struct session *);
/* Bytes appended but not yet credited upstream. */
uint64_t	 session_backlog(const struct session *);

struct json_t;
/* A JSON object describing the session (relayctl status). */
struct json_t	*session_json(const struct session *);
/* An array with every live session's object. */
struct json_t	*session_json_all(void);
/* 1 if this PUT was answered from an earlier stored outcome. */
int		 session_replayed(const struct session *);
/* Sessions in flight (not yet reaped or done). */
unsigned int	 session_count(void);
/*
 * The entries known so far ([0] this hop's), for an upstream that is
 * told of an abort; n is 0 for a replay.
 */
const struct session_entry *session_entries(const struct session *,
		    unsigned int *n);
/* relayctl outcome: what this relay knows of a PUT id. */
struct json_t	*session_outcome_json(const uint8_t *put_id);
/* Free every session (shutdown). */
void		 session_free_all(void);

#endif
