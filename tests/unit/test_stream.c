/*
 * Unit tests for the stream module: independent readers, notification on
 * the buffer, completion before cancellation, bounded memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stream.h"

struct wake_count {
	unsigned int	 calls;
	unsigned int	 max_calls;	/* 0: no limit */
	unsigned int	 max_waiters;
	int		 resubscribe;
	int		 cancel;
	uint64_t	 drained;
};

struct release_sum {
	uint64_t	 total;
	unsigned int	 calls;
};

static void
pattern_fill(uint8_t *p, size_t len, uint32_t seed)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static uint8_t *
pattern_new(size_t len, uint32_t seed)
{
	uint8_t	*p;

	p = malloc(len > 0 ? len : 1);
	assert_non_null(p);
	pattern_fill(p, len, seed);
	return (p);
}

static void
on_release(struct stream_buf *b, uint64_t released, void *arg)
{
	struct release_sum	*s = arg;

	(void)b;
	assert_true(released > 0);
	s->total += released;
	s->calls++;
}

static void
on_wake(struct stream_reader *r, void *arg)
{
	struct wake_count	*w = arg;
	uint8_t			 tmp[64];
	struct stream_buf	*b = stream_reader_buf(r);

	assert_false(stream_waiting(r));
	w->calls++;
	if (w->max_calls != 0)
		assert_true(w->calls <= w->max_calls);
	w->drained += stream_read(r, tmp, sizeof(tmp));
	if (w->cancel)
		stream_cancel(r);
	if (w->resubscribe)
		stream_wait(r, on_wake, w);
	if (stream_buf_waiters(b) > w->max_waiters)
		w->max_waiters = stream_buf_waiters(b);
}

/* Read everything r can reach now into out at its offset. */
static void
drain(struct stream_reader *r, uint8_t *out, size_t max_step)
{
	const uint8_t		*p;
	struct stream_chunk	*c;
	size_t			 n;
	uint64_t		 off;

	for (;;) {
		off = stream_offset(r);
		n = stream_peek(r, max_step, &p, &c);
		if (n == 0)
			break;
		assert_non_null(p);
		assert_non_null(c);
		memcpy(out + off, p, n);
		stream_consume(r, n);
		assert_int_equal(stream_offset(r), off + n);
	}
}

static void
test_fork_survives_original_cancel_writer_unref_and_free(void **state)
{
	struct stream_buf	*b, *upstream;
	struct stream_reader	*r, *f;
	uint8_t			*src, *dst;
	size_t			 size = 3 * 1000 + 17;

	(void)state;
	src = pattern_new(size, 1);
	dst = calloc(1, size);
	assert_non_null(dst);
	assert_non_null(b = stream_buf_new(size, 1000));
	upstream = b;
	stream_buf_ref(upstream);
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_append(upstream, src, 1500), 0);
	assert_non_null(f = stream_fork(r));
	stream_cancel(r);
	assert_int_equal(stream_state(r), STREAM_CANCELLED);
	assert_false(stream_cancelled(f));
	assert_int_equal(stream_append(upstream, src + 1500, size - 1500), 0);
	assert_int_equal(stream_finish(upstream), 0);
	stream_buf_unref(upstream);	/* the upstream connection goes */
	stream_buf_unref(b);		/* and the writer's handle */
	stream_reader_free(r);
	assert_int_equal(stream_state(f), STREAM_READY);
	assert_int_equal(stream_read(f, dst, size + 10), size);
	assert_int_equal(stream_state(f), STREAM_EOF);
	assert_memory_equal(src, dst, size);
	stream_reader_free(f);
	free(src);
	free(dst);
}

