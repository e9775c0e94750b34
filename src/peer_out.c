/*
 * peer_out.c: outbound.  Frames sent on the link, the fair scheduler
 * over its streams, the rate limit and the per-link output bound.
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

#include "log.h"
#include "peer.h"
#include "peer_int.h"
#include "daemon.h"
#include "stats.h"
#include "stream.h"

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

static int
peer_stream_data(struct peer_stream *ps, const uint8_t *data, size_t len,
    struct stream_chunk *chunk)
{
	struct peer *p = ps->peer;
	uint8_t hdr[WIRE_HDR_LEN];
	struct evbuffer *out;

	if (p == NULL || p->xp == NULL || p->state != PEER_UP)
		return -1;
	out = xport_output(p->xp);
	wire_enc_data_hdr(hdr, sizeof(hdr), ps->id, len);
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
	ps->window -= len;
	p->bytes_out += WIRE_HDR_LEN + len;
	return 0;
}

static int
peer_stream_put(struct peer_stream *ps, const struct wire_put *put)
{
	uint8_t frame[WIRE_HDR_LEN + 60 + WIRE_MAX_KEY];
	int n;

	if (ps->peer == NULL)
		return -1;
	n = wire_enc_put(frame, sizeof(frame), ps->id, put);
	if (n < 0 || peer_send(ps->peer, frame, n) == -1)
		return -1;
	ps->opened = 1;
	ps->window = ps->peer->remote_stream_window;
	return 0;
}

static int
peer_stream_end(struct peer_stream *ps)
{
	uint8_t frame[WIRE_HDR_LEN];

	if (ps->peer == NULL ||
	    wire_enc_end(frame, sizeof(frame), ps->id) <= 0)
		return -1;
	return peer_send(ps->peer, frame, WIRE_HDR_LEN);
}

static int
peer_stream_abort(struct peer_stream *ps, uint16_t code, const char *why)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	if (ps->peer == NULL || ps->id == 0)
		return -1;
	if ((n = wire_enc_abort(frame, sizeof(frame), ps->id, code,
	    why)) <= 0)
		return -1;
	return peer_send(ps->peer, frame, n);
}

void
peer_send_abort(struct peer *p, uint32_t id, uint16_t code, const char *msg)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	if ((n = wire_enc_abort(frame, sizeof(frame), id, code, msg)) > 0)
		peer_send(p, frame, n);
}

void
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

/* --- the send scheduler: fair round-robin over ready streams --- */

void
peer_dequeue(struct peer *p, struct peer_stream *ps)
{
	switch (ps->queued) {
	case PQ_READY:
		TAILQ_REMOVE(&p->ready, ps, ready_entry);
		break;
	case PQ_CONN_WAIT:
		TAILQ_REMOVE(&p->conn_wait, ps, ready_entry);
		break;
	case PQ_LINK_WAIT:
		TAILQ_REMOVE(&p->link_wait, ps, ready_entry);
		break;
	}
	ps->queued = PQ_NONE;
}

void
peer_schedule(struct peer *p)
{
	if (!event_pending(p->flush_ev, EV_TIMEOUT, NULL) &&
	    !TAILQ_EMPTY(&p->ready))
		event_active(p->flush_ev, 0, 0);
}

void
peer_want_write(struct peer *p, struct peer_stream *ps)
{
	if (ps->queued == PQ_READY || ps->queued == PQ_LINK_WAIT)
		return;
	peer_dequeue(p, ps);
	TAILQ_INSERT_TAIL(&p->ready, ps, ready_entry);
	ps->queued = PQ_READY;
	if (p->state == PEER_UP)
		peer_schedule(p);
}

static void
peer_stream_want(struct peer_stream *ps)
{
	if (ps->peer != NULL)
		peer_want_write(ps->peer, ps);
}

