/*
 * Unit tests for session: admission, the local store outcome, and the
 * inactivity and result bounds, with every timeout driven by the fake
 * clock (clock_fake_advance), never by waiting.
 *
 * The session runs with the daemon's other modules linked in, but with
 * no listener and no control socket: its upstream is the ops table
 * below, which records what the session tells it.  The store's worker
 * thread is real; its completions come back through the event loop,
 * which the tests run a bounded number of turns.  The forwarding tests
 * give it one next hop, "n", a listening socket on loopback that the
 * test answers by hand (HELLO, then only the credit it chooses), so the
 * pipe's result wait and inactivity bound are driven on the fake clock.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "outcome.h"
#include "peer.h"
#include "daemon.h"
#include "fixture.h"
#include "route.h"
#include "session.h"
#include "store.h"
#include "util.h"
#include "wire.h"

/* The daemon context relayd.c defines; this test is the modules' main. */
struct relayd	*env;

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
	struct session_entry all[8];
	uint64_t	 credit;
};

struct fixture {
	char		 dir[64];
	struct relayd	 relayd;
	int		 lfd;		/* the fake next hop's listener */
	int		 hop;		/* its side of the link */
	uint8_t		 in[4 * 1024 * 1024];	/* what relayd sent it */
	size_t		 inlen;
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
	memcpy(u->all, e, (n < 8 ? n : 8) * sizeof(*e));
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

/* hop_port 0: no next hop, the relay stores; else it forwards to "n". */
static void
write_conf(const char *path, const char *dir, int hop_port)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "node_id = \"t\";\ntls = false;\n"
	    "control_socket = \"%s/ctl.sock\";\nstore_dir = \"%s/store\";\n"
	    "max_payload = %d;\nstream_inactivity_timeout = %.1f;\n"
	    "result_timeout = %.1f;\n", dir, dir, MAX_PAYLOAD, INACTIVITY,
	    RESULT_WAIT);
	if (hop_port == 0)
		fprintf(f, "peers = ( );\nroutes = ( { prefix = \"\"; "
		    "hops = [ ]; mode = \"fanout\"; store = true; } );\n");
	else
		fprintf(f, "peers = ( { name = \"n\"; address = "
		    "\"127.0.0.1:%d\"; } );\nroutes = ( { prefix = \"\"; "
		    "hops = [ \"n\" ]; mode = \"fanout\"; store = false; } );\n",
		    hop_port);
	fclose(f);
}

static int
setup_common(void **state, int hop_port)
{
	struct fixture *fx;
	char path[128];

	assert_non_null(fx = calloc(1, sizeof(*fx)));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_session.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(path, sizeof(path), "%s/relayd.conf", fx->dir);
	write_conf(path, fx->dir, hop_port);
	fixture_daemon_up(&fx->relayd, path);
	*state = fx;
	return 0;
}

