/*
 * pipe: one fork of a stream to one downstream stream on a peer link.
 * Cut-through: each fragment is forwarded as soon as it is in the buffer,
 * handed to the connection's output by reference (no copy).  Every wait is
 * bounded: no progress for stream_inactivity_timeout while sending, or no
 * RESULT for result_timeout after END, aborts this fork only.
 *
 * Ownership: the session owns its pipes and frees them (pipe_free) when it
 * is reaped.  The peer holds a pointer while the pipe is registered on it;
 * pipe_free() unregisters.  A pipe reports its end to the session exactly
 * once (session_fork_done).
 */
#ifndef RELAYD_PIPE_H
#define RELAYD_PIPE_H

#include <sys/queue.h>
#include <stdint.h>

#include "wire.h"

struct session;
struct peer;
struct stream_reader;

enum pipe_state {
	PIPE_PENDING = 0,	/* waiting for the peer link to come up */
	PIPE_SENDING,		/* PUT sent, forwarding DATA */
	PIPE_ENDED,		/* END sent, waiting for RESULT */
	PIPE_DONE,		/* RESULT, ABORT or failure: finished */
};

struct pipe {
	TAILQ_ENTRY(pipe)	 sess_entry;	/* session's forks */
	LIST_ENTRY(pipe)	 hash_entry;	/* peer's stream id table */
	TAILQ_ENTRY(pipe)	 ready_entry;	/* peer's send queue */
	int			 queued;	/* on a peer queue */
	struct session		*sess;
	struct peer		*peer;		/* NULL once detached */
	struct stream_reader	*reader;
	char			 peer_name[65];
	uint32_t		 stream_id;	/* 0 until opened */
	int64_t			 credit;	/* stream send window */
	enum pipe_state		 state;
	uint64_t		 bytes_out;
	double			 started;
	double			 last_progress;
	struct clock_timer	*timer;
	char			 outcome[128];
};

struct pipe	*pipe_new(struct session *, struct peer *,
		    struct stream_reader *);
void		 pipe_free(struct pipe *);
/*
 * Called by the peer's scheduler: send at most one frame.  Returns 1 if
 * the pipe has more to send now, 0 if it waits (for data, credit or the
 * link; it requeues itself), -1 when it has nothing more to send.
 */
int		 pipe_send_one(struct pipe *);
void		 pipe_on_credit(struct pipe *, uint32_t);
void		 pipe_on_result(struct pipe *, const struct wire_frame *);
void		 pipe_on_abort(struct pipe *, uint16_t code, const char *msg,
		    size_t msg_len);
/* The link is gone, or could not be made; the pipe fails with why. */
void		 pipe_on_lost(struct pipe *, const char *why);
/* Abort this fork downstream with code and fail it with why. */
void		 pipe_abort(struct pipe *, uint16_t code, const char *why);
/* The session gives up on this fork (result wait expired, shutdown). */
void		 pipe_cancel(struct pipe *, const char *why);
const char	*pipe_state_name(enum pipe_state);

#endif
