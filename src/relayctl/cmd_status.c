/* status and show peers|streams|routes|config|stats|puts. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relayctl.h"

static char *
ctl_peer_tls(const json_t *p, char *buf, size_t len)
{
	const json_t	*tls = json_object_get(p, "tls");

	if (!json_is_object(tls))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s %s", ctl_jstr(tls, "version"),
		    ctl_jstr(tls, "cipher"));
	return buf;
}

/* "1.234/1.100" ms (last/smoothed), or "-" before the first PONG. */
static char *
ctl_peer_rtt(const json_t *p, char *buf, size_t len)
{
	const json_t	*last = json_object_get(p, "rtt_ms");
	const json_t	*avg = json_object_get(p, "srtt_ms");

	if (!json_is_number(last) || !json_is_number(avg))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.3f/%.3f", json_number_value(last),
		    json_number_value(avg));
	return buf;
}

/*
 * Outbound links that are not up and have been dialled: how often since
 * they were last up, when the next dial is (the jittered delay chosen
 * for it) and the last error.  Nothing when every link is up.
 */
static void
ctl_peers_retry_print(const json_t *peers)
{
	struct ctl_table	 t;
	const json_t		*p;
	size_t			 i;
	long long		 n;
	char			 att[32], next[32], delay[32];

	ctl_table_init(&t, 6);
	ctl_table_row(&t, "NAME", "STATE", "ATTEMPTS", "NEXT_MS", "DELAY_MS",
	    "LAST_ERROR");
	json_array_foreach(peers, i, p) {
		if (ctl_jint(p, "attempts", &n) == -1 || n == 0 ||
		    strcmp(ctl_jstr(p, "state"), "up") == 0)
			continue;
		ctl_table_row(&t, ctl_jstr(p, "name"), ctl_jstr(p, "state"),
		    ctl_jintstr(p, "attempts", att, sizeof(att)),
		    ctl_jintstr(p, "next_attempt_ms", next, sizeof(next)),
		    ctl_jintstr(p, "retry_delay_ms", delay, sizeof(delay)),
		    ctl_jstr(p, "last_error"));
	}
	if (t.nrows > 1) {
		printf("\nretrying:\n");
		ctl_table_print(&t, stdout);
	}
	ctl_table_free(&t);
}

static void
ctl_peers_print(const json_t *peers, int title)
{
	struct ctl_table	 t;
	const json_t		*p, *tls;
	size_t			 i;
	char			 streams[32], in[32], out[32], tv[256];
	char			 gen[32], rtt[64], age[32];

	ctl_table_init(&t, 14);
	ctl_table_row(&t, "NAME", "ADDRESS", "DIR", "STATE", "ADMIN", "GEN",
	    "STREAMS", "BYTES_IN", "BYTES_OUT", "RTT_MS", "AGE", "TLS",
	    "SUBJECT", "CERT_EXPIRES");
	json_array_foreach(peers, i, p) {
		tls = json_object_get(p, "tls");
		ctl_table_row(&t, ctl_jstr(p, "name"), ctl_jstr(p, "address"),
		    ctl_jstr(p, "direction"), ctl_jstr(p, "state"),
		    ctl_jstr(p, "admin"),
		    ctl_jintstr(p, "generation", gen, sizeof(gen)),
		    ctl_jintstr(p, "streams", streams, sizeof(streams)),
		    ctl_jintstr(p, "bytes_in", in, sizeof(in)),
		    ctl_jintstr(p, "bytes_out", out, sizeof(out)),
		    ctl_peer_rtt(p, rtt, sizeof(rtt)),
		    ctl_jsecs(p, "age_s", age, sizeof(age)),
		    ctl_peer_tls(p, tv, sizeof(tv)),
		    json_is_object(tls) ? ctl_jstr(tls, "subject") : "-",
		    ctl_jstr(p, "cert_not_after"));
	}
	if (title)
		printf("\npeers: %zu\n", json_array_size(peers));
	if (json_array_size(peers) > 0)
		ctl_table_print(&t, stdout);
	else if (!title)
		printf("no peers\n");
	ctl_table_free(&t);
	ctl_peers_retry_print(peers);
}

