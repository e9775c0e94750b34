/*
 * clock: real time over clock_gettime() and libevent timers, or fake
 * time with a list of armed timers for tests (clock.h).
 */
#include <sys/queue.h>
#include <sys/time.h>

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "clock.h"

/*
 * A callback that re-arms itself at 0 s would keep fake time from moving:
 * clock_fake_advance() stops after this many firings instead of spinning.
 */
#define CLOCK_FAKE_MAX_FIRES	1000000

struct clock_timer {
	clock_timer_cb		 cb;
	void			*arg;
	struct event		*ev;		/* real time only */
	/* fake time only */
	int			 armed;
	double			 due;
	uint64_t		 seq;		/* arming order, for ties */
	TAILQ_ENTRY(clock_timer) entry;		/* on clock_armed if armed */
};

TAILQ_HEAD(clock_timer_list, clock_timer);

static struct event_base	*clock_base;
static int			 clock_fake;
static double			 clock_fake_mono;
static double			 clock_fake_wall;	/* microseconds */
static uint64_t			 clock_seq;
static struct clock_timer_list	 clock_armed =
    TAILQ_HEAD_INITIALIZER(clock_armed);

void
clock_init(struct event_base *base)
{
	clock_base = base;
}

double
clock_mono(void)
{
	struct timespec ts;

	if (clock_fake)
		return clock_fake_mono;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t
clock_wall_us(void)
{
	struct timespec ts;

	if (clock_fake)
		return (uint64_t)clock_fake_wall;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
clock_tv(double secs, struct timeval *tv)
{
	if (secs < 0)
		secs = 0;
	tv->tv_sec = (time_t)secs;
	tv->tv_usec = (suseconds_t)((secs - tv->tv_sec) * 1e6);
}

static void
clock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clock_timer *t = arg;

	(void)fd;
	(void)what;
	t->cb(t->arg);
}

/* Where a real timer's event lies: right after the timer, aligned. */
#define CLOCK_EV_OFF	((sizeof(struct clock_timer) + \
	_Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

/*
 * One allocation per timer: a real timer's libevent event lives in the
 * same block (event_assign), as sessions and forks make two per PUT.
 */
struct clock_timer *
clock_timer_new(clock_timer_cb cb, void *arg)
{
	struct clock_timer *t;
	size_t len = clock_fake ? sizeof(*t) :
	    CLOCK_EV_OFF + event_get_struct_event_size();

	if ((t = calloc(1, len)) == NULL)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	if (clock_fake)
		return t;
	t->ev = (struct event *)((char *)t + CLOCK_EV_OFF);
	if (evtimer_assign(t->ev, clock_base, clock_event_cb, t) == -1) {
		free(t);
		return NULL;
	}
	return t;
}

void
clock_timer_arm(struct clock_timer *t, double secs)
{
	struct timeval tv;

	if (secs < 0)
		secs = 0;
	if (!clock_fake) {
		clock_tv(secs, &tv);
		evtimer_add(t->ev, &tv);
		return;
	}
	clock_timer_disarm(t);
	t->due = clock_fake_mono + secs;
	t->seq = clock_seq++;
	t->armed = 1;
	TAILQ_INSERT_TAIL(&clock_armed, t, entry);
}

void
clock_timer_disarm(struct clock_timer *t)
{
	if (!clock_fake) {
		evtimer_del(t->ev);
		return;
	}
	if (!t->armed)
		return;
	TAILQ_REMOVE(&clock_armed, t, entry);
	t->armed = 0;
}

int
clock_timer_pending(const struct clock_timer *t)
{
	if (!clock_fake)
		return evtimer_pending(t->ev, NULL) != 0;
	return t->armed;
}

void
clock_timer_free(struct clock_timer *t)
{
	if (t == NULL)
		return;
	if (t->ev != NULL)
		evtimer_del(t->ev);	/* in this block: freed with it */
	else
		clock_timer_disarm(t);
	free(t);
}

void
clock_fake_enable(double mono, uint64_t wall_us)
{
	clock_fake = 1;
	clock_fake_mono = mono;
	clock_fake_wall = (double)wall_us;
}

/* The armed timer due first (lowest seq among ties), if due by limit. */
static struct clock_timer *
clock_fake_next(double limit)
{
	struct clock_timer *t, *best = NULL;

	TAILQ_FOREACH(t, &clock_armed, entry)
		if (t->due <= limit && (best == NULL || t->due < best->due ||
		    (t->due == best->due && t->seq < best->seq)))
			best = t;
	return best;
}

/*
 * One timer at a time, looked up afresh after each callback: a callback
 * may arm, disarm or free any timer, including the next one.
 */
void
clock_fake_advance(double secs)
{
	struct clock_timer *t;
	double end = clock_fake_mono + (secs > 0 ? secs : 0);
	unsigned int fired = 0;

	while (fired++ < CLOCK_FAKE_MAX_FIRES &&
	    (t = clock_fake_next(end)) != NULL) {
		if (t->due > clock_fake_mono) {
			clock_fake_wall += (t->due - clock_fake_mono) * 1e6;
			clock_fake_mono = t->due;
		}
		clock_timer_disarm(t);
		t->cb(t->arg);
	}
	clock_fake_wall += (end - clock_fake_mono) * 1e6;
	clock_fake_mono = end;
}
