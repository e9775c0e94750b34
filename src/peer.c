/*
 * peer.c: the connection.  struct peer's life cycle, dialling and
 * accepting, TLS, the HELLO handshake, keepalive, close and teardown.
 * Inbound frames are peer_in.c, outbound ones peer_out.c.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "events.h"
#include "listener.h"
#include "log.h"
#include "peer.h"
#include "peer_int.h"
#include "daemon.h"
#include "stats.h"
#include "util.h"

static struct evconnlistener	*peer_listener;
static SSL_CTX			*peer_server_ctx;
static uint64_t			 peer_tls_handshakes;
static uint64_t			 peer_tls_refused[TLS_REF_MAX];

/* Bytes of links gone (and of links before they were named), by name. */
struct peer_bytes {
	char		 name[CONFIG_NAME_MAX + 1];
	uint64_t	 in;
	uint64_t	 out;
};
static struct peer_bytes	 peer_bytes[PEER_BYTES_SLOTS] = {
	{ "(none)", 0, 0 }, { "(other)", 0, 0 }
};
static unsigned int		 peer_nbytes = 2;

static void	peer_event_cb(struct xport *, short, void *);
static void	peer_timer_cb(void *);
static void	peer_reap_cb(evutil_socket_t, short, void *);
static json_t	*peer_json_text(const char *);

static const char *
peer_state_name(enum peer_state st)
{
	switch (st) {
	case PEER_DOWN:
		return "down";
	case PEER_CONNECTING:
		return "connecting";
	case PEER_HANDSHAKE:
		return "handshake";
	case PEER_UP:
		return "up";
	case PEER_CLOSING:
		return "closing";
	}
	return "?";
}

const char *
peer_name(const struct peer *p)
{
	return p->name;
}

int
peer_is_up(const struct peer *p)
{
	return p->state == PEER_UP && !p->remote_goaway;
}

/*
 * A PING whose PONG gives the link's round-trip time: one when the link
 * comes up, so the figure exists early, and the keepalive ones.  The
 * latest PING out is the one measured; a PONG echoing anything else is
 * ignored.
 */
static void
peer_send_ping(struct peer *p)
{
	uint8_t frame[WIRE_HDR_LEN + 8];
	uint64_t v = (uint64_t)clock_wall_us();

	if (wire_enc_ping(frame, sizeof(frame), 0, v) <= 0 ||
	    peer_send(p, frame, sizeof(frame)) == -1)
		return;
	p->rtt_value = v;
	p->rtt_sent = clock_mono();
}

void
peer_on_pong(struct peer *p, uint64_t value)
{
	double rtt;

	p->ping_out = 0;
	if (p->rtt_sent < 0 || value != p->rtt_value)
		return;
	rtt = clock_mono() - p->rtt_sent;
	if (rtt < 0)
		rtt = 0;
	p->rtt_sent = -1;
	p->rtt_last = rtt;
	if (p->rtt_smooth < 0)
		p->rtt_smooth = rtt;
	else
		p->rtt_smooth += (rtt - p->rtt_smooth) / 8;
}

/* HELLO done: the link no longer counts as a handshake. */
static void
peer_acct_authenticated(struct peer *p)
{
	if (!(p->acct & PEER_ACCT_HANDSHAKE))
		return;
	p->acct &= ~PEER_ACCT_HANDSHAKE;
	listener_put(LSLOT_HANDSHAKE);
	listener_source_put((struct sockaddr *)&p->src);
}

/* The socket is closed: give back every slot it held. */
static void
peer_acct_release(struct peer *p)
{
	peer_acct_authenticated(p);
	if (p->acct & PEER_ACCT_CONN)
		listener_put(LSLOT_CONNECTION);
	p->acct = 0;
}

/* The slot of name, made if there is room, else "(other)". */
static unsigned int
peer_bytes_slot(const char *name)
{
	unsigned int	 i;

	for (i = 2; i < peer_nbytes; i++)
		if (strcmp(peer_bytes[i].name, name) == 0)
			return i;
	if (peer_nbytes == PEER_BYTES_SLOTS)
		return 1;
	snprintf(peer_bytes[i].name, sizeof(peer_bytes[i].name), "%s", name);
	return peer_nbytes++;
}

/* Add what p moved since the last fold to its slot's total. */
static void
peer_bytes_fold(struct peer *p)
{
	struct peer_bytes *b = &peer_bytes[p->bslot];

	b->in += p->bytes_in - p->bfold_in;
	b->out += p->bytes_out - p->bfold_out;
	p->bfold_in = p->bytes_in;
	p->bfold_out = p->bytes_out;
}

/*
 * HELLO named an inbound link: all its bytes, the handshake's too, count
 * under that name.  Until then they counted nowhere (not in "(none)"
 * either, so that no series goes down here).
 */
static void
peer_bytes_name_link(struct peer *p)
{
	p->bslot = peer_bytes_slot(p->name);
}

unsigned int
peer_bytes_count(void)
{
	return peer_nbytes;
}

const char *
peer_bytes_name(unsigned int i)
{
	return i < peer_nbytes ? peer_bytes[i].name : NULL;
}

uint64_t
peer_bytes_at(unsigned int i, int out)
{
	struct peer	*p;
	uint64_t	 n;

	if (i >= peer_nbytes)
		return 0;
	n = out ? peer_bytes[i].out : peer_bytes[i].in;
	/* Slot 0 takes an unnamed link's bytes only once it has closed. */
	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->bslot == i && i != 0)
			n += out ? p->bytes_out - p->bfold_out :
			    p->bytes_in - p->bfold_in;
	return n;
}