static void
test_fork_reads_fragments_appended_after_original_cancelled(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f;
	uint8_t			*src, dst[500];
	size_t			 i;

	(void)state;
	src = pattern_new(sizeof(dst), 2);
	assert_non_null(b = stream_buf_new(sizeof(dst), 7));
	assert_non_null(r = stream_reader_new(b));
	assert_non_null(f = stream_fork(r));
	stream_cancel(r);
	assert_int_equal(stream_buf_readers(b), 1);
	for (i = 0; i < sizeof(dst); i += 50) {
		assert_int_equal(stream_append(b, src + i, 50), 0);
		assert_int_equal(stream_state(f), STREAM_READY);
		assert_int_equal(stream_read(f, dst + i, 50), 50);
		assert_int_equal(stream_state(f), STREAM_WAIT);
		assert_int_equal(stream_state(r), STREAM_CANCELLED);
	}
	assert_int_equal(stream_finish(b), 0);
	assert_int_equal(stream_state(f), STREAM_EOF);
	assert_memory_equal(src, dst, sizeof(dst));
	stream_reader_free(r);
	stream_reader_free(f);
	stream_buf_unref(b);
	free(src);
}

static void
test_fork_waiting_is_woken_by_append_through_other_handle(void **state)
{
	struct stream_buf	*writer, *other;
	struct stream_reader	*r, *f;
	struct wake_count	 w = { 0 };
	uint8_t			 byte = 0x5a;

	(void)state;
	assert_non_null(writer = stream_buf_new(2, 0));
	other = writer;
	stream_buf_ref(other);
	assert_non_null(r = stream_reader_new(writer));
	assert_non_null(f = stream_fork(r));
	stream_reader_free(r);
	assert_int_equal(stream_wait(f, on_wake, &w), STREAM_WAIT);
	stream_buf_unref(writer);
	assert_int_equal(stream_append(other, &byte, 1), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.drained, 1);
	assert_false(stream_waiting(f));
	stream_reader_free(f);
	stream_buf_unref(other);
}

static void
test_fork_of_cancelled_reader_is_born_cancelled(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f, *g;
	struct wake_count	 w = { 0 };
	const uint8_t		*p;
	struct stream_chunk	*c;
	uint8_t			 data[10] = { 0 };

	(void)state;
	assert_non_null(b = stream_buf_new(sizeof(data), 4));
	assert_non_null(r = stream_reader_new(b));
	assert_non_null(g = stream_reader_new(b));
	stream_cancel(r);
	assert_non_null(f = stream_fork(r));
	assert_true(stream_cancelled(f));
	assert_int_equal(stream_state(f), STREAM_CANCELLED);
	assert_int_equal(stream_wait(f, on_wake, &w), STREAM_CANCELLED);
	assert_false(stream_waiting(f));
	assert_int_equal(stream_buf_readers(b), 1);
	assert_int_equal(stream_append(b, data, sizeof(data)), 0);
	assert_int_equal(w.calls, 0);
	assert_int_equal(stream_peek(f, 100, &p, &c), 0);
	assert_null(p);
	/* Only g holds chunks; a cancelled fork holds none. */
	assert_int_equal(stream_buf_held(b), sizeof(data));
	stream_reader_free(g);
	assert_int_equal(stream_buf_held(b), 0);
	stream_reader_free(r);
	stream_reader_free(f);
	stream_buf_unref(b);
}

static void
test_wait_wake_100k_cycles_keep_one_waiter(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	struct wake_count	 w = { 0 };
	const unsigned int	 cycles = 100000;
	unsigned int		 i;
	uint8_t			 byte = 1;

	(void)state;
	w.resubscribe = 1;
	w.max_calls = cycles;
	assert_non_null(b = stream_buf_new(cycles, 0));
	assert_non_null(r = stream_reader_new(b));
	for (i = 0; i < cycles; i++) {
		/* Repeated waits without a wake do not link twice. */
		assert_int_equal(stream_wait(r, on_wake, &w), STREAM_WAIT);
		assert_int_equal(stream_wait(r, on_wake, &w), STREAM_WAIT);
		assert_int_equal(stream_buf_waiters(b), 1);
		assert_int_equal(stream_append(b, &byte, 1), 0);
		assert_int_equal(w.calls, i + 1);
		assert_int_equal(stream_buf_waiters(b), 1);
	}
	assert_int_equal(w.max_waiters, 1);
	assert_int_equal(w.drained, cycles);
	assert_int_equal(stream_buf_held(b), 0);
	/* Freeing a waiting reader unlinks it. */
	assert_true(stream_waiting(r));
	stream_reader_free(r);
	assert_int_equal(stream_buf_waiters(b), 0);
	stream_buf_unref(b);
}