/* "relay2:1234:sending,relay3:..." in a malloc'd string. */
static char *
ctl_status_forks(const json_t *forks)
{
	const json_t	*f;
	size_t		 i;
	long long	 out;
	char		*s = NULL, *n;

	json_array_foreach(forks, i, f) {
		if (ctl_jint(f, "bytes_out", &out) == -1)
			out = -1;
		if (asprintf(&n, "%s%s%s:%lld:%s", s ? s : "", s ? "," : "",
		    ctl_jstr(f, "peer"), out, ctl_jstr(f, "state")) == -1)
			ctl_oom();
		free(s);
		s = n;
	}
	if (s == NULL && (s = strdup("-")) == NULL)
		ctl_oom();
	return s;
}

static void
ctl_streams_print(const json_t *streams, int title)
{
	struct ctl_table	 t;
	const json_t		*s;
	size_t			 i;
	char			 id[32], size[32], in[32], age[32], *forks;

	ctl_table_init(&t, 8);
	ctl_table_row(&t, "ID", "KEY", "SIZE", "BYTES_IN", "UPSTREAM",
	    "STORE", "AGE", "FORKS(PEER:BYTES_OUT:STATE)");
	json_array_foreach(streams, i, s) {
		forks = ctl_status_forks(json_object_get(s, "forks"));
		ctl_table_row(&t, ctl_jintstr(s, "id", id, sizeof(id)),
		    ctl_jstr(s, "key"),
		    ctl_jintstr(s, "size", size, sizeof(size)),
		    ctl_jintstr(s, "bytes_in", in, sizeof(in)),
		    ctl_jstr(s, "upstream"), ctl_jstr(s, "store"),
		    ctl_jsecs(s, "age_s", age, sizeof(age)), forks);
		free(forks);
	}
	if (title)
		printf("\nstreams: %zu\n", json_array_size(streams));
	if (json_array_size(streams) > 0)
		ctl_table_print(&t, stdout);
	else if (!title)
		printf("no streams\n");
	ctl_table_free(&t);
}

static void
ctl_status_print(json_t *st)
{
	char	*node, up[32], buffered[32];

	node = ctl_clean(ctl_jstr(st, "node"));
	printf("node %s  uptime %s  buffered %s bytes\n", node,
	    ctl_jsecs(st, "uptime_s", up, sizeof(up)),
	    ctl_jintstr(st, "buffered", buffered, sizeof(buffered)));
	free(node);
	ctl_peers_print(json_object_get(st, "peers"), 1);
	ctl_streams_print(json_object_get(st, "streams"), 1);
}

int
ctl_cmd_status(struct ctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ctl_simple(ctx, json_pack("{s:s}", "cmd", "status"),
	    ctl_status_print, NULL);
}

static void
ctl_routes_print(json_t *routes, size_t indent)
{
	struct ctl_table	 t;
	json_t			*r, *h;
	size_t			 i, j;
	char			*prefix, *hops, *n;

	ctl_table_init(&t, 4);
	t.indent = indent;
	ctl_table_row(&t, "PREFIX", "MODE", "STORE", "HOPS");
	json_array_foreach(routes, i, r) {
		hops = NULL;
		json_array_foreach(json_object_get(r, "hops"), j, h) {
			if (asprintf(&n, "%s%s%s", hops ? hops : "",
			    hops ? "," : "", json_is_string(h) ?
			    json_string_value(h) : "?") == -1)
				ctl_oom();
			free(hops);
			hops = n;
		}
		if (asprintf(&prefix, "\"%s\"", ctl_jstr(r, "prefix")) == -1)
			ctl_oom();
		ctl_table_row(&t, prefix, ctl_jstr(r, "mode"),
		    json_is_true(json_object_get(r, "store")) ? "yes" : "no",
		    hops);
		free(prefix);
		free(hops);
	}
	ctl_table_print(&t, stdout);
	ctl_table_free(&t);
}

static void
ctl_show_routes(json_t *final)
{
	char	 gen[32];

	printf("generation %s\n", ctl_jintstr(final, "generation", gen,
	    sizeof(gen)));
	ctl_routes_print(json_object_get(final, "routes"), 0);
}

static void
ctl_config_peers(json_t *peers)
{
	struct ctl_table	 t;
	json_t			*p, *tls;
	size_t			 i;
	char			 rate[32];

	ctl_table_init(&t, 5);
	t.indent = 2;
	ctl_table_row(&t, "NAME", "ADDRESS", "RATE_LIMIT", "TLS", "IDENTITY");
	json_array_foreach(peers, i, p) {
		tls = json_object_get(p, "tls");
		ctl_table_row(&t, ctl_jstr(p, "name"), ctl_jstr(p, "address"),
		    ctl_jintstr(p, "rate_limit", rate, sizeof(rate)),
		    !json_is_object(tls) ? "default" :
		    json_is_true(json_object_get(tls, "enabled")) ? "yes" :
		    "no", ctl_jstr(p, "identity"));
	}
	ctl_table_print(&t, stdout);
	ctl_table_free(&t);
}