static struct peer *
peer_new(int outbound)
{
	struct peer *p;
	unsigned int i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->outbound = outbound;
	for (i = 0; i < PEER_HASH; i++) {
		LIST_INIT(&p->in_hash[i]);
		LIST_INIT(&p->out_hash[i]);
	}
	TAILQ_INIT(&p->ready);
	TAILQ_INIT(&p->conn_wait);
	TAILQ_INIT(&p->link_wait);
	p->flush_ev = event_new(env->base, -1, 0, peer_flush_cb, p);
	p->timer = clock_timer_new(peer_timer_cb, p);
	p->reap_ev = event_new(env->base, -1, 0, peer_reap_cb, p);
	p->out_ev = clock_timer_new(peer_out_cb, p);
	if (p->flush_ev == NULL || p->timer == NULL || p->reap_ev == NULL ||
	    p->out_ev == NULL) {
		if (p->flush_ev)
			event_free(p->flush_ev);
		if (p->timer)
			clock_timer_free(p->timer);
		if (p->reap_ev)
			event_free(p->reap_ev);
		if (p->out_ev)
			clock_timer_free(p->out_ev);
		free(p);
		return NULL;
	}
	p->backoff_ms = PEER_BACKOFF_MIN;
	p->rtt_sent = p->rtt_last = p->rtt_smooth = -1;
	p->retry_at = -1;
	TAILQ_INSERT_TAIL(&env->peers, p, entry);
	return p;
}

static void
peer_free(struct peer *p)
{
	peer_bytes_fold(p);
	peer_acct_release(p);
	xport_free(p->xp);
	if (p->ctx != NULL)
		SSL_CTX_free(p->ctx);
	if (p->next_ctx != NULL)
		SSL_CTX_free(p->next_ctx);
	if (p->conf != NULL)
		config_unref(p->conf);
	if (p->rl_ev != NULL)
		clock_timer_free(p->rl_ev);
	event_free(p->flush_ev);
	clock_timer_free(p->timer);
	event_free(p->reap_ev);
	clock_timer_free(p->out_ev);
	free(p->host);
	free(p->port);
	free(p);
}

/* --- the byte transport: the one place TLS slots in --- */

static struct xport *
peer_transport_new(struct peer *p, evutil_socket_t fd)
{
	struct xport *xp;
	SSL *ssl = NULL;

	p->tls_pending = 0;
	p->tls_version[0] = p->tls_cipher[0] = '\0';
	p->tls_subject[0] = p->tls_fp[0] = '\0';
	if (p->ctx != NULL && (ssl = SSL_new(p->ctx)) == NULL)
		return NULL;
	if ((xp = xport_new(env->base, fd, ssl, !p->outbound)) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	p->tls_pending = ssl != NULL;
	p->rx_left = 0;
	p->rx_drop = 0;
	p->max_in_id = 0;
	p->out_paused = 0;
	p->pong_end = 0;
	p->pong_owed = 0;
	p->link_gen = p->conf != NULL ? p->conf->generation : 0;
	p->has_not_after = 0;
	p->rtt_sent = p->rtt_last = p->rtt_smooth = -1;
	xport_setcb(xp, peer_read_cb, peer_write_cb, peer_event_cb, p);
	xport_set_sink(xp, peer_sink, peer_sunk, WIRE_HDR_LEN);
	xport_set_lowat(xp, PEER_OUT_LOW);
	return xp;
}

static void
peer_set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
peer_fail(struct peer *p, const char *why)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	log_warnx("peer=%s addr=%s protocol error: %s", p->name, p->addr,
	    why);
	n = wire_enc_goaway(frame, sizeof(frame), WIRE_ABORT_PROTOCOL, why);
	if (n > 0)
		peer_send(p, frame, n);
	peer_linger_close(p, why);
}

/*
 * The identity a peer of that name must present: the configured peer's
 * identity option, else the name itself.
 */
static const char *
peer_identity(const char *name)
{
	const struct peer_conf *pc = config_peer(env->conf, name);

	return pc != NULL && pc->identity[0] != '\0' ? pc->identity : name;
}

/* An identity mismatch: log it, count it, close this link only. */
static void
peer_identity_refuse(struct peer *p, const char *why)
{
	STATS_INC(identity_refused);
	log_warnx("peer=%s addr=%s identity refused reason=\"%s\"",
	    util_esc(p->name), p->addr, why);
}

/*
 * On an inbound TLS link the node id in HELLO must be the certificate's
 * identity: otherwise "alice" could say she is "bob".  0 if it is (or the
 * link is plaintext, where nothing is authenticated); -1 after closing.
 */
static int
peer_hello_identity(struct peer *p, const struct wire_frame *f)
{
	char node[CONFIG_NAME_MAX + 1], why[320], what[480];
	SSL *ssl;

	if (p->ctx == NULL || (ssl = xport_ssl(p->xp)) == NULL)
		return 0;
	snprintf(node, sizeof(node), "%.*s", f->u.hello.node_len,
	    f->u.hello.node);
	if (tls_check_identity(ssl, peer_identity(node), why,
	    sizeof(why)) == 0)
		return 0;
	snprintf(what, sizeof(what), "HELLO node id %s is not the "
	    "certificate's identity: %s", util_esc(node), why);
	peer_identity_refuse(p, what);
	peer_fail(p, "node id does not match the certificate");
	return -1;
}

