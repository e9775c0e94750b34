/*
 * Unit tests for listener: the descriptor limit is raised, caps derive
 * from it with the reserve left out, slots and per-source counts hold
 * their caps and come back.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "listener.h"

static struct config	test_conf;

static int
setup(void **state)
{
	(void)state;
	memset(&test_conf, 0, sizeof(test_conf));
	test_conf.max_connections_per_source = 64;
	test_conf.max_control_clients = 64;
	test_conf.max_metrics_clients = 16;
	listener_config(&test_conf);
	return 0;
}

/* The soft limit goes up to the hard one; caps follow the formula. */
static void
test_listener_derived(void **state)
{
	struct rlimit	 rl;
	unsigned int	 lim, res, avail, conns;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max > 256) {
		rl.rlim_cur = 256;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	listener_fd_init();
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur == rl.rlim_max);
	lim = listener_fd_limit();
	assert_true(lim >= 256);
	res = listener_fd_reserve();
	assert_int_equal(res, lim / 100 * 5 < 64 ? 64 : lim / 100 * 5);

	test_conf.npeers = 3;
	avail = lim - res - 3 - 2 * 64 - 16;
	conns = avail / 2;
	assert_int_equal(listener_cap(&test_conf, LSLOT_CONNECTION), conns);
	assert_int_equal(listener_cap(&test_conf, LSLOT_HANDSHAKE), conns / 4);
	assert_int_equal(listener_cap(&test_conf, LSLOT_STREAM), avail - conns);
	/* Together they stay below the limit less the reserve. */
	assert_true(listener_cap(&test_conf, LSLOT_CONNECTION) +
	    listener_cap(&test_conf, LSLOT_STREAM) + 3 + 2 * 64 + 16 <=
	    lim - res);

	/* A value in the config wins. */
	test_conf.max_connections = 10;
	test_conf.max_streams = 7;
	assert_int_equal(listener_cap(&test_conf, LSLOT_CONNECTION), 10);
	assert_int_equal(listener_cap(&test_conf, LSLOT_HANDSHAKE), 2);
	assert_int_equal(listener_cap(&test_conf, LSLOT_STREAM), 7);
	test_conf.max_connections = 3;
	assert_int_equal(listener_cap(&test_conf, LSLOT_HANDSHAKE), 1);
	test_conf.max_handshakes = 5;
	assert_int_equal(listener_cap(&test_conf, LSLOT_HANDSHAKE), 5);
}

static void
test_listener_slots(void **state)
{
	unsigned int	 i;

	(void)state;
	test_conf.max_control_clients = 3;
	for (i = 0; i < 3; i++)
		assert_int_equal(listener_take(LSLOT_CONTROL), 0);
	assert_int_equal(listener_take(LSLOT_CONTROL), -1);
	assert_int_equal(listener_used(LSLOT_CONTROL), 3);
	listener_put(LSLOT_CONTROL);
	assert_int_equal(listener_take(LSLOT_CONTROL), 0);
	assert_int_equal(listener_take(LSLOT_CONTROL), -1);
	for (i = 0; i < 3; i++)
		listener_put(LSLOT_CONTROL);
	assert_int_equal(listener_used(LSLOT_CONTROL), 0);
	/* A put below zero is logged, not wrapped. */
	listener_put(LSLOT_CONTROL);
	assert_int_equal(listener_used(LSLOT_CONTROL), 0);
}

static void
sin_of(struct sockaddr_in *sin, const char *a, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, a, &sin->sin_addr), 1);
}

/* Per address, whatever the port; another address has its own count. */
static void
test_listener_per_source(void **state)
{
	struct sockaddr_in	 a1, a1b, a2;
	struct sockaddr_in6	 s6;

	(void)state;
	test_conf.max_connections_per_source = 2;
	sin_of(&a1, "10.0.0.1", 1000);
	sin_of(&a1b, "10.0.0.1", 2000);
	sin_of(&a2, "10.0.0.2", 1000);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::1", &s6.sin6_addr), 1);

	assert_int_equal(listener_source_take((struct sockaddr *)&a1), 0);
	assert_int_equal(listener_source_take((struct sockaddr *)&a1b), 0);
	assert_int_equal(listener_source_take((struct sockaddr *)&a1), -1);
	assert_int_equal(listener_source_take((struct sockaddr *)&a2), 0);
	assert_int_equal(listener_source_take((struct sockaddr *)&s6), 0);
	assert_int_equal(listener_source_take((struct sockaddr *)&s6), 0);
	assert_int_equal(listener_source_take((struct sockaddr *)&s6), -1);
	listener_source_put((struct sockaddr *)&a1b);
	assert_int_equal(listener_source_take((struct sockaddr *)&a1), 0);
	listener_source_put((struct sockaddr *)&a1);
	listener_source_put((struct sockaddr *)&a1);
	listener_source_put((struct sockaddr *)&a2);
	listener_source_put((struct sockaddr *)&s6);
	listener_source_put((struct sockaddr *)&s6);
	/* All gone: the table is empty again, and counts start over. */
	assert_int_equal(listener_source_take((struct sockaddr *)&a1), 0);
	listener_source_put((struct sockaddr *)&a1);
}

static void
test_listener_refusals(void **state)
{
	uint64_t	 before = listener_refused_count(LREF_STREAMS);
	int		 i;

	(void)state;
	for (i = 0; i < 1000; i++)
		listener_refused(LREF_STREAMS, "127.0.0.1:1");
	assert_int_equal(listener_refused_count(LREF_STREAMS), before + 1000);
	assert_string_equal(listener_refusal_name(LREF_PER_SOURCE),
	    "max_connections_per_source");
	assert_string_equal(listener_slot_name(LSLOT_HANDSHAKE), "handshakes");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_listener_derived, setup),
		cmocka_unit_test_setup(test_listener_slots, setup),
		cmocka_unit_test_setup(test_listener_per_source, setup),
		cmocka_unit_test_setup(test_listener_refusals, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
