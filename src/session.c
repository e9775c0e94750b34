#include <sys/queue.h>
#include <sys/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "outcome.h"
#include "peer.h"
#include "pipe.h"
#include "daemon.h"
#include "route.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "stream.h"
#include "util.h"

enum session_state {
	SESS_RECEIVING = 0,	/* bytes still coming from upstream */
	SESS_COMPLETE,		/* every byte is in the buffer */
	SESS_FAILED,		/* buffer failed; forks are aborting */
	SESS_DONE,		/* outcome decided, waiting to be reaped */
};

enum store_state {
	ST_NONE = 0,
	ST_WRITING,
	ST_STORED,
	ST_FAILED,
};

TAILQ_HEAD(pipe_list, pipe);

struct session {
	TAILQ_ENTRY(session)	 entry;
	uint64_t		 id;
	uint8_t			 put_id[WIRE_PUT_ID_LEN];
	char			 put_hex[2 * WIRE_PUT_ID_LEN + 1];
	/* key, key_esc and key_log lie in the session's own block. */
	char			*key;
	char			*key_esc;	/* util_escape()d: JSON */
	char			*key_log;	/* as a log field (no blank) */
	size_t			 key_len;
	uint64_t		 size;
	uint8_t			 sha256[WIRE_SHA256_LEN];
	struct config		*conf;
	struct route_plan	 plan;
	struct stream_buf	*buf;
	enum session_state	 state;
	enum store_state	 store;
	struct store_job	*store_job;
	char			 store_reason[SESSION_REASON_MAX + 1];
	struct pipe_list	 forks;
	unsigned int		 forks_pending;
	struct outcome_list	 out;		/* .e[0] is this hop */
	const struct session_upstream_ops *ops;
	void			*up;
	char			 upstream_name[CONFIG_NAME_MAX + 1];
	char			 fail_reason[SESSION_REASON_MAX + 1];
	uint64_t		 first_us;
	uint64_t		 last_us;
	double			 created;
	double			 last_progress;	/* data from upstream */
	double			 last_drain;	/* credit moved on */
	struct clock_timer	*timer;
	struct event		*reap_ev;	/* in the session's block */
	int			 listed;	/* on env->sessions */
	int			 replay;	/* answered from an outcome */
	int			 pinned;	/* holds its id in env->seen */
	uint64_t		 credited;	/* consumption told upstream */
};

static void	session_timer_cb(void *);
static void	session_reap_cb(evutil_socket_t, short, void *);
static void	session_check_done(struct session *);
static void	session_fail(struct session *, uint16_t, const char *);
static void	session_own_entry(struct session *);
static void	session_fork_done(struct session *, struct pipe *,
		    const struct wire_frame *, const char *);

static struct session *
session_find_live(const uint8_t *id)
{
	struct session *s;

	TAILQ_FOREACH(s, &env->sessions, entry)
		if (s->state != SESS_DONE &&
		    memcmp(s->put_id, id, WIRE_PUT_ID_LEN) == 0)
			return s;
	return NULL;
}

int
session_replayed(const struct session *s)
{
	return s->replay;
}

/*
 * The id was seen before.  A live session with it means a loop.  A
 * stored outcome for the same payload and key is replayed; one for
 * another payload or key is refused.  Anything else (an earlier failure) is a retry.
 */