void
peer_on_hello(struct peer *p, const struct wire_frame *f)
{
	struct peer_stream *ps;

	if (p->state != PEER_HANDSHAKE) {
		peer_fail(p, "second HELLO");
		return;
	}
	if (!p->outbound && peer_hello_identity(p, f) == -1)
		return;
	/* A claimed name: escaped once here for every log line it is in. */
	if (!p->outbound) {
		util_escape_field(f->u.hello.node, f->u.hello.node_len,
		    p->name, sizeof(p->name));
		peer_bytes_name_link(p);
	}
	else if ((size_t)f->u.hello.node_len != strlen(p->name) ||
	    memcmp(f->u.hello.node, p->name, f->u.hello.node_len) != 0) {
		char said[UTIL_ESCAPED_LEN(CONFIG_NAME_MAX)];

		/* Its words, as one field that cannot forge the next. */
		util_escape_field(f->u.hello.node, f->u.hello.node_len, said,
		    sizeof(said));
		log_warnx("peer=%s says its node id is %s", p->name, said);
	}
	p->conn_credit = f->u.hello.conn_window;
	p->remote_stream_window = f->u.hello.stream_window;
	p->state = PEER_UP;
	p->state_since = clock_mono();
	peer_acct_authenticated(p);
	p->backoff_ms = PEER_BACKOFF_MIN;
	p->last_error[0] = '\0';
	p->attempts = 0;
	p->connects++;
	log_info("peer=%s addr=%s up direction=%s", p->name, p->addr,
	    p->outbound ? "out" : "in");
	if (events_wanted())
		events_publish("peer-up", json_pack("{s:o,s:s,s:s}", "peer",
		    peer_json_text(p->name), "address", p->addr, "direction",
		    p->outbound ? "out" : "in"));
	p->up_since = p->state_since;
	peer_send_ping(p);
	clock_timer_arm(p->timer, env->conf->idle_timeout);
	while ((ps = TAILQ_FIRST(&p->link_wait)) != NULL) {
		peer_dequeue(p, ps);
		TAILQ_INSERT_TAIL(&p->ready, ps, ready_entry);
		ps->queued = PQ_READY;
	}
	peer_schedule(p);
}

/* --- connection life cycle --- */

/* Fail every stream on the link: owners hear why, the sink loses upstream. */
static void
peer_drop_streams(struct peer *p, const char *why)
{
	struct outstream_queue lost;
	struct instream *in;
	void *h;
	struct peer_stream *ps;
	unsigned int i;
	char msg[256];

	TAILQ_INIT(&lost);
	for (i = 0; i < PEER_HASH; i++)
		while ((ps = LIST_FIRST(&p->out_hash[i])) != NULL) {
			LIST_REMOVE(ps, hash_entry);
			ps->hash_entry.le_prev = NULL;
			peer_dequeue(p, ps);
			TAILQ_INSERT_TAIL(&lost, ps, ready_entry);
		}
	while ((ps = TAILQ_FIRST(&p->ready)) != NULL ||
	    (ps = TAILQ_FIRST(&p->conn_wait)) != NULL ||
	    (ps = TAILQ_FIRST(&p->link_wait)) != NULL) {
		peer_dequeue(p, ps);
		TAILQ_INSERT_TAIL(&lost, ps, ready_entry);
	}
	p->nout = 0;
	while ((ps = TAILQ_FIRST(&lost)) != NULL) {
		TAILQ_REMOVE(&lost, ps, ready_entry);
		ps->peer = NULL;
		ps->ops->lost(ps->owner, why);
	}
	snprintf(msg, sizeof(msg), "connection from %s lost: %s", p->name,
	    why);
	for (i = 0; i < PEER_HASH; i++)
		while ((in = LIST_FIRST(&p->in_hash[i])) != NULL) {
			LIST_REMOVE(in, hentry);
			in->peer = NULL;
			h = in->sink;
			if (in->starved)
				TAILQ_REMOVE(&peer_starved, in, starved_entry);
			listener_put(LSLOT_STREAM);
			peer_instream_unreserve(in);
			free(in);
			peer_in_sink->lost(h, msg);
		}
	p->nin = 0;
}

static void
peer_close_final(struct peer *p)
{
	if (p->xp != NULL) {
		xport_free(p->xp);
		p->xp = NULL;
	}
	peer_acct_release(p);
	event_del(p->flush_ev);
	clock_timer_disarm(p->timer);
	clock_timer_disarm(p->out_ev);
	p->out_paused = 0;
	p->state = PEER_DOWN;
	p->state_since = clock_mono();
	if (!p->outbound || p->retired) {
		event_active(p->reap_ev, 0, 0);
		return;
	}
	if (p->admin == PEER_ADMIN_DRAINING) {
		log_info("peer=%s drained", p->name);
		p->admin = PEER_ADMIN_DRAINED;
	}
	if (p->admin != PEER_ADMIN_ENABLED)
		return;		/* down until relayctl peer enable */
	/*
	 * Outbound links come back, with exponential backoff and jitter, so
	 * that relays that lost a peer together do not redial in lockstep.
	 */
	p->retry_delay_ms = util_jitter(p->backoff_ms, util_random());
	p->retry_at = clock_mono() + p->retry_delay_ms / 1000.0;
	clock_timer_arm(p->timer, p->retry_delay_ms / 1000.0);
	p->backoff_ms *= 2;
	if (p->backoff_ms > PEER_BACKOFF_MAX)
		p->backoff_ms = PEER_BACKOFF_MAX;
}

