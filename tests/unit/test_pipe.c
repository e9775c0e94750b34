/*
 * Unit tests for pipe, alone: no peer, no session.  The pipe's output is
 * a fake peer_output_ops table that records every frame it is asked to
 * send, its owner a fake pipe_owner_ops that records done and progress,
 * and the tests play the link's scheduler by calling the upcalls of the
 * stream the pipe embeds (pull with the room they choose, credit,
 * result, abort, lost).  Every timeout runs on the fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "log.h"
#include "peer.h"
#include "pipe.h"
#include "stream.h"
#include "wire.h"

#define INACTIVITY	3.0
#define RESULT_WAIT	5.0
#define PAYLOAD		(3 * 64 * 1024 + 123)

/* What the fake output and the fake owner saw. */
struct fake {
	int		 attached;
	int		 detached;
	int		 wants;
	int		 puts;
	struct wire_put	 put;
	int		 ends;
	int		 aborts;
	uint16_t	 abort_code;
	char		 abort_msg[256];
	size_t		 max_room;	/* the room of the pull under way */
	int		 over_room;	/* a DATA larger than that room */
	uint8_t		 data[PAYLOAD];
	size_t		 datalen;
	int		 fail_data;	/* the next data() fails */
	int		 done;
	int		 done_res;	/* done with a RESULT */
	char		 why[512];
	int		 progress;
};

static struct fake	 fk;
static struct peer	*fake_link = (struct peer *)&fk;	/* never read */
static uint8_t		 payload[PAYLOAD];

static void
fo_attach(struct peer *p, struct peer_stream *ps)
{
	assert_ptr_equal(p, fake_link);
	ps->peer = p;
	ps->id = 1;
	fk.attached++;
}

static void
fo_detach(struct peer_stream *ps)
{
	ps->peer = NULL;
	fk.detached++;
}

static void
fo_want(struct peer_stream *ps)
{
	(void)ps;
	fk.wants++;
}

static int
fo_put(struct peer_stream *ps, const struct wire_put *put)
{
	(void)ps;
	fk.puts++;
	fk.put = *put;
	return 0;
}

static int
fo_data(struct peer_stream *ps, const uint8_t *data, size_t len,
    struct stream_chunk *chunk)
{
	(void)ps;
	assert_non_null(chunk);
	if (fk.fail_data) {
		fk.fail_data = 0;
		return -1;
	}
	if (len > fk.max_room || len == 0)
		fk.over_room++;
	assert_true(fk.datalen + len <= sizeof(fk.data));
	memcpy(fk.data + fk.datalen, data, len);
	fk.datalen += len;
	return 0;
}

static int
fo_end(struct peer_stream *ps)
{
	(void)ps;
	fk.ends++;
	return 0;
}

static int
fo_abort(struct peer_stream *ps, uint16_t code, const char *why)
{
	(void)ps;
	fk.aborts++;
	fk.abort_code = code;
	snprintf(fk.abort_msg, sizeof(fk.abort_msg), "%s", why);
	return 0;
}

static const struct peer_output_ops fake_output = {
	.attach = fo_attach,
	.detach = fo_detach,
	.want = fo_want,
	.put = fo_put,
	.data = fo_data,
	.end = fo_end,
	.abort = fo_abort,
};

static void
fw_done(void *owner, struct pipe *p, const struct wire_frame *res,
    const char *why)
{
	assert_ptr_equal(owner, &fk);
	assert_non_null(p);
	fk.done++;
	fk.done_res = res != NULL;
	snprintf(fk.why, sizeof(fk.why), "%s", why != NULL ? why : "");
}

static void
fw_progress(void *owner)
{
	assert_ptr_equal(owner, &fk);
	fk.progress++;
}

static const struct pipe_owner_ops fake_owner = {
	.done = fw_done,
	.progress = fw_progress,
};

