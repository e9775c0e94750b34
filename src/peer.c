#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "config.h"
#include "events.h"
#include "listener.h"
#include "log.h"
#include "peer.h"
#include "pipe.h"
#include "relayd.h"
#include "session.h"
#include "stats.h"
#include "stream.h"
#include "tls.h"
#include "util.h"
#include "wire.h"
#include "xport.h"

#define PEER_HASH	256
#define PEER_OUT_HIGH	(1024 * 1024)	/* stop scheduling pipes above */
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

enum pipe_queue_id {
	PQ_NONE = 0,
	PQ_READY,		/* has something to send */
	PQ_CONN_WAIT,		/* waits for connection credit */
	PQ_LINK_WAIT,		/* waits for the link to come up */
};

/* An inbound stream: owned by its peer; points to its session. */
struct instream {
	LIST_ENTRY(instream)	 hentry;
	struct peer		*peer;
	uint32_t		 id;
	struct session		*sess;
	int64_t			 window;	/* bytes the sender may send */
	uint64_t		 reserved;	/* of window, held in peer_reserved */
	uint64_t		 left;		/* declared bytes not yet received */
	uint64_t		 credit_pending;
	TAILQ_ENTRY(instream)	 starved_entry;	/* waits for memory */
	int			 starved;
};

/*
 * Streams whose credit is held back because the daemon holds max_buffered
 * bytes: at the limit relayd stops granting credit instead of growing.
 */
static TAILQ_HEAD(, instream)	starved = TAILQ_HEAD_INITIALIZER(starved);
static struct clock_timer	*starved_ev;

/*
 * Stream credit granted to peers and not yet used: the sum of every
 * instream's window, each capped by the bytes its PUT still declares (a
 * sender cannot use credit beyond its declared size: that is a size
 * error), so a one-byte PUT reserves one byte.  A grant (a new stream's
 * first window included) is
 * made only if stream_total_held() + peer_reserved + the grant fits in
 * max_buffered; a DATA byte moves from here into the buffer, so buffered
 * bytes from peers can never exceed max_buffered.
 */
static uint64_t			peer_reserved;
/* DATA of a stream that is gone is read into this and dropped. */
static uint8_t			peer_discard[WIRE_MAX_DATA];

LIST_HEAD(instream_head, instream);
LIST_HEAD(pipe_head, pipe);
TAILQ_HEAD(pipe_queue, pipe);

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
	struct pipe_head	 out_hash[PEER_HASH];
	unsigned int		 nin;
	unsigned int		 nout;
	struct pipe_queue	 ready;
	struct pipe_queue	 conn_wait;
	struct pipe_queue	 link_wait;
	struct event		*flush_ev;
	struct clock_timer	*timer;
	struct event		*reap_ev;
	double			 last_rx;
	double			 state_since;
	int			 ping_out;
	unsigned int		 backoff_ms;
	uint64_t		 bytes_in;
	uint64_t		 bytes_out;
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
};

/* Which listener slots an inbound link holds (listener.h). */
#define PEER_ACCT_CONN		0x01
#define PEER_ACCT_HANDSHAKE	0x02	/* and its source's count */

static struct evconnlistener	*peer_listener;
static SSL_CTX			*peer_server_ctx;
static uint64_t			 peer_tls_handshakes;
static uint64_t			 peer_tls_refused[TLS_REF_MAX];

static void	peer_read_cb(struct xport *, void *);
static void	peer_write_cb(struct xport *, void *);
static void	peer_event_cb(struct xport *, short, void *);
static void	*peer_sink(struct xport *, size_t *, void *);
static void	peer_sunk(struct xport *, size_t, void *);
static void	peer_timer_cb(void *);
static void	peer_flush_cb(evutil_socket_t, short, void *);
static void	peer_reap_cb(evutil_socket_t, short, void *);
static void	peer_out_cb(void *);
static void	peer_output_watch(struct peer *);
static void	peer_drop(struct peer *, const char *);
static void	peer_linger_close(struct peer *, const char *);
static void	peer_connect(struct peer *);

static const struct session_upstream_ops instream_ops;

static const char *
peer_state_name(enum peer_state st)
{
	switch (st) {
	case PEER_DOWN:
		return "down";
	case PEER_CONNECTING:
		return "connecting";
	case PEER_HANDSHAKE:
		return "handshake";
	case PEER_UP:
		return "up";
	case PEER_CLOSING:
		return "closing";
	}
	return "?";
}

const char *
peer_name(const struct peer *p)
{
	return p->name;
}

int
peer_is_up(const struct peer *p)
{
	return p->state == PEER_UP && !p->remote_goaway;
}

int64_t
peer_conn_credit(const struct peer *p)
{
	return p->conn_credit;
}

uint32_t
peer_remote_stream_window(const struct peer *p)
{
	return p->remote_stream_window;
}

/* HELLO done: the link no longer counts as a handshake. */
static void
peer_acct_authenticated(struct peer *p)
{
	if (!(p->acct & PEER_ACCT_HANDSHAKE))
		return;
	p->acct &= ~PEER_ACCT_HANDSHAKE;
	listener_put(LSLOT_HANDSHAKE);
	listener_source_put((struct sockaddr *)&p->src);
}

/* The socket is closed: give back every slot it held. */
static void
peer_acct_release(struct peer *p)
{
	peer_acct_authenticated(p);
	if (p->acct & PEER_ACCT_CONN)
		listener_put(LSLOT_CONNECTION);
	p->acct = 0;
}

static struct peer *
peer_new(int outbound)
{
	struct peer *p;
	unsigned int i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->outbound = outbound;
	for (i = 0; i < PEER_HASH; i++) {
		LIST_INIT(&p->in_hash[i]);
		LIST_INIT(&p->out_hash[i]);
	}
	TAILQ_INIT(&p->ready);
	TAILQ_INIT(&p->conn_wait);
	TAILQ_INIT(&p->link_wait);
	p->flush_ev = event_new(env->base, -1, 0, peer_flush_cb, p);
	p->timer = clock_timer_new(peer_timer_cb, p);
	p->reap_ev = event_new(env->base, -1, 0, peer_reap_cb, p);
	p->out_ev = clock_timer_new(peer_out_cb, p);
	if (p->flush_ev == NULL || p->timer == NULL || p->reap_ev == NULL ||
	    p->out_ev == NULL) {
		if (p->flush_ev)
			event_free(p->flush_ev);
		if (p->timer)
			clock_timer_free(p->timer);
		if (p->reap_ev)
			event_free(p->reap_ev);
		if (p->out_ev)
			clock_timer_free(p->out_ev);
		free(p);
		return NULL;
	}
	p->backoff_ms = PEER_BACKOFF_MIN;
	TAILQ_INSERT_TAIL(&env->peers, p, entry);
	return p;
}

static void
peer_free(struct peer *p)
{
	peer_acct_release(p);
	xport_free(p->xp);
	if (p->ctx != NULL)
		SSL_CTX_free(p->ctx);
	if (p->conf != NULL)
		config_unref(p->conf);
	if (p->rl_ev != NULL)
		clock_timer_free(p->rl_ev);
	event_free(p->flush_ev);
	clock_timer_free(p->timer);
	event_free(p->reap_ev);
	clock_timer_free(p->out_ev);
	free(p->host);
	free(p->port);
	free(p);
}

/* --- the byte transport: the one place TLS slots in --- */

static struct xport *
peer_transport_new(struct peer *p, evutil_socket_t fd)
{
	struct xport *xp;
	SSL *ssl = NULL;

	p->tls_pending = 0;
	p->tls_version[0] = p->tls_cipher[0] = '\0';
	p->tls_subject[0] = p->tls_fp[0] = '\0';
	if (p->ctx != NULL && (ssl = SSL_new(p->ctx)) == NULL)
		return NULL;
	if ((xp = xport_new(env->base, fd, ssl, !p->outbound)) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	p->tls_pending = ssl != NULL;
	p->rx_left = 0;
	p->rx_drop = 0;
	p->max_in_id = 0;
	p->out_paused = 0;
	p->pong_end = 0;
	p->pong_owed = 0;
	xport_setcb(xp, peer_read_cb, peer_write_cb, peer_event_cb, p);
	xport_set_sink(xp, peer_sink, peer_sunk, WIRE_HDR_LEN);
	xport_set_lowat(xp, PEER_OUT_LOW);
	return xp;
}

static void
peer_set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* --- output --- */

int
peer_send(struct peer *p, const void *buf, size_t len)
{
	if (p->xp == NULL || (p->state != PEER_UP &&
	    p->state != PEER_HANDSHAKE))
		return -1;
	if (xport_write(p->xp, buf, len) == -1)
		return -1;
	p->bytes_out += len;
	return 0;
}

static void
peer_chunk_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	stream_chunk_unref(arg);
}