static int
session_seen_again(struct session *s, uint16_t *code, char *err,
    size_t errlen)
{
	const struct outcome *o;

	if (session_find_live(s->put_id) != NULL) {
		*code = WIRE_ABORT_LOOP;
		snprintf(err, errlen, "put %s already in flight on %s (loop)",
		    s->put_hex, s->conf->node_id);
		return -1;
	}
	if ((o = outcome_find(s->put_id)) == NULL)
		return 0;
	if (o->size != s->size || memcmp(o->sha256, s->sha256,
	    sizeof(o->sha256)) != 0) {
		*code = WIRE_ABORT_LOOP;
		snprintf(err, errlen, "put id %s was used for another payload",
		    s->put_hex);
		return -1;
	}
	if (strcmp(o->key, s->key) != 0) {
		/* Stored under the first key only: "stored" would be a lie. */
		*code = WIRE_ABORT_LOOP;
		snprintf(err, errlen, "put id %s was stored under another key",
		    s->put_hex);
		return -1;
	}
	if ((s->out.e = calloc(o->n, sizeof(*s->out.e))) == NULL) {
		*code = WIRE_ABORT_INTERNAL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(s->out.e, o->entries, o->n * sizeof(*s->out.e));
	s->out.n = s->out.cap = o->n;
	s->replay = 1;
	return 0;
}

/*
 * Credit follows the fastest next hop, so a slow hop slows only its own
 * fork: a fork more than max_fork_lag behind the fastest is aborted as a
 * slow next hop.  The local store is never aborted for being slow; credit
 * stops max_fork_lag ahead of it instead.  So a stream holds at most about
 * max_fork_lag + stream_window bytes.
 */
static uint64_t
session_fastest_fork(struct session *s, int *any)
{
	struct pipe *p;
	uint64_t off, fastest = 0;

	*any = 0;
	TAILQ_FOREACH(p, &s->forks, sess_entry) {
		if (p->state == PIPE_DONE)
			continue;
		off = stream_offset(p->reader);
		if (!*any || off > fastest)
			fastest = off;
		*any = 1;
	}
	return fastest;
}

static void
session_abort_slow(struct session *s, uint64_t fastest)
{
	uint64_t lag = s->conf->max_fork_lag, off;
	struct pipe *p;
	char why[160];

	TAILQ_FOREACH(p, &s->forks, sess_entry) {
		if (p->state == PIPE_DONE)
			continue;
		off = stream_offset(p->reader);
		if (fastest - off <= lag)
			continue;
		snprintf(why, sizeof(why), "slow next hop: %s is %llu bytes "
		    "behind the fastest fork (max_fork_lag %llu)",
		    p->peer_name, (unsigned long long)(fastest - off),
		    (unsigned long long)lag);
		log_put(s->put_hex, s->key_esc, p->peer_name, why);
		log_warnx("stream=%llu put=%s %s", (unsigned long long)s->id,
		    s->put_hex, why);
		pipe_abort(p, WIRE_ABORT_LIMIT, why);
	}
}

void
session_progress(struct session *s)
{
	uint64_t eff, pos, fastest;
	int any;

	if (s->state != SESS_RECEIVING)
		return;
	fastest = session_fastest_fork(s, &any);
	if (any)
		session_abort_slow(s, fastest);
	eff = any ? fastest : stream_buf_appended(s->buf);
	if (s->store == ST_WRITING && s->store_job != NULL &&
	    (pos = store_job_position(s->store_job)) != UINT64_MAX) {
		if (!any || pos + s->conf->max_fork_lag < eff)
			eff = any ? pos + s->conf->max_fork_lag : pos;
	}
	if (eff <= s->credited)
		return;
	pos = eff - s->credited;
	s->credited = eff;
	s->last_drain = clock_mono();
	if (s->ops != NULL && s->ops->credit != NULL)
		s->ops->credit(s->up, s, pos);
}

uint64_t
session_backlog(const struct session *s)
{
	return stream_buf_appended(s->buf) - s->credited;
}

static void
session_release_cb(struct stream_buf *buf, uint64_t released, void *arg)
{
	(void)buf;
	(void)released;
	session_progress(arg);
}

static void
session_store_done(struct store_job *job, int ok, const char *reason,
    void *arg)
{
	struct session *s = arg;

	(void)job;
	s->store_job = NULL;
	s->store = ok ? ST_STORED : ST_FAILED;
	if (ok)
		STATS_INC(stores_ok);
	else
		STATS_INC(stores_failed);
	if (!ok)
		snprintf(s->store_reason, sizeof(s->store_reason), "%s",
		    reason ? reason : "store failed");
	log_put(s->put_hex, s->key_esc, NULL, ok ? NULL : s->store_reason);
	log_info("stream=%llu put=%s key=%s store=%s%s%s",
	    (unsigned long long)s->id, s->put_hex, s->key_log,
	    ok ? "stored" : "failed", ok ? "" : " reason=",
	    ok ? "" : util_esc(s->store_reason));
	if (events_wanted())
		events_publish("stream-stored", json_pack("{s:I,s:s,s:s,s:b,"
		    "s:s}", "stream", (json_int_t)s->id, "put_id", s->put_hex,
		    "key", s->key_esc, "ok", ok, "reason", ok ? "" :
		    util_esc(s->store_reason)));
	session_check_done(s);
}

/* Validate the PUT and decide where it goes; fills code/err if refused. */
static int
session_admit(struct session *s, uint8_t budget, uint16_t *code,
    char *err, size_t errlen)
{
	if (env->draining) {
		*code = WIRE_ABORT_SHUTDOWN;
		snprintf(err, errlen, "relay %s is draining",
		    s->conf->node_id);
		return -1;
	}
	/* Refused here, not only on a storing hop further on. */
	if (store_key_check(s->key, s->key_len, err, errlen) == -1) {
		*code = WIRE_ABORT_PROTOCOL;
		return -1;
	}
	if (s->size > s->conf->max_payload) {
		*code = WIRE_ABORT_TOO_LARGE;
		snprintf(err, errlen, "declared size %llu above max_payload "
		    "%llu", (unsigned long long)s->size,
		    (unsigned long long)s->conf->max_payload);
		return -1;
	}
	if (route_plan(s->conf, s->key, s->key_len, budget, &s->plan) == -1 ||
	    (s->plan.nhops == 0 && !s->plan.store &&
	    !s->plan.budget_exhausted)) {
		*code = WIRE_ABORT_NO_ROUTE;
		snprintf(err, errlen, "no route for key on %s",
		    s->conf->node_id);
		return -1;
	}
	if (route_skip(&s->plan, peer_usable, NULL) > 0 &&
	    s->plan.nhops == 0 && !s->plan.store) {
		*code = WIRE_ABORT_NO_ROUTE;
		snprintf(err, errlen, "no route for key on %s: every next "
		    "hop is disabled or draining", s->conf->node_id);
		return -1;
	}
	switch (route_seen_add(env->seen, s->put_id, clock_mono())) {
	case 1:
		if (session_seen_again(s, code, err, errlen) == -1)
			return -1;
		break;
	case -1:
		*code = WIRE_ABORT_INTERNAL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* The storing hop refuses what its store has no room for. */
	if (s->plan.store && !s->replay && store_admit(env->store, s->size,
	    s->conf->store_max_bytes, err, errlen) == -1) {
		*code = WIRE_ABORT_LIMIT;
		return -1;
	}
	/* In flight from here: no flood of other ids may evict this one. */
	s->pinned = route_seen_pin(env->seen, s->put_id) == 0;
	return 0;
}

static void
session_unpin(struct session *s)
{
	if (!s->pinned)
		return;
	s->pinned = 0;
	route_seen_unpin(env->seen, s->put_id, clock_mono());
}

static void
session_pipe_done(void *owner, struct pipe *p, const struct wire_frame *res,
    const char *why)
{
	session_fork_done(owner, p, res, why);
}

static void
session_pipe_progress(void *owner)
{
	session_progress(owner);
}

static const struct pipe_owner_ops session_pipe_ops = {
	.done = session_pipe_done,
	.progress = session_pipe_progress,
};

/* A fork to the next hop p, reading r; NULL on no memory. */
static struct pipe *
session_pipe_new(struct session *s, struct peer *p, struct stream_reader *r)
{
	struct pipe_params pp = {
		.ops = &session_pipe_ops,
		.owner = s,
		.reader = r,
		.out = &peer_output,
		.link = p,
		.peer_name = peer_name(p),
		.key = s->key,
		.key_len = s->key_len,
		.put_id = s->put_id,
		.put_hex = s->put_hex,
		.sha256 = s->sha256,
		.hops = s->plan.next_budget,
		.sess_id = s->id,
		/* Deeper hops give up first: see pipe_deadline(). */
		.inactivity = pipe_deadline(s->conf->stream_inactivity_timeout,
		    s->plan.next_budget),
		.result_timeout = pipe_deadline(s->conf->result_timeout,
		    s->plan.next_budget),
	};

	return pipe_new(&pp);
}

/* Pick the next hops of the plan; failover takes the first link up. */
static int
session_start_forks(struct session *s, struct stream_reader *base)
{
	struct peer *p;
	struct pipe *pp;
	unsigned int i, first = 0, n = s->plan.nhops;

	if (s->plan.mode == ROUTE_FAILOVER && n > 0) {
		for (i = 0; i < n; i++) {
			p = peer_find_outbound(s->plan.hops[i]->name);
			if (p != NULL && peer_is_up(p))
				break;
		}
		first = i < n ? i : 0;
		n = first + 1;
	}
	for (i = first; i < n; i++) {
		struct stream_reader *r;

		p = peer_find_outbound(s->plan.hops[i]->name);
		if (p == NULL)
			continue;	/* config validation prevents this */
		if ((r = stream_fork(base)) == NULL)
			return -1;
		if ((pp = session_pipe_new(s, p, r)) == NULL) {
			stream_reader_free(r);
			return -1;
		}
		TAILQ_INSERT_TAIL(&s->forks, pp, sess_entry);
		s->forks_pending++;
		pipe_start(pp);
	}
	return 0;
}

static int
session_start(struct session *s)
{
	struct stream_reader *base, *r;

	if ((s->buf = stream_buf_new(s->size, 0)) == NULL)
		return -1;
	stream_buf_set_release_cb(s->buf, session_release_cb, s);
	if (s->replay)
		return 0;	/* no readers: the bytes are taken and dropped */
	if ((base = stream_reader_new(s->buf)) == NULL)
		return -1;
	if (s->plan.store) {
		if ((r = stream_fork(base)) == NULL)
			goto fail;
		s->store_job = store_begin(env->store, s->key, s->key_len,
		    s->size, s->sha256, r, session_store_done, s);
		if (s->store_job == NULL) {
			stream_reader_free(r);
			goto fail;
		}
		s->store = ST_WRITING;
	}
	if (session_start_forks(s, base) == -1)
		goto fail;
	/* The forks and the store own their readers; the base goes. */
	stream_reader_free(base);
	return 0;
 fail:
	stream_reader_free(base);
	return -1;
}

/* Where the reap event lies in a session's block: after it, aligned. */
#define SESSION_EV_OFF	((sizeof(struct session) + \
	_Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

/*
 * One allocation per session: the session, its reap event (event_assign)
 * and its key with the key's two escaped forms, each at its own length
 * (escaped on the stack first).  NULL with code and err set if refused.
 */
static struct session *
session_alloc(const struct wire_put *put, uint16_t *code, char *err,
    size_t errlen)
{
	char esc[UTIL_ESCAPED_LEN(WIRE_MAX_KEY)];
	char fld[UTIL_ESCAPED_LEN(WIRE_MAX_KEY)];
	size_t klen = put->key_len, elen, flen, evlen;
	struct session *s;
	char *k;

	*code = WIRE_ABORT_PROTOCOL;
	if (klen > WIRE_MAX_KEY) {
		snprintf(err, errlen, "key longer than %d bytes", WIRE_MAX_KEY);
		return NULL;
	}
	if (memchr(put->key, '\0', klen) != NULL) {
		snprintf(err, errlen, "key contains NUL");
		return NULL;
	}
	util_escape(put->key, klen, esc, sizeof(esc));
	util_escape_field(put->key, klen, fld, sizeof(fld));
	elen = strlen(esc) + 1;
	flen = strlen(fld) + 1;
	evlen = event_get_struct_event_size();
	*code = WIRE_ABORT_INTERNAL;
	snprintf(err, errlen, "out of memory");
	if ((s = calloc(1, SESSION_EV_OFF + evlen + klen + 1 + elen +
	    flen)) == NULL)
		return NULL;
	s->reap_ev = (struct event *)((char *)s + SESSION_EV_OFF);
	event_assign(s->reap_ev, env->base, -1, 0, session_reap_cb, s);
	k = (char *)s->reap_ev + evlen;
	memcpy(k, put->key, klen);
	k[klen] = '\0';
	s->key = k;
	s->key_len = klen;
	s->key_esc = memcpy(k + klen + 1, esc, elen);
	s->key_log = memcpy(s->key_esc + elen, fld, flen);
	return s;
}

struct session *
session_new(const struct session_params *sp, uint16_t *code, char *err,
    size_t errlen)
{
	const struct wire_put *put = sp->put;
	struct session *s;

	if ((s = session_alloc(put, code, err, errlen)) == NULL)
		return NULL;
	TAILQ_INIT(&s->forks);
	s->conf = env->conf;
	config_ref(s->conf);
	memcpy(s->put_id, put->put_id, sizeof(s->put_id));
	util_hex_encode(s->put_id, sizeof(s->put_id), s->put_hex);
	s->size = put->size;
	memcpy(s->sha256, put->sha256, sizeof(s->sha256));
	snprintf(s->upstream_name, sizeof(s->upstream_name), "%s",
	    sp->upstream_name);
	s->id = ++env->next_session_id;
	s->created = s->last_progress = s->last_drain = clock_mono();
	if (session_admit(s, put->hops, code, err, errlen) == -1) {
		STATS_CODE(puts_refused, *code);
		goto fail;
	}
	*code = WIRE_ABORT_INTERNAL;
	snprintf(err, errlen, "out of memory");
	if (!s->replay && outcome_add(&s->out) == NULL)
		goto fail;
	if ((s->timer = clock_timer_new(session_timer_cb, s)) == NULL)
		goto fail;
	TAILQ_INSERT_TAIL(&env->sessions, s, entry);
	s->listed = 1;
	s->ops = sp->ops;
	s->up = sp->up;
	if (session_start(s) == -1) {
		TAILQ_REMOVE(&env->sessions, s, entry);
		s->listed = 0;
		s->ops = NULL;
		goto fail;
	}
	STATS_INC(puts_received);
	clock_timer_arm(s->timer, s->conf->stream_inactivity_timeout);
	log_put(s->put_hex, s->key_esc, s->upstream_name, NULL);
	log_info("stream=%llu put=%s key=%s size=%llu from=%s store=%s "
	    "forks=%u budget=%u%s", (unsigned long long)s->id, s->put_hex,
	    s->key_log, (unsigned long long)s->size, s->upstream_name,
	    s->plan.store && !s->replay ? "yes" : "no", s->forks_pending,
	    put->hops, s->replay ? " replay=stored-before" : "");
	if (s->size == 0)
		s->first_us = clock_wall_us();
	if (events_wanted())
		events_publish("stream-opened", json_pack("{s:I,s:s,s:s,s:I,"
		    "s:s,s:b,s:i}", "stream", (json_int_t)s->id, "put_id",
		    s->put_hex, "key", s->key_esc, "size", (json_int_t)s->size,
		    "from", s->upstream_name, "store", s->plan.store,
		    "forks", (int)s->forks_pending));
	return s;
 fail:
	/* Forks may exist if session_start failed half way. */
	s->state = SESS_DONE;
	session_reap_cb(-1, 0, s);
	return NULL;
}

/* Payload bytes landed in the buffer: the bookkeeping of every append. */
static void
session_appended(struct session *s, size_t n)
{
	uint64_t now = clock_wall_us();

	STATS_ADD(payload_in, n);
	if (s->first_us == 0)
		s->first_us = now;
	s->last_us = now;
	s->last_progress = clock_mono();
}

int
session_data(struct session *s, struct evbuffer *evb, size_t len)
{
	size_t total = len;

	if (s->state != SESS_RECEIVING ||
	    stream_buf_appended(s->buf) + len > s->size) {
		if (s->state == SESS_RECEIVING)
			session_fail(s, WIRE_ABORT_SIZE,
			    "more payload than declared");
		evbuffer_drain(evb, len);
		return -1;
	}
	while (len > 0) {
		size_t room, n;
		void *space = stream_append_space(s->buf, &room);

		if (space == NULL) {
			evbuffer_drain(evb, len);
			session_fail(s, WIRE_ABORT_INTERNAL, "out of memory");
			return -1;
		}
		n = len < room ? len : room;
		evbuffer_remove(evb, space, n);
		len -= n;
		if (stream_append_commit(s->buf, n) == -1) {
			evbuffer_drain(evb, len);
			session_fail(s, WIRE_ABORT_INTERNAL, "append failed");
			return -1;
		}
	}
	session_appended(s, total);
	return 0;
}

void *
session_data_space(struct session *s, size_t max, size_t *room)
{
	void *space;

	if (s->state != SESS_RECEIVING ||
	    stream_buf_appended(s->buf) + max > s->size)
		return NULL;
	if ((space = stream_append_space(s->buf, room)) == NULL)
		return NULL;
	if (*room > max)
		*room = max;
	return space;
}

int
session_data_commit(struct session *s, size_t n)
{
	if (stream_append_commit(s->buf, n) == -1) {
		session_fail(s, WIRE_ABORT_INTERNAL, "append failed");
		return -1;
	}
	session_appended(s, n);
	return 0;
}

int
session_end(struct session *s)
{
	char why[128];

	if (s->state != SESS_RECEIVING)
		return -1;
	if (stream_finish(s->buf) == -1) {
		snprintf(why, sizeof(why), "payload ended short: %llu of "
		    "%llu bytes", (unsigned long long)
		    stream_buf_appended(s->buf),
		    (unsigned long long)s->size);
		session_fail(s, WIRE_ABORT_SIZE, why);
		return -1;
	}
	if (s->last_us == 0)
		s->last_us = clock_wall_us();
	s->state = SESS_COMPLETE;
	/*
	 * From here the wait for store and forks is bounded by
	 * result_timeout, a step after the forks' own result deadlines.
	 */
	clock_timer_arm(s->timer, pipe_deadline(s->conf->result_timeout,
	    s->plan.next_budget) + PIPE_BLAME_STEP(s->conf->result_timeout));
	session_check_done(s);
	return 0;
}

/*
 * The buffer fails: readers see STREAM_FAILED, so every fork sends ABORT
 * downstream at once and the store unlinks its temp file.  The upstream
 * (if still there) hears code/why.
 */
static void
session_fail(struct session *s, uint16_t code, const char *why)
{
	const struct session_upstream_ops *ops = s->ops;
	struct pipe *p;

	if (s->state != SESS_RECEIVING)
		return;
	s->state = SESS_FAILED;
	STATS_CODE(streams_aborted, code);
	snprintf(s->fail_reason, sizeof(s->fail_reason), "%s", why);
	log_put(s->put_hex, s->key_esc, s->upstream_name, why);
	log_warnx("stream=%llu put=%s key=%s failed reason=\"%s\" "
	    "bytes_in=%llu buffered=%llu age=%.3fs",
	    (unsigned long long)s->id, s->put_hex, s->key_log, util_esc(why),
	    (unsigned long long)stream_buf_appended(s->buf),
	    (unsigned long long)stream_buf_held(s->buf),
	    clock_mono() - s->created);
	if (!s->replay && s->out.n > 0) {
		session_own_entry(s);
		s->out.e[0].status = WIRE_RES_FAILED;
		snprintf(s->out.e[0].reason, sizeof(s->out.e[0].reason), "%s",
		    why);
		outcome_keep_failed(s->put_id, s->size, s->key, s->out.e,
		    s->out.n, 1, why);
	}
	s->ops = NULL;
	if (ops != NULL && ops->abort != NULL)
		ops->abort(s->up, s, code, why);
	/* A silent upstream is a timeout downstream too, not a loss. */
	TAILQ_FOREACH(p, &s->forks, sess_entry)
		if (code == WIRE_ABORT_TIMEOUT)
			p->down_code = code;
	stream_fail(s->buf, why);
	/* Forks abort at once; this only bounds a fork stuck on its link. */
	clock_timer_arm(s->timer, s->conf->stream_inactivity_timeout);
	session_check_done(s);
}

void
session_upstream_lost(struct session *s, const char *why)
{
	s->ops = NULL;
	s->up = NULL;
	if (s->state == SESS_RECEIVING)
		session_fail(s, WIRE_ABORT_UPSTREAM_LOST, why);
	else {
		log_put(s->put_hex, s->key_esc, s->upstream_name, why);
		log_info("stream=%llu put=%s upstream gone after the last "
		    "byte (%s); forks and store go on",
		    (unsigned long long)s->id, s->put_hex, why);
	}
}

/*
 * Fail fast: a stream still arriving whose every branch has failed, on a
 * relay that does not store it, can go nowhere.  It is aborted upstream
 * at once, with a text that names the failure nearest the fault
 * (outcome_blame_format), instead of taking the rest of the upload.
 */
static int
session_fail_fast(struct session *s)
{
	const struct session_entry *b;
	struct pipe *p;
	uint16_t code = WIRE_ABORT_INTERNAL;
	char why[WIRE_MAX_TEXT];

	if (s->state != SESS_RECEIVING || s->forks_pending > 0 ||
	    s->plan.nhops == 0 || s->store == ST_WRITING ||
	    s->store == ST_STORED || s->replay || s->out.n < 2)
		return 0;
	if ((b = outcome_blamed(s->out.e + 1, s->out.n - 1)) == NULL)
		return 0;
	TAILQ_FOREACH(p, &s->forks, sess_entry)
		if (p->fail_code != 0)
			code = p->fail_code;
	outcome_blame_format(why, sizeof(why), b->node, b->depth, b->reason);
	log_warnx("stream=%llu put=%s no branch left: %s",
	    (unsigned long long)s->id, s->put_hex, util_esc(why));
	session_fail(s, code, why);
	return 1;
}

static void
session_fork_done(struct session *s, struct pipe *p,
    const struct wire_frame *res, const char *reason)
{
	if (s->forks_pending > 0)
		s->forks_pending--;
	if (res != NULL) {
		STATS_INC(puts_forwarded);
		outcome_add_result(&s->out, res, p->peer_name);
	} else if (s->state != SESS_FAILED && p->peer_aborted)
		outcome_add_aborted(&s->out, p->peer_name, s->conf->node_id,
		    p->bytes_out, p->fail_code, p->abort_msg, p->abort_len);
	else if (s->state != SESS_FAILED)
		outcome_add_failed(&s->out, p->peer_name, s->conf->node_id,
		    p->bytes_out, reason);
	if (session_fail_fast(s))
		return;
	session_check_done(s);
}

/* Some next hop took the payload whole (its own entry is not failed). */
static int
session_forwarded(const struct session *s)
{
	unsigned int i;

	for (i = 1; i < s->out.n; i++)
		if (s->out.e[i].depth == 1 &&
		    s->out.e[i].status != WIRE_RES_FAILED)
			return 1;
	return 0;
}

static void
session_own_entry(struct session *s)
{
	struct session_entry *e = &s->out.e[0];

	e->depth = 0;
	snprintf(e->node, sizeof(e->node), "%s", s->conf->node_id);
	snprintf(e->via, sizeof(e->via), "%s", s->conf->node_id);
	e->bytes = stream_buf_appended(s->buf);
	e->first_us = s->first_us;
	e->last_us = s->last_us;
	if (s->store == ST_FAILED) {
		e->status = WIRE_RES_FAILED;
		snprintf(e->reason, sizeof(e->reason), "store: %s",
		    s->store_reason);
	} else if (s->store == ST_STORED)
		e->status = WIRE_RES_STORED;
	else if (s->plan.nhops > 0 && !session_forwarded(s)) {
		/* "forwarded" would claim work that did not happen. */
		e->status = WIRE_RES_FAILED;
		snprintf(e->reason, sizeof(e->reason), "not stored here and "
		    "no next hop took the payload");
	} else
		e->status = WIRE_RES_FORWARDED;
	if (s->plan.budget_exhausted && s->plan.nhops == 0 &&
	    e->status != WIRE_RES_FAILED) {
		e->status = WIRE_RES_FAILED;
		snprintf(e->reason, sizeof(e->reason), "hop budget exhausted "
		    "before the next hop%s", s->store == ST_STORED ?
		    " (stored here)" : "");
	}
}

static void
session_close(struct session *s)
{
	session_unpin(s);
	s->state = SESS_DONE;
	clock_timer_disarm(s->timer);
	event_active(s->reap_ev, 0, 0);
}

static void
session_check_done(struct session *s)
{
	const struct session_upstream_ops *ops;
	int ok;

	if (s->state == SESS_RECEIVING || s->state == SESS_DONE)
		return;
	if (s->forks_pending > 0 || s->store == ST_WRITING)
		return;
	if (s->state == SESS_FAILED) {
		STATS_INC(puts_failed);
		stats_duration(clock_mono() - s->created);
		if (events_wanted())
			events_publish("stream-aborted", json_pack("{s:I,s:s,"
			    "s:s,s:b,s:s}", "stream", (json_int_t)s->id,
			    "put_id", s->put_hex, "key", s->key_esc, "ok", 0,
			    "reason", util_esc(s->fail_reason)));
		session_close(s);
		return;
	}
	if (!s->replay)
		session_own_entry(s);
	ok = outcome_ok(s->out.e, s->out.n);
	if (ok && s->store == ST_STORED)
		STATS_INC(puts_stored);
	else if (ok)
		STATS_INC(puts_relayed);	/* stored elsewhere, or replayed */
	else
		STATS_INC(puts_failed);
	if (ok && !s->replay)
		outcome_keep(s->put_id, s->sha256, s->size, s->key, s->out.e,
		    s->out.n);
	else if (!s->replay)
		outcome_keep_failed(s->put_id, s->size, s->key, s->out.e,
		    s->out.n, 0, NULL);
	stats_duration(clock_mono() - s->created);
	if (events_wanted())
		events_publish("stream-done", json_pack("{s:I,s:s,s:s,s:b,s:i,"
		    "s:s}", "stream", (json_int_t)s->id, "put_id", s->put_hex,
		    "key", s->key_esc, "ok", ok, "hops", (int)s->out.n,
		    "reason", ok ? "" : "a hop failed"));
	log_put(s->put_hex, s->key_esc, NULL, ok ? NULL : "a hop failed");
	log_info("stream=%llu put=%s key=%s done ok=%d hops=%u bytes=%llu "
	    "age=%.3fs", (unsigned long long)s->id, s->put_hex, s->key_log, ok,
	    s->out.n, (unsigned long long)s->out.e[0].bytes,
	    clock_mono() - s->created);
	ops = s->ops;
	s->ops = NULL;
	if (ops != NULL && ops->result != NULL)
		ops->result(s->up, s, s->out.e, s->out.n, ok);
	else {
		log_put(s->put_hex, s->key_esc, s->upstream_name,
		    "upstream gone");
		log_info("stream=%llu put=%s result not sent: upstream gone",
		    (unsigned long long)s->id, s->put_hex);
	}
	session_close(s);
}

/*
 * No data from upstream for the inactivity timeout.  If this relay is the
 * one holding the upstream back (it used up its credit because a fork or
 * the store does not move), the upstream is not to blame: the stalled
 * fork's own timer aborts it at the same timeout and credit flows again.
 * Only if nothing drains for twice the timeout (a store that no longer
 * moves) does the stream fail here, and it says so.
 */
static void
session_receiving_timeout(struct session *s)
{
	double t = s->conf->stream_inactivity_timeout, now = clock_mono();
	double idle, stuck;
	char why[200];

	if (session_backlog(s) >= s->conf->stream_window / 2) {
		stuck = now - s->last_drain;
		if (stuck < 2 * t - 0.001) {
			clock_timer_arm(s->timer, 2 * t - stuck);
			return;
		}
		snprintf(why, sizeof(why), "nothing drained on %s for %.1fs "
		    "(store or next hops stuck; inactivity timeout)",
		    s->conf->node_id, stuck);
	} else {
		/* The upstream has had credit since the last drain at least. */
		idle = now - (s->last_progress > s->last_drain ?
		    s->last_progress : s->last_drain);
		if (idle < t - 0.001) {
			clock_timer_arm(s->timer, t - idle);
			return;
		}
		snprintf(why, sizeof(why), "no data from %s for %.1fs "
		    "(inactivity timeout)", s->upstream_name, idle);
	}
	session_fail(s, WIRE_ABORT_TIMEOUT, why);
}

static void
session_timer_cb(void *arg)
{
	struct session *s = arg;
	struct pipe *p;
	char why[160];

	if (s->state == SESS_RECEIVING) {
		session_receiving_timeout(s);
		return;
	}
	if (s->state == SESS_DONE)
		return;
	/* The result wait is over: give up on what has not answered. */
	if (s->state == SESS_FAILED)
		snprintf(why, sizeof(why), "stream failed: %s",
		    s->fail_reason);
	else
		snprintf(why, sizeof(why), "no result within %.1fs",
		    s->conf->result_timeout);
	log_put(s->put_hex, s->key_esc, NULL, why);
	log_warnx("stream=%llu put=%s %s forks_pending=%u store=%s",
	    (unsigned long long)s->id, s->put_hex, why, s->forks_pending,
	    s->store == ST_WRITING ? "writing" : "done");
	if (s->store == ST_WRITING) {
		store_job_cancel(s->store_job);
		s->store_job = NULL;
		s->store = ST_FAILED;
		snprintf(s->store_reason, sizeof(s->store_reason),
		    "not finished within %.1fs", s->conf->result_timeout);
	}
	TAILQ_FOREACH(p, &s->forks, sess_entry)
		if (p->state != PIPE_DONE)
			pipe_cancel(p, why);
	session_check_done(s);
}

static void
session_free(struct session *s)
{
	struct pipe *p;

	session_unpin(s);
	while ((p = TAILQ_FIRST(&s->forks)) != NULL) {
		TAILQ_REMOVE(&s->forks, p, sess_entry);
		pipe_free(p);
	}
	if (s->store_job != NULL)
		store_job_cancel(s->store_job);
	if (s->buf != NULL)
		stream_buf_unref(s->buf);
	clock_timer_free(s->timer);
	event_del(s->reap_ev);
	config_unref(s->conf);
	outcome_list_free(&s->out);
	free(s);	/* the key and the reap event with it */
}

static void
session_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)ev;
	if (s->listed) {
		TAILQ_REMOVE(&env->sessions, s, entry);
		s->listed = 0;
	}
	session_free(s);
}