void
peer_drop(struct peer *p, const char *why)
{
	if (p->state == PEER_DOWN)
		return;
	if (p->state == PEER_CLOSING) {
		peer_close_final(p);
		return;
	}
	if (why != p->last_error)
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	log_info("peer=%s addr=%s down reason=\"%s\" bytes_in=%llu "
	    "bytes_out=%llu", p->name, p->addr, why,
	    (unsigned long long)p->bytes_in,
	    (unsigned long long)p->bytes_out);
	if (events_wanted() && p->state == PEER_UP)
		events_publish("peer-down", json_pack("{s:o,s:s,s:s,s:o}",
		    "peer", peer_json_text(p->name), "address", p->addr,
		    "direction", p->outbound ? "out" : "in", "reason",
		    peer_json_text(why)));
	/* Mark first, so nothing is sent on the link while streams fail. */
	p->state = PEER_CLOSING;
	peer_drop_streams(p, why);
	peer_close_final(p);
}

void
peer_linger_close(struct peer *p, const char *why)
{
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	log_info("peer=%s addr=%s closing reason=\"%s\"", p->name, p->addr,
	    why);
	p->state = PEER_CLOSING;
	peer_drop_streams(p, why);
	if (p->xp == NULL ||
	    evbuffer_get_length(xport_output(p->xp)) == 0) {
		peer_close_final(p);
		return;
	}
	xport_read_enable(p->xp, 0);
	xport_set_lowat(p->xp, 0);
	clock_timer_arm(p->timer, 1.0);
}

static void
peer_send_hello(struct peer *p)
{
	struct wire_hello h;
	uint8_t frame[WIRE_HDR_LEN + 17 + WIRE_MAX_NODE];
	int n;

	p->conn_window = env->conf->conn_window;
	p->stream_window = env->conf->stream_window;
	p->recv_window = p->conn_window;
	p->conn_unacked = 0;
	p->conn_credit = 0;
	p->remote_goaway = 0;
	p->ping_out = 0;
	p->next_id = p->outbound ? 1 : 2;
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.conn_window = p->conn_window;
	h.stream_window = p->stream_window;
	h.node = env->conf->node_id;
	h.node_len = strlen(env->conf->node_id);
	p->state = PEER_HANDSHAKE;
	p->state_since = p->last_rx = clock_mono();
	if ((n = wire_enc_hello(frame, sizeof(frame), &h)) > 0)
		peer_send(p, frame, n);
	clock_timer_arm(p->timer, env->conf->handshake_timeout);
}

static void
peer_tls_refuse(struct peer *p, enum tls_refusal r, const char *why)
{
	peer_tls_refused[r]++;
	log_warnx("peer=%s addr=%s tls handshake refused reason=\"%s\"",
	    p->name, p->addr, why);
	p->tls_pending = 0;
	peer_drop(p, why);
}

static void
peer_tls_refused_event(struct peer *p, unsigned long err)
{
	SSL *ssl = xport_ssl(p->xp);
	enum tls_refusal r;
	char why[320];

	r = tls_classify(ssl, err, why, sizeof(why));
	ERR_clear_error();
	peer_tls_refuse(p, r, why);
}

/* The TLS handshake is done: check the identity, note what was agreed. */
static int
peer_tls_established(struct peer *p)
{
	SSL *ssl = xport_ssl(p->xp);
	char why[320], what[400];

	if (tls_check_allowed(ssl, p->tlsc, why, sizeof(why)) == -1) {
		peer_tls_refuse(p, TLS_REF_NOT_ALLOWED, why);
		return -1;
	}
	/* The dialled peer must be the one configured, not any CA client. */
	if (p->outbound && tls_check_identity(ssl, peer_identity(p->name),
	    why, sizeof(why)) == -1) {
		snprintf(what, sizeof(what), "dialled peer %s: %s", p->name,
		    why);
		peer_identity_refuse(p, what);
		p->tls_pending = 0;
		peer_drop(p, what);
		return -1;
	}
	p->tls_pending = 0;
	peer_tls_handshakes++;
	snprintf(p->tls_version, sizeof(p->tls_version), "%s",
	    SSL_get_version(ssl));
	snprintf(p->tls_cipher, sizeof(p->tls_cipher), "%s",
	    SSL_get_cipher_name(ssl));
	tls_peer_identity(ssl, p->tls_fp, sizeof(p->tls_fp), p->tls_subject,
	    sizeof(p->tls_subject));
	p->has_not_after = tls_peer_not_after(ssl, &p->cert_not_after) == 0;
	log_info("peer=%s addr=%s tls=%s cipher=%s subject=\"%s\" "
	    "fingerprint=%s", p->name, p->addr, p->tls_version,
	    p->tls_cipher, p->tls_subject, p->tls_fp);
	return 0;
}

static void
peer_event_cb(struct xport *xp, short what, void *arg)
{
	struct peer *p = arg;
	char why[160];
	int err = xport_errno(xp);

	if (what & XPORT_CONNECTED) {
		peer_set_nodelay(xport_fd(xp));
		if (p->tls_pending && peer_tls_established(p) == -1)
			return;
		peer_send_hello(p);
		return;
	}
	if (p->tls_pending) {
		peer_tls_refused_event(p, (what & XPORT_ERROR) ?
		    xport_ssl_error(xp) : 0);
		return;
	}
	if (what & XPORT_EOF)
		snprintf(why, sizeof(why), "connection closed by peer");
	else if (what & XPORT_ERROR)
		snprintf(why, sizeof(why), "%s", err ?
		    evutil_socket_error_to_string(err) : "socket error");
	else
		snprintf(why, sizeof(why), "transport event 0x%x", what);
	peer_drop(p, why);
}

