#include <sys/queue.h>
#include <sys/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "peer.h"
#include "pipe.h"
#include "daemon.h"
#include "session.h"
#include "stats.h"
#include "stream.h"
#include "util.h"
#include "wire.h"

static void	pipe_timer_cb(void *);
static void	pipe_wake(struct stream_reader *, void *);

const char *
pipe_state_name(enum pipe_state st)
{
	switch (st) {
	case PIPE_PENDING:
		return "pending";
	case PIPE_SENDING:
		return "sending";
	case PIPE_ENDED:
		return "ended";
	case PIPE_DONE:
		return "done";
	}
	return "?";
}

struct pipe *
pipe_new(struct session *s, struct peer *peer, struct stream_reader *r)
{
	struct pipe *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->timer = clock_timer_new(pipe_timer_cb, p)) == NULL) {
		free(p);
		return NULL;
	}
	p->sess = s;
	p->peer = peer;
	p->reader = r;
	snprintf(p->peer_name, sizeof(p->peer_name), "%s", peer_name(peer));
	p->state = PIPE_PENDING;
	p->started = p->last_progress = clock_mono();
	/* Subscribed from birth, so a failure before the link is up is seen. */
	stream_wait(r, pipe_wake, p);
	clock_timer_arm(p->timer, session_inactivity(s));
	return p;
}

void
pipe_free(struct pipe *p)
{
	if (p->peer != NULL)
		peer_detach_pipe(p->peer, p);
	if (p->reader != NULL)
		stream_reader_free(p->reader);
	clock_timer_free(p->timer);
	free(p);
}

static void
pipe_send_abort(struct pipe *p, uint16_t code, const char *why)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	if (p->peer == NULL || p->stream_id == 0 ||
	    (p->state != PIPE_SENDING && p->state != PIPE_ENDED))
		return;
	STATS_CODE(forks_aborted, code);
	n = wire_enc_abort(frame, sizeof(frame), p->stream_id, code, why);
	if (n > 0)
		peer_send(p->peer, frame, n);
}

/* The fork is over: release what it holds and tell the session once. */
static void
pipe_finish(struct pipe *p, const struct wire_frame *res, const char *why)
{
	if (p->state == PIPE_DONE)
		return;
	p->state = PIPE_DONE;
	clock_timer_disarm(p->timer);
	snprintf(p->outcome, sizeof(p->outcome), "%s",
	    res != NULL ? "result" : why);
	stream_cancel(p->reader);
	if (p->peer != NULL) {
		peer_detach_pipe(p->peer, p);
		p->peer = NULL;
	}
	session_fork_done(p->sess, p, res, why);
}

static void
pipe_wake(struct stream_reader *r, void *arg)
{
	struct pipe *p = arg;
	enum stream_state st = stream_state(r);

	if (p->state == PIPE_PENDING) {
		/* No PUT went out yet, so there is nothing to abort. */
		if (st == STREAM_FAILED || st == STREAM_CANCELLED)
			pipe_finish(p, NULL, "stream failed before the link "
			    "was up");
		else
			stream_wait(r, pipe_wake, p);
		return;
	}
	if (p->state == PIPE_SENDING && p->peer != NULL)
		peer_want_write(p->peer, p);
}

static int
pipe_send_put(struct pipe *p)
{
	struct stream_buf *buf = stream_reader_buf(p->reader);
	const char *key = session_key(p->sess);
	struct wire_put put;
	uint8_t frame[WIRE_HDR_LEN + 60 + WIRE_MAX_KEY];
	int n;

	memset(&put, 0, sizeof(put));
	memcpy(put.put_id, session_put_id(p->sess), sizeof(put.put_id));
	put.hops = session_next_budget(p->sess);
	put.key = key;
	put.key_len = strlen(key);
	put.size = stream_buf_size(buf);
	memcpy(put.sha256, session_sha256(p->sess), sizeof(put.sha256));
	n = wire_enc_put(frame, sizeof(frame), p->stream_id, &put);
	if (n < 0 || peer_send(p->peer, frame, n) == -1)
		return -1;
	p->state = PIPE_SENDING;
	p->credit = peer_remote_stream_window(p->peer);
	p->last_progress = clock_mono();
	return 0;
}

