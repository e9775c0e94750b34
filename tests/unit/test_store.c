/*
 * Unit tests for store: a real event_base, a real worker thread, a real
 * temp directory.  The loop is driven with EVLOOP_ONCE, bounded by an
 * iteration count and a watchdog timer; nothing sleeps.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "log.h"
#include "store.h"
#include "stream.h"

/* Defined in store.c; called by the worker before each write(2). */
extern void	(*store_test_write_hook)(void);

#define KIB		1024
#define MIB		(1024 * 1024)
#define WATCHDOG_SEC	60

struct fixture {
	char			 dir[64];
	struct event_base	*base;
	struct store		*store;
};

struct result {
	int		 calls;
	int		 ok;
	char		 reason[256];
	uint64_t	 written;
	struct store_job *cancel_other;	/* cancelled from this callback */
};

static int	watchdog_fired;

/* The worker gate: closed, the worker blocks in its write hook. */
static pthread_mutex_t	gate_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	gate_cond = PTHREAD_COND_INITIALIZER;
static int		gate_closed;
static int		gate_entered;
static int		hook_on_loop;
static pthread_t	loop_thread;

static void
gate_hook(void)
{
	/* Blocking here on the loop thread would hang: record it instead. */
	if (pthread_equal(pthread_self(), loop_thread)) {
		hook_on_loop++;
		return;
	}
	pthread_mutex_lock(&gate_mtx);
	gate_entered++;
	pthread_cond_broadcast(&gate_cond);
	while (gate_closed)
		pthread_cond_wait(&gate_cond, &gate_mtx);
	pthread_mutex_unlock(&gate_mtx);
}

static void
gate_set(int closed)
{
	pthread_mutex_lock(&gate_mtx);
	gate_closed = closed;
	if (closed)
		gate_entered = 0;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_mtx);
}

/* Wait (bounded) until the worker is held in the hook. */
static int
gate_wait_entered(void)
{
	struct timespec	 ts;
	int		 rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WATCHDOG_SEC;
	pthread_mutex_lock(&gate_mtx);
	while (gate_entered == 0 && rc == 0)
		rc = pthread_cond_timedwait(&gate_cond, &gate_mtx, &ts);
	rc = gate_entered > 0;
	pthread_mutex_unlock(&gate_mtx);
	return rc;
}

static void
watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	watchdog_fired = 1;
}

/* Run the loop until *flag is set, bounded by count and a deadline. */
static void
run_until(struct event_base *base, const int *flag)
{
	struct event	*wd;
	struct timeval	 tv = { WATCHDOG_SEC, 0 };
	int		 i;

	watchdog_fired = 0;
	wd = evtimer_new(base, watchdog_cb, NULL);
	assert_non_null(wd);
	evtimer_add(wd, &tv);
	for (i = 0; i < 1000000 && !*flag && !watchdog_fired; i++)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wd);
	assert_false(watchdog_fired);
	assert_true(*flag);
}

static void
done_cb(struct store_job *job, int ok, const char *reason, void *arg)
{
	struct result	*res = arg;

	res->calls++;
	res->ok = ok;
	snprintf(res->reason, sizeof(res->reason), "%s",
	    reason != NULL ? reason : "(null)");
	res->written = store_job_written(job);
	if (res->cancel_other != NULL)
		store_job_cancel(res->cancel_other);
}

static void
fill(uint8_t *p, size_t len, uint32_t seed)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void
sha256(const uint8_t *p, size_t len, uint8_t out[32])
{
	unsigned int	 n = 0;

	assert_int_equal(EVP_Digest(p, len, out, &n, EVP_sha256(), NULL), 1);
	assert_int_equal(n, 32);
}

/*
 * A payload of len bytes (pattern seed) and its SHA-256 in md, with the
 * worker gate installed and closed: the next write blocks in the hook.
 */
static uint8_t *
gated_payload(size_t len, uint32_t seed, uint8_t md[32])
{
	uint8_t	*payload;

	payload = malloc(len);
	assert_non_null(payload);
	fill(payload, len, seed);
	sha256(payload, len, md);
	store_test_write_hook = gate_hook;
	gate_set(1);
	return payload;
}

/* Entries in dir whose name starts with prefix ("" counts all). */
static int
count_prefix(const char *dir, const char *prefix)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int
exists(const char *dir, const char *name)
{
	char		 path[512];
	struct stat	 sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &sb) == 0;
}