void
session_free_all(void)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&env->sessions)) != NULL) {
		TAILQ_REMOVE(&env->sessions, s, entry);
		s->listed = 0;
		session_free(s);
	}
}

/* --- the peer link's sink for inbound PUTs (peer.h): handles are sessions */

static void *
session_sink_open(const struct wire_put *put, const char *from,
    const struct session_upstream_ops *ops, void *up, uint16_t *code,
    char *err, size_t errlen)
{
	struct session_params sp;

	memset(&sp, 0, sizeof(sp));
	sp.put = put;
	sp.upstream_name = from;
	sp.ops = ops;
	sp.up = up;
	return session_new(&sp, code, err, errlen);
}

static int
session_sink_data(void *h, struct evbuffer *evb, size_t len)
{
	return session_data(h, evb, len);
}

static void *
session_sink_space(void *h, size_t max, size_t *room)
{
	return session_data_space(h, max, room);
}

static int
session_sink_commit(void *h, size_t n)
{
	return session_data_commit(h, n);
}

static int
session_sink_end(void *h)
{
	return session_end(h);
}

static void
session_sink_lost(void *h, const char *why)
{
	session_upstream_lost(h, why);
}

const struct peer_sink_ops session_sink_ops = {
	session_sink_open,
	session_sink_data,
	session_sink_space,
	session_sink_commit,
	session_sink_end,
	session_sink_lost,
};

