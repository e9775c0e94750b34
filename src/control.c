#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "clock.h"
#include "control.h"
#include "ctl.h"
#include "ctlproto.h"
#include "events.h"
#include "listener.h"
#include "log.h"
#include "outcome.h"
#include "peer.h"
#include "daemon.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "util.h"
#include "stream.h"
#include "wire.h"
#include "xport.h"

#define CTL_PROGRESS_INTERVAL	0.1	/* seconds between progress lines */
#define CTL_STORE_STEP		256	/* show store: entries per loop turn */

struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	struct xport		*xp;
	struct session		*sess;		/* PUT being uploaded */
	char			 put_hex[2 * WIRE_PUT_ID_LEN + 1];
	uint64_t		 remaining;	/* payload bytes still due */
	uint64_t		 taken;
	uint64_t		 reported;
	int			 paused;
	int			 closing;	/* close once output drained */
	struct clock_timer	*progress;	/* progress lines */
	struct event		*reap_ev;
	struct event		*feed_ev;	/* credit came: feed from the loop */
	struct clock_timer	*request_ev;	/* control_request_timeout */
	int			 slot;		/* holds a max_control_clients slot */
	int			 monitor;	/* gets events */
	TAILQ_ENTRY(ctl_client)	 mon_entry;
	/* show store: the listing walked a step per loop turn (owned). */
	struct store_walk	*walk;
	struct store_entry	*walk_out;	/* CTL_STORE_MAX entries */
	struct clock_timer	*walk_ev;
};

TAILQ_HEAD(ctl_client_list, ctl_client);

#define CTL_MONITOR_MAX_BACKLOG	(1024 * 1024)	/* then the monitor goes */

static struct evconnlistener	*ctl_listener;
static TAILQ_HEAD(, ctl_client)	 ctl_monitors =
    TAILQ_HEAD_INITIALIZER(ctl_monitors);
static struct clock_timer	*ctl_tick;
static const struct control_actions *ctl_actions;	/* main's reload, drain */
static struct ctl_client_list	 ctl_clients =
    TAILQ_HEAD_INITIALIZER(ctl_clients);
static char			 ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void	ctl_read_cb(struct xport *, void *);
static void	ctl_feed(struct ctl_client *);

/*
 * The show store walk is over (answered, failed, or the client gone).
 * Its timer is only disarmed: this may run in the timer's own callback,
 * so the timer is freed with the client.
 */
static void
ctl_walk_end(struct ctl_client *c)
{
	store_walk_free(c->walk);
	c->walk = NULL;
	free(c->walk_out);
	c->walk_out = NULL;
	if (c->walk_ev != NULL)
		clock_timer_disarm(c->walk_ev);
}

static void
ctl_client_free(struct ctl_client *c)
{
	TAILQ_REMOVE(&ctl_clients, c, entry);
	xport_free(c->xp);
	clock_timer_free(c->progress);
	event_free(c->reap_ev);
	event_free(c->feed_ev);
	clock_timer_free(c->request_ev);
	ctl_walk_end(c);
	clock_timer_free(c->walk_ev);
	if (c->slot)
		listener_put(LSLOT_CONTROL);
	free(c);
}

static void
ctl_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	ctl_client_free(arg);
}

static void
ctl_client_close(struct ctl_client *c, const char *why)
{
	if (c->monitor) {
		TAILQ_REMOVE(&ctl_monitors, c, mon_entry);
		c->monitor = 0;
	}
	if (c->sess != NULL) {
		session_upstream_lost(c->sess, why);
		c->sess = NULL;
	}
	clock_timer_disarm(c->progress);
	event_del(c->feed_ev);
	clock_timer_disarm(c->request_ev);
	ctl_walk_end(c);
	if (c->xp != NULL)
		xport_read_enable(c->xp, 0);
	event_active(c->reap_ev, 0, 0);
}

/* Write one JSON line; the object is consumed. */
static void
ctl_send(struct ctl_client *c, json_t *o)
{
	char *s;

	if (o == NULL)
		return;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL || c->xp == NULL) {
		free(s);
		return;
	}
	xport_write(c->xp, s, strlen(s));
	xport_write(c->xp, "\n", 1);
	free(s);
}

