/*
 * Unit tests for outcome: the per-hop entries a session builds (its own
 * hop, a next hop's RESULT one hop deeper and vouched for by that link,
 * a fork that failed without one), the verdict and error line relayctl
 * shows, the JSON both `put` and `outcome` render, and the table of kept
 * outcomes with its count and age bounds on the fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "clock.h"
#include "outcome.h"
#include "wire.h"

/* A RESULT frame as a next hop sends it, decoded as peer_in would. */
static void
make_result(struct wire_frame *f, uint8_t *buf, size_t cap,
    const struct wire_entry *e, unsigned int n)
{
	int len = wire_enc_result(buf, cap, 5, e, n);

	assert_true(len > 0);
	assert_int_equal(wire_decode(buf, len, f), len);
	assert_int_equal(f->hdr.type, WIRE_RESULT);
}

static struct session_entry *
own(struct outcome_list *l, uint8_t status)
{
	struct session_entry *e = outcome_add(l);

	assert_non_null(e);
	e->status = status;
	snprintf(e->node, sizeof(e->node), "me");
	snprintf(e->via, sizeof(e->via), "me");
	e->bytes = 100;
	return e;
}

static void
test_result_entries_go_one_deeper(void **state)
{
	struct wire_entry we[2] = {
		{ WIRE_RES_FORWARDED, 0, 3, 100, 10, 20, 0, "hop", "" },
		{ WIRE_RES_STORED, 1, 3, 100, 11, 21, 2, "far", "ok" },
	};
	uint8_t buf[1024];
	struct wire_frame f;
	struct outcome_list l = { 0 };

	(void)state;
	own(&l, WIRE_RES_FORWARDED);
	make_result(&f, buf, sizeof(buf), we, 2);
	outcome_add_result(&l, &f, "hop-link");
	assert_int_equal(l.n, 3);
	assert_int_equal(l.e[1].depth, 1);
	assert_string_equal(l.e[1].node, "hop");
	assert_string_equal(l.e[1].via, "hop-link");
	assert_int_equal(l.e[2].depth, 2);
	assert_string_equal(l.e[2].node, "far");
	assert_string_equal(l.e[2].via, "hop-link");	/* not "far" */
	assert_int_equal(l.e[2].status, WIRE_RES_STORED);
	assert_int_equal(l.e[2].first_us, 11);
	assert_int_equal(l.e[2].last_us, 21);
	assert_string_equal(l.e[2].reason, "ok");
	assert_true(outcome_ok(l.e, l.n));
	outcome_list_free(&l);
	assert_null(l.e);
	assert_int_equal(l.n, 0);
}

static void
test_verdict_and_error(void **state)
{
	struct outcome_list l = { 0 };
	char err[256];

	(void)state;
	own(&l, WIRE_RES_FORWARDED);
	/* Forwarded everywhere, stored nowhere: not ok. */
	assert_false(outcome_ok(l.e, l.n));
	assert_int_equal(outcome_error(l.e, l.n, err, sizeof(err)), -1);
	assert_string_equal(err, "stored nowhere");
	outcome_add_failed(&l, "hop", "me", 42, "no progress");
	assert_int_equal(l.n, 2);
	assert_int_equal(l.e[1].depth, 1);
	assert_int_equal(l.e[1].bytes, 42);
	assert_int_equal(outcome_error(l.e, l.n, err, sizeof(err)), -1);
	assert_string_equal(err, "failed at hop (depth 1, reported by me): "
	    "no progress");
	/* A stored copy elsewhere does not make a failed branch ok. */
	l.e[0].status = WIRE_RES_STORED;
	assert_false(outcome_ok(l.e, l.n));
	outcome_add_failed(&l, "other", "me", 0, NULL);
	assert_string_equal(l.e[2].reason, "failed");
	l.n = 1;
	assert_true(outcome_ok(l.e, l.n));
	assert_int_equal(outcome_error(l.e, l.n, err, sizeof(err)), 0);
	outcome_list_free(&l);
}