static void
test_wait_subscribes_before_checking(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	struct wake_count	 w = { 0 };
	uint8_t			 data[4] = { 1, 2, 3, 4 };

	(void)state;
	assert_non_null(b = stream_buf_new(sizeof(data), 0));
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_append(b, data, 1), 0);
	/* Data present: READY, but subscribed all the same. */
	assert_int_equal(stream_wait(r, on_wake, &w), STREAM_READY);
	assert_true(stream_waiting(r));
	assert_int_equal(stream_buf_waiters(b), 1);
	assert_int_equal(stream_append(b, data + 1, 1), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.drained, 2);
	assert_false(stream_waiting(r));
	/* Nothing present: WAIT, and the next append wakes it. */
	assert_int_equal(stream_wait(r, on_wake, &w), STREAM_WAIT);
	assert_int_equal(stream_append(b, data + 2, 2), 0);
	assert_int_equal(w.calls, 2);
	assert_int_equal(w.drained, 4);
	/* finish wakes too, and the state is then EOF. */
	assert_int_equal(stream_wait(r, on_wake, &w), STREAM_WAIT);
	assert_int_equal(stream_finish(b), 0);
	assert_int_equal(w.calls, 3);
	assert_int_equal(stream_state(r), STREAM_EOF);
	/* unwait unsubscribes: no call on a later event. */
	stream_unwait(r);
	assert_int_equal(stream_buf_waiters(b), 0);
	stream_reader_free(r);
	stream_buf_unref(b);
}

static void
test_wake_is_once_per_event_and_callback_may_cancel(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f;
	struct wake_count	 wr = { 0 }, wf = { 0 };
	uint8_t			 data[3] = { 0 };

	(void)state;
	wr.resubscribe = 1;
	wr.max_calls = 2;
	wf.cancel = 1;
	assert_non_null(b = stream_buf_new(sizeof(data), 0));
	assert_non_null(r = stream_reader_new(b));
	assert_non_null(f = stream_fork(r));
	stream_wait(r, on_wake, &wr);
	stream_wait(f, on_wake, &wf);
	assert_int_equal(stream_append(b, data, 1), 0);
	assert_int_equal(wr.calls, 1);
	assert_int_equal(wf.calls, 1);
	assert_true(stream_cancelled(f));
	assert_false(stream_cancelled(r));
	assert_int_equal(stream_buf_waiters(b), 1);
	assert_int_equal(stream_append(b, data, 1), 0);
	assert_int_equal(wr.calls, 2);
	assert_int_equal(wf.calls, 1);
	stream_reader_free(f);
	stream_reader_free(r);
	stream_buf_unref(b);
}