/* The final answer: send it, then close once it is written. */
static void
ctl_finish(struct ctl_client *c, json_t *o)
{
	ctl_send(c, o);
	c->closing = 1;
	clock_timer_disarm(c->progress);
	xport_read_enable(c->xp, 0);
	if (evbuffer_get_length(xport_output(c->xp)) == 0) {
		ctl_client_close(c, "done");
		return;
	}
	/* A client that never reads its answer does not keep its slot. */
	clock_timer_arm(c->request_ev, env->conf->control_request_timeout);
}

static void
ctl_fail(struct ctl_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ctl_fail(struct ctl_client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_finish(c, json_pack("{s:b,s:s}", "ok", 0, "error",
	    util_esc(msg)));
}

static void
ctl_put_result(void *up, struct session *s, const struct session_entry *e,
    unsigned int n, int ok)
{
	struct ctl_client *c = up;
	json_t *o;
	char err[512];

	c->sess = NULL;
	o = json_pack("{s:b,s:s,s:o,s:b}", "ok", ok, "put_id", c->put_hex,
	    "results", outcome_json(e, n), "replayed", session_replayed(s));
	if (!ok) {
		if (outcome_error(e, n, err, sizeof(err)) == 0)
			snprintf(err, sizeof(err), "stored nowhere");
		json_object_set_new(o, "error", json_string(err));
	}
	ctl_finish(c, o);
}

static void
ctl_put_abort(void *up, struct session *s, uint16_t code, const char *msg)
{
	struct ctl_client *c = up;
	const struct session_entry *e;
	unsigned int n;

	c->sess = NULL;
	/* Every hop heard of so far, the one that failed among them. */
	if ((e = session_entries(s, &n)) != NULL && n > 0) {
		ctl_finish(c, json_pack("{s:b,s:s,s:s,s:s,s:o}", "ok", 0,
		    "error", util_esc(msg), "code", wire_abort_name(code),
		    "put_id", c->put_hex, "results", outcome_json(e, n)));
		return;
	}
	/* The stream failed on this relay itself: name it, depth 0. */
	ctl_finish(c, json_pack("{s:b,s:s,s:s,s:s,s:[{s:s,s:s,s:i,s:s,s:I,"
	    "s:i,s:i,s:s}]}", "ok", 0, "error", util_esc(msg), "code",
	    wire_abort_name(code), "put_id", c->put_hex, "results",
	    "node", env->conf->node_id, "via", env->conf->node_id, "depth", 0,
	    "status", "failed", "bytes", (json_int_t)c->taken, "first_us", 0,
	    "last_us", 0, "reason", util_esc(msg)));
}

/*
 * Credit is granted from inside the stream's release callback, while a
 * reader (a pipe, the store job) is in the middle of consuming.  Feeding
 * payload from there would append to the buffer under that reader's feet,
 * so the feed runs from the loop instead, after the reader has finished.
 */
static void
ctl_put_credit(void *up, struct session *s, uint64_t bytes)
{
	struct ctl_client *c = up;

	(void)s;
	(void)bytes;
	if (c->paused && !c->closing)
		event_active(c->feed_ev, 0, 0);
}

static void
ctl_feed_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ctl_client *c = arg;

	(void)fd;
	(void)ev;
	if (!c->paused || c->closing || c->sess == NULL)
		return;
	c->paused = 0;
	xport_read_enable(c->xp, 1);
	ctl_feed(c);
}

static const struct session_upstream_ops ctl_put_ops = {
	ctl_put_result,
	ctl_put_abort,
	ctl_put_credit,
};

static void
ctl_progress_cb(void *arg)
{
	struct ctl_client *c = arg;

	if (c->closing)
		return;
	clock_timer_arm(c->progress, CTL_PROGRESS_INTERVAL);
	if (c->sess == NULL || c->taken == c->reported)
		return;
	c->reported = c->taken;
	ctl_send(c, json_pack("{s:s,s:I}", "event", "progress", "bytes",
	    (json_int_t)c->taken));
}

/* Move payload bytes from the client into the session, within credit. */
static void
ctl_feed(struct ctl_client *c)
{
	struct evbuffer *in = xport_input(c->xp);
	uint64_t window = env->conf->stream_window, held, n;

	while (c->sess != NULL && c->remaining > 0) {
		n = evbuffer_get_length(in);
		held = session_backlog(c->sess);
		if (held >= window) {
			c->paused = 1;
			xport_read_enable(c->xp, 0);
			return;
		}
		if (n > window - held)
			n = window - held;
		if (n > c->remaining)
			n = c->remaining;
		if (n == 0)
			return;
		c->remaining -= n;
		c->taken += n;
		if (session_data(c->sess, in, n) == -1)
			return;		/* the abort callback answered */
	}
	if (c->sess != NULL && c->remaining == 0)
		session_end(c->sess);	/* may answer at once */
}

