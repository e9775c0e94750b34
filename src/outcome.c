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

#define OUTCOME_HASH	256

struct kept {
	TAILQ_ENTRY(kept)	 fifo;
	LIST_ENTRY(kept)	 hash;
	struct outcome		 o;
};

static TAILQ_HEAD(, kept)	kept_fifo = TAILQ_HEAD_INITIALIZER(kept_fifo);
static LIST_HEAD(, kept)	kept_hash[OUTCOME_HASH];
static unsigned int		kept_count;

struct session_entry *
outcome_add(struct outcome_list *l)
{
	struct session_entry *e;
	unsigned int cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 4;
		if (cap > WIRE_MAX_ENTRIES)
			cap = WIRE_MAX_ENTRIES;
		if (l->n >= cap)
			return NULL;
		if ((e = reallocarray(l->e, cap, sizeof(*e))) == NULL)
			return NULL;
		l->e = e;
		l->cap = cap;
	}
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
	unsigned int i;

	if (outcome_ok(e, n))
		return 0;
	for (i = 0; i < n; i++)
		if (e[i].status == WIRE_RES_FAILED) {
			snprintf(err, errlen, "failed at %s (depth %u, "
			    "reported by %s): %s", util_esc(e[i].node),
			    e[i].depth, util_esc(e[i].via),
			    util_esc(e[i].reason));
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
kept_free(struct kept *k)
{
	TAILQ_REMOVE(&kept_fifo, k, fifo);
	LIST_REMOVE(k, hash);
	kept_count--;
	free(k->o.key);
	free(k->o.entries);
	free(k);
}

static void
kept_expire(double now)
{
	struct kept *k;

	while ((k = TAILQ_FIRST(&kept_fifo)) != NULL &&
	    (kept_count > OUTCOME_MAX || now - k->o.at > OUTCOME_TTL))
		kept_free(k);
}

const struct outcome *
outcome_find(const uint8_t *id)
{
	struct kept *k;

	kept_expire(clock_mono());
	LIST_FOREACH(k, &kept_hash[kept_bucket(id)], hash)
		if (memcmp(k->o.put_id, id, WIRE_PUT_ID_LEN) == 0)
			return &k->o;
	return NULL;
}

void
outcome_keep(const uint8_t *put_id, const uint8_t *sha256, uint64_t size,
    const char *key, const struct session_entry *e, unsigned int n)
{
	struct kept *k;

	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->o.key = strdup(key)) == NULL ||
	    (k->o.entries = calloc(n ? n : 1, sizeof(*e))) == NULL) {
		if (k != NULL)
			free(k->o.key);
		free(k);
		return;		/* only a replay is lost, not data */
	}
	memcpy(k->o.put_id, put_id, sizeof(k->o.put_id));
	memcpy(k->o.sha256, sha256, sizeof(k->o.sha256));
	k->o.size = size;
	k->o.at = clock_mono();
	k->o.n = n;
	memcpy(k->o.entries, e, n * sizeof(*e));
	TAILQ_INSERT_TAIL(&kept_fifo, k, fifo);
	LIST_INSERT_HEAD(&kept_hash[kept_bucket(put_id)], k, hash);
	kept_count++;
	kept_expire(k->o.at);
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
	if ((o = outcome_find(put_id)) != NULL)
		return json_pack("{s:b,s:s,s:s,s:b,s:o}", "ok", 1, "put_id",
		    hex, "state", "done", "stored", 1, "results",
		    outcome_json(o->entries, o->n));
	return json_pack("{s:b,s:s,s:s,s:b,s:[]}", "ok", 1, "put_id", hex,
	    "state", "unknown", "stored", 0, "results");
}

void
outcome_free_all(void)
{
	struct kept *k;

	while ((k = TAILQ_FIRST(&kept_fifo)) != NULL)
		kept_free(k);
}