/* Scalars as "key = value", then blocks, then the peer and route tables. */
static void
ctl_show_config(json_t *final)
{
	json_t		*cf = json_object_get(final, "config"), *v, *v2;
	const char	*k, *k2;
	char		*path, *txt, gen[32];

	path = ctl_clean(ctl_jstr(final, "path"));
	printf("# %s, generation %s\n", path, ctl_jintstr(final,
	    "generation", gen, sizeof(gen)));
	free(path);
	json_object_foreach(cf, k, v) {
		if (json_is_object(v) || (json_is_array(v) &&
		    (strcmp(k, "peers") == 0 || strcmp(k, "routes") == 0)))
			continue;
		txt = ctl_jtext(v);
		printf("%s = %s\n", k, txt);
		free(txt);
	}
	json_object_foreach(cf, k, v) {
		if (!json_is_object(v))
			continue;
		printf("%s {\n", k);
		json_object_foreach(v, k2, v2) {
			txt = ctl_jtext(v2);
			printf("  %s = %s\n", k2, txt);
			free(txt);
		}
		printf("}\n");
	}
	if ((v = json_object_get(cf, "peers")) != NULL) {
		printf("peers: %zu\n", json_array_size(v));
		if (json_array_size(v) > 0)
			ctl_config_peers(v);
	}
	if ((v = json_object_get(cf, "routes")) != NULL) {
		printf("routes: %zu\n", json_array_size(v));
		ctl_routes_print(v, 2);
	}
}

/* "puts_refused:" and its counters by reason, for each such object. */
static void
ctl_show_breakdowns(json_t *st)
{
	json_t		*v, *v2;
	const char	*k, *k2;
	char		*txt;

	json_object_foreach(st, k, v) {
		if (!json_is_object(v))
			continue;
		printf("\n%s:\n", k);
		if (json_object_size(v) == 0)
			printf("  (none)\n");
		json_object_foreach(v, k2, v2) {
			txt = ctl_jtext(v2);
			printf("  %-22s %s\n", k2, txt);
			free(txt);
		}
	}
}

/* 1 if a and b start with the same word before '_' ("puts_..."). */
static int
ctl_same_family(const char *a, const char *b)
{
	size_t	 n = strcspn(a, "_");

	return a[n] == '_' && strncmp(a, b, n + 1) == 0;
}

/*
 * Counters: families of names (puts_*, stores_*, payload_*) each in a
 * group of their own, the lone names together, then the breakdowns.
 */
static void
ctl_show_stats(json_t *final)
{
	json_t		*st = json_object_get(final, "stats"), *v;
	const char	*k, **names;
	char		*txt;
	size_t		 i, n = 0;
	int		*fam;

	if ((names = calloc(json_object_size(st) + 1, sizeof(*names))) ==
	    NULL || (fam = calloc(json_object_size(st) + 1, sizeof(*fam))) ==
	    NULL)
		ctl_oom();
	json_object_foreach(st, k, v)
		if (!json_is_object(v))
			names[n++] = k;
	for (i = 0; i + 1 < n; i++)
		if (ctl_same_family(names[i], names[i + 1]))
			fam[i] = fam[i + 1] = 1;
	for (i = 0; i < n; i++) {
		if (i > 0 && (fam[i] || fam[i - 1]) &&
		    !ctl_same_family(names[i - 1], names[i]))
			putchar('\n');
		txt = ctl_jtext(json_object_get(st, names[i]));
		printf("%-24s %s\n", names[i], txt);
		free(txt);
	}
	free(names);
	free(fam);
	ctl_show_breakdowns(st);
}

static void
ctl_show_peers(json_t *final)
{
	ctl_peers_print(json_object_get(final, "peers"), 0);
}

static void
ctl_show_streams(json_t *final)
{
	ctl_streams_print(json_object_get(final, "streams"), 0);
}

