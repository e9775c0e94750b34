/*
 * peer: one long-lived peer connection (in or out), the handshake, frame
 * dispatch, and many PUT streams multiplexed on it with fair interleaving
 * (round-robin over the streams that have data and credit) and per-stream
 * and per-connection credit.  The byte transport is an xport (plain TCP
 * or TLS) made by peer_transport_new(), the one place TLS slots in.
 *
 * Ownership: every peer is on env->peers.  Outbound peers (one per
 * configured peer) live for the daemon's lifetime and reconnect with
 * backoff; inbound peers are freed by the reaper after peer_close().
 * A peer holds plain pointers to its outbound streams (struct peer_stream,
 * embedded in whoever sends on them: a pipe) and owns its inbound stream
 * records, each of which holds a handle of the sink (peer_set_sink()).
 */
#ifndef RELAYD_PEER_H
#define RELAYD_PEER_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

struct peer;
struct stream_chunk;
struct peer_conf;
struct json_t;

/* Listen on the configured address (or an inherited fd if >= 0). */
int		 peer_listen(const char *host, const char *port, int fd,
		    char *err, size_t errlen);
void		 peer_listen_close(void);

/*
 * Where inbound PUTs go: the module that consumes them (session) gives
 * the link this once, at wiring time, before any link is up.  A stream's
 * handle is opaque to the link.
 *
 * open admits a PUT from the link named from and returns its handle; ops
 * and up are how the sink answers that stream (the link implements them,
 * see upstream.h).  Refused: NULL, with a wire abort code in *code and a
 * reason in err.  data moves len payload bytes out of the evbuffer;
 * data_space and data_commit are the zero-copy way (where the next bytes,
 * at most max, may be written, with the room there; then how many were).
 * A -1 from those or from end (all bytes sent) means the stream failed:
 * the sink has already told the link through ops->abort.  lost: the link
 * dropped the stream or its sender ABORTed it; the sink never calls ops
 * on it again.
 */
struct evbuffer;
struct wire_put;
struct session_upstream_ops;

struct peer_sink_ops {
	void	*(*open)(const struct wire_put *, const char *from,
		    const struct session_upstream_ops *ops, void *up,
		    uint16_t *code, char *err, size_t errlen);
	int	 (*data)(void *, struct evbuffer *, size_t len);
	void	*(*data_space)(void *, size_t max, size_t *room);
	int	 (*data_commit)(void *, size_t n);
	int	 (*end)(void *);
	void	 (*lost)(void *, const char *why);
};
void		 peer_set_sink(const struct peer_sink_ops *);

/* Create the outbound peers of the current config and connect them. */
void		 peer_start_outbound(void);
/* The outbound peer of that name, or NULL. */
struct peer	*peer_find_outbound(const char *name);
int		 peer_is_up(const struct peer *);
const char	*peer_name(const struct peer *);

/*
 * An outbound stream on a link, owned by whoever embeds it (a pipe) and
 * scheduled by the peer while it is attached.  The peer fills in id,
 * window and the queue fields; the owner sets ops and owner before it
 * attaches, and detaches before it frees.  The peer never calls the
 * owner of a detached stream again.
 */
struct peer_stream;
struct wire_put;
struct wire_frame;

/* What pull returns: how the scheduler goes on with that stream. */
enum peer_pull {
	PEER_PULL_DONE = -1,	/* nothing more to send, ever */
	PEER_PULL_WAIT = 0,	/* waits for its own reasons; asks again */
	PEER_PULL_MORE = 1,	/* has more to send now */
	PEER_PULL_ROOM = 2,	/* has payload but room was 0: credit */
};

/* The upcalls a link makes to a stream's owner. */
struct peer_stream_ops {
	/* The link takes one frame now, with at most room payload bytes
	 * (0: only PUT, END or ABORT). */
	enum peer_pull	(*pull)(void *owner, size_t room);
	/* The stream's window grew by inc (already added to window). */
	void	(*credit)(void *owner, uint32_t inc);
	void	(*result)(void *owner, const struct wire_frame *);
	void	(*abort)(void *owner, uint16_t code, const char *msg,
		    size_t msg_len);
	/* The link is gone, or could not be made: detached already. */
	void	(*lost)(void *owner, const char *why);
};

