/*
 * metrics: the Prometheus text exposition of relayd's counters over
 * plain HTTP (libevent's evhttp).  Every series is named relayd_*.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "relayd.h"
#include "session.h"
#include "stream.h"
#include "tls.h"
#include "wire.h"

#define METRICS_PATH		"/metrics"
#define METRICS_CTYPE		"text/plain; version=0.0.4; charset=utf-8"
#define METRICS_TIMEOUT		10		/* seconds per connection */
#define METRICS_MAX_HEADERS	8192
#define METRICS_MAX_BODY	4096

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* A response being built; failed is set once any append fails. */
struct metrics_out {
	struct evbuffer	*buf;
	int		 failed;
};

static struct evhttp	*metrics_http;		/* owns the listener */
static struct evconnlistener *metrics_listener;	/* borrowed */

static void __attribute__((format(printf, 2, 3)))
metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(o->buf, fmt, ap) == -1)
		o->failed = 1;
	va_end(ap);
}

static void
metrics_family(struct metrics_out *o, const char *name, const char *type,
    const char *help)
{
	metrics_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

static void
metrics_one(struct metrics_out *o, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metrics_family(o, name, type, help);
	metrics_printf(o, "%s %" PRIu64 "\n", name, v);
}

/* Two series of one family, labelled key="a" and key="b". */
static void
metrics_pair(struct metrics_out *o, const char *name, const char *type,
    const char *help, const char *key, const char *a, uint64_t va,
    const char *b, uint64_t vb)
{
	metrics_family(o, name, type, help);
	metrics_printf(o, "%s{%s=\"%s\"} %" PRIu64 "\n", name, key, a, va);
	metrics_printf(o, "%s{%s=\"%s\"} %" PRIu64 "\n", name, key, b, vb);
}

/*
 * A counter by wire abort code: one series per known code, zeros
 * included, so that every series exists from the start.  Slot 0 holds
 * codes beyond the table (see the callers of puts_refused[] and
 * friends); it and any code without a name are reported as "unknown".
 */
static void
metrics_by_code(struct metrics_out *o, const char *name, const char *help,
    const uint64_t counts[STATS_CODES])
{
	const char	*reason;
	uint64_t	 unknown = counts[0];
	unsigned int	 i;

	metrics_family(o, name, "counter", help);
	for (i = 1; i < STATS_CODES; i++) {
		reason = wire_abort_name(i);
		if (strcmp(reason, "unknown") == 0) {
			unknown += counts[i];
			continue;
		}
		metrics_printf(o, "%s{reason=\"%s\"} %" PRIu64 "\n", name,
		    reason, counts[i]);
	}
	metrics_printf(o, "%s{reason=\"unknown\"} %" PRIu64 "\n", name,
	    unknown);
}

/* env->dur_buckets[i] already counts every duration <= bound i. */
static void
metrics_durations(struct metrics_out *o)
{
	const char	*name = "relayd_stream_duration_seconds";
	unsigned int	 i;

	metrics_family(o, name, "histogram", "Time from admission to the "
	    "end (done or failed) of each PUT stream on this relay.");
	for (i = 0; i < STATS_DUR_BUCKETS; i++)
		metrics_printf(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
		    stats_dur_bounds[i], env->dur_buckets[i]);
	metrics_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name,
	    env->dur_count);
	metrics_printf(o, "%s_sum %.9f\n", name, env->dur_sum);
	metrics_printf(o, "%s_count %" PRIu64 "\n", name, env->dur_count);
}

static void
metrics_puts(struct metrics_out *o)
{
	metrics_one(o, "relayd_puts_received_total", "counter",
	    "PUT streams admitted on this relay.", env->puts_received);
	metrics_one(o, "relayd_puts_stored_total", "counter",
	    "PUT streams that ended with outcome ok.", env->puts_stored);
	metrics_one(o, "relayd_puts_failed_total", "counter",
	    "PUT streams that ended failed or aborted.", env->puts_failed);
	metrics_one(o, "relayd_puts_forwarded_total", "counter",
	    "Forks to a next hop that got a RESULT.", env->puts_forwarded);
	metrics_pair(o, "relayd_stores_total", "counter",
	    "Payloads stored on this relay, by result.", "result",
	    "ok", env->stores_ok, "failed", env->stores_failed);
	metrics_by_code(o, "relayd_puts_refused_total",
	    "PUTs refused at admission, by abort reason.", env->puts_refused);
	metrics_by_code(o, "relayd_streams_aborted_total",
	    "PUT streams aborted, by abort reason.", env->streams_aborted);
	metrics_by_code(o, "relayd_forks_aborted_total",
	    "Forks to a next hop aborted, by abort reason.",
	    env->forks_aborted);
	metrics_pair(o, "relayd_payload_bytes_total", "counter",
	    "Payload bytes received (in) and sent to next hops (out).",
	    "direction", "in", env->payload_in, "out", env->payload_out);
	metrics_one(o, "relayd_active_streams", "gauge",
	    "PUT streams in flight on this relay.", session_count());
	metrics_one(o, "relayd_buffered_bytes", "gauge",
	    "Payload bytes held in stream buffers.", stream_total_held());
}