static void
test_chunks_released_when_all_live_readers_pass(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*fast, *slow, *lag;
	struct release_sum	 rs = { 0 };
	uint8_t			 data[30], tmp[30];
	uint64_t		 base = stream_total_held();

	(void)state;
	pattern_fill(data, sizeof(data), 3);
	assert_non_null(b = stream_buf_new(sizeof(data), 10));
	stream_buf_set_release_cb(b, on_release, &rs);
	assert_non_null(fast = stream_reader_new(b));
	assert_non_null(slow = stream_fork(fast));
	assert_non_null(lag = stream_fork(fast));
	assert_int_equal(stream_append(b, data, sizeof(data)), 0);
	assert_int_equal(stream_buf_held(b), 30);
	assert_int_equal(stream_total_held(), base + 30);

	assert_int_equal(stream_read(fast, tmp, 30), 30);
	assert_int_equal(stream_buf_held(b), 30);
	assert_int_equal(rs.total, 0);
	assert_int_equal(stream_read(slow, tmp, 15), 15);
	assert_int_equal(stream_read(lag, tmp, 12), 12);
	assert_int_equal(stream_buf_held(b), 18);
	assert_int_equal(stream_total_held(), base + 18);
	assert_int_equal(rs.total, 12);
	/* The lagging reader holds its chunk; cancelling it lets go. */
	stream_cancel(lag);
	assert_int_equal(stream_buf_held(b), 15);
	assert_int_equal(stream_read(slow, tmp, 30), 15);
	assert_int_equal(stream_buf_held(b), 0);
	assert_int_equal(stream_total_held(), base);
	assert_int_equal(rs.total, sizeof(data));
	/* A reader can no longer start at offset 0. */
	assert_null(stream_reader_new(b));
	assert_int_equal(stream_finish(b), 0);
	stream_reader_free(fast);
	stream_reader_free(slow);
	stream_reader_free(lag);
	assert_int_equal(rs.total, sizeof(data));
	stream_buf_unref(b);
}

static void
test_bytes_released_at_once_without_live_readers(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	struct release_sum	 rs = { 0 };
	uint8_t			 data[100] = { 0 };
	uint64_t		 base = stream_total_held();

	(void)state;
	assert_non_null(b = stream_buf_new(sizeof(data), 8));
	stream_buf_set_release_cb(b, on_release, &rs);
	assert_non_null(r = stream_reader_new(b));
	stream_cancel(r);
	assert_int_equal(stream_append(b, data, 60), 0);
	assert_int_equal(stream_buf_held(b), 0);
	assert_int_equal(stream_total_held(), base);
	assert_int_equal(stream_append(b, data, 40), 0);
	assert_int_equal(stream_finish(b), 0);
	assert_int_equal(rs.total, sizeof(data));
	stream_reader_free(r);
	stream_buf_unref(b);
}

static void
test_chunk_ref_outlives_consumption_and_buffer_free(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	struct stream_chunk	*c;
	const uint8_t		*p;
	uint8_t			 data[20];
	size_t			 n;

	(void)state;
	pattern_fill(data, sizeof(data), 4);
	assert_non_null(b = stream_buf_new(sizeof(data), 8));
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_append(b, data, sizeof(data)), 0);
	assert_int_equal(stream_finish(b), 0);
	n = stream_peek(r, 100, &p, &c);
	assert_int_equal(n, 8);
	stream_chunk_ref(c);
	stream_chunk_ref(c);
	stream_consume(r, n);
	assert_int_equal(stream_buf_held(b), 12);
	stream_reader_free(r);
	stream_buf_unref(b);
	/* The buffer is gone; the output's bytes are still valid. */
	assert_memory_equal(p, data, 8);
	stream_chunk_unref(c);
	assert_memory_equal(p, data, 8);
	stream_chunk_unref(c);
}

struct pace_case {
	size_t		 chunk;
	size_t		 size;
	size_t		 frag;
};

/*
 * Three forks at different paces: one reads all it can after every
 * fragment, one at most 5 bytes per fragment, one only after finish.
 */
