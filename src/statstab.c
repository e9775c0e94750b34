/*
 * statstab: the one table of relayd's counters and gauges (see stats.h).
 * It is the only file that knows which module owns which gauge, so the
 * modules below (peer, session, listener) need not know stats' renderers
 * and stats needs not know them.  Add a row here and it shows in
 * `relayctl show stats` and in /metrics alike.
 */
#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "listener.h"
#include "peer.h"
#include "daemon.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "stream.h"
#include "tls.h"
#include "util.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static uint64_t
tab_active_streams(void)
{
	return session_count();
}

/* Totals over every link; a walk of the peer list per value read. */
static struct peer_totals
tab_totals(void)
{
	struct peer_totals t;

	peer_totals(&t);
	return t;
}

static uint64_t
tab_peers_up(void)
{
	return tab_totals().up;
}

static uint64_t
tab_links(void)
{
	return tab_totals().links;
}

static unsigned int
tab_peer_count(void)
{
	return peer_bytes_count();
}

static const char *
tab_peer_name(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return peer_bytes_name(i);
}

static uint64_t
tab_peer_in(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return peer_bytes_at(i, 0);
}

static uint64_t
tab_peer_out(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return peer_bytes_at(i, 1);
}

static uint64_t
tab_store_bytes(void)
{
	return store_used(env->store);
}

static uint64_t
tab_store_reserved(void)
{
	return store_reserved(env->store);
}

static uint64_t
tab_store_max(void)
{
	return env->conf != NULL ? env->conf->store_max_bytes : 0;
}

static const char *
tab_build_name(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	(void)i;
	return RELAYD_VERSION;
}

static uint64_t
tab_one(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	(void)i;
	return 1;
}

/*
 * The listener's own certificate: its path (escaped) and notAfter, read
 * once per config generation, not once per scrape.
 */
static struct {
	unsigned int	 generation;
	int		 ok;
	int64_t		 not_after;
	char		 path[512];
} tab_cert;

static int
tab_cert_load(void)
{
	const struct config *c = env->conf;

	if (c == NULL || !c->tls.enabled || c->tls.cert == NULL)
		return 0;
	if (tab_cert.generation != c->generation) {
		tab_cert.generation = c->generation;
		tab_cert.ok = tls_cert_not_after(c->tls.cert,
		    &tab_cert.not_after) == 0;
		util_escape(c->tls.cert, strlen(c->tls.cert), tab_cert.path,
		    sizeof(tab_cert.path));
	}
	return tab_cert.ok;
}

static const char *
tab_cert_name(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	(void)i;
	return tab_cert_load() ? tab_cert.path : NULL;
}

/* Seconds left before the certificate expires; 0 once it has. */
static uint64_t
tab_cert_left(const struct stats_entry *e, unsigned int i)
{
	int64_t left;

	(void)e;
	(void)i;
	if (!tab_cert_load())
		return 0;
	left = tab_cert.not_after - (int64_t)time(NULL);
	return left > 0 ? (uint64_t)left : 0;
}

static uint64_t
tab_tls_handshakes(void)
{
	return tab_totals().tls_handshakes;
}

static const char *
tab_tls_name(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return tls_refusal_name(i);
}

static uint64_t
tab_tls_at(const struct stats_entry *e, unsigned int i)
{
	struct peer_totals t = tab_totals();

	(void)e;
	return i < nitems(t.tls_refused) ? t.tls_refused[i] : 0;
}

static uint64_t
tab_fd_limit(void)
{
	return listener_fd_limit();
}

static uint64_t
tab_fd_reserve(void)
{
	return listener_fd_reserve();
}

static const char *
tab_slot_name(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return listener_slot_name(i);
}

static uint64_t
tab_slot_open(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return listener_used(i);
}

static uint64_t
tab_slot_cap(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return listener_cap(env->conf, i);
}

static const char *
tab_refusal_name(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return listener_refusal_name(i);
}

static uint64_t
tab_refusal_at(const struct stats_entry *e, unsigned int i)
{
	(void)e;
	return listener_refused_count(i);
}

static uint64_t
tab_max_buffered(void)
{
	return env->conf != NULL ? env->conf->max_buffered : 0;
}

static uint64_t
tab_max_output_buffer(void)
{
	return env->conf != NULL ? env->conf->max_output_buffer : 0;
}

static double
tab_uptime(void)
{
	return clock_mono() - env->start_time;
}

static uint64_t
tab_generation(void)
{
	return env->conf != NULL ? env->conf->generation : 0;
}

#define C	STATS_COUNTER
#define G	STATS_GAUGE
/* A scalar counter of `stats`, a fixed-label one, a code vector. */
#define CNT(j, p, u, h, f)	{ .json = j, .prom = p, .type = C, \
	.unit = u, .help = h, .value = &stats.f }