static int
setup_store(void **state)
{
	return setup_common(state, 0);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	fixture_daemon_down();
	if (fx->hop > 0)
		close(fx->hop);
	if (fx->lfd > 0)
		close(fx->lfd);
	fixture_rm_tree(fx->dir);
	free(fx);
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

/* A whole PUT from the upstream u: header, every byte, END. */
static struct session *
put_whole(const char *key, const uint8_t *data, size_t len, uint8_t id,
    struct upstream *u)
{
	struct wire_put put;
	struct session *s;
	uint16_t code;
	char err[256];

	make_put(&put, key, data, len, id);
	assert_non_null(s = start(&put, u, &code, err, sizeof(err)));
	feed(s, data, len);
	assert_int_equal(session_end(s), 0);
	return s;
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

/*
 * The key and its escaped forms share the session's one allocation: a
 * key with a NUL is refused (no session left), and a long key (200
 * bytes: a store refuses what cannot be a file name) and one with bytes
 * to escape come back as given, escaped as util_escape() does.
 */
static void
test_key_forms(void **state)
{
	static uint8_t data[16];
	static char longkey[201];
	static const char odd[] = "k/a b\"\xc3\xa9\x7f";
	char want[UTIL_ESCAPED_LEN(WIRE_MAX_KEY)];
	struct upstream u1 = { 0 }, u2 = { 0 }, u3 = { 0 };
	struct wire_put put;
	struct session *s, *t;
	uint16_t code = 0;
	char err[256];
	json_t *o;

	(void)state;
	make_put(&put, "k/nul", data, sizeof(data), 7);
	put.key_len = 6;	/* "k/nul" and its terminating NUL */
	assert_null(start(&put, &u1, &code, err, sizeof(err)));
	assert_int_equal(code, WIRE_ABORT_PROTOCOL);
	assert_string_equal(err, "key contains NUL");
	assert_int_equal(session_count(), 0);

	memset(longkey, 'k', sizeof(longkey) - 1);
	make_put(&put, longkey, data, sizeof(data), 8);
	assert_non_null(s = start(&put, &u2, &code, err, sizeof(err)));
	assert_non_null(o = session_json(s));
	assert_string_equal(json_string_value(json_object_get(o, "key")),
	    longkey);
	json_decref(o);

	make_put(&put, odd, data, sizeof(data), 9);
	assert_non_null(t = start(&put, &u3, &code, err, sizeof(err)));
	util_escape(odd, strlen(odd), want, sizeof(want));
	assert_non_null(o = session_json(t));
	assert_string_equal(json_string_value(json_object_get(o, "key")),
	    want);
	json_decref(o);
	assert_int_equal(session_count(), 2);
	session_upstream_lost(s, "test over");
	session_upstream_lost(t, "test over");
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
	struct session *s;
	char path[256];

	memset(data, 0x5a, sizeof(data));
	s = put_whole("k/orphan", data, sizeof(data), 5, &u);
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

/* --- forwarding: a fake next hop "n" on loopback, driven by hand --- */

static int
setup_forward(void **state)
{
	struct fixture *fx;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int lfd;

	assert_true((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0))
	    >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	setup_common(state, ntohs(sin.sin_port));
	fx = *state;
	fx->lfd = lfd;
	fx->hop = -1;
	peer_start_outbound();
	return 0;
}

static void
turn(void)
{
	struct timeval tick = { 0, 5000 };

	event_base_loopexit(env->base, &tick);
	event_base_loop(env->base, EVLOOP_ONCE);
}

/* Read what relayd sent the fake hop (non-blocking) into fx->in. */
static void
hop_read(struct fixture *fx)
{
	ssize_t n;

	while (fx->inlen < sizeof(fx->in) &&
	    (n = read(fx->hop, fx->in + fx->inlen,
	    sizeof(fx->in) - fx->inlen)) > 0)
		fx->inlen += (size_t)n;
}

/* Frames of type t relayd sent so far; *bytes sums DATA lengths. */
static int
hop_count(struct fixture *fx, uint8_t t, uint64_t *bytes)
{
	struct wire_frame f;
	size_t off = 0;
	int n = 0, k;

	if (bytes != NULL)
		*bytes = 0;
	while ((k = wire_decode(fx->in + off, fx->inlen - off, &f)) > 0) {
		if (f.hdr.type == t) {
			n++;
			if (bytes != NULL)
				*bytes += f.hdr.len;
		}
		off += (size_t)k;
	}
	return n;
}

/* Accept relayd's link and answer its HELLO with "n"'s windows. */
static void
hop_up(struct fixture *fx, uint32_t stream_window)
{
	struct wire_hello h = { 1, 4 * 1024 * 1024, stream_window, 1, "n" };
	uint8_t buf[256];
	int i, len;

	for (i = 0; i < 400 && fx->hop < 0; i++) {
		turn();
		fx->hop = accept4(fx->lfd, NULL, NULL, SOCK_NONBLOCK);
	}
	assert_true(fx->hop >= 0);
	assert_true((len = wire_enc_hello(buf, sizeof(buf), &h)) > 0);
	assert_int_equal(write(fx->hop, buf, (size_t)len), len);
	for (i = 0; i < 400 && hop_count(fx, WIRE_HELLO, NULL) == 0; i++) {
		turn();
		hop_read(fx);
	}
	assert_int_equal(hop_count(fx, WIRE_HELLO, NULL), 1);
	for (i = 0; i < 50; i++)
		turn();		/* the link comes up on relayd's side */
}

/* One failed outcome reached the upstream, with node's entry failed. */
static const struct session_entry *
assert_hop_failed(const struct upstream *u, const char *node)
{
	const struct session_entry *e = NULL;
	unsigned int i;

	assert_int_equal(u->results, 1);
	assert_false(u->ok);
	for (i = 0; i < u->n && i < 8 && e == NULL; i++)
		if (strcmp(u->all[i].node, node) == 0)
			e = &u->all[i];
	assert_non_null(e);
	assert_int_equal(e->status, WIRE_RES_FAILED);
	return e;
}

/*
 * END went out and no RESULT comes: the fork fails when result_timeout
 * has passed on the fake clock, naming the next hop, and the upstream
 * hears a failure (never a success that did not happen).
 */
static void
test_result_timeout(void **state)
{
	struct fixture *fx = *state;
	static uint8_t data[5000];
	struct upstream u = { 0 };
	uint64_t got;
	int i;

	hop_up(fx, 1024 * 1024);
	memset(data, 0x11, sizeof(data));
	put_whole("k/fwd", data, sizeof(data), 6, &u);
	for (i = 0; i < 400 && hop_count(fx, WIRE_END, NULL) == 0; i++) {
		turn();
		hop_read(fx);
	}
	assert_int_equal(hop_count(fx, WIRE_PUT, NULL), 1);
	assert_int_equal(hop_count(fx, WIRE_DATA, &got), 1);
	assert_int_equal(got, sizeof(data));
	assert_int_equal(hop_count(fx, WIRE_END, NULL), 1);

	clock_fake_advance(RESULT_WAIT - 0.5);
	assert_int_equal(u.results, 0);
	clock_fake_advance(1.0);
	for (i = 0; i < 50 && u.results == 0; i++)
		turn();
	assert_hop_failed(&u, "n");
}

/*
 * The next hop grants a 64 KiB stream window and never more: the fork
 * stops at the window, and when stream_inactivity_timeout passes on the
 * fake clock without progress it fails, naming the next hop, and relayd
 * sends ABORT down that stream.
 */
static void
test_fork_inactivity(void **state)
{
	struct fixture *fx = *state;
	static uint8_t data[200000];
	const struct session_entry *e;
	struct upstream u = { 0 };
	uint64_t got;
	int i;

	hop_up(fx, 64 * 1024);
	memset(data, 0x22, sizeof(data));
	put_whole("k/stall", data, sizeof(data), 7, &u);
	for (i = 0; i < 200; i++) {
		turn();
		hop_read(fx);
	}
	hop_count(fx, WIRE_DATA, &got);
	assert_int_equal(got, 64 * 1024);	/* exactly the window */
	assert_int_equal(hop_count(fx, WIRE_ABORT, NULL), 0);

	clock_fake_advance(INACTIVITY + 0.5);
	for (i = 0; i < 100 && (u.results == 0 ||
	    hop_count(fx, WIRE_ABORT, NULL) == 0); i++) {
		turn();
		hop_read(fx);
	}
	assert_int_equal(hop_count(fx, WIRE_ABORT, NULL), 1);
	e = assert_hop_failed(&u, "n");
	assert_non_null(strstr(e->reason, "n"));
}

/* The stream id relayd gave its PUT to the fake hop, or 0. */
static uint32_t
hop_put_stream(struct fixture *fx)
{
	struct wire_frame f;
	size_t off = 0;
	int k;

	while ((k = wire_decode(fx->in + off, fx->inlen - off, &f)) > 0) {
		if (f.hdr.type == WIRE_PUT)
			return f.hdr.stream;
		off += (size_t)k;
	}
	return 0;
}

/* relayctl outcome's state and failing hop for put id byte id. */
static void
assert_record(uint8_t id, const char *state, const char *hop)
{
	uint8_t put_id[WIRE_PUT_ID_LEN];
	json_t *j;

	memset(put_id, id, sizeof(put_id));
	assert_non_null(j = outcome_query_json(put_id, 0));
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    state);
	assert_string_equal(json_string_value(json_object_get(j,
	    "failing_hop")), hop);
	json_decref(j);
}

/*
 * Fail fast: the only next hop stalls while the upload is still coming.
 * When the fork gives up (its deadline on the fake clock), the session
 * does not wait for the rest of the upload: the upstream hears ABORT at
 * once, with a text that names the stalled hop, and the PUT is kept as
 * aborted with that hop as the failing one.
 */
static void
test_fail_fast(void **state)
{
	struct fixture *fx = *state;
	static uint8_t data[MAX_PAYLOAD];
	struct upstream u = { 0 };
	struct wire_put put;
	struct session *s;
	uint16_t code;
	char err[256];
	int i;

	hop_up(fx, 64 * 1024);
	memset(data, 0x33, sizeof(data));
	make_put(&put, "k/fast", data, sizeof(data), 8);
	assert_non_null(s = start(&put, &u, &code, err, sizeof(err)));
	/* Most of a window, all held back by the hop: the upload waits. */
	feed(s, data, 700000);
	for (i = 0; i < 200; i++) {
		turn();
		hop_read(fx);
	}
	assert_int_equal(u.aborts, 0);
	clock_fake_advance(INACTIVITY + 0.5);
	for (i = 0; i < 100 && u.aborts == 0; i++)
		turn();
	assert_int_equal(u.aborts, 1);
	assert_int_equal(u.results, 0);
	assert_int_equal(u.code, WIRE_ABORT_TIMEOUT);
	assert_non_null(strstr(u.msg, "failed at n (depth 1): no progress "
	    "to n"));
	assert_record(8, "aborted", "n");
}

/*
 * The next hop aborts with a text that blames a hop behind it: the
 * upstream hears the same hop named one hop deeper, and the record's
 * failing hop is that hop, not the next one.
 */
static void
test_blame_passed_upstream(void **state)
{
	struct fixture *fx = *state;
	static const char msg[] = "failed at far (depth 1): far is stuck";
	static uint8_t data[100000];
	struct upstream u = { 0 };
	struct wire_put put;
	struct session *s;
	uint8_t frame[256];
	uint32_t sid = 0;
	uint16_t code;
	char err[256];
	int i, len;

	hop_up(fx, 1024 * 1024);
	memset(data, 0x44, sizeof(data));
	make_put(&put, "k/blame", data, sizeof(data), 9);
	assert_non_null(s = start(&put, &u, &code, err, sizeof(err)));
	feed(s, data, 5000);
	for (i = 0; i < 200 && sid == 0; i++) {
		turn();
		hop_read(fx);
		sid = hop_put_stream(fx);
	}
	assert_int_not_equal(sid, 0);
	len = wire_enc_abort(frame, sizeof(frame), sid, WIRE_ABORT_TIMEOUT,
	    msg);
	assert_true(len > 0);
	assert_int_equal(write(fx->hop, frame, (size_t)len), len);
	for (i = 0; i < 200 && u.aborts == 0; i++)
		turn();
	assert_int_equal(u.aborts, 1);
	assert_int_equal(u.code, WIRE_ABORT_TIMEOUT);
	assert_string_equal(u.msg, "failed at far (depth 2): far is stuck");
	assert_record(9, "aborted", "far");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_admission, setup_store,
		    teardown),
		cmocka_unit_test_setup_teardown(test_key_forms, setup_store,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stores_and_reports,
		    setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_inactivity_timeout,
		    setup_store, teardown),
		cmocka_unit_test_setup_teardown(
		    test_upstream_lost_after_complete, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_result_timeout,
		    setup_forward, teardown),
		cmocka_unit_test_setup_teardown(test_fork_inactivity,
		    setup_forward, teardown),
		cmocka_unit_test_setup_teardown(test_fail_fast,
		    setup_forward, teardown),
		cmocka_unit_test_setup_teardown(test_blame_passed_upstream,
		    setup_forward, teardown),
	};

	log_init("test_session", 1, LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