int
peer_send_data(struct peer *p, uint32_t stream, const uint8_t *data,
    size_t len, struct stream_chunk *chunk)
{
	uint8_t hdr[WIRE_HDR_LEN];
	struct evbuffer *out;

	if (p->xp == NULL || p->state != PEER_UP)
		return -1;
	out = xport_output(p->xp);
	wire_enc_data_hdr(hdr, sizeof(hdr), stream, len);
	if (evbuffer_add(out, hdr, sizeof(hdr)) == -1)
		return -1;
	/* The chunk is handed out by reference: no copy per fork. */
	stream_chunk_ref(chunk);
	if (evbuffer_add_reference(out, data, len, peer_chunk_cleanup,
	    chunk) == -1) {
		stream_chunk_unref(chunk);
		return -1;
	}
	p->conn_credit -= len;
	p->bytes_out += WIRE_HDR_LEN + len;
	return 0;
}

static void
peer_send_abort(struct peer *p, uint32_t id, uint16_t code, const char *msg)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	if ((n = wire_enc_abort(frame, sizeof(frame), id, code, msg)) > 0)
		peer_send(p, frame, n);
}

static void
peer_send_credit(struct peer *p, uint32_t id, uint64_t inc)
{
	uint8_t frame[WIRE_HDR_LEN + 4];

	while (inc > 0) {
		uint32_t n = inc > 0x40000000 ? 0x40000000 : inc;

		if (wire_enc_credit(frame, sizeof(frame), id, n) > 0)
			peer_send(p, frame, sizeof(frame));
		inc -= n;
	}
}

/* --- the send scheduler: fair round-robin over ready pipes --- */

static void
peer_dequeue(struct peer *p, struct pipe *pp)
{
	switch (pp->queued) {
	case PQ_READY:
		TAILQ_REMOVE(&p->ready, pp, ready_entry);
		break;
	case PQ_CONN_WAIT:
		TAILQ_REMOVE(&p->conn_wait, pp, ready_entry);
		break;
	case PQ_LINK_WAIT:
		TAILQ_REMOVE(&p->link_wait, pp, ready_entry);
		break;
	}
	pp->queued = PQ_NONE;
}

static void
peer_schedule(struct peer *p)
{
	if (!event_pending(p->flush_ev, EV_TIMEOUT, NULL) &&
	    !TAILQ_EMPTY(&p->ready))
		event_active(p->flush_ev, 0, 0);
}

void
peer_want_write(struct peer *p, struct pipe *pp)
{
	if (pp->queued == PQ_READY || pp->queued == PQ_LINK_WAIT)
		return;
	peer_dequeue(p, pp);
	TAILQ_INSERT_TAIL(&p->ready, pp, ready_entry);
	pp->queued = PQ_READY;
	if (p->state == PEER_UP)
		peer_schedule(p);
}

void
peer_wait_conn_credit(struct peer *p, struct pipe *pp)
{
	peer_dequeue(p, pp);
	TAILQ_INSERT_TAIL(&p->conn_wait, pp, ready_entry);
	pp->queued = PQ_CONN_WAIT;
}

static void
peer_assign_id(struct peer *p, struct pipe *pp)
{
	pp->stream_id = p->next_id;
	p->next_id += 2;
	if (p->next_id > 0x7ffffffe)	/* wrap, keeping the parity */
		p->next_id = p->outbound ? 1 : 2;
	LIST_INSERT_HEAD(&p->out_hash[pp->stream_id % PEER_HASH], pp,
	    hash_entry);
}

/*
 * rate_limit: a token bucket in front of the scheduler (a tenth of a
 * second of burst).  Returns 1 if the link may send now; otherwise arms
 * the refill timer, which reschedules the flush.
 */
static int
peer_rate_ok(struct peer *p)
{
	double now, burst, wait;

	if (p->rate_limit == 0)
		return 1;
	now = clock_mono();
	burst = p->rate_limit / 10.0;
	p->rl_tokens += (now - p->rl_last) * p->rate_limit;
	if (p->rl_tokens > burst)
		p->rl_tokens = burst;
	p->rl_last = now;
	if (p->rl_tokens > 0)
		return 1;
	wait = -p->rl_tokens / p->rate_limit + 0.001;
	if (p->rl_ev != NULL && !clock_timer_pending(p->rl_ev))
		clock_timer_arm(p->rl_ev, wait);
	return 0;
}

static void
peer_rl_cb(void *arg)
{
	peer_schedule(arg);
}

static void
peer_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;
	struct evbuffer *out;
	struct pipe *pp;
	size_t before;
	int r, budget = 4096;

	(void)fd;
	(void)ev;
	if (p->state != PEER_UP || p->xp == NULL)
		return;
	out = xport_output(p->xp);
	while ((pp = TAILQ_FIRST(&p->ready)) != NULL && budget-- > 0 &&
	    evbuffer_get_length(out) < PEER_OUT_HIGH && peer_rate_ok(p)) {
		peer_dequeue(p, pp);
		if (pp->state == PIPE_PENDING && pp->stream_id == 0)
			peer_assign_id(p, pp);
		before = evbuffer_get_length(out);
		r = pipe_send_one(pp);
		if (p->rate_limit > 0 && p->xp != NULL)
			p->rl_tokens -= (double)evbuffer_get_length(out) -
			    (double)before;
		if (r == 1 && pp->queued == PQ_NONE && pp->peer == p) {
			TAILQ_INSERT_TAIL(&p->ready, pp, ready_entry);
			pp->queued = PQ_READY;
		}
		if (p->state != PEER_UP)
			return;
	}
	/* More left: the write callback (low watermark), the rate timer or
	 * the budget resumes. */
	if (!TAILQ_EMPTY(&p->ready) && evbuffer_get_length(out) <
	    PEER_OUT_HIGH && (p->rl_ev == NULL ||
	    !clock_timer_pending(p->rl_ev)))
		event_active(p->flush_ev, 0, 0);
}

void
peer_attach_pipe(struct peer *p, struct pipe *pp)
{
	p->nout++;
	if (p->state == PEER_UP) {
		TAILQ_INSERT_TAIL(&p->ready, pp, ready_entry);
		pp->queued = PQ_READY;
		peer_schedule(p);
		return;
	}
	TAILQ_INSERT_TAIL(&p->link_wait, pp, ready_entry);
	pp->queued = PQ_LINK_WAIT;
	if (p->state == PEER_DOWN) {
		clock_timer_disarm(p->timer);
		p->backoff_ms = PEER_BACKOFF_MIN;
		peer_connect(p);
	}
}

/* A link retired by a reload closes once its last stream is gone. */
static void
peer_check_retired(struct peer *p)
{
	if (p->retired && p->nin == 0 && p->nout == 0 &&
	    p->state != PEER_DOWN && p->state != PEER_CLOSING)
		peer_linger_close(p, "removed from the config by a reload");
}

void
peer_detach_pipe(struct peer *p, struct pipe *pp)
{
	peer_dequeue(p, pp);
	if (pp->stream_id != 0 && pp->hash_entry.le_prev != NULL) {
		LIST_REMOVE(pp, hash_entry);
		pp->hash_entry.le_prev = NULL;
	}
	if (p->nout > 0)
		p->nout--;
	pp->peer = NULL;
	peer_check_retired(p);
}

static struct pipe *
peer_find_pipe(struct peer *p, uint32_t id)
{
	struct pipe *pp;

	LIST_FOREACH(pp, &p->out_hash[id % PEER_HASH], hash_entry)
		if (pp->stream_id == id)
			return pp;
	return NULL;
}

static struct instream *
peer_find_in(struct peer *p, uint32_t id)
{
	struct instream *in;

	LIST_FOREACH(in, &p->in_hash[id % PEER_HASH], hentry)
		if (in->id == id)
			return in;
	return NULL;
}

