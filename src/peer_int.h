/*
 * peer_int.h: what peer.c (the connection), peer_in.c (inbound frames)
 * and peer_out.c (outbound frames and the link's scheduler) share.
 * Private to the peer module: only peer*.c include it; the API is peer.h.
 */
#ifndef PEER_INT_H
#define PEER_INT_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "config.h"
#include "tls.h"
#include "wire.h"
#include "xport.h"

struct peer_sink_ops;

#define PEER_HASH	256
#define PEER_OUT_HIGH	(1024 * 1024)	/* stop scheduling streams above */
#define PEER_OUT_LOW	(256 * 1024)	/* resume below */
#define PEER_CLOSED_IDS	64		/* recently closed inbound ids */
#define PEER_MAX_WINDOW	0x7fffffffLL	/* a window never exceeds this */
#define PEER_BACKOFF_MIN 100		/* ms */
#define PEER_BACKOFF_MAX 5000
#define PEER_STARVED_RETRY 0.1	/* s: retry starved credit */

enum peer_state {
	PEER_DOWN = 0,
	PEER_CONNECTING,
	PEER_HANDSHAKE,
	PEER_UP,
	PEER_CLOSING,		/* flushing a GOAWAY before closing */
};

enum peer_queue_id {
	PQ_NONE = 0,
	PQ_READY,		/* has something to send */
	PQ_CONN_WAIT,		/* waits for connection credit */
	PQ_LINK_WAIT,		/* waits for the link to come up */
};

/* An inbound stream: owned by its peer; holds its sink's handle. */
struct instream {
	LIST_ENTRY(instream)	 hentry;
	struct peer		*peer;
	uint32_t		 id;
	void			*sink;		/* peer_in_sink's handle */
	int64_t			 window;	/* bytes the sender may send */
	uint64_t		 reserved;	/* of window, held in peer_reserved */
	uint64_t		 left;		/* declared bytes not yet received */
	uint64_t		 landing;	/* of the DATA frame being read */
	uint64_t		 credit_pending;
	TAILQ_ENTRY(instream)	 starved_entry;	/* waits for memory */
	int			 starved;
};

/* peer_in.c: streams whose credit waits for memory (max_buffered). */
TAILQ_HEAD(instream_queue, instream);
extern struct instream_queue	 peer_starved;
extern struct clock_timer	*peer_starved_ev;

LIST_HEAD(instream_head, instream);
LIST_HEAD(outstream_head, peer_stream);
TAILQ_HEAD(outstream_queue, peer_stream);