static void
pace_run(const struct pace_case *pc)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f[3];
	struct release_sum	 rs = { 0 };
	uint8_t			*src, *dst[3];
	uint64_t		 base = stream_total_held();
	size_t			 at, n, i;

	src = pattern_new(pc->size, (uint32_t)(pc->size ^ pc->frag));
	for (i = 0; i < 3; i++)
		assert_non_null(dst[i] = calloc(1, pc->size + 1));
	assert_non_null(b = stream_buf_new(pc->size, pc->chunk));
	stream_buf_set_release_cb(b, on_release, &rs);
	assert_non_null(r = stream_reader_new(b));
	for (i = 0; i < 3; i++)
		assert_non_null(f[i] = stream_fork(r));
	stream_reader_free(r);

	for (at = 0; at < pc->size; at += n) {
		n = pc->size - at < pc->frag ? pc->size - at : pc->frag;
		assert_int_equal(stream_append(b, src + at, n), 0);
		drain(f[0], dst[0], SIZE_MAX);
		assert_int_equal(stream_offset(f[0]), at + n);
		stream_read(f[1], dst[1] + stream_offset(f[1]), 5);
		assert_true(stream_buf_held(b) <= at + n);
	}
	assert_int_equal(stream_append(b, src, 1), -1);
	assert_int_equal(stream_finish(b), 0);
	drain(f[1], dst[1], 3);
	drain(f[2], dst[2], 4093);
	for (i = 0; i < 3; i++) {
		assert_int_equal(stream_state(f[i]), STREAM_EOF);
		assert_int_equal(stream_offset(f[i]), pc->size);
		assert_memory_equal(src, dst[i], pc->size);
		stream_reader_free(f[i]);
		free(dst[i]);
	}
	assert_int_equal(rs.total, pc->size);
	assert_int_equal(stream_total_held(), base);
	stream_buf_unref(b);
	free(src);
}

static void
test_chunk_boundary_sizes_arrive_whole_through_three_forks(void **state)
{
	static const size_t	 chunks[] = { STREAM_CHUNK_SIZE, 7, 4096 };
	static const size_t	 frags[] = { 1, 3, 1130, 4096, 7919, 65536 };
	struct pace_case	 pc;
	size_t			 ci, mi, fi, k;
	static const long	 mult[][2] = {
		{ 0, 0 }, { 0, 1 }, { 1, -1 }, { 1, 0 }, { 1, 1 },
		{ 2, -1 }, { 2, 0 }, { 2, 1 },
	};

	(void)state;
	for (ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++)
	for (mi = 0; mi < sizeof(mult) / sizeof(mult[0]); mi++)
	for (fi = 0; fi < sizeof(frags) / sizeof(frags[0]); fi++) {
		k = chunks[ci];
		pc.chunk = k == STREAM_CHUNK_SIZE ? 0 : k;
		pc.size = (size_t)(mult[mi][0] * (long)k + mult[mi][1]);
		pc.frag = frags[fi];
		pace_run(&pc);
	}
	/* A large payload over a tiny chunk: thousands of boundaries. */
	pc.chunk = 7;
	pc.size = 2 * STREAM_CHUNK_SIZE + 1;
	for (fi = 0; fi < sizeof(frags) / sizeof(frags[0]); fi++) {
		pc.frag = frags[fi];
		pace_run(&pc);
	}
}

static void
test_zero_copy_append_space_and_commit(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	uint8_t			*src, dst[25], *room;
	size_t			 len, at = 0;

	(void)state;
	src = pattern_new(sizeof(dst), 5);
	assert_non_null(b = stream_buf_new(sizeof(dst), 10));
	assert_non_null(r = stream_reader_new(b));
	while (at < sizeof(dst)) {
		assert_non_null(room = stream_append_space(b, &len));
		assert_true(len > 0 && len <= 10);
		if (len > 4)
			len = 4;
		memcpy(room, src + at, len);
		assert_int_equal(stream_append_commit(b, len), 0);
		at += len;
	}
	assert_int_equal(stream_buf_appended(b), sizeof(dst));
	assert_null(stream_append_space(b, &len));
	assert_int_equal(len, 0);
	assert_int_equal(stream_append_commit(b, 1), -1);
	assert_int_equal(stream_finish(b), 0);
	assert_int_equal(stream_read(r, dst, sizeof(dst)), sizeof(dst));
	assert_memory_equal(src, dst, sizeof(dst));
	stream_reader_free(r);
	stream_buf_unref(b);
	free(src);
}

