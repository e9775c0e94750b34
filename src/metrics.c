/*
 * metrics: the Prometheus text exposition of relayd's counters over
 * plain HTTP (libevent's evhttp).  Every series is named relayd_* and
 * comes from the stats table (statstab.c).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "clock.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "daemon.h"
#include "session.h"
#include "stats.h"
#include "stream.h"
#include "tls.h"
#include "wire.h"
#include "xport.h"

#define METRICS_PATH		"/metrics"
#define METRICS_CTYPE		"text/plain; version=0.0.4; charset=utf-8"
#define METRICS_TIMEOUT		10		/* seconds to take the answer */
#define METRICS_MAX_HEADERS	8192

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/*
 * One HTTP client: one request, one answer, then the connection closes
 * (Connection: close).  Owned by metrics_clients; freed from the loop
 * by reap_ev, never from inside its own callbacks.
 */
struct metrics_client {
	TAILQ_ENTRY(metrics_client) entry;
	struct xport		*xp;
	struct clock_timer	*timer;		/* header, then answer, timeout */
	struct event		*reap_ev;
	int			 answered;
	int			 dead;
	int			 slot;		/* holds a max_metrics_clients slot */
};
TAILQ_HEAD(metrics_client_list, metrics_client);

static struct evconnlistener	*metrics_listener;
static struct metrics_client_list metrics_clients =
    TAILQ_HEAD_INITIALIZER(metrics_clients);

/* Every series comes from the stats table, as show stats does. */
static int
metrics_render(struct evbuffer *buf)
{
	return stats_prom(buf, stats_table, stats_ntable);
}

static void
metrics_client_free(struct metrics_client *c)
{
	TAILQ_REMOVE(&metrics_clients, c, entry);
	xport_free(c->xp);
	clock_timer_free(c->timer);
	event_free(c->reap_ev);
	if (c->slot)
		listener_put(LSLOT_METRICS);
	free(c);
}

static void
metrics_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	metrics_client_free(arg);
}

/* Mark for close: the free runs from the loop, after this callback. */
static void
metrics_client_close(struct metrics_client *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->xp != NULL)
		xport_read_enable(c->xp, 0);
	clock_timer_disarm(c->timer);
	event_active(c->reap_ev, 0, 0);
}

/* Queue status line, headers and (unless HEAD) the body; then close. */
static void
metrics_answer(struct metrics_client *c, int code, const char *why,
    const char *ctype, const char *extra, struct evbuffer *body, int head)
{
	struct evbuffer	*out = xport_output(c->xp);
	size_t		 len = body != NULL ? evbuffer_get_length(body) : 0;

	c->answered = 1;
	xport_read_enable(c->xp, 0);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", code, why,
	    ctype, len, extra != NULL ? extra : "");
	if (body != NULL && !head)
		evbuffer_add_buffer(out, body);
	xport_write(c->xp, "", 0);
	/* A client that does not read its answer goes after a while. */
	clock_timer_arm(c->timer, METRICS_TIMEOUT);
}

static void
metrics_answer_text(struct metrics_client *c, int code, const char *why,
    const char *extra, const char *text, int head)
{
	struct evbuffer	*body = evbuffer_new();

	if (body != NULL)
		evbuffer_add(body, text, strlen(text));
	metrics_answer(c, code, why, "text/plain; charset=utf-8", extra, body,
	    head);
	if (body != NULL)
		evbuffer_free(body);
}

/* The method is a token of upper-case letters; the target an origin path. */
static int
metrics_parse_line(char *line, char **method, char **path)
{
	char	*target, *version, *q;

	*method = line;
	if ((target = strchr(line, ' ')) == NULL)
		return -1;
	*target++ = '\0';
	if ((version = strchr(target, ' ')) == NULL)
		return -1;
	*version++ = '\0';
	if (**method == '\0' || strspn(*method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	    != strlen(*method))
		return -1;
	if (target[0] != '/' || strncmp(version, "HTTP/1.", 7) != 0)
		return -1;
	if ((q = strchr(target, '?')) != NULL)
		*q = '\0';
	*path = target;
	return 0;
}

static void
metrics_request(struct metrics_client *c, char *line)
{
	struct evbuffer	*body;
	char		*method, *path;
	int		 head;

	if (metrics_parse_line(line, &method, &path) == -1) {
		metrics_answer_text(c, 400, "Bad Request", NULL,
		    "bad request\n", 0);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (strcmp(path, METRICS_PATH) != 0) {
		metrics_answer_text(c, 404, "Not Found", NULL,
		    "not found; metrics are at " METRICS_PATH "\n", head);
		return;
	}
	if (strcmp(method, "GET") != 0 && !head) {
		metrics_answer_text(c, 405, "Method Not Allowed",
		    "Allow: GET, HEAD\r\n", "method not allowed; use GET\n", 0);
		return;
	}
	if ((body = evbuffer_new()) == NULL || metrics_render(body) == -1) {
		log_warnx("metrics: out of memory rendering a response");
		metrics_answer_text(c, 500, "Internal Server Error", NULL,
		    "out of memory\n", head);
	} else
		metrics_answer(c, 200, "OK", METRICS_CTYPE, NULL, body, head);
	if (body != NULL)
		evbuffer_free(body);
}

/* Answer once the whole header block is in; the body is never read. */
static void
metrics_read_cb(struct xport *xp, void *arg)
{
	struct metrics_client	*c = arg;
	struct evbuffer		*in = xport_input(xp);
	struct evbuffer_ptr	 end;
	char			*line;
	size_t			 len;

	if (c->answered || c->dead)
		return;
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos == -1) {
		if (evbuffer_get_length(in) > METRICS_MAX_HEADERS)
			metrics_answer_text(c, 431, "Request Header Fields "
			    "Too Large", NULL, "headers too large\n", 0);
		return;
	}
	if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) == NULL ||
	    strlen(line) != len) {
		metrics_answer_text(c, 400, "Bad Request", NULL,
		    "bad request\n", 0);
		free(line);
		return;
	}
	metrics_request(c, line);
	free(line);
}

