/*
 * Unit tests for stats: every row of the one table (statstab.c) shows in
 * the show stats JSON and in the Prometheus text with the same value,
 * nothing shows on one surface only, families are well formed, and the
 * by-code counters fold unnamed codes into "unknown".  The gauges other
 * modules own are stubbed here with distinct values.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "config.h"
#include "listener.h"
#include "clock.h"
#include "peer.h"
#include "daemon.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "stream.h"
#include "tls.h"

/* --- what the table reads from other modules, stubbed --- */

struct relayd		*env;
static struct relayd	 test_env;
static struct config	 test_conf;

double
clock_mono(void)
{
	return 1234.5;
}

unsigned int
session_count(void)
{
	return 7;
}

uint64_t
stream_total_held(void)
{
	return 8001;
}

uint64_t
peer_reserved_bytes(void)
{
	return 8002;
}

void
peer_totals(struct peer_totals *t)
{
	unsigned int i;

	memset(t, 0, sizeof(*t));
	t->up = 3;
	t->links = 4;
	t->bytes_in = 8003;
	t->bytes_out = 8004;
	t->tls_handshakes = 8005;
	for (i = 0; i < TLS_REF_MAX; i++)
		t->tls_refused[i] = 8100 + i;
}

const char *
tls_refusal_name(enum tls_refusal r)
{
	static const char *const names[TLS_REF_MAX] = { "no_certificate",
	    "unknown_ca", "expired", "not_allowed", "version", "not_tls",
	    "timeout", "closed", "other" };

	return (unsigned int)r < TLS_REF_MAX ? names[r] : "other";
}

/* Peer names as peer.c keeps them: escaped, so \ and \" may be in. */
static const char *const test_peers[] = { "(none)", "(other)", "b",
    "evil\\\"}1\nx" };

unsigned int
peer_bytes_count(void)
{
	return 4;
}

const char *
peer_bytes_name(unsigned int i)
{
	return i < 4 ? test_peers[i] : NULL;
}

uint64_t
peer_bytes_at(unsigned int i, int out)
{
	return 8600 + 2 * i + (out != 0);
}

uint64_t
store_used(const struct store *st)
{
	(void)st;
	return 8701;
}

uint64_t
store_reserved(const struct store *st)
{
	(void)st;
	return 8702;
}

int
tls_cert_not_after(const char *path, int64_t *when)
{
	(void)path;
	*when = INT64_MAX / 2;
	return 0;
}

unsigned int
listener_fd_limit(void)
{
	return 20000;
}

unsigned int
listener_fd_reserve(void)
{
	return 1000;
}

unsigned int
listener_cap(const struct config *cf, enum listener_slot s)
{
	(void)cf;
	return 8200 + s;
}

unsigned int
listener_used(enum listener_slot s)
{
	return 8300 + s;
}

uint64_t
listener_refused_count(enum listener_refusal r)
{
	return 8400 + r;
}

const char *
listener_slot_name(enum listener_slot s)
{
	static char buf[LSLOT_MAX][16];

	snprintf(buf[s], sizeof(buf[s]), "slot%d", (int)s);
	return buf[s];
}

const char *
listener_refusal_name(enum listener_refusal r)
{
	static char buf[LREF_MAX][16];

	snprintf(buf[r], sizeof(buf[r]), "ref%d", (int)r);
	return buf[r];
}

/* --- helpers --- */

#define ISVEC(e)	((e)->n > 0 || (e)->count != NULL)

/* Every counter of `stats` the table points at gets its own value. */
static void
fill_counters(void)
{
	const struct stats_entry	*e;
	size_t				 r;
	unsigned int			 c;

	memset(&stats, 0, sizeof(stats));
	for (r = 0; r < stats_ntable; r++) {
		e = &stats_table[r];
		if (e->value == NULL)
			continue;
		if (e->n == 0 && e->count == NULL)
			*e->value = 1000 + r;
		else
			for (c = 0; c < e->n; c++)
				e->value[c] = 100000 * (r + 1) + c;
	}
	stats_duration(0.002);
	stats_duration(20);
}

static int
setup(void **state)
{
	(void)state;
	memset(&test_env, 0, sizeof(test_env));
	memset(&test_conf, 0, sizeof(test_conf));
	test_conf.max_buffered = 8500;
	test_conf.max_output_buffer = 8501;
	test_conf.generation = 9;
	test_env.conf = &test_conf;
	test_env.start_time = 1000;
	env = &test_env;
	fill_counters();
	return 0;
}

/* The text of buf, NUL-terminated, to be freed. */
static char *
render_prom(void)
{
	struct evbuffer	*buf = evbuffer_new();
	size_t		 len;
	char		*s;

	assert_non_null(buf);
	assert_int_equal(stats_prom(buf, stats_table, stats_ntable), 0);
	len = evbuffer_get_length(buf);
	s = calloc(1, len + 1);
	assert_non_null(s);
	evbuffer_remove(buf, s, len);
	evbuffer_free(buf);
	return s;
}