static void
metrics_links(struct metrics_out *o)
{
	struct peer_totals	 t;
	const char		*name = "relayd_tls_handshake_failures_total";
	unsigned int		 i;

	memset(&t, 0, sizeof(t));
	peer_totals(&t);
	metrics_one(o, "relayd_peers_up", "gauge",
	    "Peer links up (handshake done).", t.up);
	metrics_one(o, "relayd_peer_links", "gauge",
	    "Peer links in any state, inbound and outbound.", t.links);
	/* Not a counter: the bytes of a link go when the link closes. */
	metrics_pair(o, "relayd_link_bytes", "gauge",
	    "Wire bytes received (in) and sent (out) on the peer links open "
	    "now; drops when a link closes.", "direction", "in", t.bytes_in,
	    "out", t.bytes_out);
	metrics_one(o, "relayd_tls_handshakes_total", "counter",
	    "TLS handshakes completed on peer links.", t.tls_handshakes);
	metrics_family(o, name, "counter",
	    "TLS handshakes refused on peer links, by reason.");
	for (i = 0; i < TLS_REF_MAX && i < nitems(t.tls_refused); i++)
		metrics_printf(o, "%s{reason=\"%s\"} %" PRIu64 "\n", name,
		    tls_refusal_name(i), t.tls_refused[i]);
}

/* The memory bounds against hostile peers (env->hostile). */
static void
metrics_memory(struct metrics_out *o)
{
	const struct stats_hostile *h = &env->hostile;

	metrics_one(o, "relayd_reserved_bytes", "gauge",
	    "Stream credit granted to peers and not yet used, reserved "
	    "against max_buffered.", peer_reserved_bytes());
	metrics_pair(o, "relayd_output_bound_total", "counter",
	    "Links whose unsent output went above max_output_buffer: reading "
	    "paused, or closed after output_timeout.", "action", "paused",
	    h->output_paused, "closed", h->output_closed);
	metrics_one(o, "relayd_pongs_folded_total", "counter",
	    "PINGs answered by a PONG already queued.", h->pongs_folded);
	metrics_one(o, "relayd_reserve_refused_total", "counter",
	    "PUTs refused: max_buffered had no room for a stream window.",
	    h->reserve_refused);
	metrics_pair(o, "relayd_link_protocol_closed_total", "counter",
	    "Links closed for CREDIT beyond 2^31-1 or DATA for a stream "
	    "never opened.", "reason", "credit_overflow",
	    h->credit_overflow, "data_never_opened", h->data_never_opened);
	metrics_one(o, "relayd_data_discarded_bytes_total", "counter",
	    "DATA bytes of ended or unknown streams read and dropped.",
	    h->data_discarded);
}

static int
metrics_render(struct evbuffer *buf)
{
	struct metrics_out	 o = { buf, 0 };

	metrics_puts(&o);
	metrics_links(&o);
	metrics_memory(&o);
	metrics_durations(&o);
	metrics_family(&o, "relayd_uptime_seconds", "gauge",
	    "Seconds since relayd started.");
	metrics_printf(&o, "relayd_uptime_seconds %.3f\n",
	    now_mono() - env->start_time);
	metrics_one(&o, "relayd_config_generation", "gauge",
	    "Generation of the configuration in use (one more per accepted "
	    "load or reload).", env->conf != NULL ? env->conf->generation : 0);
	return o.failed ? -1 : 0;
}

static void
metrics_reply_text(struct evhttp_request *req, int code, const char *why,
    const char *text)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*body;

	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	if ((body = evbuffer_new()) != NULL &&
	    evbuffer_add(body, text, strlen(text)) == -1)
		evbuffer_drain(body, evbuffer_get_length(body));
	evhttp_send_reply(req, code, why, body);
	if (body != NULL)
		evbuffer_free(body);
}

static void
metrics_request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = NULL;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	struct evbuffer		*body;

	(void)arg;
	if (uri != NULL)
		path = evhttp_uri_get_path(uri);
	if (path == NULL || strcmp(path, METRICS_PATH) != 0) {
		metrics_reply_text(req, HTTP_NOTFOUND, "Not Found",
		    "not found; metrics are at " METRICS_PATH "\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		metrics_reply_text(req, 405, "Method Not Allowed",
		    "method not allowed; use GET\n");
		return;
	}
	if ((body = evbuffer_new()) == NULL || metrics_render(body) == -1) {
		log_warnx("metrics: out of memory rendering a response");
		if (body != NULL)
			evbuffer_free(body);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", METRICS_CTYPE);
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
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
	/* No callback yet: evhttp_bind_listener() sets its own. */
	l = evconnlistener_new_bind(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 16, res->ai_addr,
	    res->ai_addrlen);
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
	struct evconnlistener	*l = NULL;

	if (metrics_http != NULL) {
		snprintf(err, errlen, "metrics %s:%s: already open", host,
		    port);
		return -1;
	}
	if ((metrics_http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "metrics %s:%s: out of memory", host,
		    port);
		goto fail;
	}
	if ((l = metrics_bind(base, host, port, err, errlen)) == NULL)
		goto fail;
	if (evhttp_bind_listener(metrics_http, l) == NULL) {
		snprintf(err, errlen, "metrics %s:%s: out of memory", host,
		    port);
		evconnlistener_free(l);
		goto fail;
	}
	metrics_listener = l;
	listener_guard(l, "metrics");
	/* Every method reaches the callback, which answers 405 itself. */
	evhttp_set_allowed_methods(metrics_http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(metrics_http, METRICS_TIMEOUT);
	evhttp_set_max_headers_size(metrics_http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(metrics_http, METRICS_MAX_BODY);
	evhttp_set_gencb(metrics_http, metrics_request_cb, NULL);
	log_info("metrics on http://%s%s%s:%s" METRICS_PATH,
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port);
	return 0;
 fail:
	metrics_close();
	return -1;
}

void
metrics_close(void)
{
	listener_unguard(metrics_listener);
	if (metrics_http != NULL)
		evhttp_free(metrics_http);	/* frees the listener too */
	metrics_http = NULL;
	metrics_listener = NULL;
}
