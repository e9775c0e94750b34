/*
 * route unit tests: longest-prefix choice, fan-out and failover plans,
 * the hop budget, and the bounded seen-id set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "route.h"

static const char route_conf[] =
    "node_id = \"r0\";\n"
    "tls = false;\n"
    "peers = (\n"
    "  { name = \"a\"; address = \"127.0.0.1:7001\"; },\n"
    "  { name = \"b\"; address = \"127.0.0.1:7002\"; },\n"
    "  { name = \"c\"; address = \"127.0.0.1:7003\"; }\n"
    ");\n"
    "routes = (\n"
    "  { prefix = \"\"; hops = [ ]; store = true; },\n"
    "  { prefix = \"img/\"; hops = [ \"a\", \"b\", \"c\" ];"
    " mode = \"fanout\"; },\n"
    "  { prefix = \"img/big/\"; hops = [ \"c\", \"a\" ];"
    " mode = \"failover\"; store = true; },\n"
    "  { prefix = \"img/b\"; hops = [ \"b\" ]; },\n"
    "  { prefix = \"kz\"; hops = [ \"a\" ]; }\n"
    ");\n";

static const char noroute_conf[] =
    "node_id = \"r0\";\n"
    "tls = false;\n"
    "peers = ( { name = \"a\"; address = \"h:1\"; } );\n"
    "routes = ( { prefix = \"only/\"; hops = [ \"a\" ]; } );\n";

static struct config *
load(const char *text)
{
	char		 path[] = "/tmp/test_route.XXXXXX";
	char		 err[2048];
	struct config	*cf;
	int		 fd;

	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), strlen(text));
	close(fd);
	cf = config_load(path, err, sizeof(err));
	unlink(path);
	if (cf == NULL)
		fail_msg("%s", err);
	return cf;
}

static int
setup(void **state)
{
	*state = load(route_conf);
	return 0;
}

static int
teardown(void **state)
{
	config_unref(*state);
	return 0;
}

static void
plan_key(const struct config *cf, const char *key, uint8_t budget,
    struct route_plan *plan)
{
	assert_int_equal(route_plan(cf, key, strlen(key), budget, plan), 0);
	assert_non_null(plan->route);
}

static void
test_longest_prefix(void **state)
{
	const struct config	*cf = *state;
	struct route_plan	 p;

	plan_key(cf, "img/big/cat.png", 8, &p);
	assert_string_equal(p.route->prefix, "img/big/");
	plan_key(cf, "img/bi", 8, &p);
	assert_string_equal(p.route->prefix, "img/b");
	plan_key(cf, "img/cat.png", 8, &p);
	assert_string_equal(p.route->prefix, "img/");
	plan_key(cf, "img/", 8, &p);
	assert_string_equal(p.route->prefix, "img/");
	plan_key(cf, "img", 8, &p);
	assert_string_equal(p.route->prefix, "");
	plan_key(cf, "doc/x", 8, &p);
	assert_string_equal(p.route->prefix, "");
	assert_int_equal(p.store, 1);
	assert_int_equal(p.nhops, 0);
	assert_int_equal(p.budget_exhausted, 0);
	/* The empty key matches only "", and key may be NULL when empty. */
	assert_int_equal(route_plan(cf, NULL, 0, 8, &p), 0);
	assert_string_equal(p.route->prefix, "");
	/* Keys are bytes: the length counts, not a NUL. */
	assert_int_equal(route_plan(cf, "kz\0img/", 6, 8, &p), 0);
	assert_string_equal(p.route->prefix, "kz");
	assert_int_equal(route_plan(cf, "kz", 1, 8, &p), 0);
	assert_string_equal(p.route->prefix, "");
	assert_int_equal(route_plan(cf, "\0img/big/", 9, 8, &p), 0);
	assert_string_equal(p.route->prefix, "");
}

static void
test_no_route(void **state)
{
	struct config		*cf;
	struct route_plan	 p;

	(void)state;
	cf = load(noroute_conf);
	memset(&p, 0xa5, sizeof(p));
	assert_int_equal(route_plan(cf, "other", 5, 4, &p), -1);
	assert_null(p.route);
	assert_int_equal(p.nhops, 0);
	assert_int_equal(p.store, 0);
	assert_int_equal(route_plan(cf, "only", 4, 4, &p), -1);
	assert_int_equal(route_plan(cf, "only/x", 6, 4, &p), 0);
	assert_int_equal(p.nhops, 1);
	config_unref(cf);

	cf = load("node_id = \"r0\";\n");
	assert_int_equal(route_plan(cf, "x", 1, 4, &p), -1);
	assert_null(p.route);
	config_unref(cf);
}