/* The value of the sample line "series v", or -1 if there is none. */
static double
prom_sample(const char *text, const char *series)
{
	const char	*p = text;
	size_t		 n = strlen(series);

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

/* The JSON value at "a.b" plus item (NULL for a scalar). */
static json_t *
json_at(json_t *root, const char *path, const char *item)
{
	char	 buf[128], *part, *save = NULL;
	json_t	*o = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); part != NULL && o != NULL;
	    part = strtok_r(NULL, ".", &save))
		o = json_object_get(o, part);
	if (o != NULL && item != NULL)
		o = json_object_get(o, item);
	return o;
}

static size_t
json_leaves(json_t *o)
{
	const char	*k;
	json_t		*v;
	size_t		 n = 0;

	if (!json_is_object(o))
		return 1;
	json_object_foreach(o, k, v)
		n += json_leaves(v);
	return n;
}

static void
series_name(const struct stats_entry *e, unsigned int i, char *buf,
    size_t len)
{
	const char *name = stats_item_name(e, i);

	char	 esc[128];
	size_t	 o = 0;

	for (; name != NULL && *name != '\0' && o + 3 < sizeof(esc); name++) {
		if (*name == '\\' || *name == '"' || *name == '\n')
			esc[o++] = '\\';
		esc[o++] = *name == '\n' ? 'n' : *name;
	}
	esc[o] = '\0';
	if (e->type == STATS_HISTOGRAM)
		snprintf(buf, len, "%s_count", e->prom);
	else if (e->label != NULL && e->fkey != NULL)
		snprintf(buf, len, "%s{%s=\"%s\",%s=\"%s\"}", e->prom,
		    e->label, esc, e->fkey, e->fvalue);
	else if (e->label != NULL)
		snprintf(buf, len, "%s{%s=\"%s\"}", e->prom, e->label, esc);
	else
		snprintf(buf, len, "%s", e->prom);
}

/* --- tests --- */

/* Each item of each row: in both renderings, with the same value. */
static void
test_stats_surfaces_agree(void **state)
{
	const struct stats_entry	*e;
	json_t				*js, *v;
	char				*text, series[160];
	size_t				 r, items = 0;
	unsigned int			 i;
	double				 pv, jv;

	(void)state;
	js = stats_json(stats_table, stats_ntable);
	assert_non_null(js);
	text = render_prom();
	for (r = 0; r < stats_ntable; r++) {
		e = &stats_table[r];
		for (i = 0; i < stats_items(e); i++) {
			if (ISVEC(e) && stats_item_name(e, i) == NULL)
				continue;
			items++;
			series_name(e, i, series, sizeof(series));
			v = json_at(js, e->json, ISVEC(e) ?
			    stats_item_name(e, i) : NULL);
			if (v == NULL)
				fail_msg("%s: not in the JSON", e->json);
			pv = prom_sample(text, series);
			if (pv < 0)
				fail_msg("%s: no sample %s", e->json, series);
			jv = json_number_value(v);
			if (e->getf != NULL)
				assert_true(pv - jv < 0.001 && jv - pv < 0.001);
			else if (pv != jv)
				fail_msg("%s = %.0f but %s = %.0f", e->json,
				    jv, series, pv);
			assert_true(jv == stats_item_value(e, i));
		}
	}
	/* Nothing in the JSON that no row put there. */
	assert_int_equal(json_leaves(js), items);
	json_decref(js);
	free(text);
}

/* Every sample line of the text belongs to some row. */
static void
test_stats_no_stray_samples(void **state)
{
	const struct stats_entry	*e;
	char				*text, *line, *save = NULL, series[160];
	size_t				 r, len;
	unsigned int			 i;
	int				 found;

	(void)state;
	text = render_prom();
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		len = strcspn(line, " ");
		found = 0;
		for (r = 0; r < stats_ntable && !found; r++) {
			e = &stats_table[r];
			if (e->type == STATS_HISTOGRAM) {
				found = strncmp(line, e->prom,
				    strlen(e->prom)) == 0;
				continue;
			}
			for (i = 0; i < stats_items(e) && !found; i++) {
				if (ISVEC(e) && stats_item_name(e, i) == NULL)
					continue;
				series_name(e, i, series, sizeof(series));
				found = strlen(series) == len &&
				    strncmp(line, series, len) == 0;
			}
		}
		if (!found)
			fail_msg("sample of no row: %s", line);
	}
	free(text);
}

/* A family's rows are adjacent, typed alike, helped once; names unique. */
static void
test_stats_families(void **state)
{
	const struct stats_entry	*e, *f;
	size_t				 r, s;

	(void)state;
	assert_true(stats_ntable > 30);
	for (r = 0; r < stats_ntable; r++) {
		e = &stats_table[r];
		assert_non_null(e->json);
		assert_non_null(e->prom);
		assert_non_null(e->unit);
		assert_true(strncmp(e->prom, "relayd_", 7) == 0);
		if (r == 0 || strcmp(stats_table[r - 1].prom, e->prom) != 0)
			assert_non_null(e->help);
		else {
			assert_int_equal(stats_table[r - 1].type, e->type);
			assert_non_null(e->label);
			assert_true(e->lvalue != NULL || e->fvalue != NULL);
		}
		/* The unit is in the series name, as Prometheus wants. */
		if (*e->unit != '\0')
			assert_non_null(strstr(e->prom, e->unit));
		if (e->type == STATS_COUNTER)
			assert_true(strlen(e->prom) > 6 && strcmp(e->prom +
			    strlen(e->prom) - 6, "_total") == 0);
		for (s = r + 1; s < stats_ntable; s++) {
			f = &stats_table[s];
			assert_string_not_equal(e->json, f->json);
			/* Then so is every row between: adjacent. */
			if (strcmp(e->prom, f->prom) == 0)
				assert_string_equal(stats_table[s - 1].prom,
				    e->prom);
		}
	}
}