static int
ctl_put_params(const struct ctl_put_req *req, struct wire_put *put,
    const char **err)
{
	if (req->has_put_id)
		memcpy(put->put_id, req->put_id, sizeof(put->put_id));
	else if (RAND_bytes(put->put_id, sizeof(put->put_id)) != 1) {
		*err = "no randomness for a put id";
		return -1;
	}
	memcpy(put->sha256, req->sha256, sizeof(put->sha256));
	put->key = req->key;
	put->key_len = req->key_len;
	put->size = req->size;
	put->hops = req->hops;
	return 0;
}

static void
ctl_cmd_put(struct ctl_client *c, const struct ctl_put_req *req)
{
	struct session_params sp;
	struct wire_put put;
	const char *err;
	char msg[256];
	uint16_t code;

	memset(&put, 0, sizeof(put));
	if (ctl_put_params(req, &put, &err) == -1) {
		ctl_fail(c, "%s", err);
		return;
	}
	util_hex_encode(put.put_id, sizeof(put.put_id), c->put_hex);
	memset(&sp, 0, sizeof(sp));
	sp.put = &put;
	sp.upstream_name = "control";
	sp.ops = &ctl_put_ops;
	sp.up = c;
	if ((c->sess = session_new(&sp, &code, msg, sizeof(msg))) == NULL) {
		ctl_finish(c, json_pack("{s:b,s:s,s:s,s:s,s:[]}", "ok", 0,
		    "error", msg, "code", wire_abort_name(code), "put_id",
		    c->put_hex, "results"));
		return;
	}
	c->remaining = put.size;
	ctl_send(c, json_pack("{s:s,s:s}", "event", "accepted", "put_id",
	    c->put_hex));
	clock_timer_arm(c->progress, CTL_PROGRESS_INTERVAL);
	ctl_feed(c);
}

static void
ctl_cmd_status(struct ctl_client *c)
{
	json_t *o, *peers, *streams, *tls;

	peers = peer_json_all();
	streams = session_json_all();
	o = json_pack("{s:b,s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:o,s:o}",
	    "ok", 1, "node", env->conf->node_id,
	    "generation", (int)env->conf->generation,
	    "uptime_s", clock_mono() - env->start_time,
	    "buffered", (json_int_t)stream_total_held(),
	    "puts_received", (json_int_t)stats.puts_received,
	    "puts_stored", (json_int_t)stats.puts_stored,
	    "puts_failed", (json_int_t)stats.puts_failed,
	    "peers", peers, "streams", streams);
	tls = peer_tls_json();
	json_object_update(o, tls);
	json_decref(tls);
	ctl_finish(c, o);
}

/* --- show, monitor, outcome, reload, drain, log --- */

static json_t *
ctl_tls_conf_json(const struct tls_conf *t)
{
	json_t *allow;
	unsigned int i;

	if (!t->enabled)
		return json_pack("{s:b}", "enabled", 0);
	allow = json_array();
	for (i = 0; i < t->nallow; i++)
		json_array_append_new(allow, json_string(t->allow[i]));
	return json_pack("{s:b,s:s,s:s,s:s,s:o}", "enabled", 1, "ca", t->ca,
	    "cert", t->cert, "key", t->key, "allow", allow);
}

static json_t *
ctl_routes_json(const struct config *cf)
{
	json_t *routes = json_array(), *hops;
	unsigned int i, j;

	for (i = 0; i < cf->nroutes; i++) {
		const struct route_conf *r = &cf->routes[i];

		hops = json_array();
		for (j = 0; j < r->nhops; j++)
			json_array_append_new(hops,
			    json_string(cf->peers[r->hops[j]].name));
		json_array_append_new(routes, json_pack("{s:s,s:s,s:b,s:o}",
		    "prefix", r->prefix, "mode", r->mode == ROUTE_FAILOVER ?
		    "failover" : "fanout", "store", r->store, "hops", hops));
	}
	return routes;
}

/* "host:port" ("[v6]:port"), or NULL when host is NULL (not set). */
static const char *
ctl_addr_str(const char *host, const char *port, char *buf, size_t len)
{
	if (host == NULL)
		return NULL;
	snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]:%s" : "%s:%s",
	    host, port);
	return buf;
}

