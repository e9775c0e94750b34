/*
 * route: next-hop choice by longest key prefix, and the set of recently
 * seen PUT ids that stops loops and replays.
 */
#include <sys/queue.h>
#include <sys/random.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "route.h"

int
route_plan(const struct config *cf, const char *key, size_t key_len,
    uint8_t budget, struct route_plan *plan)
{
	const struct route_conf	*r, *best = NULL;
	unsigned int		 i;

	memset(plan, 0, sizeof(*plan));
	for (i = 0; i < cf->nroutes; i++) {
		r = &cf->routes[i];
		if (r->prefix == NULL || r->prefix_len > key_len)
			continue;
		if (r->prefix_len > 0 && memcmp(r->prefix, key,
		    r->prefix_len) != 0)
			continue;
		if (best == NULL || r->prefix_len > best->prefix_len)
			best = r;
	}
	if (best == NULL)
		return -1;
	plan->route = best;
	plan->store = best->store;
	plan->mode = best->mode;
	if (best->nhops > 0 && budget == 0) {
		plan->budget_exhausted = 1;
		return 0;
	}
	plan->next_budget = budget > 0 ? budget - 1 : 0;
	for (i = 0; i < best->nhops && i < CONFIG_MAX_HOPS; i++)
		plan->hops[plan->nhops++] = &cf->peers[best->hops[i]];
	return 0;
}

unsigned int
route_skip(struct route_plan *plan, int (*usable)(const char *, void *),
    void *arg)
{
	unsigned int i, n = 0;

	for (i = 0; i < plan->nhops; i++)
		if (usable(plan->hops[i]->name, arg))
			plan->hops[n++] = plan->hops[i];
	i = plan->nhops - n;
	plan->nhops = n;
	return i;
}

/*
 * The seen set.  Ids come from peers, so the bucket index is a keyed hash
 * (SipHash-2-4 with a random key): a peer cannot aim many ids at one
 * bucket.  Entries sit in a FIFO in insertion order, so expiry and
 * eviction both take from the head.
 */
/*
 * An entry is on exactly one list: the fifo (oldest first, evictable) or,
 * while pins > 0, the pinned list (a PUT in flight holds it: never
 * evicted, never expired).
 */
struct route_seen_entry {
	uint8_t				 id[16];
	double				 added;
	unsigned int			 pins;
	LIST_ENTRY(route_seen_entry)	 bucket;
	TAILQ_ENTRY(route_seen_entry)	 fifo;	/* fifo or pinned */
};

LIST_HEAD(route_seen_bucket, route_seen_entry);
TAILQ_HEAD(route_seen_fifo, route_seen_entry);

struct route_seen {
	unsigned int			 max;
	unsigned int			 count;		/* on the fifo */
	unsigned int			 npinned;
	double				 ttl;
	size_t				 mask;
	uint64_t			 k0, k1;
	struct route_seen_bucket	*buckets;
	struct route_seen_fifo		 fifo;
	struct route_seen_fifo		 pinned;
};

#define ROTL(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))