#define CNTL(j, p, k, v, u, h, f) { .json = j, .prom = p, .label = k, \
	.lvalue = v, .type = C, .unit = u, .help = h, .value = &stats.f }
#define CODES(j, p, h, f)	{ .json = j, .prom = p, .label = "reason", \
	.type = C, .unit = "", .help = h, .value = stats.f, \
	.n = STATS_CODES, .name = stats_code_name, .at = stats_code_at }
/* A gauge (or counter) read by a getter, a fixed-label one, a vector. */
#define GET(j, p, t, u, h, g)	{ .json = j, .prom = p, .type = t, \
	.unit = u, .help = h, .get = g }
#define GETL(j, p, t, k, v, u, h, g) { .json = j, .prom = p, .label = k, \
	.lvalue = v, .type = t, .unit = u, .help = h, .get = g }
/* A per-peer counter vector, with direction d as a second label. */
#define PEERV(j, p, d, h, fn)	{ .json = j, .prom = p, .label = "peer", \
	.fkey = "direction", .fvalue = d, .type = C, .unit = "bytes", \
	.help = h, .count = tab_peer_count, .name = tab_peer_name, .at = fn }
#define VEC(j, p, t, k, cnt, h, nm, fn) { .json = j, .prom = p, \
	.label = k, .type = t, .unit = "", .help = h, .n = cnt, \
	.name = nm, .at = fn }

