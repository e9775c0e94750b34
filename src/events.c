/*
 * events: a fixed table of subscribers (events.h).
 */
#include <stddef.h>

#include <jansson.h>

#include "events.h"

static struct events_sub {
	events_cb		 cb;
	events_active_cb	 active;
	void			*arg;
} events_subs[EVENTS_MAX_SUBS];

int
events_subscribe(events_cb cb, events_active_cb active, void *arg)
{
	int i;

	for (i = 0; i < EVENTS_MAX_SUBS; i++) {
		if (events_subs[i].cb != NULL)
			continue;
		events_subs[i].cb = cb;
		events_subs[i].active = active;
		events_subs[i].arg = arg;
		return 0;
	}
	return -1;
}

void
events_unsubscribe(events_cb cb, void *arg)
{
	int i;

	for (i = 0; i < EVENTS_MAX_SUBS; i++)
		if (events_subs[i].cb == cb && events_subs[i].arg == arg)
			events_subs[i].cb = NULL;
}

static int
events_sub_wants(const struct events_sub *sub)
{
	return sub->cb != NULL &&
	    (sub->active == NULL || sub->active(sub->arg));
}

int
events_wanted(void)
{
	int i;

	for (i = 0; i < EVENTS_MAX_SUBS; i++)
		if (events_sub_wants(&events_subs[i]))
			return 1;
	return 0;
}

/*
 * A subscriber may unsubscribe (itself or another) from its callback:
 * each slot is checked again just before it is called.
 */
void
events_publish(const char *name, json_t *fields)
{
	struct relayd_event ev;
	int i;

	ev.name = name;
	ev.fields = fields != NULL ? fields : json_object();
	for (i = 0; i < EVENTS_MAX_SUBS; i++)
		if (events_sub_wants(&events_subs[i]))
			events_subs[i].cb(&ev, events_subs[i].arg);
	json_decref(ev.fields);
}
