/*
 * clock: the one place relayd reads time and arms timers, so that tests
 * can drive time by hand.
 *
 * In the daemon, time is clock_gettime() and a timer is a libevent timer
 * on the base given to clock_init().  After clock_fake_enable() (unit
 * tests only) time stands still until clock_fake_advance() moves it, and
 * timers fire from clock_fake_advance() alone, in the order they fall
 * due (ties in the order they were armed), each at its own due time.
 *
 * Ownership: a timer belongs to whoever called clock_timer_new() and is
 * freed with clock_timer_free(); freeing a pending timer disarms it.  A
 * callback may re-arm, disarm or free its own timer, or any other.
 *
 * Everything here runs on the loop thread.
 */
#ifndef RELAYD_CLOCK_H
#define RELAYD_CLOCK_H

#include <stdint.h>

struct event_base;
struct timeval;
struct clock_timer;

typedef void	(*clock_timer_cb)(void *arg);

/* The base real timers go on; before the first clock_timer_new(). */
void		 clock_init(struct event_base *);

/* Monotonic seconds, and wall-clock microseconds since the epoch. */
double		 clock_mono(void);
uint64_t	 clock_wall_us(void);
/* A timeval for a duration in seconds (negative counts as 0). */
void		 clock_tv(double secs, struct timeval *);

/* A disarmed timer calling cb(arg) when it fires, or NULL. */
struct clock_timer *clock_timer_new(clock_timer_cb cb, void *arg);
/* Fire once, secs from now (negative counts as 0); re-arming moves it. */
void		 clock_timer_arm(struct clock_timer *, double secs);
void		 clock_timer_disarm(struct clock_timer *);
int		 clock_timer_pending(const struct clock_timer *);
/* NULL is a no-op. */
void		 clock_timer_free(struct clock_timer *);

/*
 * Tests: from now on time is fake, starting at mono seconds and wall_us
 * microseconds.  Call before any timer exists.
 */
void		 clock_fake_enable(double mono, uint64_t wall_us);
/* Move fake time by secs, firing each timer that falls due on the way. */
void		 clock_fake_advance(double secs);

#endif