/* Our streams have our parity: odd if we connected, even if we accepted. */
static int
peer_is_ours(const struct peer *p, uint32_t id)
{
	return (id & 1) == (p->outbound ? 1 : 0);
}

/* --- inbound streams --- */

static void
peer_remember_closed(struct peer *p, uint32_t id)
{
	p->closed_ids[p->closed_pos++ % PEER_CLOSED_IDS] = id;
}

static int
peer_recently_closed(const struct peer *p, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < PEER_CLOSED_IDS; i++)
		if (p->closed_ids[i] == id && id != 0)
			return 1;
	return 0;
}

/* The stream's unused credit goes back to max_buffered. */
static void
instream_unreserve(struct instream *in)
{
	peer_reserved -= in->reserved;
	in->reserved = 0;
	in->window = 0;
}

/* Reserve what of window can still be used: at most the bytes left. */
static void
instream_rereserve(struct instream *in)
{
	uint64_t	 want;

	want = in->window > 0 ? (uint64_t)in->window : 0;
	if (want > in->left)
		want = in->left;
	peer_reserved = peer_reserved - in->reserved + want;
	in->reserved = want;
}

static void
instream_free(struct instream *in)
{
	struct peer *p = in->peer;

	if (in->starved) {
		TAILQ_REMOVE(&starved, in, starved_entry);
		in->starved = 0;
	}
	instream_unreserve(in);
	if (p != NULL) {
		LIST_REMOVE(in, hentry);
		p->nin--;
		peer_remember_closed(p, in->id);
	}
	listener_put(LSLOT_STREAM);
	free(in);
	if (p != NULL)
		peer_check_retired(p);
}

static void
instream_result(void *up, struct session *s, const struct session_entry *se,
    unsigned int n, int ok)
{
	struct instream *in = up;
	struct wire_entry *we;
	uint8_t *frame;
	size_t cap = WIRE_HDR_LEN + WIRE_MAX_BODY;
	unsigned int i;
	int len;

	(void)s;
	(void)ok;
	if (in->peer == NULL)
		goto done;
	if ((we = calloc(n ? n : 1, sizeof(*we))) == NULL ||
	    (frame = malloc(cap)) == NULL) {
		free(we);
		peer_send_abort(in->peer, in->id, WIRE_ABORT_INTERNAL,
		    "out of memory for RESULT");
		goto done;
	}
	for (i = 0; i < n; i++) {
		we[i].status = se[i].status;
		we[i].depth = se[i].depth;
		we[i].node = se[i].node;
		we[i].node_len = strlen(se[i].node);
		we[i].bytes = se[i].bytes;
		we[i].first_us = se[i].first_us;
		we[i].last_us = se[i].last_us;
		we[i].reason = se[i].reason;
		we[i].reason_len = strlen(se[i].reason);
	}
	len = wire_enc_result(frame, cap, in->id, we, n);
	if (len > 0)
		peer_send(in->peer, frame, len);
	else
		peer_send_abort(in->peer, in->id, WIRE_ABORT_INTERNAL,
		    "RESULT does not fit a frame");
	free(we);
	free(frame);
 done:
	instream_free(in);
}

static void
instream_abort(void *up, struct session *s, uint16_t code, const char *msg)
{
	struct instream *in = up;

	(void)s;
	if (in->peer != NULL)
		peer_send_abort(in->peer, in->id, code, msg);
	instream_free(in);
}

/* Bytes of max_buffered neither buffered nor promised to a peer. */
static uint64_t
peer_mem_room(void)
{
	uint64_t used = stream_total_held() + peer_reserved;

	return used >= env->conf->max_buffered ? 0 :
	    env->conf->max_buffered - used;
}

static int
peer_over_memory(void)
{
	return peer_mem_room() == 0;
}

uint64_t
peer_reserved_bytes(void)
{
	return peer_reserved;
}

static void
instream_grant(struct instream *in)
{
	struct peer *p = in->peer;
	uint64_t n;

	if (p == NULL || in->credit_pending == 0)
		return;
	/* Grant what max_buffered has room for, reserved before it goes. */
	n = peer_mem_room();
	if (n > in->credit_pending)
		n = in->credit_pending;
	if (n > 0) {
		peer_send_credit(p, in->id, n);
		in->window += n;
		instream_rereserve(in);
		in->credit_pending -= n;
	}
	if (in->credit_pending > 0) {
		if (!in->starved) {
			TAILQ_INSERT_TAIL(&starved, in, starved_entry);
			in->starved = 1;
		}
		/* Also retried on a timer: the memory may free elsewhere. */
		if (starved_ev != NULL && !clock_timer_pending(starved_ev))
			clock_timer_arm(starved_ev, PEER_STARVED_RETRY);
	}
}

static void
peer_starved_retry(void)
{
	struct instream *in;

	while ((in = TAILQ_FIRST(&starved)) != NULL && !peer_over_memory()) {
		TAILQ_REMOVE(&starved, in, starved_entry);
		in->starved = 0;
		instream_grant(in);
	}
}

static void
peer_starved_cb(void *arg)
{
	(void)arg;
	peer_starved_retry();
	if (!TAILQ_EMPTY(&starved))
		clock_timer_arm(starved_ev, PEER_STARVED_RETRY);
}

static void
instream_credit(void *up, struct session *s, uint64_t bytes)
{
	struct instream *in = up;
	struct peer *p = in->peer;

	(void)s;
	if (p == NULL)
		return;
	in->credit_pending += bytes;
	/* Batch credit: a quarter window at a time keeps frames few. */
	if (in->credit_pending >= p->stream_window / 4 && !in->starved)
		instream_grant(in);
	if (!TAILQ_EMPTY(&starved))
		peer_starved_retry();
}

static const struct session_upstream_ops instream_ops = {
	instream_result,
	instream_abort,
	instream_credit,
};

static void
peer_on_put(struct peer *p, const struct wire_frame *f)
{
	struct session_params sp;
	struct instream *in;
	uint32_t id = f->hdr.stream;
	uint16_t code;
	char err[256];

	if (peer_is_ours(p, id) || peer_find_in(p, id) != NULL) {
		peer_send_abort(p, id, WIRE_ABORT_PROTOCOL,
		    "stream id not available");
		return;
	}
	if (p->nin >= env->conf->max_streams_per_peer) {
		peer_send_abort(p, id, WIRE_ABORT_LIMIT,
		    "too many streams on this link");
		peer_remember_closed(p, id);
		return;
	}
	/* The first window is credit too: reserve it or refuse. */
	if (peer_mem_room() < (f->u.put.size < p->stream_window ?
	    f->u.put.size : p->stream_window)) {
		STATS_INC(reserve_refused);
		STATS_CODE(puts_refused, WIRE_ABORT_LIMIT);
		log_warnx("peer=%s addr=%s stream=%u put refused: max_buffered "
		    "reached buffered=%llu reserved=%llu max_buffered=%llu",
		    p->name, p->addr, id,
		    (unsigned long long)stream_total_held(),
		    (unsigned long long)peer_reserved,
		    (unsigned long long)env->conf->max_buffered);
		peer_send_abort(p, id, WIRE_ABORT_LIMIT,
		    "max_buffered reached: no room for a stream window");
		peer_remember_closed(p, id);
		return;
	}
	if (listener_take(LSLOT_STREAM) == -1) {
		listener_refused(LREF_STREAMS, p->addr);
		STATS_CODE(puts_refused, WIRE_ABORT_LIMIT);
		peer_send_abort(p, id, WIRE_ABORT_LIMIT,
		    "too many streams on this relay (max_streams)");
		peer_remember_closed(p, id);
		return;
	}
	if ((in = calloc(1, sizeof(*in))) == NULL) {
		listener_put(LSLOT_STREAM);
		peer_send_abort(p, id, WIRE_ABORT_INTERNAL, "out of memory");
		return;
	}
	in->id = id;
	in->window = p->stream_window;
	memset(&sp, 0, sizeof(sp));
	sp.put = &f->u.put;
	sp.upstream_name = p->name;
	sp.ops = &instream_ops;
	sp.up = in;
	if ((in->sess = session_new(&sp, &code, err, sizeof(err))) == NULL) {
		log_warnx("peer=%s stream=%u put refused: %s", p->name, id,
		    err);
		peer_send_abort(p, id, code, err);
		peer_remember_closed(p, id);
		listener_put(LSLOT_STREAM);
		free(in);
		return;
	}
	in->peer = p;
	in->left = f->u.put.size;
	instream_rereserve(in);
	LIST_INSERT_HEAD(&p->in_hash[id % PEER_HASH], in, hentry);
	p->nin++;
}