static void
test_list_is_bounded(void **state)
{
	struct outcome_list l = { 0 };
	unsigned int i;

	(void)state;
	for (i = 0; i < WIRE_MAX_ENTRIES; i++)
		assert_non_null(outcome_add(&l));
	assert_null(outcome_add(&l));
	assert_int_equal(l.n, WIRE_MAX_ENTRIES);
	outcome_list_free(&l);
}

static void
test_json(void **state)
{
	struct outcome_list l = { 0 };
	json_t *a, *e;

	(void)state;
	own(&l, WIRE_RES_STORED);
	outcome_add_failed(&l, "bad\x1b[2Jname", "me", 7, "line\nbreak");
	a = outcome_json(l.e, l.n);
	assert_int_equal(json_array_size(a), 2);
	e = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(e, "status")),
	    "stored");
	assert_int_equal(json_integer_value(json_object_get(e, "bytes")), 100);
	e = json_array_get(a, 1);
	assert_string_equal(json_string_value(json_object_get(e, "status")),
	    "failed");
	assert_int_equal(json_integer_value(json_object_get(e, "depth")), 1);
	/* Untrusted text is escaped, never dropped. */
	assert_string_equal(json_string_value(json_object_get(e, "node")),
	    "bad\\x1b[2Jname");
	assert_string_equal(json_string_value(json_object_get(e, "reason")),
	    "line\\x0abreak");
	json_decref(a);
	outcome_list_free(&l);
}

static void
put_id(uint8_t *id, unsigned int n)
{
	memset(id, 0, WIRE_PUT_ID_LEN);
	memcpy(id, &n, sizeof(n));
	id[WIRE_PUT_ID_LEN - 1] = 0x5a;
}

static void
test_kept_outcomes(void **state)
{
	uint8_t id[WIRE_PUT_ID_LEN], sha[WIRE_SHA256_LEN] = { 1 };
	struct outcome_list l = { 0 };
	const struct outcome *o;
	json_t *j;
	unsigned int i;

	(void)state;
	clock_fake_enable(1000.0, 0);
	own(&l, WIRE_RES_STORED);
	put_id(id, 0);
	outcome_keep(id, sha, 100, "k", l.e, l.n);
	assert_non_null(o = outcome_find(id));
	assert_string_equal(o->key, "k");
	assert_int_equal(o->size, 100);
	assert_int_equal(o->n, 1);
	assert_memory_equal(o->sha256, sha, sizeof(sha));
	j = outcome_query_json(id, 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "done");
	assert_int_equal(json_array_size(json_object_get(j, "results")), 1);
	json_decref(j);
	j = outcome_query_json(id, 1);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "in-flight");
	json_decref(j);
	/* Age: kept for OUTCOME_TTL, gone after. */
	clock_fake_advance(OUTCOME_TTL - 1);
	assert_non_null(outcome_find(id));
	clock_fake_advance(2);
	assert_null(outcome_find(id));
	j = outcome_query_json(id, 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "unknown");
	json_decref(j);
	/* Count: the oldest go first beyond OUTCOME_MAX. */
	for (i = 1; i <= OUTCOME_MAX + 10; i++) {
		put_id(id, i);
		outcome_keep(id, sha, 100, "k", l.e, l.n);
	}
	put_id(id, 10);
	assert_null(outcome_find(id));
	put_id(id, 11);
	assert_non_null(outcome_find(id));
	put_id(id, OUTCOME_MAX + 10);
	assert_non_null(outcome_find(id));
	outcome_free_all();
	assert_null(outcome_find(id));
	outcome_list_free(&l);
}

