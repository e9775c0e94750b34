/*
 * listener: the descriptor budget and connection caps (see listener.h).
 */
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "clock.h"
#include "config.h"
#include "listener.h"
#include "log.h"

#define LISTENER_RESERVE_MIN	64
#define LISTENER_RESERVE_PCT	5
#define LISTENER_SRC_HASH	1024
#define LISTENER_LOG_EVERY	1.0	/* seconds between lines per reason */
#define LISTENER_NOFILE_MAX	(1U << 24)	/* RLIM_INFINITY counts as */

/* One source address with connections in handshake; freed at zero. */
struct listener_src {
	LIST_ENTRY(listener_src) entry;
	int			 family;
	uint8_t			 addr[16];
	unsigned int		 n;
};
LIST_HEAD(listener_src_head, listener_src);

/* The current generation, borrowed: relayd sets it at start and reload. */
static const struct config	*listener_conf;

static unsigned int		 listener_nofile = 1024;
static unsigned int		 listener_used_n[LSLOT_MAX];
static uint64_t			 listener_refused_n[LREF_MAX];
static uint64_t			 listener_unlogged[LREF_MAX];
static double			 listener_logged_at[LREF_MAX];
static struct listener_src_head	 listener_srcs[LISTENER_SRC_HASH];

static const char *const listener_refusal_names[LREF_MAX] = {
	"max_connections", "max_handshakes", "max_connections_per_source",
	"max_streams", "max_control_clients", "max_metrics_clients",
	"control_request_timeout", "metrics_header_timeout",
};

static const char *const listener_slot_names[LSLOT_MAX] = {
	"connections", "handshakes", "streams", "control_clients",
	"metrics_clients",
};

void
listener_fd_init(void)
{
	struct rlimit	 rl;
	rlim_t		 soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit NOFILE");
		return;
	}
	soft = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("setrlimit NOFILE %llu",
			    (unsigned long long)rl.rlim_max);
			rl.rlim_cur = soft;
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LISTENER_NOFILE_MAX)
		listener_nofile = LISTENER_NOFILE_MAX;
	else
		listener_nofile = (unsigned int)rl.rlim_cur;
	log_info("descriptors: soft limit %llu, now %u (hard %llu), "
	    "reserve %u", (unsigned long long)soft, listener_nofile,
	    (unsigned long long)rl.rlim_max, listener_fd_reserve());
}

unsigned int
listener_fd_limit(void)
{
	return listener_nofile;
}

unsigned int
listener_fd_reserve(void)
{
	unsigned int r = listener_nofile / 100 * LISTENER_RESERVE_PCT;

	return r < LISTENER_RESERVE_MIN ? LISTENER_RESERVE_MIN : r;
}

/* Descriptors left for inbound links and their streams' temp files. */
static unsigned int
listener_avail(const struct config *cf)
{
	uint64_t used = (uint64_t)listener_fd_reserve() + cf->npeers +
	    2 * (uint64_t)cf->max_control_clients + cf->max_metrics_clients;

	if (used + 2 >= listener_nofile)
		return 2;
	return listener_nofile - (unsigned int)used;
}

static unsigned int
listener_at_least_one(unsigned int v)
{
	return v == 0 ? 1 : v;
}

unsigned int
listener_cap(const struct config *cf, enum listener_slot s)
{
	unsigned int conns;

	conns = cf->max_connections != 0 ? cf->max_connections :
	    listener_at_least_one(listener_avail(cf) / 2);
	switch (s) {
	case LSLOT_CONNECTION:
		return conns;
	case LSLOT_HANDSHAKE:
		return cf->max_handshakes != 0 ? cf->max_handshakes :
		    listener_at_least_one(conns / 4);
	case LSLOT_STREAM:
		if (cf->max_streams != 0)
			return cf->max_streams;
		return listener_at_least_one(listener_avail(cf) > conns ?
		    listener_avail(cf) - conns : 0);
	case LSLOT_CONTROL:
		return cf->max_control_clients;
	case LSLOT_METRICS:
		return cf->max_metrics_clients;
	default:
		return 0;
	}
}

int
listener_take(enum listener_slot s)
{
	if (listener_used_n[s] >= listener_cap(listener_conf, s))
		return -1;
	listener_used_n[s]++;
	return 0;
}

void
listener_put(enum listener_slot s)
{
	if (listener_used_n[s] == 0) {
		log_warnx("listener: bug: %s count below zero",
		    listener_slot_names[s]);
		return;
	}
	listener_used_n[s]--;
}

unsigned int
listener_used(enum listener_slot s)
{
	return listener_used_n[s];
}

/* The address bytes of sa (port left out); 0 if not IP. */
static size_t
listener_src_key(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, 16);
		return 16;
	}
	return 0;
}

static struct listener_src *
listener_src_find(const struct sockaddr *sa, struct listener_src_head **bp)
{
	struct listener_src	*e;
	uint8_t			 key[16];
	uint32_t		 h = 2166136261u;
	size_t			 i, n;

	n = listener_src_key(sa, key);
	for (i = 0; i < n; i++)
		h = (h ^ key[i]) * 16777619u;
	*bp = &listener_srcs[h % LISTENER_SRC_HASH];
	LIST_FOREACH(e, *bp, entry)
		if (e->family == sa->sa_family &&
		    memcmp(e->addr, key, sizeof(key)) == 0)
			return e;
	return NULL;
}