static void
metrics_write_cb(struct xport *xp, void *arg)
{
	struct metrics_client *c = arg;

	if (c->answered && evbuffer_get_length(xport_output(xp)) == 0)
		metrics_client_close(c);
}

static void
metrics_event_cb(struct xport *xp, short what, void *arg)
{
	(void)xp;
	if (what & (XPORT_EOF | XPORT_ERROR))
		metrics_client_close(arg);
}

/* No full header block within metrics_header_timeout, or no reader. */
static void
metrics_timer_cb(void *arg)
{
	struct metrics_client *c = arg;

	if (!c->answered)
		listener_refused(LREF_METRICS_TIMEOUT, "metrics client");
	metrics_client_close(c);
}

/*
 * At max_metrics_clients, close the oldest client still sending its
 * headers, so a scrape gets in during a slow-loris flood.  Its socket
 * and slot go now, not at the reap.  0 if one went, -1 if none could.
 */
static int
metrics_evict_slow(void)
{
	struct metrics_client *c;

	TAILQ_FOREACH(c, &metrics_clients, entry) {
		if (c->dead || c->answered)
			continue;
		listener_refused(LREF_METRICS, "oldest slow metrics client");
		metrics_client_close(c);
		xport_free(c->xp);
		c->xp = NULL;
		c->slot = 0;
		listener_put(LSLOT_METRICS);
		return 0;
	}
	return -1;
}

static void
metrics_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct metrics_client	*c;

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	if (listener_take(LSLOT_METRICS) == -1 &&
	    (metrics_evict_slow() == -1 ||
	    listener_take(LSLOT_METRICS) == -1)) {
		close(fd);
		listener_refused(LREF_METRICS, "metrics client");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->xp = xport_new(env->base, fd, NULL, 1)) == NULL) {
		free(c);
		close(fd);
		listener_put(LSLOT_METRICS);
		return;
	}
	c->slot = 1;
	c->timer = clock_timer_new(metrics_timer_cb, c);
	c->reap_ev = event_new(env->base, -1, 0, metrics_reap_cb, c);
	if (c->timer == NULL || c->reap_ev == NULL) {
		log_warnx("metrics: out of memory for a client");
		clock_timer_free(c->timer);
		if (c->reap_ev != NULL)
			event_free(c->reap_ev);
		xport_free(c->xp);
		free(c);
		listener_put(LSLOT_METRICS);
		return;
	}
	TAILQ_INSERT_TAIL(&metrics_clients, c, entry);
	xport_setcb(c->xp, metrics_read_cb, metrics_write_cb,
	    metrics_event_cb, c);
	clock_timer_arm(c->timer, env->conf->metrics_header_timeout);
}

static struct evconnlistener *
metrics_bind(struct event_base *base, const char *host, const char *port,
    char *err, size_t errlen)
{
	struct addrinfo		 hints, *res = NULL;
	struct evconnlistener	*l;
	int			 r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "metrics %s:%s: %s", host, port,
		    gai_strerror(r));
		return NULL;
	}
	l = evconnlistener_new_bind(base, metrics_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    16, res->ai_addr, res->ai_addrlen);
	if (l == NULL)
		snprintf(err, errlen, "metrics %s:%s: %s", host, port,
		    strerror(errno));
	freeaddrinfo(res);
	return l;
}

int
metrics_open(struct event_base *base, const char *host, const char *port,
    char *err, size_t errlen)
{
	if (metrics_listener != NULL) {
		snprintf(err, errlen, "metrics %s:%s: already open", host,
		    port);
		return -1;
	}
	if ((metrics_listener = metrics_bind(base, host, port, err,
	    errlen)) == NULL)
		return -1;
	listener_guard(metrics_listener, "metrics");
	log_info("metrics on http://%s%s%s:%s" METRICS_PATH,
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port);
	return 0;
}

void
metrics_close(void)
{
	struct metrics_client	*c;

	if (metrics_listener != NULL) {
		listener_unguard(metrics_listener);
		evconnlistener_free(metrics_listener);
	}
	metrics_listener = NULL;
	while ((c = TAILQ_FIRST(&metrics_clients)) != NULL)
		metrics_client_free(c);
}