/*
 * A DATA header: account for it and decide whether its payload goes to a
 * session (0), is dropped (-1), or is a protocol error (-2: a stream that
 * was never opened).  The payload follows in pieces, through
 * peer_on_data_bytes() or straight into the buffer (peer_sink()); dropped
 * payload is read into peer_discard in large reads.
 *
 * Ids increase (relayd-protocol(7)), so an id above every PUT the link
 * has seen was never opened.  An id at or below that is a stream that
 * ended: if relayd ended it within the last PEER_CLOSED_IDS streams, the
 * DATA crossed the ABORT or RESULT and is dropped silently; older, it gets
 * one ABORT (protocol).  Either way its connection credit comes back.
 */
static int
peer_on_data_start(struct peer *p, uint32_t id, size_t len)
{
	struct instream *in;
	struct session *s;

	/* Connection credit comes back as bytes leave the wire, always. */
	p->conn_unacked += len;
	if (p->conn_unacked >= p->conn_window / 4) {
		peer_send_credit(p, 0, p->conn_unacked);
		p->recv_window += p->conn_unacked;
		p->conn_unacked = 0;
	}
	if (peer_is_ours(p, id) || id > p->max_in_id)
		return -2;
	if ((in = peer_find_in(p, id)) == NULL) {
		if (!peer_recently_closed(p, id)) {
			peer_send_abort(p, id, WIRE_ABORT_PROTOCOL,
			    "DATA for an unknown stream");
			peer_remember_closed(p, id);
		}
		return -1;
	}
	if ((int64_t)len > in->window) {
		s = in->sess;
		peer_send_abort(p, id, WIRE_ABORT_LIMIT,
		    "DATA beyond the stream's credit");
		instream_free(in);
		session_upstream_lost(s, "upstream sent beyond its credit");
		return -1;
	}
	in->window -= len;
	in->left -= len < in->left ? len : in->left;
	instream_rereserve(in);
	return 0;
}

/* The current DATA frame's payload bytes that came through the input. */
static void
peer_on_data_bytes(struct peer *p, struct evbuffer *input, size_t n)
{
	struct instream *in;

	p->rx_left -= n;
	if (p->rx_drop || (in = peer_find_in(p, p->rx_id)) == NULL) {
		STATS_ADD(data_discarded, n);
		evbuffer_drain(input, n);
		return;
	}
	/* May free `in` (the session fails and aborts upstream). */
	if (session_data(in->sess, input, n) == -1)
		p->rx_drop = 1;
}

/* Zero-copy receive: where the transport may put payload bytes now. */
static void *
peer_sink(struct xport *xp, size_t *len, void *arg)
{
	struct peer *p = arg;
	struct instream *in;

	(void)xp;
	if (p->rx_left == 0)
		return NULL;
	if (p->rx_drop || (in = peer_find_in(p, p->rx_id)) == NULL) {
		/* Dropped payload: read it in big pieces all the same. */
		*len = p->rx_left < sizeof(peer_discard) ? p->rx_left :
		    sizeof(peer_discard);
		return peer_discard;
	}
	return session_data_space(in->sess, p->rx_left, len);
}

static void
peer_sunk(struct xport *xp, size_t n, void *arg)
{
	struct peer *p = arg;
	struct instream *in;

	(void)xp;
	p->rx_left -= n;
	p->last_rx = clock_mono();
	if (p->rx_drop || (in = peer_find_in(p, p->rx_id)) == NULL) {
		STATS_ADD(data_discarded, n);
		return;
	}
	if (session_data_commit(in->sess, n) == -1)
		p->rx_drop = 1;
}

static void
peer_on_abort(struct peer *p, const struct wire_frame *f)
{
	uint32_t id = f->hdr.stream;
	struct instream *in;
	struct pipe *pp;
	struct session *s;
	char why[WIRE_MAX_TEXT + 64];

	if (peer_is_ours(p, id)) {
		if ((pp = peer_find_pipe(p, id)) != NULL)
			pipe_on_abort(pp, f->u.text.code, f->u.text.msg,
			    f->u.text.msg_len);
		return;
	}
	if ((in = peer_find_in(p, id)) == NULL)
		return;
	snprintf(why, sizeof(why), "aborted by %s: %s: %.*s", p->name,
	    wire_abort_name(f->u.text.code), (int)f->u.text.msg_len,
	    f->u.text.msg);
	s = in->sess;
	instream_free(in);
	session_upstream_lost(s, why);
}

static void	peer_fail(struct peer *, const char *);

/* A window above 2^31-1 (relayd-protocol(7)): the link is closed. */
static void
peer_credit_overflow(struct peer *p, uint32_t id, int64_t window,
    uint32_t inc)
{
	char why[160];

	STATS_INC(credit_overflow);
	snprintf(why, sizeof(why), "CREDIT of %u on stream %u raises its "
	    "window from %lld above 2147483647", inc, id, (long long)window);
	peer_fail(p, why);
}

static void
peer_on_credit(struct peer *p, const struct wire_frame *f)
{
	struct pipe *pp;

	if (f->hdr.stream == 0) {
		if (p->conn_credit + f->u.credit > PEER_MAX_WINDOW) {
			peer_credit_overflow(p, 0, p->conn_credit, f->u.credit);
			return;
		}
		p->conn_credit += f->u.credit;
		while ((pp = TAILQ_FIRST(&p->conn_wait)) != NULL)
			peer_want_write(p, pp);
		return;
	}
	if (!peer_is_ours(p, f->hdr.stream) ||
	    (pp = peer_find_pipe(p, f->hdr.stream)) == NULL)
		return;
	if (pp->credit + f->u.credit > PEER_MAX_WINDOW) {
		peer_credit_overflow(p, f->hdr.stream, pp->credit,
		    f->u.credit);
		return;
	}
	pipe_on_credit(pp, f->u.credit);
}

/* A framing error: GOAWAY with the reason, then close this link only. */
static void
peer_fail(struct peer *p, const char *why)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	log_warnx("peer=%s addr=%s protocol error: %s", p->name, p->addr,
	    why);
	n = wire_enc_goaway(frame, sizeof(frame), WIRE_ABORT_PROTOCOL, why);
	if (n > 0)
		peer_send(p, frame, n);
	peer_linger_close(p, why);
}

/*
 * The identity a peer of that name must present: the configured peer's
 * identity option, else the name itself.
 */
static const char *
peer_identity(const char *name)
{
	const struct peer_conf *pc = config_peer(env->conf, name);

	return pc != NULL && pc->identity[0] != '\0' ? pc->identity : name;
}

/* An identity mismatch: log it, count it, close this link only. */
static void
peer_identity_refuse(struct peer *p, const char *why)
{
	STATS_INC(identity_refused);
	log_warnx("peer=%s addr=%s identity refused reason=\"%s\"",
	    util_esc(p->name), p->addr, why);
}

/*
 * On an inbound TLS link the node id in HELLO must be the certificate's
 * identity: otherwise "alice" could say she is "bob".  0 if it is (or the
 * link is plaintext, where nothing is authenticated); -1 after closing.
 */
static int
peer_hello_identity(struct peer *p, const struct wire_frame *f)
{
	char node[CONFIG_NAME_MAX + 1], why[320], what[480];
	SSL *ssl;

	if (p->ctx == NULL || (ssl = xport_ssl(p->xp)) == NULL)
		return 0;
	snprintf(node, sizeof(node), "%.*s", f->u.hello.node_len,
	    f->u.hello.node);
	if (tls_check_identity(ssl, peer_identity(node), why,
	    sizeof(why)) == 0)
		return 0;
	snprintf(what, sizeof(what), "HELLO node id %s is not the "
	    "certificate's identity: %s", util_esc(node), why);
	peer_identity_refuse(p, what);
	peer_fail(p, "node id does not match the certificate");
	return -1;
}