void
peer_connect(struct peer *p)
{
	struct addrinfo hints, *res = NULL;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	p->state = PEER_CONNECTING;
	p->state_since = clock_mono();
	p->attempts++;
	p->retry_at = -1;
	if ((r = getaddrinfo(p->host, p->port, &hints, &res)) != 0) {
		snprintf(p->last_error, sizeof(p->last_error), "resolve "
		    "%s: %s", p->host, gai_strerror(r));
		goto fail;
	}
	if ((p->xp = peer_transport_new(p, -1)) == NULL) {
		snprintf(p->last_error, sizeof(p->last_error),
		    "out of memory");
		goto fail;
	}
	if (xport_connect(p->xp, res->ai_addr,
	    res->ai_addrlen) == -1) {
		snprintf(p->last_error, sizeof(p->last_error), "connect: %s",
		    strerror(errno));
		goto fail;
	}
	freeaddrinfo(res);
	clock_timer_arm(p->timer, env->conf->connect_timeout +
	    (p->ctx != NULL ? env->conf->handshake_timeout : 0));
	return;
 fail:
	if (res != NULL)
		freeaddrinfo(res);
	peer_drop(p, p->last_error);
}

static void
peer_timer_cb(void *arg)
{
	struct peer *p = arg;
	double idle;

	switch (p->state) {
	case PEER_DOWN:
		if (p->outbound)
			peer_connect(p);
		break;
	case PEER_CONNECTING:
		if (p->tls_pending && !p->outbound)
			peer_tls_refuse(p, TLS_REF_TIMEOUT, "handshake timeout "
			    "(no TLS handshake within handshake_timeout)");
		else
			peer_drop(p, "connect timeout");
		break;
	case PEER_HANDSHAKE:
		peer_drop(p, "handshake timeout");
		break;
	case PEER_CLOSING:
		peer_close_final(p);
		break;
	case PEER_UP:
		idle = clock_mono() - p->last_rx;
		if (idle < env->conf->idle_timeout) {
			clock_timer_arm(p->timer,
			    env->conf->idle_timeout - idle);
			break;
		}
		if (p->ping_out) {
			peer_drop(p, "no answer to keepalive PING");
			break;
		}
		p->ping_out = 1;
		peer_send_ping(p);
		clock_timer_arm(p->timer, env->conf->idle_timeout);
		break;
	}
}

static void
peer_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;

	(void)fd;
	(void)ev;
	TAILQ_REMOVE(&env->peers, p, entry);
	peer_free(p);
}

static void
peer_format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		snprintf(out, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		snprintf(out, len, "[%s]:%u", host, port);
	} else
		snprintf(out, len, "unknown");
}

/*
 * Take the listener slots of a new inbound link before anything is
 * allocated for it, or say which cap it is over.  The per-source cap
 * counts only links not yet through HELLO, so one address cannot hold
 * every handshake slot.
 */
static int
peer_accept_admit(const struct sockaddr *sa, enum listener_refusal *why)
{
	if (listener_take(LSLOT_CONNECTION) == -1) {
		*why = LREF_CONNECTIONS;
		return -1;
	}
	if (listener_take(LSLOT_HANDSHAKE) == -1) {
		listener_put(LSLOT_CONNECTION);
		*why = LREF_HANDSHAKES;
		return -1;
	}
	if (listener_source_take(sa) == -1) {
		listener_put(LSLOT_HANDSHAKE);
		listener_put(LSLOT_CONNECTION);
		*why = LREF_PER_SOURCE;
		return -1;
	}
	return 0;
}

static void
peer_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	enum listener_refusal why;
	struct peer *p;
	char addr[96];

	(void)l;
	(void)arg;
	if (peer_accept_admit(sa, &why) == -1) {
		close(fd);
		peer_format_addr(sa, addr, sizeof(addr));
		listener_refused(why, addr);
		return;
	}
	if ((p = peer_new(0)) == NULL) {
		listener_source_put(sa);
		listener_put(LSLOT_HANDSHAKE);
		listener_put(LSLOT_CONNECTION);
		log_warnx("accept: out of memory");
		close(fd);
		return;
	}
	if ((size_t)salen > sizeof(p->src))
		salen = sizeof(p->src);
	memcpy(&p->src, sa, salen);
	p->acct = PEER_ACCT_CONN | PEER_ACCT_HANDSHAKE;
	peer_format_addr(sa, p->addr, sizeof(p->addr));
	snprintf(p->name, sizeof(p->name), "%s", p->addr);
	p->conf = env->conf;
	config_ref(p->conf);
	p->tlsc = &p->conf->tls;
	if (peer_server_ctx != NULL) {
		SSL_CTX_up_ref(peer_server_ctx);
		p->ctx = peer_server_ctx;
	}
	if ((p->xp = peer_transport_new(p, fd)) == NULL) {
		close(fd);
		TAILQ_REMOVE(&env->peers, p, entry);
		peer_free(p);
		return;
	}
	peer_set_nodelay(fd);
	log_debug("peer=%s accepted", p->addr);
	if (p->tls_pending) {
		p->state = PEER_CONNECTING;
		p->state_since = clock_mono();
		clock_timer_arm(p->timer, env->conf->handshake_timeout);
		return;
	}
	peer_send_hello(p);
}

int
peer_listen(const char *host, const char *port, int fd, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	unsigned int flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	    LEV_OPT_CLOSE_ON_EXEC;
	int r;

	if (env->conf->tls.enabled && peer_server_ctx == NULL &&
	    (peer_server_ctx = tls_ctx_new(&env->conf->tls, 1,
	    env->conf->path, err, errlen)) == NULL)
		return -1;
	if (fd >= 0) {
		evutil_make_socket_nonblocking(fd);
		peer_listener = evconnlistener_new(env->base, peer_accept_cb,
		    NULL, flags, -1, fd);
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
			snprintf(err, errlen, "listen %s:%s: %s", host, port,
			    gai_strerror(r));
			return -1;
		}
		peer_listener = evconnlistener_new_bind(env->base,
		    peer_accept_cb, NULL, flags, 512, res->ai_addr,
		    res->ai_addrlen);
		freeaddrinfo(res);
	}
	if (peer_listener == NULL) {
		snprintf(err, errlen, "listen %s:%s: %s", host ? host : "fd",
		    port ? port : "", strerror(errno));
		return -1;
	}
	listener_guard(peer_listener, "peer");
	return 0;
}

