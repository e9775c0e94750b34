/*
 * peer_in.c: inbound frames.  Reading and dispatching frames, PUTs
 * handed to the sink (peer_set_sink(): the sessions), DATA/END/ABORT/CREDIT
 * for inbound streams, and their credit reserved against max_buffered.
 */
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

#include "listener.h"
#include "log.h"
#include "peer.h"
#include "peer_int.h"
#include "daemon.h"
#include "stats.h"
#include "stream.h"
#include "upstream.h"
#include "util.h"

/*
 * Streams whose credit is held back because the daemon holds max_buffered
 * bytes: at the limit relayd stops granting credit instead of growing.
 */
struct instream_queue	peer_starved = TAILQ_HEAD_INITIALIZER(peer_starved);
struct clock_timer	*peer_starved_ev;

/*
 * Stream credit granted to peers and not yet used: the sum of every
 * instream's window, each capped by the bytes its PUT still declares (a
 * sender cannot use credit beyond its declared size: that is a size
 * error), so a one-byte PUT reserves one byte.  A grant (a new stream's
 * first window included) is made only if stream_total_held() +
 * peer_reserved + the grant fits in max_buffered.  A DATA frame's payload
 * stays reserved (instream.landing) from its header until its bytes are
 * in the buffer, so a byte is always counted once, as reserved or as
 * held, and buffered bytes from peers can never exceed max_buffered.
 */
static uint64_t			peer_reserved;
/* DATA of a stream that is gone is read into this and dropped. */
static uint8_t			peer_discard[WIRE_MAX_DATA];

static const struct session_upstream_ops instream_ops;

/* Who takes inbound PUTs; NULL until wired: PUTs are then refused. */
const struct peer_sink_ops	*peer_in_sink;