/* A pipe on a fresh buffer of size bytes (chunks of chunk bytes). */
static struct pipe *
new_pipe(uint64_t size, size_t chunk, struct stream_buf **bufp)
{
	static const uint8_t put_id[WIRE_PUT_ID_LEN] = { 1, 2, 3 };
	static const uint8_t sha[WIRE_SHA256_LEN] = { 9, 8, 7 };
	struct pipe_params pp;
	struct stream_buf *buf;
	struct stream_reader *r;
	struct pipe *p;

	memset(&fk, 0, sizeof(fk));
	assert_non_null(buf = stream_buf_new(size, chunk));
	assert_non_null(r = stream_reader_new(buf));
	memset(&pp, 0, sizeof(pp));
	pp.ops = &fake_owner;
	pp.owner = &fk;
	pp.reader = r;
	pp.out = &fake_output;
	pp.link = fake_link;
	pp.peer_name = "n";
	pp.key = "some/key";
	pp.key_len = strlen(pp.key);
	pp.put_id = put_id;
	pp.put_hex = "010203";
	pp.sha256 = sha;
	pp.hops = 7;
	pp.sess_id = 42;
	pp.inactivity = INACTIVITY;
	pp.result_timeout = RESULT_WAIT;
	assert_non_null(p = pipe_new(&pp));
	pipe_start(p);
	assert_int_equal(fk.attached, 1);
	*bufp = buf;
	return p;
}

/* The link's scheduler, one pull with that much room. */
static enum peer_pull
pull(struct pipe *p, size_t room)
{
	fk.max_room = room;
	return p->ps.ops->pull(p->ps.owner, room);
}

/* The PUT goes out on the first pull, whatever the room. */
static struct pipe *
new_sending(uint64_t size, size_t chunk, struct stream_buf **bufp)
{
	struct pipe *p = new_pipe(size, chunk, bufp);

	assert_int_equal(pull(p, 0), PEER_PULL_MORE);
	assert_int_equal(fk.puts, 1);
	assert_int_equal(fk.put.hops, 7);
	assert_int_equal(fk.put.size, size);
	assert_int_equal(fk.put.key_len, strlen("some/key"));
	assert_memory_equal(fk.put.key, "some/key", fk.put.key_len);
	assert_int_equal(fk.put.put_id[2], 3);
	assert_int_equal(fk.put.sha256[0], 9);
	assert_int_equal(p->state, PIPE_SENDING);
	return p;
}

static void
done_pipe(struct pipe *p, struct stream_buf *buf)
{
	pipe_free(p);
	stream_buf_unref(buf);
}

/*
 * Credit: the pipe sends no more than the room each pull offers (the
 * link's window), stops when it is 0 and asks to be scheduled again
 * when credit comes.
 */
static void
test_credit(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;
	size_t window = 3000, before;
	enum peer_pull r;

	(void)state;
	/* One chunk for it all: only the room bounds a frame. */
	p = new_sending(PAYLOAD, PAYLOAD, &buf);
	assert_int_equal(stream_append(buf, payload, PAYLOAD), 0);
	while ((r = pull(p, window < 1000 ? window : 1000)) ==
	    PEER_PULL_MORE)
		window = 3000 - fk.datalen;
	assert_int_equal(r, PEER_PULL_ROOM);
	assert_int_equal(fk.datalen, 3000);
	assert_int_equal(fk.over_room, 0);
	/* No room: nothing more, however often it is pulled. */
	assert_int_equal(pull(p, 0), PEER_PULL_ROOM);
	assert_int_equal(fk.datalen, 3000);
	/* CREDIT: the pipe asks for the link again. */
	before = fk.wants;
	p->ps.ops->credit(p->ps.owner, 5000);
	assert_int_equal(fk.wants, before + 1);
	assert_int_equal(pull(p, 5000), PEER_PULL_MORE);
	assert_int_equal(fk.datalen, 8000);
	/* A room above a frame's payload: one frame of at most that. */
	assert_int_equal(pull(p, 10 * WIRE_MAX_DATA), PEER_PULL_MORE);
	assert_int_equal(fk.datalen - 8000, WIRE_MAX_DATA);
	assert_int_equal(fk.over_room, 0);
	assert_true(fk.progress >= 3);
	assert_int_equal(fk.done, 0);
	done_pipe(p, buf);
	assert_int_equal(fk.detached, 1);
}

/*
 * Data path, cut-through: bytes appended in pieces while the pipe
 * sends, across chunk boundaries, reach the output whole and in order;
 * then END, and a RESULT that matches ends the fork with it.
 */