static void
test_finish_with_missing_bytes_fails(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	struct wake_count	 w = { 0 };
	uint8_t			 data[10] = { 0 };

	(void)state;
	assert_non_null(b = stream_buf_new(sizeof(data), 4));
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_append(b, data, 9), 0);
	assert_int_equal(stream_wait(r, on_wake, &w), STREAM_READY);
	assert_int_equal(stream_finish(b), -1);
	assert_true(stream_buf_failed(b));
	assert_false(stream_buf_complete(b));
	assert_non_null(stream_buf_fail_reason(b));
	assert_int_equal(w.calls, 1);
	assert_int_equal(stream_state(r), STREAM_FAILED);
	assert_int_equal(stream_buf_held(b), 0);
	assert_int_equal(stream_append(b, data, 1), -1);
	assert_int_equal(stream_finish(b), -1);
	stream_reader_free(r);
	stream_buf_unref(b);
}

static void
test_append_beyond_declared_size_is_refused(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	uint8_t			 data[11] = { 0 };
	size_t			 room;

	(void)state;
	assert_non_null(b = stream_buf_new(10, 4));
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_append(b, data, 11), -1);
	assert_int_equal(stream_buf_appended(b), 0);
	assert_int_equal(stream_append(b, data, 6), 0);
	assert_int_equal(stream_append(b, data, 5), -1);
	assert_int_equal(stream_buf_appended(b), 6);
	assert_non_null(stream_append_space(b, &room));
	assert_int_equal(room, 2);
	assert_int_equal(stream_append_commit(b, 3), -1);
	assert_int_equal(stream_append(b, data, 4), 0);
	assert_int_equal(stream_append(b, data, 1), -1);
	assert_null(stream_append_space(b, &room));
	assert_int_equal(stream_finish(b), 0);
	assert_int_equal(stream_append(b, data, 0), -1);
	assert_int_equal(stream_read(r, data, sizeof(data)), 10);
	stream_reader_free(r);
	stream_buf_unref(b);
}

static void
test_fail_after_complete_is_noop_and_readers_reach_eof(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f;
	struct wake_count	 w = { 0 };
	uint8_t			*src, dst[33];

	(void)state;
	src = pattern_new(sizeof(dst), 6);
	assert_non_null(b = stream_buf_new(sizeof(dst), 8));
	assert_non_null(r = stream_reader_new(b));
	assert_non_null(f = stream_fork(r));
	assert_int_equal(stream_append(b, src, sizeof(dst)), 0);
	assert_int_equal(stream_finish(b), 0);
	assert_int_equal(stream_read(r, dst, 10), 10);
	assert_int_equal(stream_wait(f, on_wake, &w), STREAM_READY);
	stream_fail(b, "upstream lost");
	assert_int_equal(w.calls, 0);
	assert_false(stream_buf_failed(b));
	assert_null(stream_buf_fail_reason(b));
	assert_true(stream_buf_complete(b));
	assert_int_equal(stream_read(r, dst + 10, sizeof(dst)), 23);
	assert_int_equal(stream_state(r), STREAM_EOF);
	assert_memory_equal(src, dst, sizeof(dst));
	memset(dst, 0, sizeof(dst));
	assert_int_equal(stream_read(f, dst, sizeof(dst)), sizeof(dst));
	assert_int_equal(stream_state(f), STREAM_EOF);
	assert_memory_equal(src, dst, sizeof(dst));
	stream_reader_free(r);
	stream_reader_free(f);
	stream_buf_unref(b);
	free(src);
}

static void
test_fail_before_complete_gives_failed_and_wakes(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f;
	struct wake_count	 wr = { 0 }, wf = { 0 };
	struct release_sum	 rs = { 0 };
	const uint8_t		*p;
	struct stream_chunk	*c;
	uint8_t			 data[20] = { 0 };
	uint64_t		 base = stream_total_held();

	(void)state;
	assert_non_null(b = stream_buf_new(100, 8));
	stream_buf_set_release_cb(b, on_release, &rs);
	assert_non_null(r = stream_reader_new(b));
	assert_non_null(f = stream_fork(r));
	assert_int_equal(stream_append(b, data, sizeof(data)), 0);
	assert_int_equal(stream_read(r, data, 5), 5);
	assert_int_equal(stream_wait(r, on_wake, &wr), STREAM_READY);
	assert_int_equal(stream_wait(f, on_wake, &wf), STREAM_READY);
	stream_fail(b, "upstream lost");
	assert_int_equal(wr.calls, 1);
	assert_int_equal(wf.calls, 1);
	assert_int_equal(wr.drained + wf.drained, 0);
	assert_int_equal(stream_state(r), STREAM_FAILED);
	assert_int_equal(stream_state(f), STREAM_FAILED);
	assert_string_equal(stream_buf_fail_reason(b), "upstream lost");
	assert_int_equal(stream_peek(f, 10, &p, &c), 0);
	assert_int_equal(stream_buf_held(b), 0);
	assert_int_equal(stream_total_held(), base);
	assert_int_equal(rs.total, sizeof(data));
	assert_int_equal(stream_finish(b), -1);
	assert_int_equal(stream_append(b, data, 1), -1);
	stream_reader_free(r);
	stream_reader_free(f);
	stream_buf_unref(b);
}

