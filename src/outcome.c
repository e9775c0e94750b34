/*
 * outcome: per-hop result entries, and the outcomes kept for replays.
 * See outcome.h.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "outcome.h"
#include "util.h"

#define OUTCOME_HASH	1024	/* about one record per bucket at OUTCOME_MAX */

struct kept {
	TAILQ_ENTRY(kept)	 fifo;
	LIST_ENTRY(kept)	 hash;
	struct outcome		 o;
};

/* One bounded table: OUTCOME_MAX records, none older than OUTCOME_TTL. */
struct kept_table {
	TAILQ_HEAD(kept_fifo_head, kept) fifo;
	LIST_HEAD(, kept)	 hash[OUTCOME_HASH];
	unsigned int		 count;
};

/* [0] successes (replays), [1] failures and aborts. */
static struct kept_table	kept_tabs[2] = {
	{ TAILQ_HEAD_INITIALIZER(kept_tabs[0].fifo), { { 0 } }, 0 },
	{ TAILQ_HEAD_INITIALIZER(kept_tabs[1].fifo), { { 0 } }, 0 },
};

/*
 * Room for more entries: at least want of them, grown by doubling, never
 * past WIRE_MAX_ENTRIES.  A RESULT's entries are reserved in one go, so a
 * forwarding hop's list takes two allocations (its own entry, then the
 * next hop's), not one per doubling.
 */
static int
outcome_reserve(struct outcome_list *l, unsigned int want)
{
	struct session_entry *e;
	unsigned int cap;

	if (want <= l->cap - l->n)
		return 0;
	if (want > WIRE_MAX_ENTRIES - l->n)
		want = WIRE_MAX_ENTRIES - l->n;
	if (want == 0)
		return -1;
	cap = l->cap ? l->cap * 2 : 1;	/* most hold one: this hop's */
	if (cap < l->n + want)
		cap = l->n + want;
	if (cap > WIRE_MAX_ENTRIES)
		cap = WIRE_MAX_ENTRIES;
	if ((e = reallocarray(l->e, cap, sizeof(*e))) == NULL)
		return -1;
	l->e = e;
	l->cap = cap;
	return 0;
}

