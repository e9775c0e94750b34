/*
 * fixture: the daemon context for unit tests; see fixture.h.
 */
#include <sys/queue.h>

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "fixture.h"
#include "listener.h"
#include "outcome.h"
#include "peer.h"
#include "route.h"
#include "session.h"
#include "store.h"

void
fixture_rm_tree(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == -1)
			fixture_rm_tree(path);
	}
	closedir(d);
	rmdir(dir);
}

void
fixture_daemon_up(struct relayd *r, const char *conf_path)
{
	char err[1024];

	env = r;
	TAILQ_INIT(&env->peers);
	TAILQ_INIT(&env->sessions);
	clock_fake_enable(1000.0, 1700000000000000ULL);
	assert_non_null(env->base = event_base_new());
	clock_init(env->base);
	if ((env->conf = config_load(conf_path, err, sizeof(err))) == NULL)
		fail_msg("config: %s", err);
	listener_config(env->conf);
	assert_non_null(env->seen = route_seen_new(1024, 600.0));
	if ((env->store = store_open(env->base, env->conf->store_dir, err,
	    sizeof(err))) == NULL)
		fail_msg("store: %s", err);
}

void
fixture_daemon_down(void)
{
	/* As relayd_teardown(): links hold sessions, so they go first. */
	peer_free_all();
	session_free_all();
	outcome_free_all();
	store_close(env->store);
	route_seen_free(env->seen);
	config_unref(env->conf);
	event_base_free(env->base);
	env = NULL;
}