struct peer {
	TAILQ_ENTRY(peer)	 entry;
	int			 outbound;
	char			 name[CONFIG_NAME_MAX + 1];
	char			*host;		/* outbound only */
	char			*port;
	char			 addr[96];
	enum peer_state		 state;
	struct xport		*xp;
	uint32_t		 next_id;
	int64_t			 conn_credit;	/* we may send */
	int64_t			 recv_window;	/* they may send */
	uint32_t		 rx_id;		/* DATA frame being received */
	size_t			 rx_left;	/* its payload bytes to come */
	int			 rx_drop;	/* its payload is dropped */
	uint64_t		 conn_unacked;	/* received, not credited */
	uint32_t		 remote_stream_window;
	uint32_t		 conn_window;	/* ours, for this link */
	uint32_t		 stream_window;
	int			 remote_goaway;
	struct instream_head	 in_hash[PEER_HASH];
	struct outstream_head	 out_hash[PEER_HASH];
	unsigned int		 nin;
	unsigned int		 nout;
	struct outstream_queue	 ready;
	struct outstream_queue	 conn_wait;
	struct outstream_queue	 link_wait;
	struct event		*flush_ev;
	struct clock_timer	*timer;
	struct event		*reap_ev;
	double			 last_rx;
	double			 state_since;
	int			 ping_out;
	unsigned int		 backoff_ms;
	uint64_t		 bytes_in;
	uint64_t		 bytes_out;
	unsigned int		 bslot;		/* peer_bytes slot it counts in */
	uint64_t		 bfold_in;	/* of bytes_*, already added to */
	uint64_t		 bfold_out;	/* a slot's total */
	uint64_t		 rate_limit;	/* bytes/s out, 0 = none */
	double			 rl_tokens;	/* may go negative: a debt */
	double			 rl_last;
	struct clock_timer	*rl_ev;
	struct config		*conf;		/* generation of tls/ctx */
	SSL_CTX			*ctx;		/* NULL: plaintext link */
	const struct tls_conf	*tlsc;
	int			 tls_pending;	/* TLS handshake under way */
	char			 tls_version[16];
	char			 tls_cipher[64];
	char			 tls_subject[256];
	char			 tls_fp[80];
	int			 retired;	/* dropped by a reload */
	uint32_t		 closed_ids[PEER_CLOSED_IDS];
	unsigned int		 closed_pos;
	uint32_t		 max_in_id;	/* highest id a PUT named */
	struct clock_timer	*out_ev;	/* output stuck: close then */
	int			 out_paused;	/* reading stopped for it */
	uint64_t		 out_mark;	/* xport_out_drained() then */
	uint64_t		 pong_end;	/* xport_out_drained() once our
						 * last PONG has left */
	int			 pong_owed;	/* a PING folded into it */
	uint64_t		 pong_value;	/* the latest such PING's */
	char			 last_error[160];
	struct sockaddr_storage	 src;		/* inbound: where from */
	int			 acct;		/* PEER_ACCT_* slots held */
	/* relayctl peer disable|enable|drain (enum peer_admin). */
	int			 admin;
	SSL_CTX			*next_ctx;	/* a reload's, until committed */
	unsigned int		 link_gen;	/* generation of the link's ctx */
	double			 up_since;	/* HELLO done (clock_mono) */
	int			 has_not_after;
	int64_t			 cert_not_after; /* peer cert, epoch s */
	uint64_t		 rtt_value;	/* our PING out, awaiting PONG */
	double			 rtt_sent;	/* then; < 0: none out */
	double			 rtt_last;	/* seconds; < 0: none yet */
	double			 rtt_smooth;	/* EWMA, 1/8 gain */
	/* Outbound retries, for show peers (peer_close_final). */
	unsigned int		 attempts;	/* dials since last up */
	unsigned int		 connects;	/* times it came up */
	double			 retry_at;	/* next dial (mono); < 0: none */
	unsigned int		 retry_delay_ms; /* the jittered wait before it */
};

/* Which listener slots an inbound link holds (listener.h). */
#define PEER_ACCT_CONN		0x01
#define PEER_ACCT_HANDSHAKE	0x02	/* and its source's count */

/* peer.c: the connection. */
void		 peer_fail(struct peer *, const char *);
void		 peer_on_hello(struct peer *, const struct wire_frame *);
void		 peer_drop(struct peer *, const char *);
void		 peer_linger_close(struct peer *, const char *);
void		 peer_connect(struct peer *);
void		 peer_on_pong(struct peer *, uint64_t);

/* peer_in.c: inbound frames and streams. */
extern const struct peer_sink_ops *peer_in_sink;	/* peer_set_sink() */
void		 peer_instream_unreserve(struct instream *);
void		 peer_starved_cb(void *);
void		*peer_sink(struct xport *, size_t *, void *);
void		 peer_sunk(struct xport *, size_t, void *);
void		 peer_read_cb(struct xport *, void *);

/* peer_out.c: outbound frames, the scheduler, the output bound. */
void		 peer_send_abort(struct peer *, uint32_t, uint16_t,
		    const char *);
void		 peer_send_credit(struct peer *, uint32_t, uint64_t);
int		 peer_send(struct peer *, const void *, size_t);
void		 peer_dequeue(struct peer *, struct peer_stream *);
void		 peer_want_write(struct peer *, struct peer_stream *);
void		 peer_schedule(struct peer *);
void		 peer_rl_cb(void *);
void		 peer_flush_cb(evutil_socket_t, short, void *);
void		 peer_check_retired(struct peer *);
struct peer_stream *peer_find_stream(struct peer *, uint32_t);
void		 peer_send_pong(struct peer *, uint64_t);
int		 peer_pong_queued(const struct peer *);
int		 peer_output_full(const struct peer *);
void		 peer_output_watch(struct peer *);
void		 peer_output_pause(struct peer *);
void		 peer_out_cb(void *);
void		 peer_write_cb(struct xport *, void *);

#endif