static void
test_release_callback_totals_equal_payload_size(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r, *f;
	struct release_sum	 rs = { 0 };
	uint8_t			 data[1000] = { 0 }, tmp[37];
	size_t			 i;

	(void)state;
	assert_non_null(b = stream_buf_new(sizeof(data), 64));
	stream_buf_set_release_cb(b, on_release, &rs);
	assert_non_null(r = stream_reader_new(b));
	assert_non_null(f = stream_fork(r));
	for (i = 0; i < sizeof(data); i += 100) {
		assert_int_equal(stream_append(b, data + i, 100), 0);
		while (stream_read(r, tmp, sizeof(tmp)) > 0)
			;
		stream_read(f, tmp, 11);
	}
	assert_int_equal(stream_finish(b), 0);
	assert_true(rs.total < sizeof(data));
	/* The lagging fork goes: what it held counts as released. */
	stream_reader_free(f);
	assert_int_equal(rs.total, sizeof(data));
	assert_int_equal(stream_buf_held(b), 0);
	stream_reader_free(r);
	stream_buf_unref(b);
}

/*
 * The release callback runs half way through a reader's consume: every
 * append from inside it is refused and leaves the buffer as it was; the
 * same append from outside the callback goes in.
 */
struct append_in_release {
	int	 calls;
	int	 refused;
};

static void
on_release_append(struct stream_buf *b, uint64_t released, void *arg)
{
	struct append_in_release	*a = arg;
	size_t				 room = 0;
	uint8_t				 byte = 7;

	(void)released;
	a->calls++;
	if (stream_append(b, &byte, 1) == -1 &&
	    stream_append_space(b, &room) == NULL && room == 0 &&
	    stream_append_commit(b, 1) == -1)
		a->refused++;
}

static void
test_no_append_from_release_cb(void **state)
{
	struct stream_buf		*b;
	struct stream_reader		*r;
	struct append_in_release	 a = { 0 };
	uint8_t				 data[20], tmp[20];

	(void)state;
	pattern_fill(data, sizeof(data), 9);
	assert_non_null(b = stream_buf_new(sizeof(data), 8));
	stream_buf_set_release_cb(b, on_release_append, &a);
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_append(b, data, 10), 0);
	assert_int_equal(stream_read(r, tmp, 10), 10);
	assert_true(a.calls > 0);
	assert_int_equal(a.refused, a.calls);
	assert_int_equal(stream_buf_appended(b), 10);
	assert_int_equal(stream_append(b, data + 10, 10), 0);
	assert_int_equal(stream_read(r, tmp + 10, 10), 10);
	assert_memory_equal(tmp, data, sizeof(data));
	assert_int_equal(a.refused, a.calls);
	assert_int_equal(stream_finish(b), 0);
	stream_reader_free(r);
	stream_buf_unref(b);
}

/*
 * stream_peekv: the readable bytes at the cursor as one piece per chunk,
 * cut at max and at n pieces, nothing consumed; a half-filled tail chunk
 * ends the pieces, and the next call starts where consume left off.
 */