static void
test_data_path(void **state)
{
	struct wire_entry we;
	struct wire_frame f;
	struct stream_buf *buf;
	struct pipe *p;
	uint8_t frame[512];
	size_t off = 0, piece = 1;
	int wants, n;

	(void)state;
	p = new_sending(PAYLOAD, 4096, &buf);
	assert_int_equal(pull(p, 1000), PEER_PULL_WAIT);	/* no data */
	while (off < PAYLOAD) {
		size_t len = piece < PAYLOAD - off ? piece : PAYLOAD - off;

		wants = fk.wants;
		assert_int_equal(stream_append(buf, payload + off, len), 0);
		off += len;
		assert_int_equal(fk.wants, wants + 1);	/* woken */
		while (pull(p, 777) == PEER_PULL_MORE)
			;
		piece = piece * 3 + 1;
	}
	assert_int_equal(fk.datalen, PAYLOAD);
	assert_memory_equal(fk.data, payload, PAYLOAD);
	assert_int_equal(fk.over_room, 0);
	assert_int_equal(stream_finish(buf), 0);
	assert_int_equal(pull(p, 777), PEER_PULL_DONE);
	assert_int_equal(fk.ends, 1);
	assert_int_equal(p->state, PIPE_ENDED);
	memset(&we, 0, sizeof(we));
	we.status = WIRE_RES_STORED;
	we.bytes = PAYLOAD;
	we.node = "n";
	we.node_len = 1;
	n = wire_enc_result(frame, sizeof(frame), p->ps.id, &we, 1);
	assert_true(n > 0);
	assert_int_equal(wire_decode(frame, n, &f), n);
	p->ps.ops->result(p->ps.owner, &f);
	assert_int_equal(fk.done, 1);
	assert_int_equal(fk.done_res, 1);
	assert_int_equal(fk.detached, 1);
	assert_int_equal(fk.aborts, 0);
	done_pipe(p, buf);
	assert_int_equal(fk.detached, 1);
}

/*
 * Inactivity: a pipe that cannot send (no room) fails after
 * INACTIVITY with no progress, not before; progress moves the bound.
 */
static void
test_inactivity(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_sending(PAYLOAD, 0, &buf);
	assert_int_equal(stream_append(buf, payload, 1000), 0);
	clock_fake_advance(INACTIVITY - 1.0);
	assert_int_equal(pull(p, 500), PEER_PULL_MORE);	/* progress */
	assert_int_equal(pull(p, 0), PEER_PULL_ROOM);
	clock_fake_advance(INACTIVITY - 0.1);
	assert_int_equal(fk.done, 0);
	clock_fake_advance(0.2);
	assert_int_equal(fk.done, 1);
	assert_non_null(strstr(fk.why, "no progress to n for 3.0s "
	    "(inactivity timeout)"));
	assert_int_equal(fk.aborts, 1);
	assert_int_equal(fk.abort_code, WIRE_ABORT_TIMEOUT);
	assert_string_equal(fk.abort_msg, fk.why);
	assert_int_equal(fk.detached, 1);
	assert_int_equal(p->state, PIPE_DONE);
	/* Done is final: later upcalls and time change nothing. */
	assert_int_equal(pull(p, 500), PEER_PULL_DONE);
	clock_fake_advance(2 * INACTIVITY);
	assert_int_equal(fk.done, 1);
	done_pipe(p, buf);
}

/* A pipe that never got its link up fails on the same bound. */
static void
test_inactivity_pending(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_pipe(PAYLOAD, 0, &buf);
	clock_fake_advance(INACTIVITY + 0.1);
	assert_int_equal(fk.done, 1);
	assert_non_null(strstr(fk.why, "(inactivity timeout)"));
	assert_int_equal(fk.aborts, 0);		/* no PUT went out */
	done_pipe(p, buf);
}