int
listener_source_take(const struct sockaddr *sa)
{
	struct listener_src_head	*b;
	struct listener_src		*e;

	if ((e = listener_src_find(sa, &b)) == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		e->family = sa->sa_family;
		listener_src_key(sa, e->addr);
		LIST_INSERT_HEAD(b, e, entry);
	}
	if (e->n >= listener_conf->max_connections_per_source)
		return -1;
	e->n++;
	return 0;
}

void
listener_source_put(const struct sockaddr *sa)
{
	struct listener_src_head	*b;
	struct listener_src		*e;

	if ((e = listener_src_find(sa, &b)) == NULL || e->n == 0) {
		log_warnx("listener: bug: source count below zero");
		return;
	}
	if (--e->n == 0) {
		LIST_REMOVE(e, entry);
		free(e);
	}
}

/* The cap a refusal enforces, for its log line (0: a timeout). */
static unsigned int
listener_refusal_cap(enum listener_refusal r)
{
	static const int slot[LREF_MAX] = {
		LSLOT_CONNECTION, LSLOT_HANDSHAKE, -1, LSLOT_STREAM,
		LSLOT_CONTROL, LSLOT_METRICS, -1, -1,
	};

	if (r == LREF_PER_SOURCE)
		return listener_conf->max_connections_per_source;
	return slot[r] < 0 ? 0 : listener_cap(listener_conf, slot[r]);
}

void
listener_refused(enum listener_refusal r, const char *who)
{
	double now = clock_mono();

	listener_refused_n[r]++;
	if (listener_logged_at[r] != 0 &&
	    now - listener_logged_at[r] < LISTENER_LOG_EVERY) {
		listener_unlogged[r]++;
		return;
	}
	log_warnx("listener: closed %s reason=%s cap=%u refused_total=%llu "
	    "not_logged=%llu", who, listener_refusal_names[r],
	    listener_refusal_cap(r),
	    (unsigned long long)listener_refused_n[r],
	    (unsigned long long)listener_unlogged[r]);
	listener_logged_at[r] = now;
	listener_unlogged[r] = 0;
}

uint64_t
listener_refused_count(enum listener_refusal r)
{
	return listener_refused_n[r];
}

const char *
listener_refusal_name(enum listener_refusal r)
{
	return r < LREF_MAX ? listener_refusal_names[r] : "unknown";
}

const char *
listener_slot_name(enum listener_slot s)
{
	return s < LSLOT_MAX ? listener_slot_names[s] : "unknown";
}

#define LISTENER_GUARDS	4	/* peer, control, metrics listeners */
#define LISTENER_RETRY	1.0	/* s an erring listener stays paused */

static struct listener_guard {
	struct evconnlistener	*l;
	struct clock_timer	*retry;
	const char		*what;
} listener_guards[LISTENER_GUARDS];

static struct listener_guard *
listener_guard_find(struct evconnlistener *l)
{
	int i;

	for (i = 0; i < LISTENER_GUARDS; i++)
		if (listener_guards[i].l == l)
			return &listener_guards[i];
	return NULL;
}

static void
listener_retry_cb(void *arg)
{
	struct listener_guard *g = arg;

	if (g->l != NULL)
		evconnlistener_enable(g->l);
}

static void
listener_error_cb(struct evconnlistener *l, void *arg)
{
	struct listener_guard *g = listener_guard_find(l);

	(void)arg;
	log_warn("%s: accept", g != NULL ? g->what : "listener");
	evconnlistener_disable(l);
	if (g != NULL)
		clock_timer_arm(g->retry, LISTENER_RETRY);
}

int
listener_guard(struct evconnlistener *l, const char *what)
{
	struct listener_guard *g;

	if ((g = listener_guard_find(NULL)) == NULL)
		return -1;
	if ((g->retry = clock_timer_new(listener_retry_cb, g)) == NULL)
		return -1;
	g->l = l;
	g->what = what;
	evconnlistener_set_error_cb(l, listener_error_cb);
	return 0;
}

void
listener_unguard(struct evconnlistener *l)
{
	struct listener_guard *g;

	if (l == NULL || (g = listener_guard_find(l)) == NULL)
		return;
	clock_timer_free(g->retry);
	memset(g, 0, sizeof(*g));
}

void
listener_config(const struct config *cf)
{
	listener_conf = cf;
}

int
listener_check_bind(const char *host, const char *port, char *why,
    size_t whylen)
{
	struct addrinfo	 hints, *res = NULL;
	int		 fd, on = 1, r, rc = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, whylen, "%s", gai_strerror(r));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
	    res->ai_protocol);
	if (fd == -1)
		snprintf(why, whylen, "socket: %s", strerror(errno));
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
	    sizeof(on)) == -1)
		snprintf(why, whylen, "setsockopt: %s", strerror(errno));
	else if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 1) == -1)
		snprintf(why, whylen, "%s", strerror(errno));
	else
		rc = 0;
	if (fd != -1)
		close(fd);
	freeaddrinfo(res);
	return rc;
}