void
peer_listen_close(void)
{
	if (peer_listener != NULL) {
		listener_unguard(peer_listener);
		evconnlistener_free(peer_listener);
	}
	peer_listener = NULL;
	if (peer_server_ctx != NULL)
		SSL_CTX_free(peer_server_ctx);
	peer_server_ctx = NULL;
}

/*
 * A peer a reload replaced (changed settings) hands its admin state to
 * the new one; a drain in progress is over for a link with no streams.
 */
static int
peer_admin_inherited(const char *name)
{
	struct peer *p;
	int admin = PEER_ADMIN_ENABLED;

	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->outbound && p->retired && strcmp(p->name, name) == 0)
			admin = p->admin;
	return admin == PEER_ADMIN_DRAINING ? PEER_ADMIN_DRAINED : admin;
}

void
peer_start_outbound(void)
{
	const struct config *c = env->conf;
	struct peer *p;
	unsigned int i;
	char err[512];

	if (peer_starved_ev == NULL &&
	    (peer_starved_ev = clock_timer_new(peer_starved_cb, NULL)) == NULL)
		fatalx("out of memory");
	for (i = 0; i < c->npeers; i++) {
		if (peer_find_outbound(c->peers[i].name) != NULL)
			continue;
		if ((p = peer_new(1)) == NULL)
			fatalx("out of memory");
		snprintf(p->name, sizeof(p->name), "%s", c->peers[i].name);
		p->bslot = peer_bytes_slot(p->name);
		if ((p->host = strdup(c->peers[i].host)) == NULL ||
		    (p->port = strdup(c->peers[i].port)) == NULL)
			fatalx("out of memory");
		snprintf(p->addr, sizeof(p->addr), "%s:%s", p->host, p->port);
		p->rate_limit = c->peers[i].rate_limit;
		if (p->rate_limit > 0 && (p->rl_ev = clock_timer_new(
		    peer_rl_cb, p)) == NULL)
			fatalx("out of memory");
		p->rl_last = clock_mono();
		p->conf = env->conf;
		config_ref(p->conf);
		p->tlsc = &p->conf->peers[i].tls;
		if (p->tlsc->enabled && (p->ctx = tls_ctx_new(p->tlsc, 0,
		    c->path, err, sizeof(err))) == NULL)
			fatalx("%s", err);
		p->admin = peer_admin_inherited(p->name);
		if (p->admin == PEER_ADMIN_ENABLED)
			peer_connect(p);
	}
}

struct peer *
peer_find_outbound(const char *name)
{
	struct peer *p;

	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->outbound && !p->retired && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

json_t *
peer_tls_json(void)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < TLS_REF_MAX; i++)
		json_object_set_new(o, tls_refusal_name(i),
		    json_integer(peer_tls_refused[i]));
	return json_pack("{s:I,s:o}", "tls_handshakes",
	    (json_int_t)peer_tls_handshakes, "tls_refused", o);
}

const char *
peer_admin_name(int admin)
{
	switch (admin) {
	case PEER_ADMIN_ENABLED:
		return "enabled";
	case PEER_ADMIN_DISABLED:
		return "disabled";
	case PEER_ADMIN_DRAINING:
		return "draining";
	case PEER_ADMIN_DRAINED:
		return "drained";
	}
	return "?";
}

/*
 * Text that a peer or the OS may have written (a reason, an error, a
 * certificate subject), for JSON: every byte outside printable ASCII
 * becomes \xNN, and what is escaped already stays as it is.  jansson
 * refuses invalid UTF-8, and a refused string would lose the whole
 * object (a show peers row, a peer-down event).
 */