static void
peer_on_hello(struct peer *p, const struct wire_frame *f)
{
	struct pipe *pp;

	if (p->state != PEER_HANDSHAKE) {
		peer_fail(p, "second HELLO");
		return;
	}
	if (!p->outbound && peer_hello_identity(p, f) == -1)
		return;
	/* A claimed name: escaped once here for every log line it is in. */
	if (!p->outbound)
		util_escape_field(f->u.hello.node, f->u.hello.node_len,
		    p->name, sizeof(p->name));
	else if ((size_t)f->u.hello.node_len != strlen(p->name) ||
	    memcmp(f->u.hello.node, p->name, f->u.hello.node_len) != 0)
		log_warnx("peer=%s says its node id is %.*s", p->name,
		    f->u.hello.node_len, f->u.hello.node);
	p->conn_credit = f->u.hello.conn_window;
	p->remote_stream_window = f->u.hello.stream_window;
	p->state = PEER_UP;
	p->state_since = clock_mono();
	peer_acct_authenticated(p);
	p->backoff_ms = PEER_BACKOFF_MIN;
	p->last_error[0] = '\0';
	log_info("peer=%s addr=%s up direction=%s", p->name, p->addr,
	    p->outbound ? "out" : "in");
	if (events_wanted())
		events_publish("peer-up", json_pack("{s:s,s:s,s:s}", "peer",
		    p->name, "address", p->addr, "direction",
		    p->outbound ? "out" : "in"));
	clock_timer_arm(p->timer, env->conf->idle_timeout);
	while ((pp = TAILQ_FIRST(&p->link_wait)) != NULL) {
		peer_dequeue(p, pp);
		TAILQ_INSERT_TAIL(&p->ready, pp, ready_entry);
		pp->queued = PQ_READY;
	}
	peer_schedule(p);
}

/*
 * PONG, at most one in the output: a PING that arrives while our last
 * PONG has not left yet is folded into the next one (sent with the latest
 * value once the queued one has gone), so a peer that never reads cannot
 * make PONGs pile up.
 */
static void
peer_send_pong(struct peer *p, uint64_t value)
{
	uint8_t frame[WIRE_HDR_LEN + 8];

	if (wire_enc_ping(frame, sizeof(frame), 1, value) <= 0 ||
	    peer_send(p, frame, sizeof(frame)) == -1)
		return;
	p->pong_owed = 0;
	p->pong_end = xport_out_drained(p->xp) +
	    evbuffer_get_length(xport_output(p->xp));
}

static int
peer_pong_queued(const struct peer *p)
{
	return p->xp != NULL && p->pong_end != 0 &&
	    xport_out_drained(p->xp) < p->pong_end;
}

static void
peer_on_ping(struct peer *p, uint64_t value)
{
	if (peer_pong_queued(p)) {
		STATS_INC(pongs_folded);
		p->pong_owed = 1;
		p->pong_value = value;
		peer_output_watch(p);
		return;
	}
	peer_send_pong(p, value);
}

static void
peer_dispatch(struct peer *p, const struct wire_frame *f)
{
	struct instream *in;
	struct pipe *pp;

	switch (f->hdr.type) {
	case WIRE_HELLO:
		peer_on_hello(p, f);
		break;
	case WIRE_PUT:
		if (!peer_is_ours(p, f->hdr.stream) &&
		    f->hdr.stream > p->max_in_id)
			p->max_in_id = f->hdr.stream;
		if (p->remote_goaway || env->draining) {
			peer_send_abort(p, f->hdr.stream, WIRE_ABORT_SHUTDOWN,
			    "link is going away");
			peer_remember_closed(p, f->hdr.stream);
		} else
			peer_on_put(p, f);
		break;
	case WIRE_END:
		if (!peer_is_ours(p, f->hdr.stream) &&
		    (in = peer_find_in(p, f->hdr.stream)) != NULL)
			session_end(in->sess);	/* may free in */
		break;
	case WIRE_ABORT:
		peer_on_abort(p, f);
		break;
	case WIRE_RESULT:
		if (peer_is_ours(p, f->hdr.stream) &&
		    (pp = peer_find_pipe(p, f->hdr.stream)) != NULL)
			pipe_on_result(pp, f);
		break;
	case WIRE_CREDIT:
		peer_on_credit(p, f);
		break;
	case WIRE_PING:
		peer_on_ping(p, f->u.ping);
		break;
	case WIRE_PONG:
		p->ping_out = 0;
		break;
	case WIRE_GOAWAY:
		p->remote_goaway = 1;
		log_info("peer=%s goaway code=%s msg=\"%s\"", p->name,
		    wire_abort_name(f->u.text.code),
		    util_escn(f->u.text.msg, f->u.text.msg_len));
		break;
	}
}

static void
peer_data_never_opened(struct peer *p, uint32_t id)
{
	char why[96];

	STATS_INC(data_never_opened);
	snprintf(why, sizeof(why), "DATA for stream %u, which was never "
	    "opened", id);
	peer_fail(p, why);
}

/*
 * The per-link output bound.  A peer that does not read what relayd
 * answers stops being read itself (so it cannot make relayd answer
 * more), and is closed if its output has not drained to the low
 * watermark within output_timeout.
 */
static int
peer_output_full(const struct peer *p)
{
	return p->xp != NULL && evbuffer_get_length(xport_output(p->xp)) >
	    env->conf->max_output_buffer;
}

/*
 * Output is queued: check in output_timeout that some of it left.  A
 * link whose output makes no progress for that long (its peer reads
 * nothing) is closed, whether or not it went over the bound.
 */
static void
peer_output_watch(struct peer *p)
{
	if (p->xp == NULL || clock_timer_pending(p->out_ev) ||
	    evbuffer_get_length(xport_output(p->xp)) == 0)
		return;
	p->out_mark = xport_out_drained(p->xp);
	clock_timer_arm(p->out_ev, env->conf->output_timeout);
}

static void
peer_output_pause(struct peer *p)
{
	if (p->out_paused)
		return;
	p->out_paused = 1;
	p->out_mark = xport_out_drained(p->xp);
	STATS_INC(output_paused);
	xport_read_enable(p->xp, 0);
	log_warnx("peer=%s addr=%s output not read: queued=%zu "
	    "max_output_buffer=%llu; reading paused for up to %.1fs",
	    p->name, p->addr, evbuffer_get_length(xport_output(p->xp)),
	    (unsigned long long)env->conf->max_output_buffer,
	    env->conf->output_timeout);
	clock_timer_arm(p->out_ev, env->conf->output_timeout);
}

static void
peer_output_resume(struct peer *p)
{
	if (!p->out_paused || p->xp == NULL)
		return;
	p->out_paused = 0;
	clock_timer_disarm(p->out_ev);
	log_info("peer=%s addr=%s output drained: queued=%zu; reading again",
	    p->name, p->addr, evbuffer_get_length(xport_output(p->xp)));
	xport_read_enable(p->xp, 1);
	peer_output_watch(p);
}

static void
peer_out_cb(void *arg)
{
	struct peer *p = arg;
	char why[160];

	if (p->xp == NULL ||
	    (p->state != PEER_UP && p->state != PEER_HANDSHAKE))
		return;
	/* Not over the bound and moving (or empty): watch on. */
	if (!p->out_paused && xport_out_drained(p->xp) != p->out_mark) {
		peer_output_watch(p);
		return;
	}
	if (!p->out_paused && evbuffer_get_length(xport_output(p->xp)) == 0)
		return;
	STATS_INC(output_closed);
	snprintf(why, sizeof(why), "output not drained within "
	    "output_timeout (%.1fs): queued=%zu %s max_output_buffer=%llu",
	    env->conf->output_timeout,
	    evbuffer_get_length(xport_output(p->xp)),
	    p->out_paused ? "over" : "none sent,",
	    (unsigned long long)env->conf->max_output_buffer);
	log_warnx("peer=%s addr=%s closed: %s", p->name, p->addr, why);
	/* No GOAWAY: the peer reads nothing, it would only queue more. */
	peer_drop(p, why);
}