/* Newest first: id, state, age, key, and for a failure its hop and why. */
static void
ctl_show_puts(json_t *final)
{
	struct ctl_table	 t;
	const json_t		*puts = json_object_get(final, "puts"), *p;
	size_t			 i;
	long long		 kok, kfail, max;
	char			 age[32], size[32];
	double			 a;

	ctl_table_init(&t, 7);
	ctl_table_row(&t, "PUT_ID", "STATE", "AGE_S", "SIZE", "KEY",
	    "FAILING_HOP", "REASON");
	json_array_foreach(puts, i, p) {
		a = json_number_value(json_object_get(p, "age_s"));
		snprintf(age, sizeof(age), "%.1f", a);
		ctl_table_row(&t, ctl_jstr(p, "put_id"), ctl_jstr(p, "state"),
		    age, ctl_jintstr(p, "size", size, sizeof(size)),
		    ctl_jstr(p, "key"), json_is_string(json_object_get(p,
		    "failing_hop")) ? ctl_jstr(p, "failing_hop") : "-",
		    json_is_string(json_object_get(p, "reason")) ?
		    ctl_jstr(p, "reason") : "-");
	}
	if (json_array_size(puts) > 0)
		ctl_table_print(&t, stdout);
	else
		printf("no PUT outcomes kept\n");
	ctl_table_free(&t);
	if (ctl_jint(final, "kept_ok", &kok) == 0 &&
	    ctl_jint(final, "kept_failed", &kfail) == 0 &&
	    ctl_jint(final, "max", &max) == 0)
		printf("kept: %lld succeeded, %lld failed or aborted (at most "
		    "%lld of each)\n", kok, kfail, max);
}

/* Seconds since the epoch as UTC "YYYY-MM-DDTHH:MM:SSZ". */
static const char *
ctl_utc(const json_t *o, const char *key, char *buf, size_t len)
{
	long long	 v;
	time_t		 t;
	struct tm	 tm;

	if (ctl_jint(o, key, &v) == -1)
		return "-";
	t = (time_t)v;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return "-";
	return buf;
}

static void
ctl_show_store(json_t *final)
{
	const json_t		*a = json_object_get(final, "entries"), *e;
	struct ctl_table	 t;
	size_t			 i;
	long long		 matched = 0, used = 0, max = 0;
	char			 size[32], when[32];

	ctl_table_init(&t, 4);
	ctl_table_row(&t, "KEY", "SIZE", "SHA256", "MTIME");
	json_array_foreach(a, i, e)
		ctl_table_row(&t, ctl_jstr(e, "key"),
		    ctl_jintstr(e, "size", size, sizeof(size)),
		    json_is_string(json_object_get(e, "sha256")) ?
		    ctl_jstr(e, "sha256") : "(not kept)",
		    ctl_utc(e, "mtime", when, sizeof(when)));
	if (json_array_size(a) > 0)
		ctl_table_print(&t, stdout);
	ctl_table_free(&t);
	(void)ctl_jint(final, "matched", &matched);
	(void)ctl_jint(final, "bytes", &used);
	(void)ctl_jint(final, "max_bytes", &max);
	printf("%zu file%s listed", json_array_size(a),
	    json_array_size(a) == 1 ? "" : "s");
	if (json_is_true(json_object_get(final, "truncated")))
		printf(" of %lld matching (list truncated)", matched);
	printf("; store holds %lld bytes", used);
	if (max > 0)
		printf(" of store_max_bytes %lld", max);
	printf("\n");
}

int
ctl_cmd_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct {
		const char	*what;
		void		(*show)(json_t *);
	} shows[] = {
		{ "peers", ctl_show_peers },
		{ "streams", ctl_show_streams },
		{ "routes", ctl_show_routes },
		{ "config", ctl_show_config },
		{ "stats", ctl_show_stats },
		{ "puts", ctl_show_puts },
		{ "store", ctl_show_store },
	};
	json_t	*req;
	size_t	 i;

	for (i = 0; i < CTL_NITEMS(shows); i++)
		if (strcmp(shows[i].what, ctx->words[0]) == 0)
			break;
	if (i == CTL_NITEMS(shows))
		return CTL_EXIT_USAGE;		/* a word without a printer */
	if (argc > 0 && strcmp(shows[i].what, "store") != 0) {
		ctl_err("show: wrong number of arguments (only show store "
		    "takes a prefix)");
		ctl_usage_cmd(stderr, ctx->cmd);
		return CTL_EXIT_USAGE;
	}
	req = json_pack("{s:s, s:s}", "cmd", "show", "what", shows[i].what);
	if (req != NULL && argc > 0 && json_object_set_new(req, "prefix",
	    json_string(argv[0])) == -1) {
		json_decref(req);
		ctl_err("show store: the prefix is not valid UTF-8");
		return CTL_EXIT_USAGE;
	}
	return ctl_simple(ctx, req, shows[i].show, NULL);
}