/*
 * The options ctl_config_json leaves to this one; with it, every option
 * of config_opts (config.c) has a field of the same name.
 */
static json_t *
ctl_config_more_json(const struct config *cf)
{
	char metrics[300];

	return json_pack("{s:s?,s:f,s:I,s:f}",
	    "metrics", ctl_addr_str(cf->metrics_host, cf->metrics_port,
	    metrics, sizeof(metrics)),
	    "drain_timeout", cf->drain_timeout,
	    "max_output_buffer", (json_int_t)cf->max_output_buffer,
	    "output_timeout", cf->output_timeout);
}

static json_t *
ctl_config_json(const struct config *cf)
{
	json_t *peers = json_array(), *o;
	char listen[300] = "";
	unsigned int i;

	for (i = 0; i < cf->npeers; i++)
		json_array_append_new(peers, json_pack("{s:s,s:s,s:s++,s:I,s:o}",
		    "name", cf->peers[i].name,
		    "identity", cf->peers[i].identity,
		    "address", cf->peers[i].host, ":", cf->peers[i].port,
		    "rate_limit",
		    (json_int_t)cf->peers[i].rate_limit, "tls",
		    ctl_tls_conf_json(&cf->peers[i].tls)));
	if (cf->listen_host != NULL)
		ctl_addr_str(cf->listen_host, cf->listen_port, listen,
		    sizeof(listen));
	o = json_pack("{s:s,s:s?,s:s,s:s,s:I,s:f,s:f,s:f,s:f,s:f,s:I,s:I,"
	    "s:I,s:I,s:I,s:o,s:o,s:o}",
	    "node_id", cf->node_id, "listen", listen[0] ? listen : NULL,
	    "control_socket", cf->control_socket, "store_dir", cf->store_dir,
	    "max_payload", (json_int_t)cf->max_payload,
	    "stream_inactivity_timeout", cf->stream_inactivity_timeout,
	    "handshake_timeout", cf->handshake_timeout,
	    "result_timeout", cf->result_timeout,
	    "connect_timeout", cf->connect_timeout,
	    "idle_timeout", cf->idle_timeout,
	    "conn_window", (json_int_t)cf->conn_window,
	    "stream_window", (json_int_t)cf->stream_window,
	    "max_streams_per_peer", (json_int_t)cf->max_streams_per_peer,
	    "max_buffered", (json_int_t)cf->max_buffered,
	    "max_fork_lag", (json_int_t)cf->max_fork_lag,
	    "tls", ctl_tls_conf_json(&cf->tls), "peers", peers,
	    "routes", ctl_routes_json(cf));
	json_object_update_missing_new(o, json_pack("{s:I,s:I,s:I,s:I,s:I,"
	    "s:f,s:I,s:f}",
	    "max_connections", (json_int_t)cf->max_connections,
	    "max_handshakes", (json_int_t)cf->max_handshakes,
	    "max_connections_per_source",
	    (json_int_t)cf->max_connections_per_source,
	    "max_streams", (json_int_t)cf->max_streams,
	    "max_control_clients", (json_int_t)cf->max_control_clients,
	    "control_request_timeout", cf->control_request_timeout,
	    "max_metrics_clients", (json_int_t)cf->max_metrics_clients,
	    "metrics_header_timeout", cf->metrics_header_timeout));
	json_object_update_missing_new(o, ctl_config_more_json(cf));
	json_object_set_new(o, "store_max_bytes",
	    json_integer((json_int_t)cf->store_max_bytes));
	return o;
}

/* One stored file: its key escaped (it may be any bytes), hash or null. */
static json_t *
ctl_store_entry_json(const struct store_entry *e)
{
	char	 key[UTIL_ESCAPED_LEN(sizeof(e->key))];

	util_escape(e->key, e->key_len, key, sizeof(key));
	return json_pack("{s:s,s:I,s:s?,s:I}", "key", key,
	    "size", (json_int_t)e->size,
	    "sha256", e->sha256[0] != '\0' ? e->sha256 : NULL,
	    "mtime", (json_int_t)e->mtime);
}