/* "unknown" is slot 0 (codes beyond the table) plus unnamed codes. */
static void
test_stats_unknown_code(void **state)
{
	json_t	*js;
	char	*text;

	(void)state;
	memset(stats.puts_refused, 0, sizeof(stats.puts_refused));
	stats.puts_refused[0] = 2;
	STATS_CODE(puts_refused, 999);		/* beyond: slot 0 */
	STATS_CODE(puts_refused, STATS_CODES - 1);	/* no name */
	STATS_CODE(puts_refused, WIRE_ABORT_LIMIT);
	js = stats_json(stats_table, stats_ntable);
	text = render_prom();
	assert_int_equal(json_integer_value(json_at(js, "puts_refused",
	    "unknown")), 4);
	assert_int_equal(json_integer_value(json_at(js, "puts_refused",
	    "limit")), 1);
	assert_null(json_at(js, "puts_refused", "none"));
	assert_true(prom_sample(text,
	    "relayd_puts_refused_total{reason=\"unknown\"}") == 4);
	assert_true(prom_sample(text,
	    "relayd_puts_refused_total{reason=\"limit\"}") == 1);
	json_decref(js);
	free(text);
}

/* A few names other programs read: they must not move. */
static void
test_stats_known_names(void **state)
{
	json_t	*js;
	char	*text;

	(void)state;
	stats.puts_received = 41;
	stats.output_closed = 42;
	js = stats_json(stats_table, stats_ntable);
	text = render_prom();
	assert_int_equal(json_integer_value(json_at(js, "puts_received",
	    NULL)), 41);
	assert_true(prom_sample(text, "relayd_puts_received_total") == 41);
	assert_int_equal(json_integer_value(json_at(js,
	    "memory.output_closed", NULL)), 42);
	assert_true(prom_sample(text,
	    "relayd_output_bound_total{action=\"closed\"}") == 42);
	assert_int_equal(json_integer_value(json_at(js,
	    "descriptors.fd_limit", NULL)), 20000);
	assert_int_equal(json_integer_value(json_at(js, "active_streams",
	    NULL)), 7);
	assert_true(json_is_real(json_at(js, "uptime_s", NULL)));
	assert_non_null(strstr(text, "relayd_uptime_seconds 234.500\n"));
	assert_non_null(strstr(text,
	    "relayd_stream_duration_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(text,
	    "relayd_stream_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_int_equal(json_integer_value(json_at(js, "stream_durations",
	    NULL)), 2);
	json_decref(js);
	free(text);
}

/*
 * Per-peer counters carry peer= and direction=; a name with a backslash,
 * a quote and a newline cannot end its label value or its line early.
 */
static void
test_stats_peer_labels(void **state)
{
	json_t	*js;
	char	*text;

	(void)state;
	js = stats_json(stats_table, stats_ntable);
	text = render_prom();
	assert_non_null(strstr(text,
	    "# TYPE relayd_link_bytes_total counter\n"));
	assert_true(prom_sample(text, "relayd_link_bytes_total{peer=\"b\","
	    "direction=\"in\"}") == 8604);
	assert_true(prom_sample(text, "relayd_link_bytes_total{peer=\"b\","
	    "direction=\"out\"}") == 8605);
	assert_true(prom_sample(text, "relayd_link_bytes_total{peer="
	    "\"evil\\\\\\\"}1\\nx\",direction=\"in\"}") == 8606);
	assert_null(strstr(text, "relayd_link_bytes{"));
	assert_int_equal(json_integer_value(json_at(js, "link_bytes.out",
	    "b")), 8605);
	assert_true(prom_sample(text, "relayd_store_bytes") == 8701);
	assert_true(prom_sample(text,
	    "relayd_build_info{version=\"" RELAYD_VERSION "\"}") == 1);
	/* No TLS in the test config: no certificate sample, but a family. */
	assert_non_null(strstr(text,
	    "# TYPE relayd_cert_expiry_seconds gauge\n"));
	assert_null(strstr(text, "relayd_cert_expiry_seconds{"));
	json_decref(js);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_stats_surfaces_agree, setup),
		cmocka_unit_test_setup(test_stats_no_stray_samples, setup),
		cmocka_unit_test_setup(test_stats_families, setup),
		cmocka_unit_test_setup(test_stats_unknown_code, setup),
		cmocka_unit_test_setup(test_stats_known_names, setup),
		cmocka_unit_test_setup(test_stats_peer_labels, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
