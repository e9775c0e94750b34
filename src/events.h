/*
 * events: stream and peer events flow up by subscription, so that the
 * modules that have them (session, peer) need not know who listens
 * (control for `relayctl monitor`; stats could too).
 *
 * A publisher asks events_wanted() first and builds nothing when no one
 * listens.  Subscribers are called in the order they subscribed, on the
 * loop thread, and get the fields borrowed: a subscriber that keeps or
 * changes them takes its own copy.
 */
#ifndef RELAYD_EVENTS_H
#define RELAYD_EVENTS_H

struct json_t;

struct relayd_event {
	const char	*name;		/* "stream-opened", "peer-up", ... */
	struct json_t	*fields;	/* a JSON object, borrowed */
};

typedef void	(*events_cb)(const struct relayd_event *, void *arg);
/* 1 if the subscriber wants events now; NULL: always. */
typedef int	(*events_active_cb)(void *arg);

#define EVENTS_MAX_SUBS	8

/* 0, or -1 when EVENTS_MAX_SUBS are already subscribed. */
int		 events_subscribe(events_cb, events_active_cb, void *arg);
void		 events_unsubscribe(events_cb, void *arg);
/* 1 if some subscriber wants events now. */
int		 events_wanted(void);
/* Hand name and fields (consumed; NULL: none) to every subscriber. */
void		 events_publish(const char *name, struct json_t *fields);

#endif