/* The walk is done: the answer, from the entries it kept. */
static void
ctl_store_answer(struct ctl_client *c)
{
	json_t	*a;
	size_t	 matched, n, i;

	n = store_walk_result(c->walk, &matched);
	a = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(a, ctl_store_entry_json(&c->walk_out[i]));
	ctl_walk_end(c);
	ctl_finish(c, json_pack("{s:b,s:s,s:o,s:I,s:b,s:I,s:I,s:I}", "ok", 1,
	    "store_dir", env->conf->store_dir, "entries", a,
	    "matched", (json_int_t)matched, "truncated", n < matched,
	    "bytes", (json_int_t)store_used(env->store),
	    "reserved", (json_int_t)store_reserved(env->store),
	    "max_bytes", (json_int_t)env->conf->store_max_bytes));
}

/*
 * One step of the walk per loop turn: a zero timer lets every socket
 * that is ready be served between two steps, so links go on moving
 * while a big store_dir is listed.
 */
static void
ctl_walk_cb(void *arg)
{
	struct ctl_client	*c = arg;
	int			 r, e;

	if (c->walk == NULL)
		return;
	if ((r = store_walk_step(c->walk, CTL_STORE_STEP)) == 0) {
		clock_timer_arm(c->walk_ev, 0);
		return;
	}
	if (r == 1) {
		ctl_store_answer(c);
		return;
	}
	e = errno;
	ctl_walk_end(c);
	ctl_fail(c, "cannot read store_dir %s: %s", env->conf->store_dir,
	    strerror(e));
}

/*
 * show store [prefix]: at most CTL_STORE_MAX files, the first by key,
 * sorted; "matched" says how many there are and "truncated" if some
 * were left out.  No payload is read: the hashes are those kept at store
 * time.  The directory is walked CTL_STORE_STEP entries per loop turn.
 */
static void
ctl_cmd_show_store(struct ctl_client *c, const struct ctl_request *req)
{
	c->walk_out = calloc(CTL_STORE_MAX, sizeof(*c->walk_out));
	if (c->walk_ev == NULL)
		c->walk_ev = clock_timer_new(ctl_walk_cb, c);
	if (c->walk_out == NULL || c->walk_ev == NULL) {
		ctl_walk_end(c);
		ctl_fail(c, "out of memory");
		return;
	}
	c->walk = store_walk_new(env->store, req->prefix ? req->prefix : "",
	    req->prefix_len, c->walk_out, CTL_STORE_MAX);
	if (c->walk == NULL) {
		ctl_walk_end(c);
		ctl_fail(c, "cannot read store_dir %s: %s", env->conf->store_dir,
		    strerror(errno));
		return;
	}
	clock_timer_arm(c->walk_ev, 0);
}

static void
ctl_cmd_show(struct ctl_client *c, enum ctl_show what)
{
	const struct config *cf = env->conf;

	switch (what) {
	case CTL_SHOW_PEERS:
		ctl_finish(c, json_pack("{s:b,s:o}", "ok", 1, "peers",
		    peer_json_all()));
		break;
	case CTL_SHOW_STREAMS:
		ctl_finish(c, json_pack("{s:b,s:o}", "ok", 1, "streams",
		    session_json_all()));
		break;
	case CTL_SHOW_ROUTES:
		ctl_finish(c, json_pack("{s:b,s:i,s:o}", "ok", 1, "generation",
		    (int)cf->generation, "routes", ctl_routes_json(cf)));
		break;
	case CTL_SHOW_CONFIG:
		ctl_finish(c, json_pack("{s:b,s:i,s:s,s:o}", "ok", 1,
		    "generation", (int)cf->generation, "path", cf->path,
		    "config", ctl_config_json(cf)));
		break;
	case CTL_SHOW_STATS:
		/* The same table /metrics renders (statstab.c). */
		ctl_finish(c, json_pack("{s:b,s:o}", "ok", 1, "stats",
		    stats_json(stats_table, stats_ntable)));
		break;
	case CTL_SHOW_PUTS:
		ctl_finish(c, outcome_recent_json(CTL_SHOW_PUTS_MAX));
		break;
	case CTL_SHOW_STORE:
		break;		/* ctl_cmd_show_store: it needs the prefix */
	}
}

int
control_monitoring(void)
{
	return !TAILQ_EMPTY(&ctl_monitors);
}

