/*
 * Unit tests for session: admission, the local store outcome, and the
 * inactivity and result bounds, with every timeout driven by the fake
 * clock (clock_fake_advance), never by waiting.
 *
 * The session runs with the daemon's other modules linked in, but with
 * no listener, no control socket and no peers: its upstream is the ops
 * table below, which records what the session tells it.  The store's
 * worker thread is real; its completions come back through the event
 * loop, which the tests run a bounded number of turns.
 */
#include <sys/queue.h>
#include <sys/stat.h>

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "relayd.h"
#include "route.h"
#include "session.h"
#include "store.h"
#include "wire.h"

/* What relayd.c gives the other modules; this test is their main. */
struct relayd	*env;

int
relayd_reload(const char *by, char *err, size_t errlen)
{
	(void)by;
	snprintf(err, errlen, "no reload in a unit test");
	return -1;
}

unsigned int
relayd_drain(const char *by)
{
	(void)by;
	return 0;
}

#define INACTIVITY	3.0
#define RESULT_WAIT	5.0
#define MAX_PAYLOAD	(1024 * 1024)

struct upstream {
	int		 results;
	int		 aborts;
	int		 ok;
	uint16_t	 code;
	char		 msg[256];
	unsigned int	 n;
	struct session_entry first;
	uint64_t	 credit;
};

struct fixture {
	char		 dir[64];
	struct relayd	 relayd;
};

static void
up_result(void *arg, struct session *s, const struct session_entry *e,
    unsigned int n, int ok)
{
	struct upstream *u = arg;

	(void)s;
	u->results++;
	u->ok = ok;
	u->n = n;
	if (n > 0)
		u->first = e[0];
}

static void
up_abort(void *arg, struct session *s, uint16_t code, const char *msg)
{
	struct upstream *u = arg;

	(void)s;
	u->aborts++;
	u->code = code;
	snprintf(u->msg, sizeof(u->msg), "%s", msg);
}

static void
up_credit(void *arg, struct session *s, uint64_t bytes)
{
	struct upstream *u = arg;

	(void)s;
	u->credit += bytes;
}

static const struct session_upstream_ops up_ops = {
	up_result, up_abort, up_credit,
};

static void
write_conf(const char *path, const char *dir, int store)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "node_id = \"t\";\ntls = false;\n"
	    "control_socket = \"%s/ctl.sock\";\nstore_dir = \"%s/store\";\n"
	    "max_payload = %d;\nstream_inactivity_timeout = %.1f;\n"
	    "result_timeout = %.1f;\npeers = ( );\n"
	    "routes = ( { prefix = \"\"; hops = [ ]; mode = \"fanout\"; "
	    "store = %s; } );\n", dir, dir, MAX_PAYLOAD, INACTIVITY,
	    RESULT_WAIT, store ? "true" : "false");
	fclose(f);
}

static int
setup_common(void **state, int store)
{
	struct fixture *fx;
	char path[128], err[1024];

	assert_non_null(fx = calloc(1, sizeof(*fx)));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_session.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(path, sizeof(path), "%s/relayd.conf", fx->dir);
	write_conf(path, fx->dir, store);

	env = &fx->relayd;
	TAILQ_INIT(&env->peers);
	TAILQ_INIT(&env->sessions);
	clock_fake_enable(1000.0, 1700000000000000ULL);
	assert_non_null(env->base = event_base_new());
	clock_init(env->base);
	env->conf = config_load(path, err, sizeof(err));
	if (env->conf == NULL)
		fail_msg("config: %s", err);
	assert_non_null(env->seen = route_seen_new(1024, 600.0));
	env->store = store_open(env->base, env->conf->store_dir, err,
	    sizeof(err));
	if (env->store == NULL)
		fail_msg("store: %s", err);
	*state = fx;
	return 0;
}

static int
setup_store(void **state)
{
	return setup_common(state, 1);
}

static void
rm_dir(const char *dir)
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
			rm_dir(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	session_free_all();
	session_outcomes_free();
	store_close(env->store);
	route_seen_free(env->seen);
	config_unref(env->conf);
	event_base_free(env->base);
	rm_dir(fx->dir);
	free(fx);
	env = NULL;
	return 0;
}

/* Turn the loop until *flag is set (the store's completions come back
 * through it), at most `turns` times. */
static void
loop_until(const int *flag, int turns)
{
	struct timeval tick = { 0, 10000 };
	int i;

	for (i = 0; i < turns && !*flag; i++) {
		event_base_loopexit(env->base, &tick);
		event_base_loop(env->base, EVLOOP_ONCE);
	}
}

static void
make_put(struct wire_put *put, const char *key, const uint8_t *data,
    size_t size, uint8_t id)
{
	memset(put, 0, sizeof(*put));
	memset(put->put_id, id, sizeof(put->put_id));
	put->hops = 4;
	put->key = key;
	put->key_len = strlen(key);
	put->size = size;
	EVP_Digest(data, size, put->sha256, NULL, EVP_sha256(), NULL);
}