struct peer_stream {
	LIST_ENTRY(peer_stream)	 hash_entry;	/* the link's stream id table */
	TAILQ_ENTRY(peer_stream) ready_entry;	/* one of its send queues */
	int			 queued;	/* which queue (peer_int.h) */
	struct peer		*peer;		/* NULL while detached */
	uint32_t		 id;		/* 0 until attached and pulled */
	int			 opened;	/* its PUT went out */
	int64_t			 window;	/* stream send window */
	const struct peer_stream_ops *ops;
	void			*owner;
};

/*
 * How a stream's owner sends on it: peer_output is the link's; a unit
 * test gives its owner a fake one.  Each send returns 0 or -1.
 */
struct peer_output_ops {
	/* Register: it gets a stream id and is pulled for its PUT once the
	 * link is up (connecting first if needed).  May call lost. */
	void	(*attach)(struct peer *, struct peer_stream *);
	void	(*detach)(struct peer_stream *);
	/* It has something to send: queue it and schedule a flush. */
	void	(*want)(struct peer_stream *);
	int	(*put)(struct peer_stream *, const struct wire_put *);
	/* DATA by reference: chunk stays referenced until the bytes left. */
	int	(*data)(struct peer_stream *, const uint8_t *, size_t,
		    struct stream_chunk *);
	int	(*end)(struct peer_stream *);
	int	(*abort)(struct peer_stream *, uint16_t code, const char *why);
};
extern const struct peer_output_ops peer_output;

/* Stream credit granted to peers and unused, reserved in max_buffered. */
uint64_t	 peer_reserved_bytes(void);
struct json_t	*peer_json(const struct peer *);
/* Totals over every link now (metrics). */
struct peer_totals {
	unsigned int	 up;		/* links up */
	unsigned int	 links;		/* every link, any state */
	uint64_t	 bytes_in;	/* wire bytes, links alive now */
	uint64_t	 bytes_out;
	uint64_t	 tls_handshakes;	/* since start */
	uint64_t	 tls_refused[16];	/* by enum tls_refusal */
};
void		 peer_totals(struct peer_totals *);
/*
 * Wire bytes by peer name since start, counters that survive the links
 * (a closed link's bytes stay with its name).  Slot 0 "(none)" holds
 * inbound links closed before HELLO named them (a link in its handshake
 * counts nowhere yet; once named, all its bytes are its name's); at most
 * PEER_BYTES_SLOTS
 * names are kept (a hostile peer can make up node ids), the rest share
 * slot 1 "(other)".  out = 0: received, 1: sent.
 */
#define PEER_BYTES_SLOTS	64
unsigned int	 peer_bytes_count(void);
const char	*peer_bytes_name(unsigned int);
uint64_t	 peer_bytes_at(unsigned int, int out);
/* {"tls_handshakes": N, "tls_refused": {reason: count}} */
struct json_t	*peer_tls_json(void);
/* An array with every peer's object. */
struct json_t	*peer_json_all(void);
void		 peer_free_all(void);
/* Drain: GOAWAY on every link that is up. */
void		 peer_goaway_all(const char *why);
/*
 * What relayctl peer disable|enable|drain set on an outbound peer.
 * Disabled: its link is closed and not dialled again, and route_skip()
 * leaves it out of new PUTs' plans.  Draining: no new PUTs either, the
 * streams on it finish, then the link closes and the peer is drained,
 * which is disabled by another name.  The state stays over a reload if
 * the peer stays in the config; a restart forgets it.
 */
enum peer_admin {
	PEER_ADMIN_ENABLED = 0,
	PEER_ADMIN_DISABLED,
	PEER_ADMIN_DRAINING,
	PEER_ADMIN_DRAINED,
};
const char	*peer_admin_name(int);
/*
 * Set the outbound peer name to admin.  0, or -1 with the reason in err
 * (no such configured peer; it quotes name as given: escape it).
 */
int		 peer_admin_set(const char *name, enum peer_admin, char *err,
		    size_t errlen);
/* May new PUTs use the outbound peer name?  (route_skip's test.) */
int		 peer_usable(const char *name, void *arg);

/* After a reload (env->conf is the new generation). */
struct config;
int		 peer_reconfigure(struct config *old, char *err,
		    size_t errlen);

#endif
