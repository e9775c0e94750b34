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
#include "stats.h"
#include "stream.h"
#include "util.h"
#include "wire.h"

static void	pipe_timer_cb(void *);
static void	pipe_wake(struct stream_reader *, void *);
static enum peer_pull pipe_pull(void *, size_t);
static void	pipe_on_credit(void *, uint32_t);
static void	pipe_on_result(void *, const struct wire_frame *);
static void	pipe_on_abort(void *, uint16_t, const char *, size_t);
static void	pipe_on_lost(void *, const char *);

/* What the link calls on the stream a pipe embeds. */
static const struct peer_stream_ops pipe_stream_ops = {
	.pull = pipe_pull,
	.credit = pipe_on_credit,
	.result = pipe_on_result,
	.abort = pipe_on_abort,
	.lost = pipe_on_lost,
};

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

double
pipe_deadline(double base, uint8_t budget)
{
	unsigned int b = budget < PIPE_BLAME_HOPS ? budget : PIPE_BLAME_HOPS;

	return base + PIPE_BLAME_STEP(base) * b;
}

struct pipe *
pipe_new(const struct pipe_params *pp)
{
	struct pipe *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->timer = clock_timer_new(pipe_timer_cb, p)) == NULL) {
		free(p);
		return NULL;
	}
	p->ops = pp->ops;
	p->owner = pp->owner;
	p->out = pp->out;
	p->link = pp->link;
	p->reader = pp->reader;
	p->ps.ops = &pipe_stream_ops;
	p->ps.owner = p;
	snprintf(p->peer_name, sizeof(p->peer_name), "%s", pp->peer_name);
	p->key = pp->key;
	p->key_len = pp->key_len;
	memcpy(p->put_id, pp->put_id, sizeof(p->put_id));
	snprintf(p->put_hex, sizeof(p->put_hex), "%s", pp->put_hex);
	memcpy(p->sha256, pp->sha256, sizeof(p->sha256));
	p->hops = pp->hops;
	p->sess_id = pp->sess_id;
	p->inactivity = pp->inactivity;
	p->result_timeout = pp->result_timeout;
	p->state = PIPE_PENDING;
	p->started = p->last_progress = clock_mono();
	/* Subscribed from birth, so a failure before the link is up is seen. */
	stream_wait(p->reader, pipe_wake, p);
	clock_timer_arm(p->timer, p->inactivity);
	return p;
}

void
pipe_start(struct pipe *p)
{
	if (p->state != PIPE_PENDING || p->linked)
		return;
	p->linked = 1;
	p->out->attach(p->link, &p->ps);
}

static void
pipe_unlink(struct pipe *p)
{
	if (!p->linked)
		return;
	p->linked = 0;
	p->out->detach(&p->ps);
}

void
pipe_free(struct pipe *p)
{
	pipe_unlink(p);
	if (p->reader != NULL)
		stream_reader_free(p->reader);
	clock_timer_free(p->timer);
	free(p);
}

static void
pipe_send_abort(struct pipe *p, uint16_t code, const char *why)
{
	if (!p->linked || (p->state != PIPE_SENDING && p->state != PIPE_ENDED))
		return;
	STATS_CODE(forks_aborted, code);
	p->out->abort(&p->ps, code, why);
}

/* The fork is over: release what it holds and tell the owner once. */
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
	pipe_unlink(p);
	p->ops->done(p->owner, p, res, why);
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
	if (p->state == PIPE_SENDING && p->linked)
		p->out->want(&p->ps);
}

static int
pipe_send_put(struct pipe *p)
{
	struct stream_buf *buf = stream_reader_buf(p->reader);
	struct wire_put put;

	memset(&put, 0, sizeof(put));
	memcpy(put.put_id, p->put_id, sizeof(put.put_id));
	put.hops = p->hops;
	put.key = p->key;
	put.key_len = p->key_len;
	put.size = stream_buf_size(buf);
	memcpy(put.sha256, p->sha256, sizeof(put.sha256));
	if (!p->linked || p->out->put(&p->ps, &put) == -1)
		return -1;
	p->state = PIPE_SENDING;
	p->last_progress = clock_mono();
	return 0;
}

/* One DATA fragment of at most room bytes, by reference. */
static enum peer_pull
pipe_send_data(struct pipe *p, size_t room)
{
	struct stream_chunk *chunk;
	const uint8_t *data;
	size_t len;

	if (room == 0)
		return PEER_PULL_ROOM;	/* the link's credit requeues */
	if (room > WIRE_MAX_DATA)
		room = WIRE_MAX_DATA;
	len = stream_peek(p->reader, room, &data, &chunk);
	if (p->out->data(&p->ps, data, len, chunk) == -1) {
		pipe_finish(p, NULL, "link write failed");
		return PEER_PULL_DONE;
	}
	stream_consume(p->reader, len);
	p->bytes_out += len;
	STATS_ADD(payload_out, len);
	p->last_progress = clock_mono();
	p->ops->progress(p->owner);
	return p->state == PIPE_SENDING ? PEER_PULL_MORE : PEER_PULL_DONE;
}

/*
 * The link takes one frame: the PUT first, then DATA within room, END,
 * or ABORT if the upstream failed.  Waiting for data, it subscribes.
 */