static void
test_peekv_pieces_per_chunk_without_consuming(void **state)
{
	struct stream_buf	*b;
	struct stream_reader	*r;
	struct stream_piece	 pc[4];
	uint8_t			 data[30];
	int			 n;

	(void)state;
	pattern_fill(data, sizeof(data), 9);
	assert_non_null(b = stream_buf_new(sizeof(data), 8));
	assert_non_null(r = stream_reader_new(b));
	assert_int_equal(stream_peekv(r, 100, pc, 4), 0);
	assert_int_equal(stream_append(b, data, 21), 0);

	/* 21 bytes: chunks of 8, 8 and a tail of 5. */
	assert_int_equal(n = stream_peekv(r, 100, pc, 4), 3);
	assert_int_equal(pc[0].len, 8);
	assert_int_equal(pc[1].len, 8);
	assert_int_equal(pc[2].len, 5);
	assert_memory_equal(pc[0].data, data, 8);
	assert_memory_equal(pc[1].data, data + 8, 8);
	assert_memory_equal(pc[2].data, data + 16, 5);
	assert_true(pc[0].chunk != pc[1].chunk && pc[1].chunk != pc[2].chunk);
	assert_int_equal(stream_offset(r), 0);

	/* Cut by max inside the second chunk, and by the piece count. */
	assert_int_equal(stream_peekv(r, 11, pc, 4), 2);
	assert_int_equal(pc[1].len, 3);
	assert_int_equal(stream_peekv(r, 100, pc, 1), 1);
	assert_int_equal(pc[0].len, 8);

	/* From inside a chunk, after a consume. */
	stream_consume(r, 10);
	assert_int_equal(stream_peekv(r, 100, pc, 4), 2);
	assert_int_equal(pc[0].len, 6);
	assert_memory_equal(pc[0].data, data + 10, 6);
	assert_int_equal(pc[1].len, 5);

	/* The tail fills up; the pieces follow it into the next chunk. */
	assert_int_equal(stream_append(b, data + 21, 9), 0);
	assert_int_equal(stream_peekv(r, 100, pc, 4), 3);
	assert_int_equal(pc[1].len, 8);
	assert_int_equal(pc[2].len, 6);
	assert_memory_equal(pc[2].data, data + 24, 6);
	stream_consume(r, 20);
	assert_int_equal(stream_peekv(r, 100, pc, 4), 0);
	stream_reader_free(r);
	stream_buf_unref(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_append_from_release_cb),
		cmocka_unit_test(
		test_fork_survives_original_cancel_writer_unref_and_free),
	    cmocka_unit_test(
		test_fork_reads_fragments_appended_after_original_cancelled),
	    cmocka_unit_test(
		test_fork_waiting_is_woken_by_append_through_other_handle),
	    cmocka_unit_test(test_fork_of_cancelled_reader_is_born_cancelled),
	    cmocka_unit_test(test_wait_wake_100k_cycles_keep_one_waiter),
	    cmocka_unit_test(test_wait_subscribes_before_checking),
	    cmocka_unit_test(
		test_wake_is_once_per_event_and_callback_may_cancel),
	    cmocka_unit_test(test_chunks_released_when_all_live_readers_pass),
	    cmocka_unit_test(test_bytes_released_at_once_without_live_readers),
	    cmocka_unit_test(
		test_chunk_ref_outlives_consumption_and_buffer_free),
	    cmocka_unit_test(
		test_chunk_boundary_sizes_arrive_whole_through_three_forks),
	    cmocka_unit_test(test_zero_copy_append_space_and_commit),
	    cmocka_unit_test(test_finish_with_missing_bytes_fails),
	    cmocka_unit_test(test_append_beyond_declared_size_is_refused),
	    cmocka_unit_test(
		test_fail_after_complete_is_noop_and_readers_reach_eof),
	    cmocka_unit_test(test_fail_before_complete_gives_failed_and_wakes),
	    cmocka_unit_test(test_release_callback_totals_equal_payload_size),
	    cmocka_unit_test(test_peekv_pieces_per_chunk_without_consuming),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