static void
peer_read_cb(struct xport *xp, void *arg)
{
	struct peer *p = arg;
	struct evbuffer *input = xport_input(xp);
	struct wire_frame f;
	struct wire_hdr h;
	uint8_t *buf;
	size_t have;
	int r;

	while (p->state == PEER_HANDSHAKE || p->state == PEER_UP) {
		if (peer_output_full(p)) {
			peer_output_pause(p);
			break;
		}
		have = evbuffer_get_length(input);
		if (p->rx_left > 0) {
			/* Inside a DATA frame's payload. */
			if (have == 0)
				break;
			peer_on_data_bytes(p, input,
			    have < p->rx_left ? have : p->rx_left);
			continue;
		}
		if (have < WIRE_HDR_LEN)
			break;
		buf = evbuffer_pullup(input, WIRE_HDR_LEN);
		if ((r = wire_decode_hdr(buf, WIRE_HDR_LEN, &h)) < 0 &&
		    r != WIRE_EAGAIN) {
			peer_fail(p, wire_strerror(r));
			return;
		}
		if (p->state == PEER_HANDSHAKE && h.type != WIRE_HELLO) {
			peer_fail(p, "expected HELLO");
			return;
		}
		if (h.type == WIRE_DATA) {
			/* The payload may follow in pieces. */
			if (h.len == 0 || h.len > WIRE_MAX_DATA ||
			    h.stream == 0) {
				peer_fail(p, "bad DATA frame");
				return;
			}
			if ((p->recv_window -= h.len) < 0) {
				peer_fail(p, "DATA beyond connection credit");
				return;
			}
			p->last_rx = clock_mono();
			p->bytes_in += WIRE_HDR_LEN + h.len;
			evbuffer_drain(input, WIRE_HDR_LEN);
			p->rx_id = h.stream;
			p->rx_left = h.len;
			if ((r = peer_on_data_start(p, h.stream, h.len)) == -2) {
				peer_data_never_opened(p, h.stream);
				return;
			}
			p->rx_drop = r == -1;
			continue;
		}
		if (have < WIRE_HDR_LEN + (size_t)h.len)
			break;
		p->last_rx = clock_mono();
		p->bytes_in += WIRE_HDR_LEN + h.len;
		buf = evbuffer_pullup(input, WIRE_HDR_LEN + h.len);
		if ((r = wire_decode(buf, WIRE_HDR_LEN + h.len, &f)) < 0) {
			peer_fail(p, wire_strerror(r));
			return;
		}
		peer_dispatch(p, &f);
		if (p->xp != NULL)
			evbuffer_drain(input, WIRE_HDR_LEN + h.len);
	}
}

static void
peer_write_cb(struct xport *xp, void *arg)
{
	struct peer *p = arg;

	(void)xp;
	if (p->state == PEER_CLOSING) {
		peer_drop(p, p->last_error);
		return;
	}
	if (p->pong_owed && !peer_pong_queued(p))
		peer_send_pong(p, p->pong_value);
	peer_output_resume(p);
	peer_schedule(p);
}

/* --- connection life cycle --- */

/* Fail every stream on the link: pipes hear why, sessions lose upstream. */
static void
peer_drop_streams(struct peer *p, const char *why)
{
	struct pipe_queue lost;
	struct instream *in;
	struct session *s;
	struct pipe *pp;
	unsigned int i;
	char msg[256];

	TAILQ_INIT(&lost);
	for (i = 0; i < PEER_HASH; i++)
		while ((pp = LIST_FIRST(&p->out_hash[i])) != NULL) {
			LIST_REMOVE(pp, hash_entry);
			pp->hash_entry.le_prev = NULL;
			peer_dequeue(p, pp);
			TAILQ_INSERT_TAIL(&lost, pp, ready_entry);
		}
	while ((pp = TAILQ_FIRST(&p->ready)) != NULL ||
	    (pp = TAILQ_FIRST(&p->conn_wait)) != NULL ||
	    (pp = TAILQ_FIRST(&p->link_wait)) != NULL) {
		peer_dequeue(p, pp);
		TAILQ_INSERT_TAIL(&lost, pp, ready_entry);
	}
	p->nout = 0;
	while ((pp = TAILQ_FIRST(&lost)) != NULL) {
		TAILQ_REMOVE(&lost, pp, ready_entry);
		if (pp->state == PIPE_PENDING)
			snprintf(msg, sizeof(msg), "%s unreachable: %s",
			    p->name, why);
		else
			snprintf(msg, sizeof(msg), "connection to %s lost "
			    "after %llu bytes: %s", p->name,
			    (unsigned long long)pp->bytes_out, why);
		pipe_on_lost(pp, msg);
	}
	snprintf(msg, sizeof(msg), "connection from %s lost: %s", p->name,
	    why);
	for (i = 0; i < PEER_HASH; i++)
		while ((in = LIST_FIRST(&p->in_hash[i])) != NULL) {
			LIST_REMOVE(in, hentry);
			in->peer = NULL;
			s = in->sess;
			if (in->starved)
				TAILQ_REMOVE(&starved, in, starved_entry);
			listener_put(LSLOT_STREAM);
			instream_unreserve(in);
			free(in);
			session_upstream_lost(s, msg);
		}
	p->nin = 0;
}

static void
peer_close_final(struct peer *p)
{
	if (p->xp != NULL) {
		xport_free(p->xp);
		p->xp = NULL;
	}
	peer_acct_release(p);
	event_del(p->flush_ev);
	clock_timer_disarm(p->timer);
	clock_timer_disarm(p->out_ev);
	p->out_paused = 0;
	p->state = PEER_DOWN;
	p->state_since = clock_mono();
	if (!p->outbound || p->retired) {
		event_active(p->reap_ev, 0, 0);
		return;
	}
	/* Outbound links come back, with exponential backoff. */
	clock_timer_arm(p->timer, p->backoff_ms / 1000.0);
	p->backoff_ms *= 2;
	if (p->backoff_ms > PEER_BACKOFF_MAX)
		p->backoff_ms = PEER_BACKOFF_MAX;
}

static void
peer_drop(struct peer *p, const char *why)
{
	if (p->state == PEER_DOWN)
		return;
	if (p->state == PEER_CLOSING) {
		peer_close_final(p);
		return;
	}
	if (why != p->last_error)
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	log_info("peer=%s addr=%s down reason=\"%s\" bytes_in=%llu "
	    "bytes_out=%llu", p->name, p->addr, why,
	    (unsigned long long)p->bytes_in,
	    (unsigned long long)p->bytes_out);
	if (events_wanted() && p->state == PEER_UP)
		events_publish("peer-down", json_pack("{s:s,s:s,s:s,s:s}",
		    "peer", p->name, "address", p->addr, "direction",
		    p->outbound ? "out" : "in", "reason", why));
	/* Mark first, so nothing is sent on the link while streams fail. */
	p->state = PEER_CLOSING;
	peer_drop_streams(p, why);
	peer_close_final(p);
}

static void
peer_linger_close(struct peer *p, const char *why)
{
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	log_info("peer=%s addr=%s closing reason=\"%s\"", p->name, p->addr,
	    why);
	p->state = PEER_CLOSING;
	peer_drop_streams(p, why);
	if (p->xp == NULL ||
	    evbuffer_get_length(xport_output(p->xp)) == 0) {
		peer_close_final(p);
		return;
	}
	xport_read_enable(p->xp, 0);
	xport_set_lowat(p->xp, 0);
	clock_timer_arm(p->timer, 1.0);
}

static void
peer_send_hello(struct peer *p)
{
	struct wire_hello h;
	uint8_t frame[WIRE_HDR_LEN + 17 + WIRE_MAX_NODE];
	int n;

	p->conn_window = env->conf->conn_window;
	p->stream_window = env->conf->stream_window;
	p->recv_window = p->conn_window;
	p->conn_unacked = 0;
	p->conn_credit = 0;
	p->remote_goaway = 0;
	p->ping_out = 0;
	p->next_id = p->outbound ? 1 : 2;
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.conn_window = p->conn_window;
	h.stream_window = p->stream_window;
	h.node = env->conf->node_id;
	h.node_len = strlen(env->conf->node_id);
	p->state = PEER_HANDSHAKE;
	p->state_since = p->last_rx = clock_mono();
	if ((n = wire_enc_hello(frame, sizeof(frame), &h)) > 0)
		peer_send(p, frame, n);
	clock_timer_arm(p->timer, env->conf->handshake_timeout);
}

