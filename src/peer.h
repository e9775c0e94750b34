/*
 * peer: one long-lived peer connection (in or out), the handshake, frame
 * dispatch, and many PUT streams multiplexed on it with fair interleaving
 * (round-robin over the pipes that have data and credit) and per-stream
 * and per-connection credit.  The byte transport is an xport (plain TCP
 * or TLS) made by peer_transport_new(), the one place TLS slots in.
 *
 * Ownership: every peer is on env->peers.  Outbound peers (one per
 * configured peer) live for the daemon's lifetime and reconnect with
 * backoff; inbound peers are freed by the reaper after peer_close().
 * A peer holds plain pointers to its pipes (outgoing streams) and owns its
 * inbound stream records, each of which points to a session.
 */
#ifndef RELAYD_PEER_H
#define RELAYD_PEER_H

#include <stddef.h>
#include <stdint.h>

struct peer;
struct pipe;
struct stream_chunk;
struct peer_conf;
struct json_t;

/* Listen on the configured address (or an inherited fd if >= 0). */
int		 peer_listen(const char *host, const char *port, int fd,
		    char *err, size_t errlen);
void		 peer_listen_close(void);
/* Create the outbound peers of the current config and connect them. */
void		 peer_start_outbound(void);
/* The outbound peer of that name, or NULL. */
struct peer	*peer_find_outbound(const char *name);
int		 peer_is_up(const struct peer *);
const char	*peer_name(const struct peer *);

/* Register a pipe: it gets a stream id and is scheduled to send its PUT
 * when the link is up (connecting first if needed). */
void		 peer_attach_pipe(struct peer *, struct pipe *);
void		 peer_detach_pipe(struct peer *, struct pipe *);
/* The pipe has something to send: queue it and schedule a flush. */
void		 peer_want_write(struct peer *, struct pipe *);
/* Connection-level send credit available / consume it. */
int64_t		 peer_conn_credit(const struct peer *);
/* Queue a pipe that is blocked on connection credit. */
void		 peer_wait_conn_credit(struct peer *, struct pipe *);
/* Frame output for pipes. */
int		 peer_send(struct peer *, const void *, size_t);
int		 peer_send_data(struct peer *, uint32_t stream,
		    const uint8_t *data, size_t len, struct stream_chunk *);
uint32_t	 peer_remote_stream_window(const struct peer *);

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
	uint64_t	 tls_refused[8];	/* by enum tls_refusal */
};
void		 peer_totals(struct peer_totals *);
/* {"tls_handshakes": N, "tls_refused": {reason: count}} */
struct json_t	*peer_tls_json(void);
/* An array with every peer's object. */
struct json_t	*peer_json_all(void);
void		 peer_free_all(void);
/* Drain: GOAWAY on every link that is up. */
void		 peer_goaway_all(const char *why);
/* After a reload (env->conf is the new generation). */
struct config;
int		 peer_reconfigure(struct config *old, char *err,
		    size_t errlen);

#endif