void
control_event(const char *name, json_t *fields)
{
	struct ctl_client *c, *next;

	if (fields == NULL)
		fields = json_object();
	json_object_set_new(fields, "event", json_string(name));
	json_object_set_new(fields, "time_us", json_integer(clock_wall_us()));
	for (c = TAILQ_FIRST(&ctl_monitors); c != NULL; c = next) {
		next = TAILQ_NEXT(c, mon_entry);
		if (evbuffer_get_length(xport_output(c->xp)) >
		    CTL_MONITOR_MAX_BACKLOG) {
			log_warnx("control: monitor client too slow, dropped");
			ctl_client_close(c, "too slow");
			continue;
		}
		ctl_send(c, json_incref(fields));
	}
	json_decref(fields);
}

void
control_monitors_end(const char *why)
{
	struct ctl_client *c;

	while ((c = TAILQ_FIRST(&ctl_monitors)) != NULL) {
		TAILQ_REMOVE(&ctl_monitors, c, mon_entry);
		c->monitor = 0;
		ctl_finish(c, json_pack("{s:b,s:s}", "ok", 1, "end", why));
	}
}

/* Once a second: progress of every stream, for monitors only. */
static void
ctl_tick_cb(void *arg)
{
	json_t *streams, *s;
	size_t i;

	(void)arg;
	clock_timer_arm(ctl_tick, 1.0);
	if (!control_monitoring())
		return;
	streams = session_json_all();
	json_array_foreach(streams, i, s)
		control_event("stream-progress", json_pack("{s:O,s:O,s:O,s:O}",
		    "stream", json_object_get(s, "id"),
		    "key", json_object_get(s, "key"),
		    "bytes_in", json_object_get(s, "bytes_in"),
		    "size", json_object_get(s, "size")));
	json_decref(streams);
}

static int
ctl_events_active(void *arg)
{
	(void)arg;
	return control_monitoring();
}

/* Session and peer events: control_event() changes what it sends. */
static void
ctl_events_cb(const struct relayd_event *ev, void *arg)
{
	(void)arg;
	control_event(ev->name, json_copy(ev->fields));
}

static void
ctl_cmd_monitor(struct ctl_client *c)
{
	c->monitor = 1;
	TAILQ_INSERT_TAIL(&ctl_monitors, c, mon_entry);
	ctl_send(c, json_pack("{s:b,s:s}", "ok", 1, "event", "monitoring"));
}

static void
ctl_cmd_reload(struct ctl_client *c)
{
	char err[2048];

	if (ctl_actions->reload("relayctl", err, sizeof(err)) == -1)
		ctl_finish(c, json_pack("{s:b,s:s,s:i}", "ok", 0, "error", err,
		    "generation", (int)env->conf->generation));
	else
		ctl_finish(c, json_pack("{s:b,s:i}", "ok", 1, "generation",
		    (int)env->conf->generation));
}

static void
ctl_cmd_drain(struct ctl_client *c)
{
	unsigned int n = ctl_actions->drain("relayctl");

	ctl_finish(c, json_pack("{s:b,s:b,s:i}", "ok", 1, "draining", 1,
	    "streams", (int)n));
}

/* relayctl peer disable|enable|drain NAME (peer.h says what each does). */
static void
ctl_cmd_peer(struct ctl_client *c, const struct ctl_peer_req *r)
{
	static const enum peer_admin admin[] = {
		[CTL_PEER_DISABLE] = PEER_ADMIN_DISABLED,
		[CTL_PEER_ENABLE] = PEER_ADMIN_ENABLED,
		[CTL_PEER_DRAIN] = PEER_ADMIN_DRAINING,
	};
	const struct peer *p;
	char err[256];

	if (peer_admin_set(r->name, admin[r->action], err,
	    sizeof(err)) == -1) {
		ctl_fail(c, "%s", err);
		return;
	}
	p = peer_find_outbound(r->name);
	ctl_finish(c, json_pack("{s:b,s:o}", "ok", 1, "peer", peer_json(p)));
}

