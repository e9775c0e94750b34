/*
 * route: the next hops for a PUT, from the config, and loop protection.
 */
#ifndef RELAYD_ROUTE_H
#define RELAYD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct route_plan {
	const struct route_conf	*route;		/* NULL: no route matched */
	int			 store;		/* store on this hop */
	enum route_mode		 mode;
	unsigned int		 nhops;		/* 0 if budget exhausted */
	const struct peer_conf	*hops[CONFIG_MAX_HOPS];
	uint8_t			 next_budget;	/* hop budget to send on */
	int			 budget_exhausted; /* route had hops, budget 0 */
};

/*
 * Choose the next hops for key with the received hop budget.  The route
 * with the longest matching prefix wins.  Returns 0, or -1 when no route
 * matches (plan->route is then NULL).
 */
int	route_plan(const struct config *, const char *key, size_t key_len,
	    uint8_t budget, struct route_plan *plan);

/*
 * Leave out of plan the hops usable() says no to (peers disabled or
 * draining).  A failover plan then starts at the next hop; a fanout plan
 * loses that branch.  Returns how many hops were left out; a plan with
 * no hop and no store left has no route.
 */
unsigned int route_skip(struct route_plan *plan,
	    int (*usable)(const char *name, void *), void *arg);

/*
 * Loop protection: a set of PUT ids seen recently.  route_seen_add()
 * returns 1 if the id was already present (a loop or a replay), 0 if it
 * was added, -1 on allocation failure.  Entries older than ttl seconds
 * are dropped by route_seen_expire(now).
 *
 * A PUT in flight pins its id (route_seen_pin, once admitted) until it is
 * over (route_seen_unpin, which restarts its ttl): a pinned id is never
 * evicted or expired, so no flood of fresh ids can make a PUT still in
 * flight look new.  Memory is bounded by max unpinned ids (at the limit
 * the oldest unpinned one goes first) plus one per PUT in flight, which
 * the stream limits bound.
 */
struct route_seen;
struct route_seen *route_seen_new(unsigned int max, double ttl);
void	route_seen_free(struct route_seen *);
int	route_seen_add(struct route_seen *, const uint8_t id[16], double now);
void	route_seen_del(struct route_seen *, const uint8_t id[16]);
void	route_seen_expire(struct route_seen *, double now);
/* 0, or -1 if id is not in the set. */
int	route_seen_pin(struct route_seen *, const uint8_t id[16]);
void	route_seen_unpin(struct route_seen *, const uint8_t id[16],
	    double now);
/* Every id, pinned or not; the pinned ones alone. */
unsigned int route_seen_count(const struct route_seen *);
unsigned int route_seen_pinned(const struct route_seen *);

#endif