struct session_entry *
outcome_add(struct outcome_list *l)
{
	struct session_entry *e;

	if (outcome_reserve(l, 1) == -1)
		return NULL;
	e = &l->e[l->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

void
outcome_add_result(struct outcome_list *l, const struct wire_frame *res,
    const char *via)
{
	struct session_entry *e;
	struct wire_entry we;
	unsigned int i;

	(void)outcome_reserve(l, res->u.result.count);
	for (i = 0; i < res->u.result.count; i++) {
		if (wire_result_entry(res, i, &we) != 0 ||
		    (e = outcome_add(l)) == NULL)
			break;
		e->status = we.status;
		e->depth = we.depth < 254 ? we.depth + 1 : 255;
		snprintf(e->node, sizeof(e->node), "%.*s", we.node_len,
		    we.node);
		snprintf(e->via, sizeof(e->via), "%s", via);
		e->bytes = we.bytes;
		e->first_us = we.first_us;
		e->last_us = we.last_us;
		snprintf(e->reason, sizeof(e->reason), "%.*s", we.reason_len,
		    we.reason);
	}
}

void
outcome_add_failed(struct outcome_list *l, const char *node,
    const char *via, uint64_t bytes, const char *reason)
{
	struct session_entry *e;

	if ((e = outcome_add(l)) == NULL)
		return;
	e->status = WIRE_RES_FAILED;
	e->depth = 1;
	snprintf(e->node, sizeof(e->node), "%s", node);
	snprintf(e->via, sizeof(e->via), "%s", via);
	e->bytes = bytes;
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason :
	    "failed");
}

#define BLAME_PREFIX	"failed at "
#define BLAME_DEPTH	" (depth "

int
outcome_blame_format(char *buf, size_t len, const char *node,
    unsigned int depth, const char *reason)
{
	return snprintf(buf, len, BLAME_PREFIX "%s" BLAME_DEPTH "%u): %s",
	    node, depth, reason);
}

int
outcome_blame_parse(const char *msg, size_t len, char *node, size_t nodelen,
    unsigned int *depth, const char **reason, size_t *reason_len)
{
	size_t plen = strlen(BLAME_PREFIX), dlen = strlen(BLAME_DEPTH);
	size_t i, n;
	unsigned int d = 0;

	if (len < plen || memcmp(msg, BLAME_PREFIX, plen) != 0)
		return -1;
	for (n = 0; plen + n < len && msg[plen + n] != ' '; n++)
		if ((unsigned char)msg[plen + n] < 0x21 ||
		    (unsigned char)msg[plen + n] > 0x7e)
			return -1;	/* not a node id (relayd.conf(5)) */
	if (n == 0 || n >= nodelen || n > CONFIG_NAME_MAX)
		return -1;
	i = plen + n;
	if (len - i < dlen || memcmp(msg + i, BLAME_DEPTH, dlen) != 0)
		return -1;
	for (i += dlen; i < len && msg[i] >= '0' && msg[i] <= '9'; i++)
		if ((d = d * 10 + (unsigned int)(msg[i] - '0')) > 255)
			return -1;
	if (i == plen + n + dlen || len - i < 3 || memcmp(msg + i, "): ",
	    3) != 0)
		return -1;
	memcpy(node, msg + plen, n);
	node[n] = '\0';
	*depth = d;
	*reason = msg + i + 3;
	*reason_len = len - i - 3;
	return 0;
}

void
outcome_add_aborted(struct outcome_list *l, const char *peer,
    const char *self, uint64_t bytes, uint16_t code, const char *msg,
    size_t msg_len)
{
	struct session_entry *e;
	char node[CONFIG_NAME_MAX + 1];
	const char *reason;
	size_t rlen;
	unsigned int depth;

	if (outcome_blame_parse(msg, msg_len, node, sizeof(node), &depth,
	    &reason, &rlen) == -1) {
		char why[SESSION_REASON_MAX + 1];

		snprintf(why, sizeof(why), "aborted by %s: %s: %.*s", peer,
		    wire_abort_name(code), (int)msg_len, msg);
		outcome_add_failed(l, peer, self, bytes, why);
		return;
	}
	/* The next hop's claim about a hop behind it, vouched for by it. */
	if ((e = outcome_add(l)) == NULL)
		return;
	e->status = WIRE_RES_FAILED;
	e->depth = depth < 254 ? depth + 1 : 255;
	snprintf(e->node, sizeof(e->node), "%s", node);
	snprintf(e->via, sizeof(e->via), "%s", peer);
	e->bytes = bytes;
	snprintf(e->reason, sizeof(e->reason), "%.*s", (int)rlen, reason);
}

const struct session_entry *
outcome_blamed(const struct session_entry *e, unsigned int n)
{
	const struct session_entry *b = NULL;
	unsigned int i;

	for (i = 0; i < n; i++)
		if (e[i].status == WIRE_RES_FAILED &&
		    (b == NULL || e[i].depth > b->depth))
			b = &e[i];
	return b;
}

int
outcome_ok(const struct session_entry *e, unsigned int n)
{
	unsigned int i, stored = 0;

	for (i = 0; i < n; i++) {
		if (e[i].status == WIRE_RES_FAILED)
			return 0;
		if (e[i].status == WIRE_RES_STORED)
			stored++;
	}
	return stored > 0;
}

static const char *
outcome_status_name(uint8_t st)
{
	switch (st) {
	case WIRE_RES_STORED:
		return "stored";
	case WIRE_RES_FORWARDED:
		return "forwarded";
	default:
		return "failed";
	}
}

json_t *
outcome_json(const struct session_entry *e, unsigned int n)
{
	json_t *a = json_array();
	unsigned int i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_pack(
		    "{s:s,s:s,s:i,s:s,s:I,s:I,s:I,s:s}", "node",
		    util_esc(e[i].node), "via", util_esc(e[i].via),
		    "depth", e[i].depth, "status",
		    outcome_status_name(e[i].status),
		    "bytes", (json_int_t)e[i].bytes,
		    "first_us", (json_int_t)e[i].first_us,
		    "last_us", (json_int_t)e[i].last_us,
		    "reason", util_esc(e[i].reason)));
	return a;
}

int
outcome_error(const struct session_entry *e, unsigned int n, char *err,
    size_t errlen)
{
	const struct session_entry *b;

	if (outcome_ok(e, n))
		return 0;
	/* The failure nearest the fault, so the operator fixes that hop. */
	if ((b = outcome_blamed(e, n)) != NULL) {
		snprintf(err, errlen, "failed at %s (depth %u, reported by "
		    "%s): %s", util_esc(b->node), b->depth, util_esc(b->via),
		    util_esc(b->reason));
		return -1;
	}
	snprintf(err, errlen, "stored nowhere");
	return -1;
}