static struct session *
start(const struct wire_put *put, struct upstream *u, uint16_t *code,
    char *err, size_t errlen)
{
	struct session_params sp;

	memset(&sp, 0, sizeof(sp));
	sp.put = put;
	sp.upstream_name = "unit";
	sp.ops = &up_ops;
	sp.up = u;
	return session_new(&sp, code, err, errlen);
}

static void
feed(struct session *s, const uint8_t *data, size_t len)
{
	struct evbuffer *b;

	assert_non_null(b = evbuffer_new());
	assert_int_equal(evbuffer_add(b, data, len), 0);
	assert_int_equal(session_data(s, b, len), 0);
	assert_int_equal(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}

/* Too large, and the same put id again while the first is in flight. */
static void
test_admission(void **state)
{
	static uint8_t data[64];
	struct upstream u1 = { 0 }, u2 = { 0 }, u3 = { 0 };
	struct wire_put put;
	struct session *s;
	uint16_t code = 0;
	char err[256];

	(void)state;
	make_put(&put, "big", data, sizeof(data), 1);
	put.size = MAX_PAYLOAD + 1;
	assert_null(start(&put, &u1, &code, err, sizeof(err)));
	assert_int_equal(code, WIRE_ABORT_TOO_LARGE);

	make_put(&put, "a", data, sizeof(data), 2);
	assert_non_null(s = start(&put, &u2, &code, err, sizeof(err)));
	assert_int_equal(session_count(), 1);
	make_put(&put, "a", data, sizeof(data), 2);
	assert_null(start(&put, &u3, &code, err, sizeof(err)));
	assert_int_equal(code, WIRE_ABORT_LOOP);
	assert_int_equal(session_count(), 1);
	session_upstream_lost(s, "test over");
}

/* A whole payload stores and the upstream hears "stored" at depth 0. */
static void
test_stores_and_reports(void **state)
{
	static uint8_t data[200000];
	struct upstream u = { 0 };
	struct wire_put put;
	struct session *s;
	uint16_t code;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	make_put(&put, "k/stored", data, sizeof(data), 3);
	assert_non_null(s = start(&put, &u, &code, err, sizeof(err)));
	feed(s, data, 70000);
	feed(s, data + 70000, sizeof(data) - 70000);
	assert_int_equal(session_end(s), 0);
	loop_until(&u.results, 2000);
	assert_int_equal(u.results, 1);
	assert_int_equal(u.aborts, 0);
	assert_true(u.ok);
	assert_int_equal(u.n, 1);
	assert_int_equal(u.first.status, WIRE_RES_STORED);
	assert_int_equal(u.first.depth, 0);
	assert_int_equal(u.first.bytes, sizeof(data));
	assert_string_equal(u.first.node, "t");
	assert_true(u.credit > 0);
}

/*
 * No byte for stream_inactivity_timeout: the session aborts itself with
 * code timeout at that moment of fake time, not before, and the stream
 * leaves the table.
 */
static void
test_inactivity_timeout(void **state)
{
	static uint8_t data[1000];
	struct upstream u = { 0 };
	struct wire_put put;
	struct session *s;
	uint16_t code;
	char err[256];

	(void)state;
	make_put(&put, "k/stalled", data, sizeof(data), 4);
	assert_non_null(s = start(&put, &u, &code, err, sizeof(err)));
	feed(s, data, 100);
	clock_fake_advance(INACTIVITY - 0.5);
	assert_int_equal(u.aborts, 0);
	/* Progress re-arms the bound. */
	feed(s, data + 100, 100);
	clock_fake_advance(INACTIVITY - 0.5);
	assert_int_equal(u.aborts, 0);
	clock_fake_advance(1.0);
	assert_int_equal(u.aborts, 1);
	assert_int_equal(u.code, WIRE_ABORT_TIMEOUT);
	assert_non_null(strstr(u.msg, "inactivity"));
	assert_int_equal(u.results, 0);
	loop_until(&u.results, 50);	/* the reaper runs from the loop */
	assert_int_equal(session_count(), 0);
}

/* The upstream lost after the last byte: the store still completes. */
static void
test_upstream_lost_after_complete(void **state)
{
	static uint8_t data[150000];
	struct upstream u = { 0 };
	struct wire_put put;
	struct session *s;
	uint16_t code;
	char err[256];
	char path[256];

	memset(data, 0x5a, sizeof(data));
	make_put(&put, "k/orphan", data, sizeof(data), 5);
	assert_non_null(s = start(&put, &u, &code, err, sizeof(err)));
	feed(s, data, sizeof(data));
	assert_int_equal(session_end(s), 0);
	session_upstream_lost(s, "upstream went away");
	snprintf(path, sizeof(path), "%s/store/k%%2Forphan",
	    ((struct fixture *)*state)->dir);
	for (int i = 0; i < 2000 && access(path, F_OK) != 0; i++) {
		struct timeval tick = { 0, 10000 };

		event_base_loopexit(env->base, &tick);
		event_base_loop(env->base, EVLOOP_ONCE);
	}
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(u.results + u.aborts, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_admission, setup_store,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stores_and_reports,
		    setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_inactivity_timeout,
		    setup_store, teardown),
		cmocka_unit_test_setup_teardown(
		    test_upstream_lost_after_complete, setup_store, teardown),
	};

	log_init("test_session", 1, LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