static void
test_fanout_failover(void **state)
{
	const struct config	*cf = *state;
	struct route_plan	 p;

	plan_key(cf, "img/cat.png", 3, &p);
	assert_int_equal(p.mode, ROUTE_FANOUT);
	assert_int_equal(p.store, 0);
	assert_int_equal(p.nhops, 3);
	assert_ptr_equal(p.hops[0], config_peer(cf, "a"));
	assert_ptr_equal(p.hops[1], config_peer(cf, "b"));
	assert_ptr_equal(p.hops[2], config_peer(cf, "c"));
	assert_int_equal(p.next_budget, 2);

	/* Failover keeps the configured order: first reachable wins. */
	plan_key(cf, "img/big/x", 3, &p);
	assert_int_equal(p.mode, ROUTE_FAILOVER);
	assert_int_equal(p.store, 1);
	assert_int_equal(p.nhops, 2);
	assert_string_equal(p.hops[0]->name, "c");
	assert_string_equal(p.hops[1]->name, "a");
	assert_string_equal(p.hops[0]->port, "7003");
}

/* A usable() that says no to the names listed in arg (NULL-ended). */
static int
usable_unless(const char *name, void *arg)
{
	const char *const *no = arg;

	for (; *no != NULL; no++)
		if (strcmp(*no, name) == 0)
			return 0;
	return 1;
}

static void
test_skip_disabled(void **state)
{
	const struct config	*cf = *state;
	struct route_plan	 p;
	const char		*none[] = { NULL };
	const char		*c_off[] = { "c", NULL };
	const char		*b_off[] = { "b", NULL };
	const char		*all_off[] = { "a", "b", "c", NULL };

	/* Failover around a disabled first hop: the next one leads. */
	plan_key(cf, "img/big/x", 3, &p);
	assert_int_equal(route_skip(&p, usable_unless, c_off), 1);
	assert_int_equal(p.nhops, 1);
	assert_string_equal(p.hops[0]->name, "a");
	assert_int_equal(p.mode, ROUTE_FAILOVER);

	/* Fanout loses that branch only, in order. */
	plan_key(cf, "img/cat.png", 3, &p);
	assert_int_equal(route_skip(&p, usable_unless, b_off), 1);
	assert_int_equal(p.nhops, 2);
	assert_string_equal(p.hops[0]->name, "a");
	assert_string_equal(p.hops[1]->name, "c");
	assert_int_equal(p.next_budget, 2);

	/* Nothing left, no store: the caller refuses (no route). */
	plan_key(cf, "img/cat.png", 3, &p);
	assert_int_equal(route_skip(&p, usable_unless, all_off), 3);
	assert_int_equal(p.nhops, 0);
	assert_int_equal(p.store, 0);
	assert_ptr_not_equal(p.route, NULL);

	plan_key(cf, "img/cat.png", 3, &p);
	assert_int_equal(route_skip(&p, usable_unless, none), 0);
	assert_int_equal(p.nhops, 3);
}

static void
test_budget(void **state)
{
	const struct config	*cf = *state;
	struct route_plan	 p;

	plan_key(cf, "img/big/x", 1, &p);
	assert_int_equal(p.nhops, 2);
	assert_int_equal(p.next_budget, 0);
	assert_int_equal(p.budget_exhausted, 0);

	/* Budget spent: no hops, but still the route's store decision. */
	plan_key(cf, "img/big/x", 0, &p);
	assert_int_equal(p.nhops, 0);
	assert_int_equal(p.budget_exhausted, 1);
	assert_int_equal(p.store, 1);
	assert_null(p.hops[0]);

	/* A route without hops never exhausts. */
	plan_key(cf, "doc", 0, &p);
	assert_int_equal(p.nhops, 0);
	assert_int_equal(p.budget_exhausted, 0);
	assert_int_equal(p.next_budget, 0);

	plan_key(cf, "img/x", 255, &p);
	assert_int_equal(p.next_budget, 254);
	assert_int_equal(p.nhops, 3);
}

static void
make_id(uint8_t id[16], uint32_t n)
{
	memset(id, 0, 16);
	memcpy(id, &n, sizeof(n));
	id[15] = 0x5a;
}

static void
test_seen_add_dup_del(void **state)
{
	struct route_seen	*s;
	uint8_t			 a[16], b[16];

	(void)state;
	make_id(a, 1);
	make_id(b, 2);
	assert_non_null(s = route_seen_new(16, 60.0));
	assert_int_equal(route_seen_count(s), 0);
	assert_int_equal(route_seen_add(s, a, 0.0), 0);
	assert_int_equal(route_seen_add(s, a, 1.0), 1);
	assert_int_equal(route_seen_add(s, b, 1.0), 0);
	assert_int_equal(route_seen_count(s), 2);
	route_seen_del(s, a);
	assert_int_equal(route_seen_count(s), 1);
	route_seen_del(s, a);
	assert_int_equal(route_seen_count(s), 1);
	assert_int_equal(route_seen_add(s, a, 2.0), 0);
	assert_int_equal(route_seen_add(s, b, 2.0), 1);
	route_seen_free(s);
	route_seen_free(NULL);
}

/*
 * A pinned id (a PUT in flight) survives a flood of fresh ids many times
 * the table's size, and expiry; once unpinned it is evictable again and
 * the unpinned part stays within max.
 */