static const char *
session_store_name(enum store_state st)
{
	switch (st) {
	case ST_NONE:
		return "none";
	case ST_WRITING:
		return "writing";
	case ST_STORED:
		return "stored";
	case ST_FAILED:
		return "failed";
	}
	return "?";
}

json_t *
session_json(const struct session *s)
{
	json_t *o, *forks;
	struct pipe *p;

	forks = json_array();
	TAILQ_FOREACH(p, &s->forks, sess_entry)
		json_array_append_new(forks, json_pack("{s:s,s:I,s:s}",
		    "peer", p->peer_name, "bytes_out", (json_int_t)p->bytes_out,
		    "state", pipe_state_name(p->state)));
	o = json_pack("{s:I,s:s,s:s,s:I,s:s,s:I,s:I,s:o,s:s,s:I,s:I,s:f}",
	    "id", (json_int_t)s->id, "put_id", s->put_hex, "key", s->key_esc,
	    "size", (json_int_t)s->size, "upstream", s->upstream_name,
	    "bytes_in", (json_int_t)stream_buf_appended(s->buf),
	    "buffered", (json_int_t)stream_buf_held(s->buf),
	    "forks", forks, "store", session_store_name(s->store),
	    "first_us", (json_int_t)s->first_us,
	    "last_us", (json_int_t)s->last_us,
	    "age_s", clock_mono() - s->created);
	return o;
}

json_t *
session_json_all(void)
{
	json_t *a = json_array();
	struct session *s;

	TAILQ_FOREACH(s, &env->sessions, entry)
		if (s->state != SESS_DONE)
			json_array_append_new(a, session_json(s));
	return a;
}

unsigned int
session_count(void)
{
	struct session *s;
	unsigned int n = 0;

	TAILQ_FOREACH(s, &env->sessions, entry)
		if (s->state != SESS_DONE)
			n++;
	return n;
}

const struct session_entry *
session_entries(const struct session *s, unsigned int *n)
{
	*n = s->replay ? 0 : s->out.n;
	return s->out.e;
}

json_t *
session_outcome_json(const uint8_t *put_id)
{
	return outcome_query_json(put_id, session_find_live(put_id) != NULL);
}