static void
write_file(const char *dir, const char *name, const void *p, size_t len)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
assert_file_is(const char *dir, const char *name, const uint8_t *p,
    size_t len)
{
	char	 path[512];
	uint8_t	*got;
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	got = malloc(len + 1);
	assert_non_null(got);
	assert_int_equal(fread(got, 1, len + 1, f), len);
	fclose(f);
	assert_memory_equal(got, p, len);
	free(got);
}

static void
rm_tree(const char *dir)
{
	char		 path[512];
	DIR		*d;
	struct dirent	*de;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == -1)
			rm_tree(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fixture	*fx;
	char		 err[256];

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->store = store_open(fx->base, fx->dir, err, sizeof(err));
	assert_non_null(fx->store);
	loop_thread = pthread_self();
	hook_on_loop = 0;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*fx = *state;

	gate_set(0);
	store_close(fx->store);
	store_test_write_hook = NULL;
	event_base_free(fx->base);
	rm_tree(fx->dir);
	free(fx);
	return 0;
}

/* Appends fragments of awkward sizes; the stored file is exact. */
static void
test_store_fragments(void **state)
{
	static const size_t	 frags[] = { 0, 1, 64 * KIB - 1, 64 * KIB,
				    64 * KIB + 1, 3 * MIB };
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	struct stream_reader	*r;
	uint8_t			*payload, *zeros, md[32];
	size_t			 i, total = 0, off = 0;
	const char		 key[] = "a/b%c.d";

	for (i = 0; i < sizeof(frags) / sizeof(frags[0]); i++)
		total += frags[i];
	payload = malloc(total);
	assert_non_null(payload);
	fill(payload, total, 1);
	sha256(payload, total, md);

	/* An old file of the same size under the final name is replaced. */
	zeros = calloc(1, total);
	assert_non_null(zeros);
	write_file(fx->dir, "a%2Fb%25c.d", zeros, total);
	free(zeros);

	buf = stream_buf_new(total, 0);
	assert_non_null(buf);
	r = stream_reader_new(buf);
	assert_non_null(r);
	assert_non_null(store_begin(fx->store, key, sizeof(key) - 1, total,
	    md, r, done_cb, &res));
	for (i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
		assert_int_equal(stream_append(buf, payload + off, frags[i]),
		    0);
		off += frags[i];
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);

	assert_int_equal(res.calls, 1);
	assert_int_equal(res.ok, 1);
	assert_int_equal(res.written, total);
	assert_file_is(fx->dir, "a%2Fb%25c.d", payload, total);
	assert_int_equal(count_prefix(fx->dir, ""), 1);
	assert_int_equal(hook_on_loop, 0);
	free(payload);
}