/* After END, no RESULT within RESULT_WAIT fails the fork, not before. */
static void
test_result_timeout(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_sending(100, 0, &buf);
	assert_int_equal(stream_append(buf, payload, 100), 0);
	assert_int_equal(stream_finish(buf), 0);
	assert_int_equal(pull(p, 1000), PEER_PULL_MORE);
	assert_int_equal(pull(p, 1000), PEER_PULL_DONE);
	assert_int_equal(fk.ends, 1);
	/* The result wait replaces the inactivity bound. */
	clock_fake_advance(RESULT_WAIT - 0.1);
	assert_int_equal(fk.done, 0);
	clock_fake_advance(0.2);
	assert_int_equal(fk.done, 1);
	assert_int_equal(fk.done_res, 0);
	assert_string_equal(fk.why, "no result from n within 5.0s");
	assert_int_equal(fk.aborts, 1);
	assert_int_equal(fk.abort_code, WIRE_ABORT_TIMEOUT);
	done_pipe(p, buf);
}

/* pipe_abort: ABORT downstream with its code, done once. */
static void
test_abort_local(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_sending(PAYLOAD, 0, &buf);
	pipe_abort(p, WIRE_ABORT_LIMIT, "slow next hop");
	assert_int_equal(fk.done, 1);
	assert_string_equal(fk.why, "slow next hop");
	assert_int_equal(fk.aborts, 1);
	assert_int_equal(fk.abort_code, WIRE_ABORT_LIMIT);
	pipe_abort(p, WIRE_ABORT_LIMIT, "again");
	pipe_cancel(p, "and again");
	assert_int_equal(fk.done, 1);
	assert_int_equal(fk.aborts, 1);
	clock_fake_advance(2 * RESULT_WAIT);
	assert_int_equal(fk.done, 1);
	done_pipe(p, buf);
	assert_int_equal(fk.detached, 1);
}

/* ABORT from the next hop: done once with its reason, none sent back. */
static void
test_abort_remote(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_sending(PAYLOAD, 0, &buf);
	p->ps.ops->abort(p->ps.owner, WIRE_ABORT_INTERNAL, "disk full", 9);
	assert_int_equal(fk.done, 1);
	assert_non_null(strstr(fk.why, "aborted by n: "));
	assert_non_null(strstr(fk.why, ": disk full"));
	assert_int_equal(fk.aborts, 0);
	assert_int_equal(fk.detached, 1);
	/* The text is kept whole for the owner: it may blame a hop. */
	assert_int_equal(p->peer_aborted, 1);
	assert_int_equal(p->fail_code, WIRE_ABORT_INTERNAL);
	assert_int_equal(p->abort_len, 9);
	assert_memory_equal(p->abort_msg, "disk full", 9);
	pipe_abort(p, WIRE_ABORT_TIMEOUT, "late");
	assert_int_equal(fk.done, 1);
	assert_int_equal(fk.aborts, 0);
	assert_int_equal(p->fail_code, WIRE_ABORT_INTERNAL);	/* first */
	done_pipe(p, buf);
}

/*
 * Blame by construction: the deadline grows with the hop budget, by at
 * least a step a hop up to PIPE_BLAME_HOPS, then stays; it is never
 * below the base and never above base + 1 s (base + base / 2 below
 * 2 s), whatever the budget.
 */
static void
test_deadline_by_depth(void **state)
{
	static const double bases[] = { 0.2, 1.0, 2.0, 3.0, 30.0 };
	unsigned int i, b;
	double base, d, prev, cap;

	(void)state;
	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		base = bases[i];
		cap = base < 2.0 ? base * 1.5 : base + 1.0;
		prev = -1;
		for (b = 0; b <= 255; b++) {
			d = pipe_deadline(base, (uint8_t)b);
			assert_true(d >= base);
			assert_true(d <= cap + 1e-9);
			if (b > 0 && b <= PIPE_BLAME_HOPS)
				assert_true(d - prev >= PIPE_BLAME_STEP(base) -
				    1e-9);
			else if (b > PIPE_BLAME_HOPS)
				assert_true(d == prev);
			prev = d;
		}
		assert_true(pipe_deadline(base, 0) == base);
	}
	/* The step the system tests rely on: 1/20 s at a 2 s base. */
	assert_true(PIPE_BLAME_STEP(2.0) > 0.0499 &&
	    PIPE_BLAME_STEP(2.0) < 0.0501);
}