const struct stats_entry stats_table[] = {
	/* PUT streams */
	CNT("puts_received", "relayd_puts_received_total", "",
	    "PUT streams admitted on this relay.", puts_received),
	CNT("puts_stored", "relayd_puts_stored_total", "",
	    "PUT streams that ended ok with the payload stored on this "
	    "relay.", puts_stored),
	CNT("puts_relayed", "relayd_puts_relayed_total", "",
	    "PUT streams that ended ok without this relay storing them "
	    "(stored further on, or replayed from an earlier outcome).",
	    puts_relayed),
	CNT("puts_failed", "relayd_puts_failed_total", "",
	    "PUT streams that ended failed or aborted.", puts_failed),
	CNT("puts_forwarded", "relayd_puts_forwarded_total", "",
	    "Forks to a next hop that got a RESULT.", puts_forwarded),
	CNTL("stores_ok", "relayd_stores_total", "result", "ok", "",
	    "Payloads stored on this relay, by result.", stores_ok),
	CNTL("stores_failed", "relayd_stores_total", "result", "failed", "",
	    NULL, stores_failed),
	CNT("results_refused", "relayd_results_refused_total", "",
	    "RESULTs from a next hop refused as contradicting what was sent.",
	    results_refused),
	CNT("identity_refused", "relayd_identity_refused_total", "",
	    "Links closed: certificate or HELLO node id not the expected "
	    "identity.", identity_refused),
	CODES("puts_refused", "relayd_puts_refused_total",
	    "PUTs refused at admission, by abort reason.", puts_refused),
	CODES("streams_aborted", "relayd_streams_aborted_total",
	    "PUT streams aborted, by abort reason.", streams_aborted),
	CODES("forks_aborted", "relayd_forks_aborted_total",
	    "Forks to a next hop aborted, by abort reason.", forks_aborted),
	CNTL("payload_in", "relayd_payload_bytes_total", "direction", "in",
	    "bytes", "Payload bytes received (in) and sent to next hops "
	    "(out).", payload_in),
	CNTL("payload_out", "relayd_payload_bytes_total", "direction", "out",
	    "bytes", NULL, payload_out),
	GET("active_streams", "relayd_active_streams", G, "",
	    "PUT streams in flight on this relay.", tab_active_streams),
	GET("buffered", "relayd_buffered_bytes", G, "bytes",
	    "Payload bytes held in stream buffers.", stream_total_held),
	/* peer links */
	GET("peers_up", "relayd_peers_up", G, "",
	    "Peer links up (handshake done).", tab_peers_up),
	GET("links", "relayd_peer_links", G, "",
	    "Peer links in any state, inbound and outbound.", tab_links),
	/* By peer name; a closed link's bytes stay with its name. */
	PEERV("link_bytes.in", "relayd_link_bytes_total", "in",
	    "Wire bytes received (in) and sent (out) on peer links since "
	    "start, by peer name ((none): inbound links closed before "
	    "HELLO; (other): names beyond the first 62).", tab_peer_in),
	PEERV("link_bytes.out", "relayd_link_bytes_total", "out", NULL,
	    tab_peer_out),
	GET("tls_handshakes", "relayd_tls_handshakes_total", C, "",
	    "TLS handshakes completed on peer links.", tab_tls_handshakes),
	VEC("tls_refused", "relayd_tls_handshake_failures_total", C,
	    "reason", TLS_REF_MAX,
	    "TLS handshakes refused on peer links, by reason.",
	    tab_tls_name, tab_tls_at),
	/* descriptor caps: limit, what is open against each cap, refusals */
	GET("descriptors.fd_limit", "relayd_fd_limit", G, "",
	    "Descriptor limit (RLIMIT_NOFILE) the caps are derived from.",
	    tab_fd_limit),
	GET("descriptors.fd_reserve", "relayd_fd_reserve", G, "",
	    "Descriptors kept out of every cap for the store, control and "
	    "outbound links.", tab_fd_reserve),
	VEC("descriptors.open", "relayd_listener_open", G, "slot", LSLOT_MAX,
	    "Connections and streams counted against each cap now, by cap.",
	    tab_slot_name, tab_slot_open),
	VEC("descriptors.caps", "relayd_listener_cap", G, "slot", LSLOT_MAX,
	    "The cap of each slot (derived from the descriptor limit where "
	    "relayd.conf says 0).", tab_slot_name, tab_slot_cap),
	VEC("descriptors.refused", "relayd_listener_refused_total", C,
	    "reason", LREF_MAX, "Connections closed and streams refused by a "
	    "cap or a client timeout, by the limit that fired.",
	    tab_refusal_name, tab_refusal_at),
	/* memory bounds against hostile peers */
	GET("memory.reserved", "relayd_reserved_bytes", G, "bytes",
	    "Stream credit granted to peers and not yet used, reserved "
	    "against max_buffered.", peer_reserved_bytes),
	GET("memory.max_buffered", "relayd_max_buffered_bytes", G, "bytes",
	    "The max_buffered limit in use: payload bytes held and reserved "
	    "for all streams.", tab_max_buffered),
	GET("memory.max_output_buffer", "relayd_max_output_buffer_bytes", G,
	    "bytes", "The max_output_buffer limit in use: unsent bytes per "
	    "link before reading pauses.", tab_max_output_buffer),
	CNTL("memory.output_paused", "relayd_output_bound_total", "action",
	    "paused", "", "Links whose unsent output went above "
	    "max_output_buffer: reading paused, or closed after "
	    "output_timeout.", output_paused),
	CNTL("memory.output_closed", "relayd_output_bound_total", "action",
	    "closed", "", NULL, output_closed),
	CNT("memory.pongs_folded", "relayd_pongs_folded_total", "",
	    "PINGs answered by a PONG already queued.", pongs_folded),
	CNT("memory.reserve_refused", "relayd_reserve_refused_total", "",
	    "PUTs refused: max_buffered had no room for a stream window.",
	    reserve_refused),
	CNTL("memory.credit_overflow", "relayd_link_protocol_closed_total",
	    "reason", "credit_overflow", "", "Links closed for CREDIT beyond "
	    "2^31-1 or DATA for a stream never opened.", credit_overflow),
	CNTL("memory.data_never_opened", "relayd_link_protocol_closed_total",
	    "reason", "data_never_opened", "", NULL, data_never_opened),
	CNT("memory.data_discarded", "relayd_data_discarded_bytes_total",
	    "bytes", "DATA bytes of ended or unknown streams read and "
	    "dropped.", data_discarded),
	/* the store */
	GET("store.bytes", "relayd_store_bytes", G, "bytes",
	    "Bytes of the files in store_dir (counted at start, then as "
	    "payloads are stored).", tab_store_bytes),
	GET("store.reserved", "relayd_store_reserved_bytes", G, "bytes",
	    "Declared sizes of the payloads being stored now.",
	    tab_store_reserved),
	GET("store.max_bytes", "relayd_store_max_bytes", G, "bytes",
	    "The store_max_bytes limit in use (0: none).", tab_store_max),
	/* the rest */
	VEC("build_info", "relayd_build_info", G, "version", 1,
	    "relayd's version; the value is always 1.", tab_build_name,
	    tab_one),
	VEC("cert_expiry_s", "relayd_cert_expiry_seconds", G, "cert", 1,
	    "Seconds until the listener's own certificate expires (0 once "
	    "it has), by certificate file; none without TLS.",
	    tab_cert_name, tab_cert_left),
	{ .json = "stream_durations", .prom = "relayd_stream_duration_seconds",
	    .type = STATS_HISTOGRAM, .unit = "seconds", .help = "Time from "
	    "admission to the end (done or failed) of each PUT stream on this "
	    "relay." },
	{ .json = "uptime_s", .prom = "relayd_uptime_seconds", .type = G,
	    .unit = "seconds", .help = "Seconds since relayd started.",
	    .getf = tab_uptime },
	GET("generation", "relayd_config_generation", G, "",
	    "Generation of the configuration in use (one more per accepted "
	    "load or reload).", tab_generation),
};

const size_t	 stats_ntable = nitems(stats_table);
