/*
 * pipe: one fork of a stream to one downstream stream on a peer link.
 * Cut-through: each fragment is forwarded as soon as it is in the buffer,
 * handed to the connection's output by reference (no copy).  Every wait is
 * bounded: no progress for stream_inactivity_timeout while sending, or no
 * RESULT for result_timeout after END, aborts this fork only.
 *
 * A pipe knows nothing of sessions or links: its owner gives it its
 * values and callbacks at pipe_new (struct pipe_params), and it sends
 * through an output ops table (peer_output for a link, a fake one in the
 * unit test) on a struct peer_stream it embeds.
 *
 * Ownership: the owner (a session) owns its pipes and frees them
 * (pipe_free) after done; it keeps what params point to alive until then.
 * The link holds a pointer to the embedded stream while it is attached;
 * pipe_free() detaches.  A pipe reports its end to its owner exactly once
 * (ops->done).
 */
#ifndef RELAYD_PIPE_H
#define RELAYD_PIPE_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.h"
#include "wire.h"

struct stream_reader;
struct clock_timer;
struct pipe;

enum pipe_state {
	PIPE_PENDING = 0,	/* waiting for the peer link to come up */
	PIPE_SENDING,		/* PUT sent, forwarding DATA */
	PIPE_ENDED,		/* END sent, waiting for RESULT */
	PIPE_DONE,		/* RESULT, ABORT or failure: finished */
};

/* What a pipe tells its owner. */
struct pipe_owner_ops {
	/* The fork ended: res is the next hop's checked RESULT, or NULL
	 * and why it failed.  Once per pipe. */
	void	(*done)(void *owner, struct pipe *,
		    const struct wire_frame *res, const char *why);
	/* It sent payload: its cursor moved. */
	void	(*progress)(void *owner);
};

struct pipe_params {
	const struct pipe_owner_ops *ops;
	void			*owner;
	struct stream_reader	*reader;	/* the pipe's from now on */
	const struct peer_output_ops *out;
	struct peer		*link;		/* handed to out->attach */
	const char		*peer_name;	/* copied */
	const char		*key;		/* kept: the owner's */
	size_t			 key_len;
	const uint8_t		*put_id;	/* WIRE_PUT_ID_LEN, copied */
	const char		*put_hex;	/* copied */
	const uint8_t		*sha256;	/* WIRE_SHA256_LEN, copied */
	uint8_t			 hops;		/* hop budget sent on */
	uint64_t		 sess_id;	/* stream= in log lines */
	double			 inactivity;	/* no progress: fail */
	double			 result_timeout;	/* after END */
};

struct pipe {
	TAILQ_ENTRY(pipe)	 sess_entry;	/* owner's forks */
	struct peer_stream	 ps;		/* on the link */
	const struct peer_output_ops *out;
	struct peer		*link;
	int			 linked;	/* attached to out */
	const struct pipe_owner_ops *ops;
	void			*owner;
	struct stream_reader	*reader;
	char			 peer_name[65];
	const char		*key;
	size_t			 key_len;
	uint8_t			 put_id[WIRE_PUT_ID_LEN];
	char			 put_hex[2 * WIRE_PUT_ID_LEN + 1];
	uint8_t			 sha256[WIRE_SHA256_LEN];
	uint8_t			 hops;
	uint64_t		 sess_id;
	double			 inactivity;
	double			 result_timeout;
	enum pipe_state		 state;
	uint64_t		 bytes_out;
	double			 started;
	double			 last_progress;
	struct clock_timer	*timer;
	char			 outcome[128];
	uint16_t		 fail_code;	/* what the upstream hears */
	uint16_t		 down_code;	/* ABORT code downstream when
						 * the buffer fails (owner's;
						 * 0: upstream-lost) */
	int			 peer_aborted;	/* the next hop sent ABORT */
	size_t			 abort_len;
	char			 abort_msg[WIRE_MAX_TEXT];	/* its text */
};

/*
 * Blame by construction: a relay's deadline for its next hop grows with
 * the hop budget it received, PIPE_BLAME_STEP(base) a hop, for at most
 * PIPE_BLAME_HOPS hops.  A deeper hop (a smaller budget) gives up
 * first, so the hop nearest a stalled one names it before any hop
 * nearer the origin gives up, and every deadline stays within base +
 * 1 s (base + base / 2 below a 2 s base).
 */
#define PIPE_BLAME_HOPS		20
#define PIPE_BLAME_STEP(base)	(((base) < 2.0 ? (base) / 2 : 1.0) / \
				    PIPE_BLAME_HOPS)
double		 pipe_deadline(double base, uint8_t budget);

/* A pipe, subscribed to its reader and timed from now; NULL on no
 * memory (the reader is then still the caller's). */
struct pipe	*pipe_new(const struct pipe_params *);
/* Attach to the link: may fail it (done) before returning. */
void		 pipe_start(struct pipe *);
void		 pipe_free(struct pipe *);
/* Abort this fork downstream with code and fail it with why. */
void		 pipe_abort(struct pipe *, uint16_t code, const char *why);
/* The owner gives up on this fork (result wait expired, shutdown). */
void		 pipe_cancel(struct pipe *, const char *why);
const char	*pipe_state_name(enum pipe_state);

#endif