static void
peer_assign_id(struct peer *p, struct peer_stream *ps)
{
	ps->id = p->next_id;
	p->next_id += 2;
	if (p->next_id > 0x7ffffffe)	/* wrap, keeping the parity */
		p->next_id = p->outbound ? 1 : 2;
	LIST_INSERT_HEAD(&p->out_hash[ps->id % PEER_HASH], ps, hash_entry);
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

void
peer_rl_cb(void *arg)
{
	peer_schedule(arg);
}

/* Payload the stream may send now: its window, the link's, one frame. */
static size_t
peer_stream_room(const struct peer *p, const struct peer_stream *ps)
{
	int64_t room = ps->window;

	if (room > p->conn_credit)
		room = p->conn_credit;
	if (room > WIRE_MAX_DATA)
		room = WIRE_MAX_DATA;
	return room > 0 ? (size_t)room : 0;
}

/* After a pull: back on the ready queue, or waiting for which credit. */
static void
peer_requeue(struct peer *p, struct peer_stream *ps, enum peer_pull r)
{
	if (ps->peer != p || ps->queued != PQ_NONE)
		return;
	if (r == PEER_PULL_MORE) {
		TAILQ_INSERT_TAIL(&p->ready, ps, ready_entry);
		ps->queued = PQ_READY;
	} else if (r == PEER_PULL_ROOM && ps->window > 0) {
		/* Its own window is open: it waits for the link's. */
		TAILQ_INSERT_TAIL(&p->conn_wait, ps, ready_entry);
		ps->queued = PQ_CONN_WAIT;
	}
	/* Else its CREDIT, its data or nothing more requeues it. */
}

void
peer_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;
	struct evbuffer *out;
	struct peer_stream *ps;
	enum peer_pull r;
	size_t before;
	int budget = 4096;

	(void)fd;
	(void)ev;
	if (p->state != PEER_UP || p->xp == NULL)
		return;
	out = xport_output(p->xp);
	while ((ps = TAILQ_FIRST(&p->ready)) != NULL && budget-- > 0 &&
	    evbuffer_get_length(out) < PEER_OUT_HIGH && peer_rate_ok(p)) {
		peer_dequeue(p, ps);
		if (ps->id == 0)
			peer_assign_id(p, ps);
		before = evbuffer_get_length(out);
		r = ps->ops->pull(ps->owner, ps->opened ?
		    peer_stream_room(p, ps) : 0);
		if (p->rate_limit > 0 && p->xp != NULL)
			p->rl_tokens -= (double)evbuffer_get_length(out) -
			    (double)before;
		peer_requeue(p, ps, r);
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

static void
peer_stream_attach(struct peer *p, struct peer_stream *ps)
{
	if (p->state == PEER_DOWN && p->admin != PEER_ADMIN_ENABLED) {
		/* Not dialled while disabled or drained (peer.h). */
		ps->peer = NULL;
		ps->ops->lost(ps->owner, "peer is disabled by relayctl");
		return;
	}
	ps->peer = p;
	ps->id = 0;
	ps->opened = 0;
	ps->window = 0;
	ps->queued = PQ_NONE;
	ps->hash_entry.le_prev = NULL;
	p->nout++;
	if (p->state == PEER_UP) {
		TAILQ_INSERT_TAIL(&p->ready, ps, ready_entry);
		ps->queued = PQ_READY;
		peer_schedule(p);
		return;
	}
	TAILQ_INSERT_TAIL(&p->link_wait, ps, ready_entry);
	ps->queued = PQ_LINK_WAIT;
	if (p->state == PEER_DOWN) {
		clock_timer_disarm(p->timer);
		p->backoff_ms = PEER_BACKOFF_MIN;
		peer_connect(p);
	}
}

/*
 * A link retired by a reload, or drained by relayctl, closes once its
 * last stream is gone.
 */
void
peer_check_retired(struct peer *p)
{
	if (p->nin != 0 || p->nout != 0 || p->state == PEER_DOWN ||
	    p->state == PEER_CLOSING)
		return;
	if (p->retired)
		peer_linger_close(p, "removed from the config by a reload");
	else if (p->admin == PEER_ADMIN_DRAINING)
		peer_linger_close(p, "drained by relayctl");
}

static void
peer_stream_detach(struct peer_stream *ps)
{
	struct peer *p = ps->peer;

	if (p == NULL)
		return;
	peer_dequeue(p, ps);
	if (ps->id != 0 && ps->hash_entry.le_prev != NULL) {
		LIST_REMOVE(ps, hash_entry);
		ps->hash_entry.le_prev = NULL;
	}
	if (p->nout > 0)
		p->nout--;
	ps->peer = NULL;
	peer_check_retired(p);
}

struct peer_stream *
peer_find_stream(struct peer *p, uint32_t id)
{
	struct peer_stream *ps;

	LIST_FOREACH(ps, &p->out_hash[id % PEER_HASH], hash_entry)
		if (ps->id == id)
			return ps;
	return NULL;
}

const struct peer_output_ops peer_output = {
	.attach = peer_stream_attach,
	.detach = peer_stream_detach,
	.want = peer_stream_want,
	.put = peer_stream_put,
	.data = peer_stream_data,
	.end = peer_stream_end,
	.abort = peer_stream_abort,
};

/*
 * PONG, at most one in the output: a PING that arrives while our last
 * PONG has not left yet is folded into the next one (sent with the latest
 * value once the queued one has gone), so a peer that never reads cannot
 * make PONGs pile up.
 */
void
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

int
peer_pong_queued(const struct peer *p)
{
	return p->xp != NULL && p->pong_end != 0 &&
	    xport_out_drained(p->xp) < p->pong_end;
}

int
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
void
peer_output_watch(struct peer *p)
{
	if (p->xp == NULL || clock_timer_pending(p->out_ev) ||
	    evbuffer_get_length(xport_output(p->xp)) == 0)
		return;
	p->out_mark = xport_out_drained(p->xp);
	clock_timer_arm(p->out_ev, env->conf->output_timeout);
}

void
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

void
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

void
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