static void
peer_tls_refuse(struct peer *p, enum tls_refusal r, const char *why)
{
	peer_tls_refused[r]++;
	log_warnx("peer=%s addr=%s tls handshake refused reason=\"%s\"",
	    p->name, p->addr, why);
	p->tls_pending = 0;
	peer_drop(p, why);
}

static void
peer_tls_refused_event(struct peer *p, unsigned long err)
{
	SSL *ssl = xport_ssl(p->xp);
	enum tls_refusal r;
	char why[320];

	r = tls_classify(ssl, err, why, sizeof(why));
	ERR_clear_error();
	peer_tls_refuse(p, r, why);
}

/* The TLS handshake is done: check the identity, note what was agreed. */
static int
peer_tls_established(struct peer *p)
{
	SSL *ssl = xport_ssl(p->xp);
	char why[320], what[400];

	if (tls_check_allowed(ssl, p->tlsc, why, sizeof(why)) == -1) {
		peer_tls_refuse(p, TLS_REF_NOT_ALLOWED, why);
		return -1;
	}
	/* The dialled peer must be the one configured, not any CA client. */
	if (p->outbound && tls_check_identity(ssl, peer_identity(p->name),
	    why, sizeof(why)) == -1) {
		snprintf(what, sizeof(what), "dialled peer %s: %s", p->name,
		    why);
		peer_identity_refuse(p, what);
		p->tls_pending = 0;
		peer_drop(p, what);
		return -1;
	}
	p->tls_pending = 0;
	peer_tls_handshakes++;
	snprintf(p->tls_version, sizeof(p->tls_version), "%s",
	    SSL_get_version(ssl));
	snprintf(p->tls_cipher, sizeof(p->tls_cipher), "%s",
	    SSL_get_cipher_name(ssl));
	tls_peer_identity(ssl, p->tls_fp, sizeof(p->tls_fp), p->tls_subject,
	    sizeof(p->tls_subject));
	log_info("peer=%s addr=%s tls=%s cipher=%s subject=\"%s\" "
	    "fingerprint=%s", p->name, p->addr, p->tls_version,
	    p->tls_cipher, p->tls_subject, p->tls_fp);
	return 0;
}

static void
peer_event_cb(struct xport *xp, short what, void *arg)
{
	struct peer *p = arg;
	char why[160];
	int err = xport_errno(xp);

	if (what & XPORT_CONNECTED) {
		peer_set_nodelay(xport_fd(xp));
		if (p->tls_pending && peer_tls_established(p) == -1)
			return;
		peer_send_hello(p);
		return;
	}
	if (p->tls_pending) {
		peer_tls_refused_event(p, (what & XPORT_ERROR) ?
		    xport_ssl_error(xp) : 0);
		return;
	}
	if (what & XPORT_EOF)
		snprintf(why, sizeof(why), "connection closed by peer");
	else if (what & XPORT_ERROR)
		snprintf(why, sizeof(why), "%s", err ?
		    evutil_socket_error_to_string(err) : "socket error");
	else
		snprintf(why, sizeof(why), "transport event 0x%x", what);
	peer_drop(p, why);
}

static void
peer_connect(struct peer *p)
{
	struct addrinfo hints, *res = NULL;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	p->state = PEER_CONNECTING;
	p->state_since = clock_mono();
	if ((r = getaddrinfo(p->host, p->port, &hints, &res)) != 0) {
		snprintf(p->last_error, sizeof(p->last_error), "resolve "
		    "%s: %s", p->host, gai_strerror(r));
		goto fail;
	}
	if ((p->xp = peer_transport_new(p, -1)) == NULL) {
		snprintf(p->last_error, sizeof(p->last_error),
		    "out of memory");
		goto fail;
	}
	if (xport_connect(p->xp, res->ai_addr,
	    res->ai_addrlen) == -1) {
		snprintf(p->last_error, sizeof(p->last_error), "connect: %s",
		    strerror(errno));
		goto fail;
	}
	freeaddrinfo(res);
	clock_timer_arm(p->timer, env->conf->connect_timeout +
	    (p->ctx != NULL ? env->conf->handshake_timeout : 0));
	return;
 fail:
	if (res != NULL)
		freeaddrinfo(res);
	peer_drop(p, p->last_error);
}

static void
peer_timer_cb(void *arg)
{
	struct peer *p = arg;
	uint8_t frame[WIRE_HDR_LEN + 8];
	double idle;

	switch (p->state) {
	case PEER_DOWN:
		if (p->outbound)
			peer_connect(p);
		break;
	case PEER_CONNECTING:
		if (p->tls_pending && !p->outbound)
			peer_tls_refuse(p, TLS_REF_TIMEOUT, "handshake timeout "
			    "(no TLS handshake within handshake_timeout)");
		else
			peer_drop(p, "connect timeout");
		break;
	case PEER_HANDSHAKE:
		peer_drop(p, "handshake timeout");
		break;
	case PEER_CLOSING:
		peer_close_final(p);
		break;
	case PEER_UP:
		idle = clock_mono() - p->last_rx;
		if (idle < env->conf->idle_timeout) {
			clock_timer_arm(p->timer,
			    env->conf->idle_timeout - idle);
			break;
		}
		if (p->ping_out) {
			peer_drop(p, "no answer to keepalive PING");
			break;
		}
		p->ping_out = 1;
		if (wire_enc_ping(frame, sizeof(frame), 0,
		    (uint64_t)clock_wall_us()) > 0)
			peer_send(p, frame, sizeof(frame));
		clock_timer_arm(p->timer, env->conf->idle_timeout);
		break;
	}
}

static void
peer_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;

	(void)fd;
	(void)ev;
	TAILQ_REMOVE(&env->peers, p, entry);
	peer_free(p);
}

static void
peer_format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		snprintf(out, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		snprintf(out, len, "[%s]:%u", host, port);
	} else
		snprintf(out, len, "unknown");
}

/*
 * Take the listener slots of a new inbound link before anything is
 * allocated for it, or say which cap it is over.  The per-source cap
 * counts only links not yet through HELLO, so one address cannot hold
 * every handshake slot.
 */
static int
peer_accept_admit(const struct sockaddr *sa, enum listener_refusal *why)
{
	if (listener_take(LSLOT_CONNECTION) == -1) {
		*why = LREF_CONNECTIONS;
		return -1;
	}
	if (listener_take(LSLOT_HANDSHAKE) == -1) {
		listener_put(LSLOT_CONNECTION);
		*why = LREF_HANDSHAKES;
		return -1;
	}
	if (listener_source_take(sa) == -1) {
		listener_put(LSLOT_HANDSHAKE);
		listener_put(LSLOT_CONNECTION);
		*why = LREF_PER_SOURCE;
		return -1;
	}
	return 0;
}

static void
peer_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	enum listener_refusal why;
	struct peer *p;
	char addr[96];

	(void)l;
	(void)arg;
	if (peer_accept_admit(sa, &why) == -1) {
		close(fd);
		peer_format_addr(sa, addr, sizeof(addr));
		listener_refused(why, addr);
		return;
	}
	if ((p = peer_new(0)) == NULL) {
		listener_source_put(sa);
		listener_put(LSLOT_HANDSHAKE);
		listener_put(LSLOT_CONNECTION);
		log_warnx("accept: out of memory");
		close(fd);
		return;
	}
	if ((size_t)salen > sizeof(p->src))
		salen = sizeof(p->src);
	memcpy(&p->src, sa, salen);
	p->acct = PEER_ACCT_CONN | PEER_ACCT_HANDSHAKE;
	peer_format_addr(sa, p->addr, sizeof(p->addr));
	snprintf(p->name, sizeof(p->name), "%s", p->addr);
	p->conf = env->conf;
	config_ref(p->conf);
	p->tlsc = &p->conf->tls;
	if (peer_server_ctx != NULL) {
		SSL_CTX_up_ref(peer_server_ctx);
		p->ctx = peer_server_ctx;
	}
	if ((p->xp = peer_transport_new(p, fd)) == NULL) {
		close(fd);
		TAILQ_REMOVE(&env->peers, p, entry);
		peer_free(p);
		return;
	}
	peer_set_nodelay(fd);
	log_debug("peer=%s accepted", p->addr);
	if (p->tls_pending) {
		p->state = PEER_CONNECTING;
		p->state_since = clock_mono();
		clock_timer_arm(p->timer, env->conf->handshake_timeout);
		return;
	}
	peer_send_hello(p);
}