static void
test_seen_pinned_survives_flood(void **state)
{
	struct route_seen	*s;
	uint8_t			 a[16], x[16];
	unsigned int		 i;

	(void)state;
	make_id(a, 1);
	assert_non_null(s = route_seen_new(64, 10.0));
	assert_int_equal(route_seen_add(s, a, 0.0), 0);
	assert_int_equal(route_seen_pin(s, a), 0);
	for (i = 0; i < 1000; i++) {
		make_id(x, 1000 + i);
		assert_int_equal(route_seen_add(s, x, 1.0), 0);
		assert_true(route_seen_count(s) <= 64 + 1);
	}
	assert_int_equal(route_seen_pinned(s), 1);
	assert_int_equal(route_seen_add(s, a, 1.0), 1);
	route_seen_expire(s, 100.0);
	assert_int_equal(route_seen_count(s), 1);
	assert_int_equal(route_seen_add(s, a, 100.0), 1);
	route_seen_unpin(s, a, 100.0);
	assert_int_equal(route_seen_pinned(s), 0);
	assert_int_equal(route_seen_add(s, a, 101.0), 1);
	route_seen_expire(s, 111.0);
	assert_int_equal(route_seen_add(s, a, 111.0), 0);
	make_id(x, 5);
	assert_int_equal(route_seen_pin(s, x), -1);
	route_seen_free(s);
}

static void
test_seen_expire(void **state)
{
	struct route_seen	*s;
	uint8_t			 a[16], b[16], c[16];

	(void)state;
	make_id(a, 1);
	make_id(b, 2);
	make_id(c, 3);
	assert_non_null(s = route_seen_new(16, 10.0));
	assert_int_equal(route_seen_add(s, a, 0.0), 0);
	assert_int_equal(route_seen_add(s, b, 5.0), 0);
	/* Expiry counts from insertion: a duplicate does not refresh. */
	assert_int_equal(route_seen_add(s, a, 9.0), 1);
	route_seen_expire(s, 10.0);
	assert_int_equal(route_seen_count(s), 2);
	route_seen_expire(s, 10.5);
	assert_int_equal(route_seen_count(s), 1);
	/* a is gone, so it is new again; b (5.0) is still there. */
	assert_int_equal(route_seen_add(s, a, 11.0), 0);
	assert_int_equal(route_seen_add(s, b, 11.0), 1);
	/* add expires too: b is older than ttl at 15.5. */
	assert_int_equal(route_seen_add(s, c, 15.5), 0);
	assert_int_equal(route_seen_count(s), 2);
	assert_int_equal(route_seen_add(s, b, 15.5), 0);
	route_seen_expire(s, 1000.0);
	assert_int_equal(route_seen_count(s), 0);
	route_seen_free(s);
}

static void
test_seen_evict(void **state)
{
	struct route_seen	*s;
	uint8_t			 id[16];
	uint32_t		 i;

	(void)state;
	assert_non_null(s = route_seen_new(3, 60.0));
	for (i = 0; i < 4; i++) {
		make_id(id, i);
		assert_int_equal(route_seen_add(s, id, 1.0), 0);
	}
	assert_int_equal(route_seen_count(s), 3);
	/* The oldest (0) went first; 1..3 remain. */
	for (i = 1; i < 4; i++) {
		make_id(id, i);
		assert_int_equal(route_seen_add(s, id, 1.0), 1);
	}
	make_id(id, 0);
	assert_int_equal(route_seen_add(s, id, 1.0), 0);
	make_id(id, 1);
	assert_int_equal(route_seen_add(s, id, 1.0), 0);
	assert_int_equal(route_seen_count(s), 3);
	route_seen_free(s);

	/* max 0 is treated as 1. */
	assert_non_null(s = route_seen_new(0, 60.0));
	make_id(id, 7);
	assert_int_equal(route_seen_add(s, id, 0.0), 0);
	make_id(id, 8);
	assert_int_equal(route_seen_add(s, id, 0.0), 0);
	assert_int_equal(route_seen_count(s), 1);
	route_seen_free(s);
}

static void
test_seen_bounded(void **state)
{
	struct route_seen	*s;
	uint8_t			 id[16];
	uint32_t		 i;
	const uint32_t		 max = 4096, n = 100000;

	(void)state;
	assert_non_null(s = route_seen_new(max, 3600.0));
	for (i = 0; i < n; i++) {
		make_id(id, i);
		assert_int_equal(route_seen_add(s, id, i * 0.001), 0);
		assert_true(route_seen_count(s) <= max);
	}
	assert_int_equal(route_seen_count(s), max);
	/* Exactly the newest max ids remain. */
	for (i = n - max; i < n; i++) {
		make_id(id, i);
		assert_int_equal(route_seen_add(s, id, n * 0.001), 1);
	}
	make_id(id, n - max - 1);
	route_seen_del(s, id);
	assert_int_equal(route_seen_count(s), max);
	route_seen_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_prefix),
		cmocka_unit_test(test_no_route),
		cmocka_unit_test(test_fanout_failover),
		cmocka_unit_test(test_skip_disabled),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_seen_add_dup_del),
		cmocka_unit_test(test_seen_expire),
		cmocka_unit_test(test_seen_pinned_survives_flood),
		cmocka_unit_test(test_seen_evict),
		cmocka_unit_test(test_seen_bounded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