void
outcome_list_free(struct outcome_list *l)
{
	free(l->e);
	memset(l, 0, sizeof(*l));
}

/* --- kept outcomes --- */

static unsigned int
kept_bucket(const uint8_t *id)
{
	return (id[0] | id[1] << 8) % OUTCOME_HASH;
}

static void
kept_free(struct kept_table *t, struct kept *k)
{
	TAILQ_REMOVE(&t->fifo, k, fifo);
	LIST_REMOVE(k, hash);
	t->count--;
	free(k);	/* key and entries live in the same block */
}

static void
kept_expire(struct kept_table *t, double now)
{
	struct kept *k;

	while ((k = TAILQ_FIRST(&t->fifo)) != NULL &&
	    (t->count > OUTCOME_MAX || now - k->o.at > OUTCOME_TTL))
		kept_free(t, k);
}

static struct kept *
kept_lookup(struct kept_table *t, const uint8_t *id)
{
	struct kept *k;

	kept_expire(t, clock_mono());
	LIST_FOREACH(k, &t->hash[kept_bucket(id)], hash)
		if (memcmp(k->o.put_id, id, WIRE_PUT_ID_LEN) == 0)
			return k;
	return NULL;
}

const struct outcome *
outcome_find(const uint8_t *id)
{
	struct kept *k = kept_lookup(&kept_tabs[0], id);

	return k != NULL ? &k->o : NULL;
}

const struct outcome *
outcome_find_any(const uint8_t *id)
{
	struct kept *k, *f;

	k = kept_lookup(&kept_tabs[0], id);
	f = kept_lookup(&kept_tabs[1], id);
	if (k == NULL || (f != NULL && f->o.at > k->o.at))
		k = f;
	return k != NULL ? &k->o : NULL;
}

/*
 * A new record (entries to be filled by the caller); NULL on no memory.
 * One allocation holds the record, its n entries and its key: one per
 * PUT instead of three.
 */
static struct kept *
kept_new(const uint8_t *put_id, uint64_t size, const char *key,
    unsigned int n)
{
	struct kept *k;
	size_t klen = strlen(key) + 1, elen = (n ? n : 1) *
	    sizeof(*k->o.entries);

	/* Entries right after the record (aligned, as k is), then the key. */
	if ((k = calloc(1, sizeof(*k) + elen + klen)) == NULL)
		return NULL;	/* only a replay or a record is lost */
	k->o.entries = (struct session_entry *)(k + 1);
	k->o.key = (char *)k->o.entries + elen;
	memcpy(k->o.key, key, klen);
	memcpy(k->o.put_id, put_id, sizeof(k->o.put_id));
	k->o.size = size;
	k->o.at = clock_mono();
	return k;
}

static void
kept_insert(struct kept_table *t, struct kept *k)
{
	struct kept *old;

	if ((old = kept_lookup(t, k->o.put_id)) != NULL)
		kept_free(t, old);
	TAILQ_INSERT_TAIL(&t->fifo, k, fifo);
	LIST_INSERT_HEAD(&t->hash[kept_bucket(k->o.put_id)], k, hash);
	t->count++;
	kept_expire(t, k->o.at);
}

void
outcome_keep(const uint8_t *put_id, const uint8_t *sha256, uint64_t size,
    const char *key, const struct session_entry *e, unsigned int n)
{
	struct kept *k;

	if ((k = kept_new(put_id, size, key, n)) == NULL)
		return;
	memcpy(k->o.sha256, sha256, sizeof(k->o.sha256));
	k->o.state = OUTCOME_DONE;
	k->o.n = n;
	memcpy(k->o.entries, e, n * sizeof(*e));
	kept_insert(&kept_tabs[0], k);
}

void
outcome_keep_failed(const uint8_t *put_id, uint64_t size, const char *key,
    const struct session_entry *e, unsigned int n, int aborted,
    const char *why)
{
	const struct session_entry *b;
	struct kept *k;
	unsigned int i, m, pass;

	m = n < OUTCOME_FAIL_ENTRIES ? n : OUTCOME_FAIL_ENTRIES;
	if ((k = kept_new(put_id, size, key, m)) == NULL)
		return;
	k->o.state = aborted ? OUTCOME_ABORTED : OUTCOME_FAILED;
	/* This hop's entry, then the failed ones, then the rest. */
	for (pass = 0; pass < 3; pass++)
		for (i = 0; i < n && k->o.n < m; i++)
			if (pass == 0 ? i == 0 : i > 0 && (pass == 1) ==
			    (e[i].status == WIRE_RES_FAILED))
				k->o.entries[k->o.n++] = e[i];
	if (why == NULL && (b = outcome_blamed(e, n)) != NULL)
		why = b->reason;
	snprintf(k->o.reason, sizeof(k->o.reason), "%s", why != NULL ? why :
	    "stored nowhere");
	kept_insert(&kept_tabs[1], k);
}