static void
ctl_request(struct ctl_client *c, const char *line, size_t len)
{
	struct ctl_request req;
	char err[256];

	if (ctl_parse_request(line, len, &req, err, sizeof(err)) == -1) {
		log_debug("control: bad request: %s", err);
		ctl_fail(c, "%s", err);
		return;
	}
	log_debug("control: request %s", util_escn(line, len < 64 ? len : 64));
	switch (req.cmd) {
	case CTL_CMD_STATUS:
		ctl_cmd_status(c);
		break;
	case CTL_CMD_PUT:
		ctl_cmd_put(c, &req.u.put);
		break;
	case CTL_CMD_SHOW:
		if (req.u.show == CTL_SHOW_STORE)
			ctl_cmd_show_store(c, &req);
		else
			ctl_cmd_show(c, req.u.show);
		break;
	case CTL_CMD_MONITOR:
		ctl_cmd_monitor(c);
		break;
	case CTL_CMD_OUTCOME:
		ctl_finish(c, session_outcome_json(req.u.put_id));
		break;
	case CTL_CMD_RELOAD:
		ctl_cmd_reload(c);
		break;
	case CTL_CMD_DRAIN:
		ctl_cmd_drain(c);
		break;
	case CTL_CMD_PEER:
		ctl_cmd_peer(c, &req.u.peer);
		break;
	case CTL_CMD_LOG:
		log_setlevel(req.u.level);
		log_info("control: log level set to %s",
		    ctl_level_name(req.u.level));
		ctl_finish(c, json_pack("{s:b,s:s}", "ok", 1, "level",
		    ctl_level_name(req.u.level)));
		break;
	default:
		ctl_fail(c, "command not implemented");
		break;
	}
	ctl_request_free(&req);
}

static void
ctl_read_cb(struct xport *xp, void *arg)
{
	struct ctl_client *c = arg;
	struct evbuffer *in = xport_input(xp);
	size_t len;
	char *line;

	if (c->closing)
		return;
	if (c->sess != NULL) {
		ctl_feed(c);
		return;
	}
	if (c->monitor || c->walk != NULL) {
		/* One request per client: nothing more is read meanwhile. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (c->remaining > 0 || c->put_hex[0] != '\0') {
		/* A PUT already answered: extra bytes are not a request. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CTL_MAX_LINE)
			ctl_fail(c, "request line longer than %d bytes",
			    CTL_MAX_LINE);
		return;
	}
	/* Only the request phase is timed: monitors and PUTs live on. */
	clock_timer_disarm(c->request_ev);
	ctl_request(c, line, len);
	free(line);
}

static void
ctl_write_cb(struct xport *xp, void *arg)
{
	struct ctl_client *c = arg;

	if (c->closing && evbuffer_get_length(xport_output(xp)) == 0)
		ctl_client_close(c, "done");
}

static void
ctl_event_cb(struct xport *xp, short what, void *arg)
{
	struct ctl_client *c = arg;

	(void)xp;
	if (what & (XPORT_EOF | XPORT_ERROR))
		ctl_client_close(c, "control client went away");
}

/* A client that has not sent its request line in time goes. */
static void
ctl_request_timeout_cb(void *arg)
{
	struct ctl_client *c = arg;

	if (c->closing) {
		ctl_client_close(c, "answer not read in time");
		return;
	}
	if (c->sess != NULL || c->monitor)
		return;
	listener_refused(LREF_CONTROL_TIMEOUT, "control client");
	ctl_fail(c, "no request within control_request_timeout %.1fs",
	    env->conf->control_request_timeout);
}

/*
 * At max_control_clients, make room by closing the oldest client that
 * has not sent its request yet (a slow-loris), so an operator's relayctl
 * still gets in during a flood; monitors and PUTs are never evicted.
 * Its socket is closed now, not at the reap, so a burst of accepts in
 * one loop pass stays within the cap.  0 if one went, -1 if none could.
 */
static int
ctl_evict_idle(void)
{
	struct ctl_client *c;

	TAILQ_FOREACH(c, &ctl_clients, entry) {
		if (c->closing || c->sess != NULL || c->monitor ||
		    c->xp == NULL || c->put_hex[0] != '\0')
			continue;
		listener_refused(LREF_CONTROL, "oldest idle control client");
		c->closing = 1;
		ctl_client_close(c, "evicted at max_control_clients");
		xport_free(c->xp);
		c->xp = NULL;
		c->slot = 0;
		listener_put(LSLOT_CONTROL);
		return 0;
	}
	return -1;
}

static void
ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct ctl_client *c;

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	if (listener_take(LSLOT_CONTROL) == -1) {
		if (ctl_evict_idle() == -1) {
			close(fd);
			listener_refused(LREF_CONTROL, "control client");
			return;
		}
		if (listener_take(LSLOT_CONTROL) == -1) {
			close(fd);
			return;
		}
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		listener_put(LSLOT_CONTROL);
		close(fd);
		return;
	}
	c->slot = 1;
	c->xp = xport_new(env->base, fd, NULL, 1);
	c->progress = clock_timer_new(ctl_progress_cb, c);
	c->reap_ev = event_new(env->base, -1, 0, ctl_reap_cb, c);
	c->feed_ev = event_new(env->base, -1, 0, ctl_feed_cb, c);
	c->request_ev = clock_timer_new(ctl_request_timeout_cb, c);
	if (c->xp == NULL || c->progress == NULL || c->reap_ev == NULL ||
	    c->feed_ev == NULL || c->request_ev == NULL) {
		if (c->xp)
			xport_free(c->xp);
		else
			close(fd);
		clock_timer_free(c->progress);
		if (c->reap_ev)
			event_free(c->reap_ev);
		if (c->feed_ev)
			event_free(c->feed_ev);
		if (c->request_ev)
			clock_timer_free(c->request_ev);
		listener_put(LSLOT_CONTROL);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl_clients, c, entry);
	xport_setcb(c->xp, ctl_read_cb, ctl_write_cb, ctl_event_cb, c);
	clock_timer_arm(c->request_ev, env->conf->control_request_timeout);
}