int
pipe_send_one(struct pipe *p)
{
	const uint8_t *data;
	struct stream_chunk *chunk;
	uint8_t frame[WIRE_HDR_LEN];
	int64_t room;
	size_t len;

	if (p->state == PIPE_PENDING) {
		if (pipe_send_put(p) == -1) {
			pipe_finish(p, NULL, "cannot send PUT");
			return -1;
		}
		return 1;
	}
	if (p->state != PIPE_SENDING)
		return -1;
	for (;;) {
		switch (stream_state(p->reader)) {
		case STREAM_READY:
			if (p->credit <= 0)
				return 0;	/* pipe_on_credit requeues */
			room = peer_conn_credit(p->peer);
			if (room <= 0) {
				peer_wait_conn_credit(p->peer, p);
				return 0;
			}
			if (room > p->credit)
				room = p->credit;
			if (room > WIRE_MAX_DATA)
				room = WIRE_MAX_DATA;
			len = stream_peek(p->reader, room, &data, &chunk);
			if (peer_send_data(p->peer, p->stream_id, data, len,
			    chunk) == -1) {
				pipe_finish(p, NULL, "link write failed");
				return -1;
			}
			stream_consume(p->reader, len);
			p->credit -= len;
			p->bytes_out += len;
			STATS_ADD(payload_out, len);
			p->last_progress = clock_mono();
			session_progress(p->sess);
			return p->state == PIPE_SENDING ? 1 : -1;
		case STREAM_WAIT:
			if (stream_wait(p->reader, pipe_wake, p) ==
			    STREAM_WAIT)
				return 0;
			continue;
		case STREAM_EOF:
			if (wire_enc_end(frame, sizeof(frame),
			    p->stream_id) > 0)
				peer_send(p->peer, frame, WIRE_HDR_LEN);
			p->state = PIPE_ENDED;
			clock_timer_arm(p->timer,
			    session_result_timeout(p->sess));
			return -1;
		case STREAM_FAILED:
			pipe_send_abort(p, WIRE_ABORT_UPSTREAM_LOST,
			    stream_buf_fail_reason(
			    stream_reader_buf(p->reader)));
			pipe_finish(p, NULL, "upstream failed");
			return -1;
		case STREAM_CANCELLED:
			return -1;
		}
	}
}

void
pipe_on_credit(struct pipe *p, uint32_t inc)
{
	p->credit += inc;
	if (p->state == PIPE_SENDING && p->peer != NULL)
		peer_want_write(p->peer, p);
}

/*
 * A RESULT is the next hop's claim; check it against what this relay
 * sent before anything of it goes upstream.  It must come after END, its
 * first entry must be the hop's own (depth 0) with exactly the bytes sent
 * to it, no later entry may pose as depth 0, and no hop may claim to have
 * stored or forwarded a payload of another size.  A claim that fails is
 * that peer's protocol violation.  0, or -1 with why.
 */