/* A payload whose SHA-256 does not match leaves nothing behind. */
static void
test_store_sha_mismatch(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	uint8_t			 payload[5000], md[32];

	fill(payload, sizeof(payload), 2);
	sha256(payload, sizeof(payload), md);
	md[31] ^= 1;
	buf = stream_buf_new(sizeof(payload), 0);
	assert_non_null(buf);
	assert_non_null(store_begin(fx->store, "k", 1, sizeof(payload), md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(stream_append(buf, payload, sizeof(payload)), 0);
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);

	assert_int_equal(res.ok, 0);
	assert_string_equal(res.reason, "sha256 mismatch");
	assert_int_equal(count_prefix(fx->dir, ""), 0);
}

/* An empty payload is stored as an empty file. */
static void
test_store_empty(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	uint8_t			 md[32];

	sha256((const uint8_t *)"", 0, md);
	buf = stream_buf_new(0, 0);
	assert_non_null(store_begin(fx->store, "empty", 5, 0, md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);
	assert_int_equal(res.ok, 1);
	assert_file_is(fx->dir, "empty", (const uint8_t *)"", 0);
	assert_int_equal(count_prefix(fx->dir, ""), 1);
}

/* Store len bytes of p under key with st, to the end; returns ok. */
static int
store_all(struct event_base *base, struct store *st, const char *key,
    const void *p, size_t len)
{
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	uint8_t			 md[32];

	sha256(p, len, md);
	buf = stream_buf_new(len, 0);
	assert_non_null(buf);
	assert_non_null(store_begin(st, key, strlen(key), len, md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(store_reserved(st), len);
	assert_int_equal(stream_append(buf, p, len), 0);
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);
	run_until(base, &res.calls);
	assert_int_equal(store_reserved(st), 0);
	return res.ok;
}

/* The listing holds k00 .. k(n-1), in order, each size bytes long. */
static void
assert_first_keys(const struct store_entry *ents, int n, uint64_t size)
{
	char	 name[16];
	int	 i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		assert_string_equal(ents[i].key, name);
		assert_int_equal(ents[i].size, size);
	}
}

/*
 * The listing in steps: each step reads at most its budget of directory
 * entries, so 50 files take many steps; the answer keeps the smallest
 * keys (whatever order readdir gives), sorted, and counts every match.
 */
static void
test_store_walk(void **state)
{
	struct fixture		*fx = *state;
	struct store_entry	 ents[5];
	struct store_walk	*w;
	struct store		*st;
	char			 sub[128], err[256], name[16];
	size_t			 matched, n;
	int			 i, r, steps = 0;

	snprintf(sub, sizeof(sub), "%s/walk", fx->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	for (i = 49; i >= 0; i--) {
		snprintf(name, sizeof(name), "k%02d", i);
		write_file(sub, name, "x", 1);
	}
	assert_non_null(st = store_open(fx->base, sub, err, sizeof(err)));
	assert_non_null(w = store_walk_new(st, "", 0, ents, 5));
	while ((r = store_walk_step(w, 3)) == 0)
		assert_true(++steps < 100);
	assert_int_equal(r, 1);
	assert_true(steps >= 50 / 3);
	n = store_walk_result(w, &matched);
	store_walk_free(w);
	assert_int_equal(n, 5);
	assert_int_equal(matched, 50);
	assert_first_keys(ents, 5, 1);
	assert_int_equal(store_list(st, "k1", 2, ents, 5, &matched), 5);
	assert_int_equal(matched, 10);
	assert_string_equal(ents[0].key, "k10");
	assert_string_equal(ents[4].key, "k14");
	memset(err, 'k', sizeof(err));	/* longer than any key */
	assert_non_null(w = store_walk_new(st, err, sizeof(err), ents, 5));
	assert_int_equal(store_walk_step(w, 1000), 1);
	assert_int_equal(store_walk_result(w, &matched), 0);
	assert_int_equal(matched, 0);
	store_walk_free(w);
	store_close(st);
}

/*
 * Whatever order the names come in (created ascending, descending or
 * scrambled, so readdir gives them in some other order), the walk keeps
 * the smallest keys: out is a heap while walking, sorted at the end.
 */
static void
test_store_walk_any_order(void **state)
{
	struct fixture		*fx = *state;
	struct store_entry	 ents[7];
	struct store		*st;
	char			 sub[128], err[256], name[16];
	size_t			 matched, n;
	int			 order, i, k;

	for (order = 0; order < 3; order++) {
		snprintf(sub, sizeof(sub), "%s/walk%d", fx->dir, order);
		assert_int_equal(mkdir(sub, 0700), 0);
		for (i = 0; i < 60; i++) {
			k = order == 0 ? i : order == 1 ? 59 - i :
			    (i * 37) % 60;
			snprintf(name, sizeof(name), "k%02d", k);
			write_file(sub, name, "xy", 2);
		}
		assert_non_null(st = store_open(fx->base, sub, err,
		    sizeof(err)));
		n = store_list(st, "", 0, ents, 7, &matched);
		assert_int_equal(n, 7);
		assert_int_equal(matched, 60);
		assert_first_keys(ents, 7, 2);
		/* A prefix: its smallest three, all ten counted. */
		assert_int_equal(store_list(st, "k5", 2, ents, 3, &matched),
		    3);
		assert_int_equal(matched, 10);
		assert_string_equal(ents[0].key, "k50");
		assert_string_equal(ents[2].key, "k52");
		store_close(st);
	}
}

/*
 * The bytes stored: counted at open (stored files only), kept up as files
 * are stored and replaced; the admission check against a cap; each file's
 * SHA-256 in its xattr; the listing (decoded keys, sorted, prefix, cut).
 */
static void
test_store_accounting(void **state)
{
	struct fixture		*fx = *state;
	struct store_entry	 ents[4];
	struct store		*st;
	uint8_t			 big[300], md[32];
	char			 sub[128], err[256], hex[65];
	size_t			 matched;
	int			 i;

	fill(big, sizeof(big), 7);
	snprintf(sub, sizeof(sub), "%s/acct", fx->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "old", big, 100);
	write_file(sub, ".tmpx", big, 7);	/* no key: not counted */
	assert_non_null(st = store_open(fx->base, sub, err, sizeof(err)));
	assert_int_equal(store_used(st), 100);
	assert_int_equal(store_admit(st, 100, 200, err, sizeof(err)), 0);
	assert_int_equal(store_admit(st, 101, 200, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "store full: 100 bytes stored + 0 "
	    "being stored + 101 declared would exceed store_max_bytes 200"));
	assert_int_equal(store_admit(st, UINT64_MAX, 0, err, sizeof(err)), 0);

	assert_true(store_all(fx->base, st, "k/x", big, 50));
	assert_int_equal(store_used(st), 150);
	assert_true(store_all(fx->base, st, "old", big, 10));
	assert_int_equal(store_used(st), 60);

	assert_int_equal(store_list(st, "", 0, ents, 4, &matched), 2);
	assert_int_equal(matched, 2);
	assert_string_equal(ents[0].key, "k/x");
	assert_int_equal(ents[0].size, 50);
	assert_string_equal(ents[1].key, "old");
	sha256(big, 50, md);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(ents[0].sha256, hex);
	assert_true(ents[0].mtime > 0);
	assert_int_equal(store_list(st, "k/", 2, ents, 4, &matched), 1);
	assert_string_equal(ents[0].key, "k/x");
	assert_int_equal(store_list(st, "", 0, ents, 1, &matched), 1);
	assert_int_equal(matched, 2);
	store_close(st);

	assert_int_equal(store_filename_key("a%2Fb%25c", err, sizeof(err)), 5);
	assert_string_equal(err, "a/b%c");
	assert_int_equal(store_filename_key("%2Ex%00", err, sizeof(err)), 3);
	assert_int_equal(err[0], '.');
	assert_int_equal(err[2], '\0');
	assert_int_equal(store_filename_key(".tmp-1", err, sizeof(err)), -1);
	assert_int_equal(store_filename_key("a%zz", err, sizeof(err)), -1);
	assert_int_equal(store_filename_key("a%2", err, sizeof(err)), -1);
	assert_int_equal(store_filename_key("a b", err, sizeof(err)), -1);
}

static int
count_fds(void)
{
	return count_prefix("/proc/self/fd", "");
}

/*
 * Admitted streams that have sent nothing hold no descriptor: the temp
 * file is created with the first byte.  The worker serves requests in
 * order, so once a later job is stored, an open queued at admission
 * would have run already.
 */
static void
test_store_open_at_first_byte(void **state)
{
	struct fixture		*fx = *state;
	struct result		 idle[32], res = { 0 };
	struct stream_buf	*bufs[32], *buf;
	uint8_t			 one = 'x', md1[32], md[32];
	int			 i, fds;

	memset(idle, 0, sizeof(idle));
	sha256(&one, 1, md1);
	fds = count_fds();
	for (i = 0; i < 32; i++) {
		bufs[i] = stream_buf_new(1, 0);
		assert_non_null(store_begin(fx->store, "idle", 4, 1, md1,
		    stream_reader_new(bufs[i]), done_cb, &idle[i]));
	}
	sha256((const uint8_t *)"later", 5, md);
	buf = stream_buf_new(5, 0);
	assert_non_null(store_begin(fx->store, "later", 5, 5, md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(stream_append(buf, "later", 5), 0);
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);
	assert_int_equal(res.ok, 1);
	assert_int_equal(count_prefix(fx->dir, ".tmp-"), 0);
	assert_int_equal(count_fds(), fds);

	/* The first byte creates the file (held in the worker's write). */
	store_test_write_hook = gate_hook;
	gate_set(1);
	assert_int_equal(stream_append(bufs[0], &one, 1), 0);
	assert_true(gate_wait_entered());
	assert_int_equal(count_prefix(fx->dir, ".tmp-"), 1);
	gate_set(0);
	assert_int_equal(stream_finish(bufs[0]), 0);
	run_until(fx->base, &idle[0].calls);
	assert_int_equal(idle[0].ok, 1);
	assert_file_is(fx->dir, "idle", &one, 1);
	for (i = 0; i < 32; i++)
		stream_buf_unref(bufs[i]);
	assert_int_equal(hook_on_loop, 0);
}

/* Fewer or more bytes than declared to the store: refused, no file. */
static void
test_store_size_mismatch(void **state)
{
	struct fixture		*fx = *state;
	struct result		 shorter = { 0 }, longer = { 0 };
	struct stream_buf	*b1, *b2;
	uint8_t			 payload[100], md[32];

	fill(payload, sizeof(payload), 3);
	sha256(payload, sizeof(payload), md);

	b1 = stream_buf_new(50, 0);
	assert_non_null(store_begin(fx->store, "short", 5, sizeof(payload),
	    md, stream_reader_new(b1), done_cb, &shorter));
	assert_int_equal(stream_append(b1, payload, 50), 0);
	assert_int_equal(stream_finish(b1), 0);
	stream_buf_unref(b1);

	b2 = stream_buf_new(sizeof(payload), 0);
	assert_non_null(store_begin(fx->store, "long", 4, 50, md,
	    stream_reader_new(b2), done_cb, &longer));
	assert_int_equal(stream_append(b2, payload, sizeof(payload)), 0);
	assert_int_equal(stream_finish(b2), 0);
	stream_buf_unref(b2);

	run_until(fx->base, &shorter.calls);
	run_until(fx->base, &longer.calls);
	assert_int_equal(shorter.ok, 0);
	assert_non_null(strstr(shorter.reason, "size mismatch"));
	assert_int_equal(longer.ok, 0);
	assert_non_null(strstr(longer.reason, "size mismatch"));
	assert_int_equal(count_prefix(fx->dir, ""), 0);
}

/* An empty key cannot name a file: reported on the loop, not at begin. */
static void
test_store_bad_key(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	uint8_t			 md[32] = { 0 };

	buf = stream_buf_new(10, 0);
	assert_non_null(store_begin(fx->store, "", 0, 10, md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(res.calls, 0);
	assert_int_equal(stream_buf_readers(buf), 0);
	run_until(fx->base, &res.calls);
	assert_int_equal(res.ok, 0);
	stream_buf_unref(buf);
	assert_int_equal(count_prefix(fx->dir, ""), 0);
}

/* A failed stream: failure reported with its reason, no file, no temp. */
static void
test_store_stream_failed(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	uint8_t			 payload[200 * KIB], md[32];

	fill(payload, sizeof(payload), 4);
	sha256(payload, sizeof(payload), md);
	buf = stream_buf_new(sizeof(payload), 0);
	assert_non_null(store_begin(fx->store, "k", 1, sizeof(payload), md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(stream_append(buf, payload, 100 * KIB), 0);
	/* Let the worker create the temp file and write to it. */
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	stream_fail(buf, "peer lost");
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);

	assert_int_equal(res.ok, 0);
	assert_string_equal(res.reason, "upstream failed: peer lost");
	assert_int_equal(count_prefix(fx->dir, ""), 0);
}

/* A write error fails the job with strerror; the buffer is not held. */
static void
test_store_write_error(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	struct rlimit		 old, lim;
	uint8_t			*payload, md[32];
	size_t			 len = 600 * KIB;

	payload = malloc(len);
	assert_non_null(payload);
	fill(payload, len, 5);
	sha256(payload, len, md);

	/* A real write error from the kernel: EFBIG past RLIMIT_FSIZE. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100 * KIB;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	buf = stream_buf_new(len, 0);
	assert_non_null(store_begin(fx->store, "big", 3, len, md,
	    stream_reader_new(buf), done_cb, &res));
	assert_int_equal(stream_append(buf, payload, 300 * KIB), 0);
	run_until(fx->base, &res.calls);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

	assert_int_equal(res.ok, 0);
	assert_string_equal(res.reason, strerror(EFBIG));
	assert_int_equal(count_prefix(fx->dir, ""), 0);
	/* The failed job no longer holds the buffer back. */
	assert_int_equal(stream_buf_readers(buf), 0);
	assert_int_equal(stream_append(buf, payload + 300 * KIB,
	    len - 300 * KIB), 0);
	assert_int_equal(stream_buf_held(buf), 0);
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);
	free(payload);
}

/* store_open removes ".tmp-*" only, and creates a missing directory. */
static void
test_store_open_cleans(void **state)
{
	static const char	*stale[] = { ".tmp-1-1", ".tmp-", ".tmp-x" };
	static const char	*keep[] = { ".tmpx", "keep", "x.tmp-1",
				    "%2Etmp-1" };
	struct fixture		*fx = *state;
	struct event_base	*base = fx->base;
	struct store		*st;
	struct stat		 sb;
	char			 sub[128], err[256];
	size_t			 i;

	snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++)
		write_file(sub, stale[i], "x", 1);
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		write_file(sub, keep[i], "y", 1);

	st = store_open(base, sub, err, sizeof(err));
	assert_non_null(st);
	for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++)
		assert_false(exists(sub, stale[i]));
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		assert_true(exists(sub, keep[i]));
	store_close(st);

	snprintf(sub, sizeof(sub), "%s/new", fx->dir);
	st = store_open(base, sub, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(stat(sub, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777 & ~0750, 0);
	store_close(st);

	/* A path that cannot be a directory: NULL and a message. */
	snprintf(sub, sizeof(sub), "%s/sub/keep/x", fx->dir);
	err[0] = '\0';
	assert_null(store_open(base, sub, err, sizeof(err)));
	assert_true(err[0] != '\0');
}

static void
assert_name(const char *key, size_t len, const char *want)
{
	char	 out[64];

	assert_int_equal(store_key_filename(key, len, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	/* Exactly strlen(want) + 1 fits; one byte less does not. */
	memset(out, 'Z', sizeof(out));
	assert_int_equal(store_key_filename(key, len, out, strlen(want) + 1),
	    0);
	assert_string_equal(out, want);
	assert_int_equal(store_key_filename(key, len, out, strlen(want)), -1);
}

static void
test_store_key_filename(void **state)
{
	char	 out[8];

	(void)state;
	assert_name("AZaz09._-", 9, "AZaz09._-");
	assert_name("a/b", 3, "a%2Fb");
	assert_name("50%", 3, "50%25");
	assert_name(".hidden", 7, "%2Ehidden");
	assert_name("..", 2, "%2E.");
	assert_name("a.b", 3, "a.b");
	assert_name("caf\xc3\xa9", 5, "caf%C3%A9");
	assert_name("a\0b", 3, "a%00b");
	assert_name("\xff ~", 3, "%FF%20%7E");
	/* An escape is never cut in half. */
	assert_int_equal(store_key_filename("ab/", 3, out, 5), -1);
	assert_int_equal(store_key_filename("ab/", 3, out, 6), 0);
	assert_int_equal(store_key_filename("a", 1, out, 0), -1);
	assert_int_equal(store_key_filename("", 0, out, sizeof(out)), -1);
}

/* store_key_check: NAME_MAX bytes after escaping, with the sizes said. */
static void
test_store_key_check(void **state)
{
	char	 key[400], why[160];

	(void)state;
	memset(key, 'k', sizeof(key));
	assert_int_equal(store_key_check(key, 255, why, sizeof(why)), 0);
	assert_int_equal(store_key_check(key, 256, why, sizeof(why)), -1);
	assert_string_equal(why, "key too long for a file name: 256 bytes, "
	    "256 once escaped, at most 255");
	memset(key, '/', 86);
	assert_int_equal(store_key_check(key, 85, why, sizeof(why)), 0);
	assert_int_equal(store_key_check(key, 86, why, sizeof(why)), -1);
	assert_string_equal(why, "key too long for a file name: 86 bytes, "
	    "258 once escaped, at most 255");
	key[0] = '.';
	memset(key + 1, 'k', 253);
	assert_int_equal(store_key_check(key, 254, why, sizeof(why)), -1);
	assert_int_equal(store_key_check("", 0, why, sizeof(why)), -1);
	assert_string_equal(why, "key empty: no file name for it");
}

/* Cancel while the worker is mid-write: no callback, no temp file. */
static void
test_store_cancel_mid_write(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	struct store_job	*job;
	uint8_t			 payload[256 * KIB], md[32];

	fill(payload, sizeof(payload), 6);
	sha256(payload, sizeof(payload), md);
	store_test_write_hook = gate_hook;
	gate_set(1);

	buf = stream_buf_new(sizeof(payload), 0);
	job = store_begin(fx->store, "k", 1, sizeof(payload), md,
	    stream_reader_new(buf), done_cb, &res);
	assert_non_null(job);
	assert_int_equal(stream_append(buf, payload, 128 * KIB), 0);
	assert_true(gate_wait_entered());
	/* The worker is inside a write: the temp file exists. */
	assert_int_equal(count_prefix(fx->dir, ".tmp-"), 1);

	store_job_cancel(job);
	assert_int_equal(stream_buf_readers(buf), 0);
	gate_set(0);
	assert_int_equal(stream_append(buf, payload + 128 * KIB,
	    sizeof(payload) - 128 * KIB), 0);
	assert_int_equal(stream_finish(buf), 0);
	stream_buf_unref(buf);

	/* Close joins the worker: everything it was asked is done. */
	store_close(fx->store);
	fx->store = NULL;
	assert_int_equal(res.calls, 0);
	assert_int_equal(count_prefix(fx->dir, ""), 0);
	assert_int_equal(hook_on_loop, 0);
}

/* A done callback cancels another job; store_close cancels the rest. */
static void
test_store_cancel_from_callback(void **state)
{
	struct fixture		*fx = *state;
	struct result		 ra = { 0 }, rb = { 0 }, rc = { 0 };
	struct stream_buf	*ba, *bb, *bc;
	uint8_t			 payload[1000], md[32];

	fill(payload, sizeof(payload), 7);
	sha256(payload, sizeof(payload), md);
	ba = stream_buf_new(sizeof(payload), 0);
	bb = stream_buf_new(sizeof(payload), 0);
	bc = stream_buf_new(sizeof(payload), 0);
	assert_non_null(store_begin(fx->store, "a", 1, sizeof(payload), md,
	    stream_reader_new(ba), done_cb, &ra));
	ra.cancel_other = store_begin(fx->store, "b", 1, sizeof(payload), md,
	    stream_reader_new(bb), done_cb, &rb);
	assert_non_null(ra.cancel_other);
	assert_non_null(store_begin(fx->store, "c", 1, sizeof(payload), md,
	    stream_reader_new(bc), done_cb, &rc));
	assert_int_equal(stream_append(bb, payload, 500), 0);
	assert_int_equal(stream_append(bc, payload, 500), 0);
	assert_int_equal(stream_append(ba, payload, sizeof(payload)), 0);
	assert_int_equal(stream_finish(ba), 0);
	run_until(fx->base, &ra.calls);
	assert_int_equal(ra.ok, 1);
	assert_int_equal(stream_buf_readers(bb), 0);
	assert_int_equal(stream_buf_readers(bc), 1);

	store_close(fx->store);
	fx->store = NULL;
	assert_int_equal(ra.calls, 1);
	assert_int_equal(rb.calls, 0);
	assert_int_equal(rc.calls, 0);
	assert_int_equal(count_prefix(fx->dir, ""), 1);
	assert_file_is(fx->dir, "a", payload, sizeof(payload));
	stream_buf_unref(ba);
	stream_buf_unref(bb);
	stream_buf_unref(bc);
}

static void
tick_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(*(int *)arg)++;
}

/*
 * With the worker held inside a write, the loop still runs other events
 * and keeps taking appends; the job stops reading at STORE_MAX_INFLIGHT.
 */
static void
test_store_loop_not_blocked(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	struct stream_reader	*r;
	struct store_job	*job;
	struct event		*tick;
	struct timeval		 zero = { 0, 0 };
	uint8_t			*payload, md[32];
	size_t			 len = 3 * MIB, off;
	int			 ticks = 0;

	payload = gated_payload(len, 8, md);

	buf = stream_buf_new(len, 0);
	r = stream_reader_new(buf);
	job = store_begin(fx->store, "slow", 4, len, md, r, done_cb, &res);
	assert_non_null(job);
	assert_int_equal(stream_append(buf, payload, 64 * KIB), 0);
	assert_true(gate_wait_entered());

	tick = evtimer_new(fx->base, tick_cb, &ticks);
	assert_non_null(tick);
	for (off = 64 * KIB; off < len; off += 64 * KIB) {
		assert_int_equal(stream_append(buf, payload + off, 64 * KIB),
		    0);
		evtimer_add(tick, &zero);
		event_base_loop(fx->base, EVLOOP_ONCE);
	}
	assert_int_equal(stream_finish(buf), 0);
	/* Every iteration ran its timer while the worker was stuck. */
	assert_int_equal(ticks, len / (64 * KIB) - 1);
	assert_int_equal(store_job_written(job), 0);
	assert_int_equal(stream_offset(r), STORE_MAX_INFLIGHT);
	assert_int_equal(stream_buf_held(buf), len - STORE_MAX_INFLIGHT);
	assert_int_equal(res.calls, 0);

	gate_set(0);
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);
	event_free(tick);
	assert_int_equal(res.ok, 1);
	assert_file_is(fx->dir, "slow", payload, len);
	assert_int_equal(count_prefix(fx->dir, ""), 1);
	assert_int_equal(hook_on_loop, 0);
	free(payload);
}

/*
 * While a write is out, small appends gather into one request of 256
 * KiB (STORE_BATCH in store.c) instead of one each; the payload's last
 * bytes go at once, without waiting for a full batch.
 */
static void
test_store_batches_while_busy(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_buf	*buf;
	struct stream_reader	*r;
	uint8_t			*payload, md[32];
	size_t			 step = 4 * KIB, len = 360 * KIB, off;

	payload = gated_payload(len, 13, md);

	buf = stream_buf_new(len, 0);
	r = stream_reader_new(buf);
	assert_non_null(store_begin(fx->store, "batch", 5, len, md, r,
	    done_cb, &res));
	assert_int_equal(stream_append(buf, payload, step), 0);
	assert_true(gate_wait_entered());
	assert_int_equal(stream_offset(r), step);

	/* 252 KiB more, 4 KiB at a time: not taken yet. */
	for (off = step; off < 256 * KIB; off += step) {
		assert_int_equal(stream_append(buf, payload + off, step), 0);
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(stream_offset(r), step);
	/* The 256th KiB readable: taken in one request. */
	assert_int_equal(stream_append(buf, payload + off, step), 0);
	off += step;
	assert_int_equal(stream_offset(r), off);
	/* The last 100 KiB complete the payload: taken at once. */
	assert_int_equal(stream_append(buf, payload + off, len - off), 0);
	assert_int_equal(stream_offset(r), len);
	assert_int_equal(stream_finish(buf), 0);

	gate_set(0);
	stream_buf_unref(buf);
	run_until(fx->base, &res.calls);
	assert_int_equal(res.ok, 1);
	assert_int_equal(res.written, len);
	assert_file_is(fx->dir, "batch", payload, len);
	assert_int_equal(hook_on_loop, 0);
	free(payload);
}

/*
 * A writer paced by credit, like a control-socket upload: the buffer's
 * release callback grants credit and the writer appends more from the
 * loop, up to a window ahead of the store.  The release callback runs
 * inside the store job's stream_consume(); an append from right there is
 * refused, and the file is byte-exact however the worker lags.
 */
struct paced {
	struct stream_buf	*buf;
	struct event		*feed;
	const uint8_t		*payload;
	size_t			 len;
	size_t			 off;
	uint64_t		 released;
	int			 refused;	/* appends refused in the cb */
	int			 tried;
};

static void
paced_feed(struct paced *pw)
{
	size_t	 n;

	while (pw->off < pw->len &&
	    pw->off - pw->released < STORE_MAX_INFLIGHT) {
		n = pw->len - pw->off;
		if (n > 48 * KIB + 7)
			n = 48 * KIB + 7;	/* never chunk-aligned */
		assert_int_equal(stream_append(pw->buf, pw->payload + pw->off,
		    n), 0);
		pw->off += n;
	}
	if (pw->off == pw->len)
		assert_int_equal(stream_finish(pw->buf), 0);
}

static void
paced_feed_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	paced_feed(arg);
}

static void
paced_release(struct stream_buf *b, uint64_t released, void *arg)
{
	struct paced	*pw = arg;
	uint8_t		 byte = 0;

	pw->released += released;
	if (pw->off < pw->len) {
		pw->tried++;
		if (stream_append(b, &byte, 1) == -1)
			pw->refused++;
		event_active(pw->feed, 0, 0);
	}
}

static void
test_store_paced_writer(void **state)
{
	struct fixture		*fx = *state;
	struct result		 res = { 0 };
	struct stream_reader	*r;
	struct paced		 pw = { 0 };
	uint8_t			*payload, md[32];
	size_t			 len = 8 * MIB + 1;

	payload = malloc(len);
	assert_non_null(payload);
	fill(payload, len, 12);
	sha256(payload, len, md);

	pw.buf = stream_buf_new(len, 0);
	assert_non_null(pw.buf);
	pw.feed = event_new(fx->base, -1, 0, paced_feed_cb, &pw);
	assert_non_null(pw.feed);
	pw.payload = payload;
	pw.len = len;
	stream_buf_set_release_cb(pw.buf, paced_release, &pw);
	r = stream_reader_new(pw.buf);
	assert_non_null(store_begin(fx->store, "paced", 5, len, md, r,
	    done_cb, &res));
	paced_feed(&pw);
	run_until(fx->base, &res.calls);

	assert_int_equal(res.ok, 1);
	assert_true(pw.tried > 0);
	assert_int_equal(pw.refused, pw.tried);
	assert_file_is(fx->dir, "paced", payload, len);
	stream_buf_unref(pw.buf);
	event_free(pw.feed);
	free(payload);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_key_filename),
		cmocka_unit_test(test_store_key_check),
		cmocka_unit_test_setup_teardown(test_store_fragments,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open_at_first_byte,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_empty,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_sha_mismatch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_size_mismatch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_bad_key,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_stream_failed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_write_error,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open_cleans,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_walk_any_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_walk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_store_accounting,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_cancel_mid_write,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_cancel_from_callback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_loop_not_blocked,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_paced_writer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_batches_while_busy,
		    setup, teardown),
	};

	log_init("test_store", 1, LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