static enum peer_pull
pipe_pull(void *arg, size_t room)
{
	struct pipe *p = arg;

	if (p->state == PIPE_PENDING) {
		if (pipe_send_put(p) == -1) {
			pipe_finish(p, NULL, "cannot send PUT");
			return PEER_PULL_DONE;
		}
		return PEER_PULL_MORE;
	}
	if (p->state != PIPE_SENDING)
		return PEER_PULL_DONE;
	for (;;) {
		switch (stream_state(p->reader)) {
		case STREAM_READY:
			return pipe_send_data(p, room);
		case STREAM_WAIT:
			if (stream_wait(p->reader, pipe_wake, p) ==
			    STREAM_WAIT)
				return PEER_PULL_WAIT;
			continue;
		case STREAM_EOF:
			p->out->end(&p->ps);
			p->state = PIPE_ENDED;
			clock_timer_arm(p->timer, p->result_timeout);
			return PEER_PULL_DONE;
		case STREAM_FAILED:
			pipe_send_abort(p, p->down_code != 0 ? p->down_code :
			    WIRE_ABORT_UPSTREAM_LOST, stream_buf_fail_reason(
			    stream_reader_buf(p->reader)));
			pipe_finish(p, NULL, "upstream failed");
			return PEER_PULL_DONE;
		case STREAM_CANCELLED:
			return PEER_PULL_DONE;
		}
	}
}

static void
pipe_on_credit(void *arg, uint32_t inc)
{
	struct pipe *p = arg;

	(void)inc;	/* the link keeps the window and offers it as room */
	if (p->state == PIPE_SENDING && p->linked)
		p->out->want(&p->ps);
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

static void
pipe_on_result(void *arg, const struct wire_frame *f)
{
	struct pipe *p = arg;
	char why[200];

	log_put(p->put_hex, util_escn(p->key, p->key_len), p->peer_name, NULL);
	log_debug("stream=%llu peer=%s result entries=%u bytes_out=%llu",
	    (unsigned long long)p->sess_id, p->peer_name,
	    f->u.result.count, (unsigned long long)p->bytes_out);
	if (pipe_result_check(p, f, why, sizeof(why)) == -1) {
		STATS_INC(results_refused);
		log_put(p->put_hex, util_escn(p->key, p->key_len),
		    p->peer_name, why);
		log_warnx("stream=%llu put=%s peer=%s result refused: %s",
		    (unsigned long long)p->sess_id, p->put_hex,
		    p->peer_name, why);
		/* The stream may still be open on its side (before END). */
		pipe_abort(p, WIRE_ABORT_PROTOCOL, why);
		return;
	}
	pipe_finish(p, f, NULL);
}

static void
pipe_on_abort(void *arg, uint16_t code, const char *msg, size_t msg_len)
{
	struct pipe *p = arg;
	char why[WIRE_MAX_TEXT + 128];

	snprintf(why, sizeof(why), "aborted by %s: %s: %.*s", p->peer_name,
	    wire_abort_name(code), (int)msg_len, msg);
	/* Kept whole: it may name the hop behind the next one. */
	p->peer_aborted = 1;
	p->fail_code = code;
	p->abort_len = msg_len < sizeof(p->abort_msg) ? msg_len :
	    sizeof(p->abort_msg);
	memcpy(p->abort_msg, msg, p->abort_len);
	log_put(p->put_hex, util_escn(p->key, p->key_len), p->peer_name, why);
	log_warnx("stream=%llu peer=%s %s bytes_out=%llu",
	    (unsigned long long)p->sess_id, p->peer_name, util_esc(why),
	    (unsigned long long)p->bytes_out);
	pipe_finish(p, NULL, why);
}

static void
pipe_on_lost(void *arg, const char *why)
{
	struct pipe *p = arg;
	char msg[256];

	p->linked = 0;		/* the link detached us already */
	if (p->state == PIPE_PENDING)
		snprintf(msg, sizeof(msg), "%s unreachable: %s",
		    p->peer_name, why);
	else
		snprintf(msg, sizeof(msg), "connection to %s lost after %llu "
		    "bytes: %s", p->peer_name,
		    (unsigned long long)p->bytes_out, why);
	pipe_finish(p, NULL, msg);
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
	if (p->state != PIPE_DONE)
		p->fail_code = code;
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
		    p->peer_name, p->result_timeout);
		limit = p->result_timeout;
	} else {
		snprintf(why, sizeof(why), "no progress to %s for %.1fs "
		    "(inactivity timeout)", p->peer_name, idle);
		limit = p->inactivity;
	}
	if (p->state != PIPE_ENDED && idle < limit - 0.001) {
		clock_timer_arm(p->timer, limit - idle);
		return;
	}
	log_put(p->put_hex, util_escn(p->key, p->key_len), p->peer_name, why);
	log_warnx("stream=%llu peer=%s pipe %s bytes_out=%llu buffered=%llu "
	    "age=%.3fs", (unsigned long long)p->sess_id, p->peer_name, why,
	    (unsigned long long)p->bytes_out, (unsigned long long)
	    stream_buf_held(stream_reader_buf(p->reader)), age);
	pipe_send_abort(p, WIRE_ABORT_TIMEOUT, why);
	p->fail_code = WIRE_ABORT_TIMEOUT;
	pipe_finish(p, NULL, why);
}