static int
pipe_result_check(struct pipe *p, const struct wire_frame *f, char *why,
    size_t len)
{
	uint64_t size = stream_buf_size(stream_reader_buf(p->reader));
	struct wire_entry we;
	unsigned int i;

	if (p->state != PIPE_ENDED) {
		snprintf(why, len, "next hop %s sent RESULT before END",
		    p->peer_name);
		return -1;
	}
	if (f->u.result.count == 0 || wire_result_entry(f, 0, &we) != 0 ||
	    we.depth != 0) {
		snprintf(why, len, "next hop %s sent RESULT without its own "
		    "entry first", p->peer_name);
		return -1;
	}
	if (we.bytes != p->bytes_out) {
		snprintf(why, len, "next hop %s sent RESULT claiming %llu "
		    "bytes received, %llu were sent", p->peer_name,
		    (unsigned long long)we.bytes,
		    (unsigned long long)p->bytes_out);
		return -1;
	}
	for (i = 0; i < f->u.result.count; i++) {
		if (wire_result_entry(f, i, &we) != 0)
			break;
		if (i > 0 && we.depth == 0) {
			snprintf(why, len, "next hop %s sent RESULT with a "
			    "second depth-0 entry", p->peer_name);
			return -1;
		}
		if (we.status != WIRE_RES_FAILED && we.bytes != size) {
			snprintf(why, len, "next hop %s sent RESULT claiming "
			    "%s with %llu of %llu bytes at depth %u",
			    p->peer_name, we.status == WIRE_RES_STORED ?
			    "stored" : "forwarded",
			    (unsigned long long)we.bytes,
			    (unsigned long long)size, we.depth);
			return -1;
		}
	}
	return 0;
}

void
pipe_on_result(struct pipe *p, const struct wire_frame *f)
{
	char why[200];

	log_debug("stream=%llu peer=%s result entries=%u bytes_out=%llu",
	    (unsigned long long)session_id(p->sess), p->peer_name,
	    f->u.result.count, (unsigned long long)p->bytes_out);
	if (pipe_result_check(p, f, why, sizeof(why)) == -1) {
		STATS_INC(results_refused);
		log_warnx("stream=%llu put=%s peer=%s result refused: %s",
		    (unsigned long long)session_id(p->sess),
		    session_put_hex(p->sess), p->peer_name, why);
		/* The stream may still be open on its side (before END). */
		pipe_abort(p, WIRE_ABORT_PROTOCOL, why);
		return;
	}
	pipe_finish(p, f, NULL);
}

void
pipe_on_abort(struct pipe *p, uint16_t code, const char *msg,
    size_t msg_len)
{
	char why[WIRE_MAX_TEXT + 128];

	snprintf(why, sizeof(why), "aborted by %s: %s: %.*s", p->peer_name,
	    wire_abort_name(code), (int)msg_len, msg);
	log_warnx("stream=%llu peer=%s %s bytes_out=%llu",
	    (unsigned long long)session_id(p->sess), p->peer_name,
	    util_esc(why), (unsigned long long)p->bytes_out);
	pipe_finish(p, NULL, why);
}

void
pipe_on_lost(struct pipe *p, const char *why)
{
	p->peer = NULL;		/* the peer detached us already */
	pipe_finish(p, NULL, why);
}

void
pipe_cancel(struct pipe *p, const char *why)
{
	pipe_abort(p, WIRE_ABORT_TIMEOUT, why);
}

void
pipe_abort(struct pipe *p, uint16_t code, const char *why)
{
	pipe_send_abort(p, code, why);
	pipe_finish(p, NULL, why);
}

static void
pipe_timer_cb(void *arg)
{
	struct pipe *p = arg;
	double idle, limit, age;
	char why[200];

	idle = clock_mono() - p->last_progress;
	age = clock_mono() - p->started;
	if (p->state == PIPE_ENDED) {
		snprintf(why, sizeof(why), "no result from %s within %.1fs",
		    p->peer_name, session_result_timeout(p->sess));
		limit = session_result_timeout(p->sess);
	} else {
		snprintf(why, sizeof(why), "no progress to %s for %.1fs "
		    "(inactivity timeout)", p->peer_name, idle);
		limit = session_inactivity(p->sess);
	}
	if (p->state != PIPE_ENDED && idle < limit - 0.001) {
		clock_timer_arm(p->timer, limit - idle);
		return;
	}
	log_warnx("stream=%llu peer=%s pipe %s bytes_out=%llu buffered=%llu "
	    "age=%.3fs", (unsigned long long)session_id(p->sess),
	    p->peer_name, why, (unsigned long long)p->bytes_out,
	    (unsigned long long)session_held(p->sess), age);
	pipe_send_abort(p, WIRE_ABORT_TIMEOUT, why);
	pipe_finish(p, NULL, why);
}