/* The blame text of an ABORT: written, read back, and refused when bent. */
static void
test_blame_text(void **state)
{
	static const char *const bad[] = {
		"failed at  (depth 1): x",		/* no node */
		"failed at n (depth ): x",		/* no depth */
		"failed at n (depth 256): x",		/* above a byte */
		"failed at n (depth 1) x",		/* no "): " */
		"failed at n\x01m (depth 1): x",	/* a control byte */
		"failed at n\xc3\xa9 (depth 1): x",	/* not 0x21-0x7e */
		"failed at n",
		"no progress to n for 2.0s",
		"failed at "
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaa (depth 1): too long a node",
	};
	char buf[512], node[CONFIG_NAME_MAX + 1];
	const char *reason;
	size_t rlen, i;
	unsigned int depth;
	int n;

	(void)state;
	n = outcome_blame_format(buf, sizeof(buf), "hop3", 2, "no progress");
	assert_string_equal(buf, "failed at hop3 (depth 2): no progress");
	assert_int_equal(outcome_blame_parse(buf, (size_t)n, node,
	    sizeof(node), &depth, &reason, &rlen), 0);
	assert_string_equal(node, "hop3");
	assert_int_equal(depth, 2);
	assert_int_equal(rlen, strlen("no progress"));
	assert_memory_equal(reason, "no progress", rlen);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(outcome_blame_parse(bad[i], strlen(bad[i]),
		    node, sizeof(node), &depth, &reason, &rlen), -1);
}

/*
 * An ABORT from a next hop: one that blames a hop behind it becomes a
 * failed entry for that hop, one deeper, vouched for by the next hop;
 * any other text fails the next hop itself.  The error line and the
 * blamed entry are the deepest failure, not the first in the list.
 */
static void
test_aborted_entries_and_blame(void **state)
{
	static const char blame[] = "failed at far (depth 1): stuck";
	static const char plain[] = "nothing drained";
	struct outcome_list l = { 0 };
	const struct session_entry *b;
	char err[512];

	(void)state;
	own(&l, WIRE_RES_FAILED);
	outcome_add_aborted(&l, "next", "me", 77, WIRE_ABORT_TIMEOUT, blame,
	    strlen(blame));
	assert_int_equal(l.n, 2);
	assert_string_equal(l.e[1].node, "far");
	assert_string_equal(l.e[1].via, "next");
	assert_int_equal(l.e[1].depth, 2);
	assert_int_equal(l.e[1].status, WIRE_RES_FAILED);
	assert_int_equal(l.e[1].bytes, 77);
	assert_string_equal(l.e[1].reason, "stuck");
	outcome_add_aborted(&l, "other", "me", 5, WIRE_ABORT_LIMIT, plain,
	    strlen(plain));
	assert_string_equal(l.e[2].node, "other");
	assert_string_equal(l.e[2].via, "me");
	assert_int_equal(l.e[2].depth, 1);
	assert_string_equal(l.e[2].reason, "aborted by other: limit: "
	    "nothing drained");
	assert_non_null(b = outcome_blamed(l.e, l.n));
	assert_string_equal(b->node, "far");
	assert_int_equal(outcome_error(l.e, l.n, err, sizeof(err)), -1);
	assert_string_equal(err, "failed at far (depth 2, reported by "
	    "next): stuck");
	assert_null(outcome_blamed(l.e, 0));
	outcome_list_free(&l);
}

/*
 * Failure records: a table beside the successes with the same bounds.
 * A failure is never a replay (outcome_find), but the query answers for
 * it with its reason and failing hop; a flood of failures keeps at most
 * OUTCOME_MAX of them and leaves the successes alone; a record keeps at
 * most OUTCOME_FAIL_ENTRIES entries, its own and the failed ones first;
 * a second record of an id replaces the first; OUTCOME_TTL ages them.
 */