static void
route_sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static uint64_t
route_le64(const uint8_t *p)
{
	uint64_t	 x = 0;
	int		 i;

	for (i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

/* SipHash-2-4 of a 16-byte message. */
static uint64_t
route_hash(const struct route_seen *s, const uint8_t id[16])
{
	uint64_t	 v[4], m;
	int		 i, r;

	v[0] = s->k0 ^ 0x736f6d6570736575ULL;
	v[1] = s->k1 ^ 0x646f72616e646f6dULL;
	v[2] = s->k0 ^ 0x6c7967656e657261ULL;
	v[3] = s->k1 ^ 0x7465646279746573ULL;
	for (i = 0; i < 3; i++) {
		/* Two message words, then the length block (16 << 56). */
		m = i < 2 ? route_le64(id + 8 * i) : (uint64_t)16 << 56;
		v[3] ^= m;
		for (r = 0; r < 2; r++)
			route_sipround(v);
		v[0] ^= m;
	}
	v[2] ^= 0xff;
	for (r = 0; r < 4; r++)
		route_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static void
route_seen_key(struct route_seen *s)
{
	uint64_t	 k[2];

	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != sizeof(k)) {
		/* Early boot without entropy: weaker, still varies. */
		k[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		k[1] = (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ULL;
	}
	s->k0 = k[0];
	s->k1 = k[1];
}

struct route_seen *
route_seen_new(unsigned int max, double ttl)
{
	struct route_seen	*s;
	size_t			 n = 1;

	if (max == 0)
		max = 1;
	while (n < max && n < ((size_t)1 << 30))
		n <<= 1;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->buckets = calloc(n, sizeof(*s->buckets))) == NULL) {
		free(s);
		return NULL;
	}
	s->max = max;
	s->ttl = ttl;
	s->mask = n - 1;
	TAILQ_INIT(&s->fifo);
	TAILQ_INIT(&s->pinned);
	route_seen_key(s);
	return s;
}

static void
route_seen_remove(struct route_seen *s, struct route_seen_entry *e)
{
	LIST_REMOVE(e, bucket);
	if (e->pins > 0) {
		TAILQ_REMOVE(&s->pinned, e, fifo);
		s->npinned--;
	} else {
		TAILQ_REMOVE(&s->fifo, e, fifo);
		s->count--;
	}
	free(e);
}

void
route_seen_free(struct route_seen *s)
{
	struct route_seen_entry	*e;

	if (s == NULL)
		return;
	while ((e = TAILQ_FIRST(&s->fifo)) != NULL)
		route_seen_remove(s, e);
	while ((e = TAILQ_FIRST(&s->pinned)) != NULL)
		route_seen_remove(s, e);
	free(s->buckets);
	free(s);
}

static struct route_seen_bucket *
route_seen_bucket(struct route_seen *s, const uint8_t id[16])
{
	return &s->buckets[route_hash(s, id) & s->mask];
}

static struct route_seen_entry *
route_seen_find(struct route_seen *s, const uint8_t id[16])
{
	struct route_seen_entry	*e;

	LIST_FOREACH(e, route_seen_bucket(s, id), bucket)
		if (memcmp(e->id, id, sizeof(e->id)) == 0)
			return e;
	return NULL;
}

/*
 * Expired entries go first, so an id older than ttl counts as new; each
 * entry is expired once, so the cost stays O(1) amortised.
 */
int
route_seen_add(struct route_seen *s, const uint8_t id[16], double now)
{
	struct route_seen_entry	*e;

	route_seen_expire(s, now);
	if (route_seen_find(s, id) != NULL)
		return 1;
	/* Only ids of PUTs no longer in flight are evicted, oldest first. */
	if (s->count >= s->max && !TAILQ_EMPTY(&s->fifo))
		route_seen_remove(s, TAILQ_FIRST(&s->fifo));
	if ((e = malloc(sizeof(*e))) == NULL)
		return -1;
	memcpy(e->id, id, sizeof(e->id));
	e->added = now;
	e->pins = 0;
	LIST_INSERT_HEAD(route_seen_bucket(s, id), e, bucket);
	TAILQ_INSERT_TAIL(&s->fifo, e, fifo);
	s->count++;
	return 0;
}

void
route_seen_del(struct route_seen *s, const uint8_t id[16])
{
	struct route_seen_entry	*e;

	if ((e = route_seen_find(s, id)) != NULL)
		route_seen_remove(s, e);
}

void
route_seen_expire(struct route_seen *s, double now)
{
	struct route_seen_entry	*e;

	while ((e = TAILQ_FIRST(&s->fifo)) != NULL && now - e->added > s->ttl)
		route_seen_remove(s, e);
}

int
route_seen_pin(struct route_seen *s, const uint8_t id[16])
{
	struct route_seen_entry	*e;

	if ((e = route_seen_find(s, id)) == NULL)
		return -1;
	if (e->pins++ == 0) {
		TAILQ_REMOVE(&s->fifo, e, fifo);
		s->count--;
		TAILQ_INSERT_TAIL(&s->pinned, e, fifo);
		s->npinned++;
	}
	return 0;
}

/*
 * The PUT is over: its id is remembered for ttl from now, like a fresh
 * one, so a late copy of it still counts as a loop.
 */
void
route_seen_unpin(struct route_seen *s, const uint8_t id[16], double now)
{
	struct route_seen_entry	*e;

	if ((e = route_seen_find(s, id)) == NULL || e->pins == 0)
		return;
	if (--e->pins > 0)
		return;
	TAILQ_REMOVE(&s->pinned, e, fifo);
	s->npinned--;
	e->added = now;
	TAILQ_INSERT_TAIL(&s->fifo, e, fifo);
	s->count++;
	while (s->count > s->max)
		route_seen_remove(s, TAILQ_FIRST(&s->fifo));
}

unsigned int
route_seen_count(const struct route_seen *s)
{
	return s->count + s->npinned;
}

unsigned int
route_seen_pinned(const struct route_seen *s)
{
	return s->npinned;
}
