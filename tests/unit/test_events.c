/*
 * events unit tests: subscribers get every event in the order they
 * subscribed, only while active; one can unsubscribe from its callback;
 * the table has a bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "events.h"

struct sub {
	int	 id;
	int	 active;
	int	 quit;		/* unsubscribe from the callback */
	int	 seen;
};

static int	 order[16];
static int	 norder;

static int
sub_active(void *arg)
{
	return ((struct sub *)arg)->active;
}

static void
sub_cb(const struct relayd_event *ev, void *arg)
{
	struct sub *s = arg;

	assert_string_equal(ev->name, "peer-up");
	assert_string_equal(json_string_value(json_object_get(ev->fields,
	    "peer")), "b");
	s->seen++;
	if (norder < 16)
		order[norder++] = s->id;
	if (s->quit)
		events_unsubscribe(sub_cb, s);
}

static void
test_publish(void **state)
{
	struct sub a = { 1, 1, 0, 0 }, b = { 2, 1, 1, 0 }, c = { 3, 0, 0, 0 };

	(void)state;
	norder = 0;
	assert_int_equal(events_wanted(), 0);
	events_publish("peer-up", NULL);	/* no one listens: freed */
	assert_int_equal(events_subscribe(sub_cb, sub_active, &a), 0);
	assert_int_equal(events_subscribe(sub_cb, sub_active, &b), 0);
	assert_int_equal(events_subscribe(sub_cb, sub_active, &c), 0);
	assert_int_equal(events_wanted(), 1);
	events_publish("peer-up", json_pack("{s:s}", "peer", "b"));
	c.active = 1;
	events_publish("peer-up", json_pack("{s:s}", "peer", "b"));
	assert_int_equal(a.seen, 2);
	assert_int_equal(b.seen, 1);	/* gone after its first */
	assert_int_equal(c.seen, 1);	/* inactive for the first */
	assert_int_equal(norder, 4);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 1);
	assert_int_equal(order[3], 3);
	events_unsubscribe(sub_cb, &a);
	events_unsubscribe(sub_cb, &c);
	assert_int_equal(events_wanted(), 0);
}

static void
test_table_bound(void **state)
{
	struct sub s[EVENTS_MAX_SUBS + 1];
	int i;

	(void)state;
	memset(s, 0, sizeof(s));
	for (i = 0; i < EVENTS_MAX_SUBS; i++)
		assert_int_equal(events_subscribe(sub_cb, NULL, &s[i]), 0);
	assert_int_equal(events_subscribe(sub_cb, NULL, &s[i]), -1);
	for (i = 0; i < EVENTS_MAX_SUBS; i++)
		events_unsubscribe(sub_cb, &s[i]);
	assert_int_equal(events_wanted(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish),
		cmocka_unit_test(test_table_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