static void
test_failure_records(void **state)
{
	uint8_t id[WIRE_PUT_ID_LEN], ok_id[WIRE_PUT_ID_LEN];
	uint8_t sha[WIRE_SHA256_LEN] = { 1 };
	struct outcome_list l = { 0 };
	struct session_entry *e;
	const struct outcome *o;
	json_t *j;
	unsigned int i;

	(void)state;
	clock_fake_enable(5000.0, 0);
	own(&l, WIRE_RES_FORWARDED);
	put_id(ok_id, 0xffff);
	outcome_keep(ok_id, sha, 100, "k", l.e, l.n);
	for (i = 0; i < 40; i++) {
		e = outcome_add(&l);
		e->depth = 1;
		e->status = WIRE_RES_STORED;
		snprintf(e->node, sizeof(e->node), "s%u", i);
	}
	outcome_add_failed(&l, "bad", "me", 0, "unreachable");
	put_id(id, 1);
	outcome_keep_failed(id, 100, "k", l.e, l.n, 0, NULL);
	assert_null(outcome_find(id));
	assert_non_null(o = outcome_find_any(id));
	assert_int_equal(o->state, OUTCOME_FAILED);
	assert_int_equal(o->n, OUTCOME_FAIL_ENTRIES);
	assert_string_equal(o->entries[0].node, "me");
	assert_string_equal(o->entries[1].node, "bad");
	assert_string_equal(o->reason, "unreachable");
	j = outcome_query_json(id, 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "failed");
	assert_string_equal(json_string_value(json_object_get(j,
	    "failing_hop")), "bad");
	assert_int_equal(json_array_size(json_object_get(j, "results")),
	    OUTCOME_FAIL_ENTRIES);
	json_decref(j);
	/* The same id again: replaced, not added. */
	outcome_keep_failed(id, 100, "k", l.e, 1, 1, "aborted by up");
	assert_int_equal(outcome_kept_count(1), 1);
	assert_int_equal(outcome_find_any(id)->state, OUTCOME_ABORTED);
	assert_string_equal(outcome_find_any(id)->reason, "aborted by up");
	/* A flood of failures: bounded, and the success stays. */
	for (i = 2; i < OUTCOME_MAX + 300; i++) {
		put_id(id, i);
		outcome_keep_failed(id, 100, "k", l.e, l.n, 0, NULL);
	}
	assert_int_equal(outcome_kept_count(1), OUTCOME_MAX);
	assert_int_equal(outcome_kept_count(0), 1);
	assert_non_null(outcome_find(ok_id));
	put_id(id, 2);
	assert_null(outcome_find_any(id));
	j = outcome_recent_json(10);
	assert_int_equal(json_array_size(json_object_get(j, "puts")), 10);
	assert_int_equal(json_integer_value(json_object_get(j,
	    "kept_failed")), OUTCOME_MAX);
	json_decref(j);
	clock_fake_advance(OUTCOME_TTL + 1);
	assert_int_equal(outcome_kept_count(1), 0);
	assert_int_equal(outcome_kept_count(0), 0);
	outcome_free_all();
	outcome_list_free(&l);
}

/* show puts: newest first across both tables. */
static void
test_recent_order(void **state)
{
	uint8_t a[WIRE_PUT_ID_LEN], b[WIRE_PUT_ID_LEN], c[WIRE_PUT_ID_LEN];
	uint8_t sha[WIRE_SHA256_LEN] = { 1 };
	struct outcome_list l = { 0 };
	json_t *j, *p;

	(void)state;
	clock_fake_enable(9000.0, 0);
	own(&l, WIRE_RES_STORED);
	put_id(a, 1);
	put_id(b, 2);
	put_id(c, 3);
	outcome_keep(a, sha, 1, "a", l.e, l.n);
	clock_fake_advance(1);
	outcome_keep_failed(b, 1, "b", l.e, l.n, 1, "why");
	clock_fake_advance(1);
	outcome_keep(c, sha, 1, "c", l.e, l.n);
	j = outcome_recent_json(100);
	p = json_object_get(j, "puts");
	assert_int_equal(json_array_size(p), 3);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(p, 0), "key")), "c");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(p, 1), "state")), "aborted");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(p, 1), "reason")), "why");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(p, 2), "key")), "a");
	json_decref(j);
	outcome_free_all();
	outcome_list_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_entries_go_one_deeper),
		cmocka_unit_test(test_verdict_and_error),
		cmocka_unit_test(test_list_is_bounded),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_kept_outcomes),
		cmocka_unit_test(test_blame_text),
		cmocka_unit_test(test_aborted_entries_and_blame),
		cmocka_unit_test(test_failure_records),
		cmocka_unit_test(test_recent_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