static json_t *
peer_json_text(const char *s)
{
	char buf[UTIL_ESCAPED_LEN(256)];

	snprintf(buf, sizeof(buf), "%s", s != NULL ? s : "");
	util_escape_line(buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
peer_json_secs(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

/* notAfter as "YYYY-MM-DDThh:mm:ssZ", or null. */
static json_t *
peer_json_time(const struct peer *p)
{
	struct tm tm;
	time_t t = (time_t)p->cert_not_after;
	char buf[32];

	if (!p->has_not_after || p->state != PEER_UP || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

/*
 * The link's own figures: admin state, the generation its SSL_CTX (or,
 * plaintext, its settings) came from, round-trip times from PING/PONG,
 * the peer certificate's expiry and the link's age (null while down).
 */
static void
peer_json_link(const struct peer *p, json_t *o)
{
	int up = p->state == PEER_UP;

	json_object_set_new(o, "admin", p->outbound ?
	    json_string(peer_admin_name(p->admin)) : json_null());
	json_object_set_new(o, "generation", p->xp != NULL ?
	    json_integer(p->link_gen) : json_null());
	json_object_set_new(o, "config_generation", p->conf != NULL ?
	    json_integer(p->conf->generation) : json_null());
	json_object_set_new(o, "rtt_ms", peer_json_secs(p->rtt_last < 0 ?
	    -1 : p->rtt_last * 1000));
	json_object_set_new(o, "srtt_ms", peer_json_secs(p->rtt_smooth < 0 ?
	    -1 : p->rtt_smooth * 1000));
	json_object_set_new(o, "cert_not_after", peer_json_time(p));
	json_object_set_new(o, "cert_expires_in_s", p->has_not_after && up ?
	    json_integer(p->cert_not_after - (int64_t)time(NULL)) :
	    json_null());
	json_object_set_new(o, "age_s", peer_json_secs(up ?
	    clock_mono() - p->up_since : -1));
}

/*
 * Retries of an outbound link: dials since it was last up, the times it
 * came up, and while it is down and waiting, the jittered delay chosen
 * and the milliseconds left until the next dial (null otherwise).
 */
static void
peer_json_retry(const struct peer *p, json_t *o)
{
	double left = p->retry_at - clock_mono();
	int waiting = p->outbound && p->state == PEER_DOWN &&
	    p->retry_at >= 0 && clock_timer_pending(p->timer);

	json_object_set_new(o, "attempts", p->outbound ?
	    json_integer(p->attempts) : json_null());
	json_object_set_new(o, "connects", json_integer(p->connects));
	json_object_set_new(o, "retry_delay_ms", waiting ?
	    json_integer(p->retry_delay_ms) : json_null());
	json_object_set_new(o, "next_attempt_ms", waiting ?
	    json_integer(left > 0 ? (json_int_t)(left * 1000) : 0) :
	    json_null());
}

json_t *
peer_json(const struct peer *p)
{
	json_t *o, *tls = json_null();

	if (p->tls_version[0] != '\0')
		tls = json_pack("{s:s,s:s,s:o,s:s}", "version", p->tls_version,
		    "cipher", p->tls_cipher, "subject",
		    peer_json_text(p->tls_subject), "fingerprint", p->tls_fp);
	o = json_pack("{s:o,s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:f,s:o,s:o}",
	    "name", peer_json_text(p->name), "address", p->addr,
	    "direction", p->outbound ? "out" : "in",
	    "state", peer_state_name(p->state),
	    "streams", (int)(p->nin + p->nout), "streams_in", (int)p->nin,
	    "bytes_in", (json_int_t)p->bytes_in,
	    "bytes_out", (json_int_t)p->bytes_out,
	    "send_credit", (json_int_t)p->conn_credit,
	    "state_s", clock_mono() - p->state_since,
	    "last_error", peer_json_text(p->last_error), "tls", tls);
	if (o != NULL) {
		peer_json_link(p, o);
		peer_json_retry(p, o);
	}
	return o;
}

void
peer_free_all(void)
{
	struct peer *p;

	if (peer_starved_ev != NULL) {
		clock_timer_free(peer_starved_ev);
		peer_starved_ev = NULL;
	}
	while ((p = TAILQ_FIRST(&env->peers)) != NULL) {
		p->state = PEER_CLOSING;
		peer_drop_streams(p, "shutting down");
		TAILQ_REMOVE(&env->peers, p, entry);
		peer_free(p);
	}
}

json_t *
peer_json_all(void)
{
	json_t *a = json_array();
	struct peer *p;

	TAILQ_FOREACH(p, &env->peers, entry)
		json_array_append_new(a, peer_json(p));
	return a;
}

void
peer_totals(struct peer_totals *t)
{
	struct peer *p;
	int i;

	memset(t, 0, sizeof(*t));
	TAILQ_FOREACH(p, &env->peers, entry) {
		t->links++;
		if (p->state == PEER_UP)
			t->up++;
		t->bytes_in += p->bytes_in;
		t->bytes_out += p->bytes_out;
	}
	t->tls_handshakes = peer_tls_handshakes;
	for (i = 0; i < TLS_REF_MAX && i < (int)(sizeof(t->tls_refused) /
	    sizeof(t->tls_refused[0])); i++)
		t->tls_refused[i] = peer_tls_refused[i];
}

/* Drain: tell every peer no new streams will be accepted. */
void
peer_goaway_all(const char *why)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	struct peer *p;
	int n;

	n = wire_enc_goaway(frame, sizeof(frame), WIRE_ABORT_SHUTDOWN, why);
	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->state == PEER_UP && n > 0)
			peer_send(p, frame, n);
}

/* Disable: close the link now (its streams fail) and stop dialling. */
static void
peer_disable(struct peer *p)
{
	uint8_t frame[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int n;

	p->admin = PEER_ADMIN_DISABLED;
	switch (p->state) {
	case PEER_DOWN:
		clock_timer_disarm(p->timer);	/* no redial */
		break;
	case PEER_UP:
		n = wire_enc_goaway(frame, sizeof(frame), WIRE_ABORT_SHUTDOWN,
		    "link disabled");
		if (n > 0)
			peer_send(p, frame, n);
		peer_linger_close(p, "disabled by relayctl");
		break;
	case PEER_CLOSING:
		break;		/* peer_close_final() will not redial */
	default:
		peer_drop(p, "disabled by relayctl");
		break;
	}
}

/* Drain: no new PUTs (peer_usable), close once its streams are done. */
static void
peer_drain(struct peer *p)
{
	if (p->admin == PEER_ADMIN_DRAINED ||
	    p->admin == PEER_ADMIN_DISABLED)
		return;		/* down already, and stays down */
	p->admin = PEER_ADMIN_DRAINING;
	if (p->state == PEER_DOWN) {
		clock_timer_disarm(p->timer);
		p->admin = PEER_ADMIN_DRAINED;
		return;
	}
	if (p->nin == 0 && p->nout == 0 && p->state != PEER_CLOSING)
		peer_linger_close(p, "drained by relayctl");
}

static void
peer_enable(struct peer *p)
{
	p->admin = PEER_ADMIN_ENABLED;
	if (p->state != PEER_DOWN || clock_timer_pending(p->timer))
		return;
	p->backoff_ms = PEER_BACKOFF_MIN;
	peer_connect(p);
}

int
peer_admin_set(const char *name, enum peer_admin admin, char *err,
    size_t errlen)
{
	struct peer *p;
	int was;

	if ((p = peer_find_outbound(name)) == NULL) {
		snprintf(err, errlen, "no configured peer '%s'", name);
		return -1;
	}
	was = p->admin;
	if (admin == PEER_ADMIN_DISABLED)
		peer_disable(p);
	else if (admin == PEER_ADMIN_DRAINING)
		peer_drain(p);
	else
		peer_enable(p);
	log_info("peer=%s admin=%s (was %s) by relayctl", util_escf(p->name),
	    peer_admin_name(p->admin), peer_admin_name(was));
	return 0;
}

int
peer_usable(const char *name, void *arg)
{
	const struct peer *p = peer_find_outbound(name);

	(void)arg;
	return p == NULL || p->admin == PEER_ADMIN_ENABLED;
}

static int
peer_same_tls(const struct tls_conf *a, const struct tls_conf *b)
{
	unsigned int i;

	if (a->enabled != b->enabled)
		return 0;
	if (!a->enabled)
		return 1;
	if (strcmp(a->ca, b->ca) || strcmp(a->cert, b->cert) ||
	    strcmp(a->key, b->key) || a->nallow != b->nallow)
		return 0;
	for (i = 0; i < a->nallow; i++)
		if (strcmp(a->allow[i], b->allow[i]) != 0)
			return 0;
	return 1;
}

/* The new config's entry of an outbound peer a reload keeps, or NULL. */
static const struct peer_conf *
peer_kept(const struct config *c, const struct peer *p)
{
	const struct peer_conf *pc;

	if (!p->outbound || p->retired)
		return NULL;
	pc = config_peer(c, p->name);
	if (pc != NULL && strcmp(pc->host, p->host) == 0 &&
	    strcmp(pc->port, p->port) == 0 &&
	    pc->rate_limit == p->rate_limit &&
	    peer_same_tls(&pc->tls, p->tlsc))
		return pc;
	return NULL;
}

/*
 * A reload reads certificates, keys and CA again for the outbound peers
 * it keeps too (same file names, maybe new contents): each gets a new
 * SSL_CTX in next_ctx.  0, or -1 with none made and the reason in err.
 */
static int
peer_refresh_prepare(const struct config *c, char *err, size_t errlen)
{
	const struct peer_conf *pc;
	struct peer *p;

	TAILQ_FOREACH(p, &env->peers, entry) {
		if ((pc = peer_kept(c, p)) == NULL || !pc->tls.enabled)
			continue;
		if ((p->next_ctx = tls_ctx_new(&pc->tls, 0, c->path, err,
		    errlen)) == NULL)
			break;
	}
	if (p == NULL)
		return 0;
	TAILQ_FOREACH(p, &env->peers, entry)
		if (p->next_ctx != NULL) {
			SSL_CTX_free(p->next_ctx);
			p->next_ctx = NULL;
		}
	return -1;
}

/*
 * The kept peer takes the new generation: its next connection uses the
 * new context.  A link up now keeps the old one (its SSL holds a
 * reference) until it reconnects; show peers tells them apart.
 */
static void
peer_refresh_commit(struct peer *p, struct config *c,
    const struct peer_conf *pc)
{
	if (p->ctx != NULL)
		SSL_CTX_free(p->ctx);
	p->ctx = p->next_ctx;
	p->next_ctx = NULL;
	config_ref(c);
	config_unref(p->conf);
	p->conf = c;
	p->tlsc = &pc->tls;
}

/*
 * A reload: outbound links whose settings are unchanged stay, and take
 * the new generation's TLS context for their next connection; changed
 * or removed ones are retired (no new streams; closed when their streams
 * are done) and new ones are made.  The listener gets the new TLS
 * context for new connections.  Called with env->conf already the new
 * generation.
 */
int
peer_reconfigure(struct config *old, char *err, size_t errlen)
{
	struct config *c = env->conf;
	const struct peer_conf *pc;
	struct peer *p, *next;
	SSL_CTX *ctx = NULL;

	/* The listener may be inherited (socket activation): no listen line. */
	if (c->tls.enabled && peer_listener != NULL &&
	    (ctx = tls_ctx_new(&c->tls, 1, c->path, err, errlen)) == NULL)
		return -1;
	if (peer_refresh_prepare(c, err, errlen) == -1) {
		if (ctx != NULL)
			SSL_CTX_free(ctx);
		return -1;
	}
	if (peer_server_ctx != NULL)
		SSL_CTX_free(peer_server_ctx);
	peer_server_ctx = ctx;
	(void)old;
	for (p = TAILQ_FIRST(&env->peers); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		if (!p->outbound || p->retired)
			continue;
		if ((pc = peer_kept(c, p)) != NULL) {
			peer_refresh_commit(p, c, pc);
			continue;
		}
		pc = config_peer(c, p->name);
		log_info("peer=%s retired by reload (%s)", p->name,
		    pc == NULL ? "removed" : "changed");
		p->retired = 1;
		if (p->state == PEER_DOWN || p->state == PEER_CONNECTING) {
			/* Nothing in flight that matters: go now. */
			p->state = p->state == PEER_DOWN ? PEER_CLOSING :
			    p->state;
			peer_drop(p, "removed from the config by a reload");
			if (p->state == PEER_DOWN)
				peer_close_final(p);
		} else
			peer_check_retired(p);
	}
	peer_start_outbound();
	return 0;
}
