/*
 * clock unit tests, on the fake clock: timers fire in the order they fall
 * due, each at its own time; a callback may re-arm, disarm or free timers;
 * a disarmed timer never fires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"

#define LOG_MAX	16

/* What fired, and the fake time it fired at. */
static int	 fired_id[LOG_MAX];
static double	 fired_at[LOG_MAX];
static int	 nfired;

struct tcase {
	int			 id;
	struct clock_timer	*t;
	struct clock_timer	*other;	/* disarmed or freed by the callback */
	int			 rearms;	/* re-arms left */
	double			 rearm_secs;
	int			 free_self;
};

static int
setup(void **state)
{
	static int enabled;

	(void)state;
	if (!enabled)
		clock_fake_enable(1000.0, 5000000);
	enabled = 1;
	nfired = 0;
	return 0;
}

static void
tcase_cb(void *arg)
{
	struct tcase *c = arg;

	if (nfired < LOG_MAX) {
		fired_id[nfired] = c->id;
		fired_at[nfired] = clock_mono();
		nfired++;
	}
	if (c->other != NULL) {
		clock_timer_disarm(c->other);
		c->other = NULL;
	}
	if (c->rearms > 0) {
		c->rearms--;
		clock_timer_arm(c->t, c->rearm_secs);
	}
	if (c->free_self) {
		clock_timer_free(c->t);
		c->t = NULL;
	}
}

static void
tcase_init(struct tcase *c, int id)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->t = clock_timer_new(tcase_cb, c);
	assert_non_null(c->t);
}

static void
test_time_moves_only_by_hand(void **state)
{
	double t0 = clock_mono();
	uint64_t w0 = clock_wall_us();

	(void)state;
	assert_true(clock_mono() == t0);
	clock_fake_advance(2.5);
	assert_true(clock_mono() == t0 + 2.5);
	assert_int_equal(clock_wall_us(), w0 + 2500000);
	clock_fake_advance(-1);
	assert_true(clock_mono() == t0 + 2.5);
}

static void
test_order_of_firing(void **state)
{
	struct tcase a, b, c, d;
	double t0 = clock_mono();

	(void)state;
	tcase_init(&a, 1);
	tcase_init(&b, 2);
	tcase_init(&c, 3);
	tcase_init(&d, 4);
	clock_timer_arm(a.t, 3);
	clock_timer_arm(b.t, 1);
	clock_timer_arm(c.t, 2);
	clock_timer_arm(d.t, 1);	/* same time as b, armed after it */
	assert_true(clock_timer_pending(a.t));
	clock_fake_advance(1.5);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired_id[0], 2);
	assert_int_equal(fired_id[1], 4);
	assert_true(fired_at[0] == t0 + 1);
	assert_false(clock_timer_pending(b.t));
	assert_true(clock_timer_pending(a.t));
	clock_fake_advance(10);
	assert_int_equal(nfired, 4);
	assert_int_equal(fired_id[2], 3);
	assert_int_equal(fired_id[3], 1);
	assert_true(fired_at[2] == t0 + 2);
	assert_true(fired_at[3] == t0 + 3);
	assert_true(clock_mono() == t0 + 11.5);
	clock_timer_free(a.t);
	clock_timer_free(b.t);
	clock_timer_free(c.t);
	clock_timer_free(d.t);
}

/* Re-arming moves a timer; re-arming from its callback fires it again. */
static void
test_rearm(void **state)
{
	struct tcase a;
	double t0 = clock_mono();

	(void)state;
	tcase_init(&a, 1);
	clock_timer_arm(a.t, 1);
	clock_timer_arm(a.t, 4);
	clock_fake_advance(3);
	assert_int_equal(nfired, 0);
	a.rearms = 2;
	a.rearm_secs = 2;
	clock_fake_advance(100);
	assert_int_equal(nfired, 3);
	assert_true(fired_at[0] == t0 + 4);
	assert_true(fired_at[1] == t0 + 6);
	assert_true(fired_at[2] == t0 + 8);
	assert_false(clock_timer_pending(a.t));
	clock_timer_free(a.t);
}

/* A timer disarmed by hand, or by an earlier callback, never fires. */
static void
test_disarm(void **state)
{
	struct tcase a, b, c;

	(void)state;
	tcase_init(&a, 1);
	tcase_init(&b, 2);
	tcase_init(&c, 3);
	clock_timer_arm(a.t, 1);
	clock_timer_arm(b.t, 2);
	clock_timer_arm(c.t, 3);
	clock_timer_disarm(a.t);
	b.other = c.t;
	clock_fake_advance(10);
	assert_int_equal(nfired, 1);
	assert_int_equal(fired_id[0], 2);
	assert_false(clock_timer_pending(c.t));
	clock_timer_disarm(c.t);	/* twice is harmless */
	clock_timer_free(a.t);
	clock_timer_free(b.t);
	clock_timer_free(c.t);
}

/*
 * A callback frees its own timer; freeing a pending timer unlinks it, so
 * the timers after it still fire and the freed one is never seen again.
 */
static void
test_free_from_callback(void **state)
{
	struct tcase a, b, c;

	(void)state;
	tcase_init(&a, 1);
	tcase_init(&b, 2);
	tcase_init(&c, 3);
	a.free_self = 1;
	clock_timer_arm(a.t, 1);
	clock_timer_arm(b.t, 2);
	clock_timer_arm(c.t, 3);
	clock_timer_free(b.t);
	clock_fake_advance(5);
	assert_null(a.t);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired_id[0], 1);
	assert_int_equal(fired_id[1], 3);
	clock_timer_free(c.t);
	clock_timer_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_time_moves_only_by_hand, setup),
		cmocka_unit_test_setup(test_order_of_firing, setup),
		cmocka_unit_test_setup(test_rearm, setup),
		cmocka_unit_test_setup(test_disarm, setup),
		cmocka_unit_test_setup(test_free_from_callback, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