/*
 * A socket file at the control path is stale when connect() is refused
 * (nobody listens); when something answers, another relayd runs there,
 * and unlinking its socket would leave it unreachable.  0: no socket or
 * a stale one (*stale set); 1: in use; -1: cannot tell; why in err.
 */
static int
ctl_probe(const struct sockaddr_un *sun, int *stale, char *err,
    size_t errlen)
{
	struct stat st;
	int fd, rc, e;

	*stale = 0;
	if (lstat(sun->sun_path, &st) == -1 || !S_ISSOCK(st.st_mode))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		snprintf(err, errlen, "another relayd answers on %s",
		    sun->sun_path);
		return 1;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "cannot tell whether %s is in use: "
		    "connect: %s", sun->sun_path, strerror(e));
		return -1;
	}
	*stale = 1;
	return 0;
}

static int
ctl_sockaddr(const char *path, struct sockaddr_un *sun, char *err,
    size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

int
control_probe(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int stale;

	if (ctl_sockaddr(path, &sun, err, errlen) == -1)
		return -1;
	return ctl_probe(&sun, &stale, err, errlen);
}

/* Removes a stale socket at the control path; -1 if one is live. */
static int
ctl_clear_stale(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	int stale;

	if (ctl_probe(sun, &stale, err, errlen) != 0)
		return -1;
	if (!stale)
		return 0;
	if (unlink(sun->sun_path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "remove stale socket %s: %s",
		    sun->sun_path, strerror(errno));
		return -1;
	}
	log_info("control: removed stale socket %s (nobody listened)",
	    sun->sun_path);
	return 0;
}

int
control_open(const char *path, const struct control_actions *actions,
    char *err, size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	ctl_actions = actions;
	if (ctl_sockaddr(path, &sun, err, errlen) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (ctl_clear_stale(&sun, err, errlen) == -1) {
		close(fd);
		return -1;
	}
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	chmod(path, 0660);
	evutil_make_socket_nonblocking(fd);
	ctl_listener = evconnlistener_new(env->base, ctl_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 64, fd);
	if (ctl_listener == NULL) {
		snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	listener_guard(ctl_listener, "control");
	events_unsubscribe(ctl_events_cb, NULL);
	if (events_subscribe(ctl_events_cb, ctl_events_active, NULL) == -1)
		log_warnx("control: no room to subscribe to events; monitor "
		    "shows stream progress only");
	snprintf(ctl_path, sizeof(ctl_path), "%s", path);
	if (ctl_tick == NULL &&
	    (ctl_tick = clock_timer_new(ctl_tick_cb, NULL)) != NULL)
		clock_timer_arm(ctl_tick, 1.0);
	return 0;
}

void
control_close(void)
{
	struct ctl_client *c;

	events_unsubscribe(ctl_events_cb, NULL);
	if (ctl_listener != NULL) {
		listener_unguard(ctl_listener);
		evconnlistener_free(ctl_listener);
		ctl_listener = NULL;
		unlink(ctl_path);
	}
	clock_timer_free(ctl_tick);
	ctl_tick = NULL;
	TAILQ_INIT(&ctl_monitors);
	while ((c = TAILQ_FIRST(&ctl_clients)) != NULL) {
		if (c->sess != NULL)
			session_upstream_lost(c->sess, "relayd stopping");
		c->sess = NULL;
		ctl_client_free(c);
	}
}