int
peer_listen(const char *host, const char *port, int fd, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	unsigned int flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	    LEV_OPT_CLOSE_ON_EXEC;
	int r;

	if (env->conf->tls.enabled && peer_server_ctx == NULL &&
	    (peer_server_ctx = tls_ctx_new(&env->conf->tls, 1,
	    env->conf->path, err, errlen)) == NULL)
		return -1;
	if (fd >= 0) {
		evutil_make_socket_nonblocking(fd);
		peer_listener = evconnlistener_new(env->base, peer_accept_cb,
		    NULL, flags, -1, fd);
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
			snprintf(err, errlen, "listen %s:%s: %s", host, port,
			    gai_strerror(r));
			return -1;
		}
		peer_listener = evconnlistener_new_bind(env->base,
		    peer_accept_cb, NULL, flags, 512, res->ai_addr,
		    res->ai_addrlen);
		freeaddrinfo(res);
	}
	if (peer_listener == NULL) {
		snprintf(err, errlen, "listen %s:%s: %s", host ? host : "fd",
		    port ? port : "", strerror(errno));
		return -1;
	}
	listener_guard(peer_listener, "peer");
	return 0;
}

void
peer_listen_close(void)
{
	if (peer_listener != NULL) {
		listener_unguard(peer_listener);
		evconnlistener_free(peer_listener);
	}
	peer_listener = NULL;
	if (peer_server_ctx != NULL)
		SSL_CTX_free(peer_server_ctx);
	peer_server_ctx = NULL;
}

void
peer_start_outbound(void)
{
	const struct config *c = env->conf;
	struct peer *p;
	unsigned int i;
	char err[512];

	if (starved_ev == NULL &&
	    (starved_ev = clock_timer_new(peer_starved_cb, NULL)) == NULL)
		fatalx("out of memory");
	for (i = 0; i < c->npeers; i++) {
		if (peer_find_outbound(c->peers[i].name) != NULL)
			continue;
		if ((p = peer_new(1)) == NULL)
			fatalx("out of memory");
		snprintf(p->name, sizeof(p->name), "%s", c->peers[i].name);
		if ((p->host = strdup(c->peers[i].host)) == NULL ||
		    (p->port = strdup(c->peers[i].port)) == NULL)
			fatalx("out of memory");
		snprintf(p->addr, sizeof(p->addr), "%s:%s", p->host, p->port);
		p->rate_limit = c->peers[i].rate_limit;
		if (p->rate_limit > 0 && (p->rl_ev = clock_timer_new(
		    peer_rl_cb, p)) == NULL)
			fatalx("out of memory");
		p->rl_last = clock_mono();
		p->conf = env->conf;
		config_ref(p->conf);
		p->tlsc = &p->conf->peers[i].tls;
		if (p->tlsc->enabled && (p->ctx = tls_ctx_new(p->tlsc, 0,
		    c->path, err, sizeof(err))) == NULL)
			fatalx("%s", err);
		peer_connect(p);
	}
}

struct peer *
peer_find_outbound(const char *name)
{
	struct peer *p;

	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->outbound && !p->retired && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

json_t *
peer_tls_json(void)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < TLS_REF_MAX; i++)
		json_object_set_new(o, tls_refusal_name(i),
		    json_integer(peer_tls_refused[i]));
	return json_pack("{s:I,s:o}", "tls_handshakes",
	    (json_int_t)peer_tls_handshakes, "tls_refused", o);
}

json_t *
peer_json(const struct peer *p)
{
	json_t *tls = json_null();

	if (p->tls_version[0] != '\0')
		tls = json_pack("{s:s,s:s,s:s,s:s}", "version", p->tls_version,
		    "cipher", p->tls_cipher, "subject", p->tls_subject,
		    "fingerprint", p->tls_fp);
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:f,s:s,s:o}",
	    "name", p->name, "address", p->addr,
	    "direction", p->outbound ? "out" : "in",
	    "state", peer_state_name(p->state),
	    "streams", (int)(p->nin + p->nout), "streams_in", (int)p->nin,
	    "bytes_in", (json_int_t)p->bytes_in,
	    "bytes_out", (json_int_t)p->bytes_out,
	    "send_credit", (json_int_t)p->conn_credit,
	    "state_s", clock_mono() - p->state_since,
	    "last_error", p->last_error, "tls", tls);
}

void
peer_free_all(void)
{
	struct peer *p;

	if (starved_ev != NULL) {
		clock_timer_free(starved_ev);
		starved_ev = NULL;
	}
	while ((p = TAILQ_FIRST(&env->peers)) != NULL) {
		p->state = PEER_CLOSING;
		peer_drop_streams(p, "shutting down");
		TAILQ_REMOVE(&env->peers, p, entry);
		peer_free(p);
	}
}

json_t *
peer_json_all(void)
{
	json_t *a = json_array();
	struct peer *p;

	TAILQ_FOREACH(p, &env->peers, entry)
		json_array_append_new(a, peer_json(p));
	return a;
}

void
peer_totals(struct peer_totals *t)
{
	struct peer *p;
	int i;

	memset(t, 0, sizeof(*t));
	TAILQ_FOREACH(p, &env->peers, entry) {
		t->links++;
		if (p->state == PEER_UP)
			t->up++;
		t->bytes_in += p->bytes_in;
		t->bytes_out += p->bytes_out;
	}
	t->tls_handshakes = peer_tls_handshakes;
	for (i = 0; i < TLS_REF_MAX && i < 8; i++)
		t->tls_refused[i] = peer_tls_refused[i];
}

/* Drain: tell every peer no new streams will be accepted. */
void
peer_goaway_all(const char *why)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	struct peer *p;
	int n;

	n = wire_enc_goaway(frame, sizeof(frame), WIRE_ABORT_SHUTDOWN, why);
	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->state == PEER_UP && n > 0)
			peer_send(p, frame, n);
}

static int
peer_same_tls(const struct tls_conf *a, const struct tls_conf *b)
{
	unsigned int i;

	if (a->enabled != b->enabled)
		return 0;
	if (!a->enabled)
		return 1;
	if (strcmp(a->ca, b->ca) || strcmp(a->cert, b->cert) ||
	    strcmp(a->key, b->key) || a->nallow != b->nallow)
		return 0;
	for (i = 0; i < a->nallow; i++)
		if (strcmp(a->allow[i], b->allow[i]) != 0)
			return 0;
	return 1;
}

/*
 * A reload: outbound links whose settings are unchanged stay; changed or
 * removed ones are retired (no new streams; closed when their streams
 * are done) and new ones are made.  The listener gets the new TLS
 * context for new connections.  Called with env->conf already the new
 * generation.
 */
int
peer_reconfigure(struct config *old, char *err, size_t errlen)
{
	const struct config *c = env->conf;
	const struct peer_conf *pc;
	struct peer *p, *next;
	SSL_CTX *ctx = NULL;

	/* The listener may be inherited (socket activation): no listen line. */
	if (c->tls.enabled && peer_listener != NULL &&
	    (ctx = tls_ctx_new(&c->tls, 1, c->path, err, errlen)) == NULL)
		return -1;
	if (peer_server_ctx != NULL)
		SSL_CTX_free(peer_server_ctx);
	peer_server_ctx = ctx;
	(void)old;
	for (p = TAILQ_FIRST(&env->peers); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		if (!p->outbound || p->retired)
			continue;
		pc = config_peer(c, p->name);
		if (pc != NULL && strcmp(pc->host, p->host) == 0 &&
		    strcmp(pc->port, p->port) == 0 &&
		    pc->rate_limit == p->rate_limit &&
		    peer_same_tls(&pc->tls, p->tlsc))
			continue;
		log_info("peer=%s retired by reload (%s)", p->name,
		    pc == NULL ? "removed" : "changed");
		p->retired = 1;
		if (p->state == PEER_DOWN || p->state == PEER_CONNECTING) {
			/* Nothing in flight that matters: go now. */
			p->state = p->state == PEER_DOWN ? PEER_CLOSING :
			    p->state;
			peer_drop(p, "removed from the config by a reload");
			if (p->state == PEER_DOWN)
				peer_close_final(p);
		} else
			peer_check_retired(p);
	}
	peer_start_outbound();
	return 0;
}