void
peer_set_sink(const struct peer_sink_ops *ops)
{
	peer_in_sink = ops;
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
void
peer_instream_unreserve(struct instream *in)
{
	peer_reserved -= in->reserved;
	in->reserved = 0;
	in->window = 0;
	in->landing = 0;
}

/*
 * Reserve what of window can still be used (at most the bytes left) and
 * the payload of the DATA frame being read.
 */
static void
instream_rereserve(struct instream *in)
{
	uint64_t	 want;

	want = in->window > 0 ? (uint64_t)in->window : 0;
	if (want > in->left)
		want = in->left;
	want += in->landing;
	peer_reserved = peer_reserved - in->reserved + want;
	in->reserved = want;
}

static void
instream_free(struct instream *in)
{
	struct peer *p = in->peer;

	if (in->starved) {
		TAILQ_REMOVE(&peer_starved, in, starved_entry);
		in->starved = 0;
	}
	peer_instream_unreserve(in);
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

/*
 * A RESULT is encoded here and copied into the link's output at once, so
 * one buffer serves every stream (the loop thread's alone): no 256 KiB
 * allocation per PUT.
 */
static uint8_t			peer_result_frame[WIRE_HDR_LEN + WIRE_MAX_BODY];
static struct wire_entry	peer_result_entries[WIRE_MAX_ENTRIES];

static void
instream_result(void *up, struct session *s, const struct session_entry *se,
    unsigned int n, int ok)
{
	struct instream *in = up;
	struct wire_entry *we = peer_result_entries;
	unsigned int i;
	int len;

	(void)s;
	(void)ok;
	if (in->peer == NULL)
		goto done;
	for (i = 0; i < n && i < WIRE_MAX_ENTRIES; i++) {
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
	/* More entries than a RESULT holds: the encoder refuses. */
	len = n > WIRE_MAX_ENTRIES ? -1 : wire_enc_result(peer_result_frame,
	    sizeof(peer_result_frame), in->id, we, n);
	if (len > 0)
		peer_send(in->peer, peer_result_frame, len);
	else
		peer_send_abort(in->peer, in->id, WIRE_ABORT_INTERNAL,
		    "RESULT does not fit a frame");
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
			TAILQ_INSERT_TAIL(&peer_starved, in, starved_entry);
			in->starved = 1;
		}
		/* Also retried on a timer: the memory may free elsewhere. */
		if (peer_starved_ev != NULL &&
		    !clock_timer_pending(peer_starved_ev))
			clock_timer_arm(peer_starved_ev, PEER_STARVED_RETRY);
	}
}

static void
peer_starved_retry(void)
{
	struct instream *in;

	while ((in = TAILQ_FIRST(&peer_starved)) != NULL &&
	    !peer_over_memory()) {
		TAILQ_REMOVE(&peer_starved, in, starved_entry);
		in->starved = 0;
		instream_grant(in);
	}
}

void
peer_starved_cb(void *arg)
{
	(void)arg;
	peer_starved_retry();
	if (!TAILQ_EMPTY(&peer_starved))
		clock_timer_arm(peer_starved_ev, PEER_STARVED_RETRY);
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
	if (!TAILQ_EMPTY(&peer_starved))
		peer_starved_retry();
}

static const struct session_upstream_ops instream_ops = {
	instream_result,
	instream_abort,
	instream_credit,
};

/* Open the PUT's stream in the sink: its handle, or NULL and why not. */
static void *
instream_open(struct peer *p, struct instream *in, const struct wire_put *put,
    uint16_t *code, char *err, size_t errlen)
{
	if (peer_in_sink == NULL) {
		*code = WIRE_ABORT_INTERNAL;
		snprintf(err, errlen, "no sink for inbound PUTs");
		return NULL;
	}
	return peer_in_sink->open(put, p->name, &instream_ops, in, code, err,
	    errlen);
}

/* The journal fields of a log line about an inbound PUT (log_put). */
static void
peer_log_put(const struct peer *p, const struct wire_put *put,
    const char *reason)
{
	char	hex[2 * WIRE_PUT_ID_LEN + 1];

	util_hex_encode(put->put_id, WIRE_PUT_ID_LEN, hex);
	log_put(hex, util_escn(put->key, put->key_len), p->name, reason);
}

static void
peer_on_put(struct peer *p, const struct wire_frame *f)
{
	struct instream *in;
	uint32_t id = f->hdr.stream;
	uint16_t code;
	char err[256];

	/*
	 * A PUT on a live stream's id is a connection error: an ABORT on
	 * that id would name the live stream too, and a peer could not tell
	 * which of the two it ended (relayd-protocol(7), Errors).  An id of
	 * relayd's own parity names no stream of the sender's: ABORT it.
	 */
	if (peer_find_in(p, id) != NULL) {
		snprintf(err, sizeof(err), "PUT on stream %u, which is in use",
		    id);
		peer_fail(p, err);
		return;
	}
	if (peer_is_ours(p, id)) {
		peer_send_abort(p, id, WIRE_ABORT_PROTOCOL,
		    "stream id of the receiver's parity");
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
		peer_log_put(p, &f->u.put, "max_buffered reached");
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
	if ((in->sink = instream_open(p, in, &f->u.put, &code, err,
	    sizeof(err))) == NULL) {
		peer_log_put(p, &f->u.put, err);
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
 * A DATA header: account for it and decide whether its payload goes to
 * the sink (0), is dropped (-1), or is a protocol error (-2: a stream that
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
	void *h;

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
		h = in->sink;
		peer_send_abort(p, id, WIRE_ABORT_LIMIT,
		    "DATA beyond the stream's credit");
		instream_free(in);
		peer_in_sink->lost(h, "upstream sent beyond its credit");
		return -1;
	}
	/* Bytes past the declared size are refused by the sink, not held. */
	in->landing = len < in->left ? len : in->left;
	in->window -= len;
	in->left -= in->landing;
	instream_rereserve(in);
	return 0;
}

/*
 * n bytes of the DATA frame being read are in the buffer (or refused):
 * their reservation ends.  The stream is looked up again, since the sink
 * may have failed and freed it.
 */
static void
peer_data_landed(struct peer *p, size_t n)
{
	struct instream *in;

	if ((in = peer_find_in(p, p->rx_id)) == NULL)
		return;
	in->landing -= n < in->landing ? n : in->landing;
	instream_rereserve(in);
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
		peer_data_landed(p, n);
		return;
	}
	/* May free `in` (the sink fails the stream and aborts upstream). */
	if (peer_in_sink->data(in->sink, input, n) == -1)
		p->rx_drop = 1;
	peer_data_landed(p, n);
}

/* Zero-copy receive: where the transport may put payload bytes now. */
void *
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
	return peer_in_sink->data_space(in->sink, p->rx_left, len);
}

void
peer_sunk(struct xport *xp, size_t n, void *arg)
{
	struct peer *p = arg;
	struct instream *in;

	(void)xp;
	p->rx_left -= n;
	p->last_rx = clock_mono();
	if (p->rx_drop || (in = peer_find_in(p, p->rx_id)) == NULL) {
		STATS_ADD(data_discarded, n);
		peer_data_landed(p, n);
		return;
	}
	if (peer_in_sink->data_commit(in->sink, n) == -1)
		p->rx_drop = 1;
	peer_data_landed(p, n);
}

static void
peer_on_abort(struct peer *p, const struct wire_frame *f)
{
	uint32_t id = f->hdr.stream;
	struct instream *in;
	struct peer_stream *ps;
	void *h;
	char why[WIRE_MAX_TEXT + 64];

	if (peer_is_ours(p, id)) {
		if ((ps = peer_find_stream(p, id)) != NULL)
			ps->ops->abort(ps->owner, f->u.text.code,
			    f->u.text.msg, f->u.text.msg_len);
		return;
	}
	if ((in = peer_find_in(p, id)) == NULL)
		return;
	snprintf(why, sizeof(why), "aborted by %s: %s: %.*s", p->name,
	    wire_abort_name(f->u.text.code), (int)f->u.text.msg_len,
	    f->u.text.msg);
	h = in->sink;
	instream_free(in);
	peer_in_sink->lost(h, why);
}


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
	struct peer_stream *ps;

	if (f->hdr.stream == 0) {
		if (p->conn_credit + f->u.credit > PEER_MAX_WINDOW) {
			peer_credit_overflow(p, 0, p->conn_credit, f->u.credit);
			return;
		}
		p->conn_credit += f->u.credit;
		while ((ps = TAILQ_FIRST(&p->conn_wait)) != NULL)
			peer_want_write(p, ps);
		return;
	}
	if (!peer_is_ours(p, f->hdr.stream) ||
	    (ps = peer_find_stream(p, f->hdr.stream)) == NULL)
		return;
	if (ps->window + f->u.credit > PEER_MAX_WINDOW) {
		peer_credit_overflow(p, f->hdr.stream, ps->window,
		    f->u.credit);
		return;
	}
	ps->window += f->u.credit;
	ps->ops->credit(ps->owner, f->u.credit);
}

/* A PING: answered with a PONG, or folded into the one still queued. */
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
	struct peer_stream *ps;

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
			peer_in_sink->end(in->sink);	/* may free in */
		break;
	case WIRE_ABORT:
		peer_on_abort(p, f);
		break;
	case WIRE_RESULT:
		if (peer_is_ours(p, f->hdr.stream) &&
		    (ps = peer_find_stream(p, f->hdr.stream)) != NULL)
			ps->ops->result(ps->owner, f);
		break;
	case WIRE_CREDIT:
		peer_on_credit(p, f);
		break;
	case WIRE_PING:
		peer_on_ping(p, f->u.ping);
		break;
	case WIRE_PONG:
		peer_on_pong(p, f->u.ping);
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
void
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