static const char *
outcome_state_name(enum outcome_state st)
{
	switch (st) {
	case OUTCOME_DONE:
		return "done";
	case OUTCOME_FAILED:
		return "failed";
	case OUTCOME_ABORTED:
		return "aborted";
	}
	return "?";
}

/* One record as relayctl shows it; entries only if with_results. */
static json_t *
outcome_record_json(const struct outcome *o, int with_results)
{
	const struct session_entry *b = outcome_blamed(o->entries, o->n);
	char hex[2 * WIRE_PUT_ID_LEN + 1];
	json_t *j;

	util_hex_encode(o->put_id, WIRE_PUT_ID_LEN, hex);
	j = json_pack("{s:b,s:s,s:s,s:b,s:s,s:I,s:f}", "ok", 1, "put_id",
	    hex, "state", outcome_state_name(o->state), "stored",
	    o->state == OUTCOME_DONE, "key", util_esc(o->key), "size",
	    (json_int_t)o->size, "age_s", clock_mono() - o->at);
	if (o->state != OUTCOME_DONE) {
		json_object_set_new(j, "reason", json_string(util_esc(
		    o->reason)));
		json_object_set_new(j, "failing_hop", b != NULL ?
		    json_string(util_esc(b->node)) : json_null());
	}
	json_object_set_new(j, "results", with_results ?
	    outcome_json(o->entries, o->n) : json_array());
	return j;
}

json_t *
outcome_query_json(const uint8_t *put_id, int in_flight)
{
	char hex[2 * WIRE_PUT_ID_LEN + 1];
	const struct outcome *o;

	util_hex_encode(put_id, WIRE_PUT_ID_LEN, hex);
	if (in_flight)
		return json_pack("{s:b,s:s,s:s,s:b,s:[]}", "ok", 1, "put_id",
		    hex, "state", "in-flight", "stored", 0, "results");
	if ((o = outcome_find_any(put_id)) != NULL)
		return outcome_record_json(o, 1);
	return json_pack("{s:b,s:s,s:s,s:b,s:[]}", "ok", 1, "put_id", hex,
	    "state", "unknown", "stored", 0, "results");
}

/* Newest first, from both tables, merged by the time they were kept. */
json_t *
outcome_recent_json(unsigned int max)
{
	struct kept *a, *b, *k;
	json_t *list = json_array(), *r;
	unsigned int n = 0;

	kept_expire(&kept_tabs[0], clock_mono());
	kept_expire(&kept_tabs[1], clock_mono());
	a = TAILQ_LAST(&kept_tabs[0].fifo, kept_fifo_head);
	b = TAILQ_LAST(&kept_tabs[1].fifo, kept_fifo_head);
	while ((a != NULL || b != NULL) && n++ < max) {
		if (b == NULL || (a != NULL && a->o.at >= b->o.at)) {
			k = a;
			a = TAILQ_PREV(a, kept_fifo_head, fifo);
		} else {
			k = b;
			b = TAILQ_PREV(b, kept_fifo_head, fifo);
		}
		r = outcome_record_json(&k->o, 0);
		json_object_del(r, "ok");
		json_object_del(r, "results");
		json_array_append_new(list, r);
	}
	return json_pack("{s:b,s:o,s:i,s:i,s:i,s:f}", "ok", 1, "puts", list,
	    "kept_ok", (int)kept_tabs[0].count, "kept_failed",
	    (int)kept_tabs[1].count, "max", OUTCOME_MAX, "ttl_s", OUTCOME_TTL);
}

unsigned int
outcome_kept_count(int failures)
{
	struct kept_table *t = &kept_tabs[failures ? 1 : 0];

	kept_expire(t, clock_mono());
	return t->count;
}

void
outcome_free_all(void)
{
	struct kept *k;
	int i;

	for (i = 0; i < 2; i++)
		while ((k = TAILQ_FIRST(&kept_tabs[i].fifo)) != NULL)
			kept_free(&kept_tabs[i], k);
}