/* A fork that times out tells its owner the code its upstream hears. */
static void
test_timeout_code(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_sending(PAYLOAD, 0, &buf);
	assert_int_equal(stream_append(buf, payload, 1000), 0);
	assert_int_equal(pull(p, 0), PEER_PULL_ROOM);
	assert_int_equal(p->fail_code, 0);
	clock_fake_advance(INACTIVITY + 0.1);
	assert_int_equal(fk.done, 1);
	assert_int_equal(p->fail_code, WIRE_ABORT_TIMEOUT);
	assert_int_equal(p->peer_aborted, 0);
	done_pipe(p, buf);
}

/* The link is lost: before the PUT it was unreachable, after it the
 * reason counts the bytes sent; no detach (the link did it), once. */
static void
test_lost(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;

	(void)state;
	p = new_pipe(PAYLOAD, 0, &buf);
	p->ps.ops->lost(p->ps.owner, "connect: refused");
	assert_int_equal(fk.done, 1);
	assert_string_equal(fk.why, "n unreachable: connect: refused");
	done_pipe(p, buf);
	assert_int_equal(fk.detached, 0);

	p = new_sending(PAYLOAD, 0, &buf);
	assert_int_equal(stream_append(buf, payload, 2000), 0);
	assert_int_equal(pull(p, 1500), PEER_PULL_MORE);
	p->ps.ops->lost(p->ps.owner, "reset");
	assert_int_equal(fk.done, 1);
	assert_string_equal(fk.why, "connection to n lost after 1500 "
	    "bytes: reset");
	assert_int_equal(fk.aborts, 0);
	pipe_abort(p, WIRE_ABORT_TIMEOUT, "late");
	clock_fake_advance(2 * INACTIVITY);
	assert_int_equal(fk.done, 1);
	done_pipe(p, buf);
	assert_int_equal(fk.detached, 0);
}

/* Upstream failure: ABORT downstream (upstream lost), done once; and a
 * failed link write fails the fork. */
static void
test_upstream_failed(void **state)
{
	struct stream_buf *buf;
	struct pipe *p;
	int wants;

	(void)state;
	p = new_sending(PAYLOAD, 0, &buf);
	assert_int_equal(pull(p, 1000), PEER_PULL_WAIT);
	wants = fk.wants;
	stream_fail(buf, "upstream gone");
	assert_int_equal(fk.wants, wants + 1);
	assert_int_equal(pull(p, 1000), PEER_PULL_DONE);
	assert_int_equal(fk.done, 1);
	assert_string_equal(fk.why, "upstream failed");
	assert_int_equal(fk.aborts, 1);
	assert_int_equal(fk.abort_code, WIRE_ABORT_UPSTREAM_LOST);
	assert_string_equal(fk.abort_msg, "upstream gone");
	done_pipe(p, buf);

	/* The owner's code for a silent upstream: timeout, not lost. */
	p = new_sending(PAYLOAD, 0, &buf);
	p->down_code = WIRE_ABORT_TIMEOUT;
	stream_fail(buf, "no data for 3.0s");
	assert_int_equal(pull(p, 1000), PEER_PULL_DONE);
	assert_int_equal(fk.aborts, 1);
	assert_int_equal(fk.abort_code, WIRE_ABORT_TIMEOUT);
	done_pipe(p, buf);

	p = new_sending(PAYLOAD, 0, &buf);
	assert_int_equal(stream_append(buf, payload, 100), 0);
	fk.fail_data = 1;
	assert_int_equal(pull(p, 1000), PEER_PULL_DONE);
	assert_int_equal(fk.done, 1);
	assert_string_equal(fk.why, "link write failed");
	done_pipe(p, buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_credit),
		cmocka_unit_test(test_data_path),
		cmocka_unit_test(test_inactivity),
		cmocka_unit_test(test_inactivity_pending),
		cmocka_unit_test(test_deadline_by_depth),
		cmocka_unit_test(test_timeout_code),
		cmocka_unit_test(test_result_timeout),
		cmocka_unit_test(test_abort_local),
		cmocka_unit_test(test_abort_remote),
		cmocka_unit_test(test_lost),
		cmocka_unit_test(test_upstream_failed),
	};
	size_t i;

	log_init("test_pipe", 1, LOG_LVL_WARN);
	clock_fake_enable(1000.0, 5000000);
	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 2654435761u >> 13);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
