/*
 * config unit tests: the shipped files load, defaults, every option, TLS
 * settings, and every error case reports "FILE:LINE: message" without
 * crashing.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define GIB	1073741824ULL
#define MIB	1048576ULL

static char	tmpdir[64];
static char	errbuf[8192];
static char	oldcwd[PATH_MAX];

/* Readable stand-ins for TLS files, made by setup() under tmpdir. */
#define TLS_GROUP	"tls = { ca = \"tls/ca.pem\"; cert = \"tls/cert.pem\";" \
			" key = \"tls/key.pem\"; };\n"

/* The tls block of conf/relayd.conf, which scripts/demo rewrites. */
#define SHIPPED_TLS	"\ntls = {\n" \
			"\tca = \"/etc/relayd/tls/ca.pem\";\n" \
			"\tcert = \"/etc/relayd/tls/relay.pem\";\n" \
			"\tkey = \"/etc/relayd/tls/relay.key\";\n" \
			"};\n"

/* The source tree root, from this file's path (relative when built). */
static const char *
srcpath(const char *rel)
{
	static char	 buf[1024];
	const char	*f = __FILE__, *t = strstr(f, "tests/unit/");

	snprintf(buf, sizeof(buf), "%.*s%s", (int)(t != NULL ? t - f : 0), f,
	    rel);
	return buf;
}

static const char *
write_file(const char *name, const void *data, size_t len)
{
	static char	 path[256];
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* An empty file at tmpdir/rel, its directories made if need be. */
static const char *
make_file(const char *rel)
{
	char	 path[512], *slash;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	for (slash = path + strlen(tmpdir) + 1;
	    (slash = strchr(slash, '/')) != NULL; *slash++ = '/') {
		*slash = '\0';
		assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
	}
	return write_file(rel, "", 0);
}

/* The source file rel, read into buf. */
static size_t
read_src(const char *rel, char *buf, size_t size)
{
	FILE	*fp;
	size_t	 len;

	fp = fopen(srcpath(rel), "r");
	assert_non_null(fp);
	len = fread(buf, 1, size - 1, fp);
	fclose(fp);
	assert_true(len > 0 && len < size - 1);
	buf[len] = '\0';
	return len;
}

/*
 * conf/relayd.conf with the three paths of its tls block replaced by
 * ca, cert and key, as scripts/demo does; the block keeps its shape.
 * Written to tmpdir/shipped.conf.
 */
static const char *
shipped_copy(const char *ca, const char *cert, const char *key)
{
	static char	 out[16384];
	char		 buf[8192], block[1024], *at;
	size_t		 len;

	read_src("conf/relayd.conf", buf, sizeof(buf));
	assert_non_null(at = strstr(buf, SHIPPED_TLS));
	assert_null(strstr(at + 1, SHIPPED_TLS));
	snprintf(block, sizeof(block), "\ntls = {\n\tca = \"%s\";\n"
	    "\tcert = \"%s\";\n\tkey = \"%s\";\n};\n", ca, cert, key);
	len = snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf,
	    block, at + strlen(SHIPPED_TLS));
	assert_true(len < sizeof(out));
	return write_file("shipped.conf", out, len);
}

/*
 * A copy of conf/examples/name in tmpdir/ex/, with an empty file for
 * every "tls/..." path it names.
 */
static const char *
example_copy(const char *name)
{
	char		 buf[8192], rel[512], src[256];
	const char	*p, *q;
	size_t		 len;

	snprintf(src, sizeof(src), "conf/examples/%s", name);
	len = read_src(src, buf, sizeof(buf));
	for (p = buf; (p = strstr(p, "\"tls/")) != NULL; p = q + 1) {
		p++;
		assert_non_null(q = strchr(p, '"'));
		snprintf(rel, sizeof(rel), "ex/%.*s", (int)(q - p), p);
		make_file(rel);
	}
	snprintf(rel, sizeof(rel), "ex/%s", name);
	make_file(rel);
	return write_file(rel, buf, len);
}

static struct config *
load_text(const char *text)
{
	const char	*path = write_file("t.conf", text, strlen(text));

	return config_load(path, errbuf, sizeof(errbuf));
}

/* Asserts that text fails to load with "PATH:line: msg" among the errors. */
static void
expect_error(const char *text, unsigned int line, const char *msg)
{
	struct config	*cf;
	char		 want[1024];

	cf = load_text(text);
	snprintf(want, sizeof(want), "%s/t.conf:%u: %s", tmpdir, line, msg);
	if (cf != NULL || strstr(errbuf, want) == NULL)
		fail_msg("config:\n%s\nwant: %s\ngot: %s", text, want,
		    cf != NULL ? "(loaded)" : errbuf);
}

static unsigned int
count_lines(const char *s)
{
	unsigned int	 n = *s != '\0';

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	make_file("tls/ca.pem");
	make_file("tls/cert.pem");
	make_file("tls/key.pem");
	return 0;
}

static int
teardown(void **state)
{
	char	 cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_shipped(void **state)
{
	struct config	*cf;
	char		 ca[256];

	(void)state;
	/* Absolute paths are kept, relative ones resolved. */
	snprintf(ca, sizeof(ca), "%s/tls/ca.pem", tmpdir);
	cf = config_load(shipped_copy(ca, "tls/../tls/cert.pem",
	    "tls/key.pem"), errbuf, sizeof(errbuf));
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->tls.enabled, 1);
	assert_int_equal(cf->tls.line, 29);
	assert_string_equal(cf->tls.ca, ca);
	assert_string_equal(cf->tls.cert, make_file("tls/../tls/cert.pem"));
	assert_string_equal(cf->tls.key, make_file("tls/key.pem"));
	assert_int_equal(cf->tls.nallow, 0);
	assert_null(cf->tls.allow);
	assert_string_equal(cf->node_id, "relay1");
	assert_string_equal(cf->listen_host, "127.0.0.1");
	assert_string_equal(cf->listen_port, "7400");
	assert_string_equal(cf->control_socket, "/run/relayd/relayd.sock");
	assert_string_equal(cf->store_dir, "/var/lib/relayd/store");
	assert_int_equal(cf->npeers, 0);
	assert_int_equal(cf->nroutes, 1);
	assert_string_equal(cf->routes[0].prefix, "");
	assert_int_equal(cf->routes[0].prefix_len, 0);
	assert_int_equal(cf->routes[0].nhops, 0);
	assert_int_equal(cf->routes[0].store, 1);
	assert_int_equal(cf->max_payload, GIB);
	config_unref(cf);
}

/*
 * The shipped file as it is names /etc/relayd/tls/ files; where they
 * are missing, those are its only errors.
 */
static void
test_shipped_needs_tls_files(void **state)
{
	static const char *const files[][2] = {
		{ "ca", "/etc/relayd/tls/ca.pem" },
		{ "cert", "/etc/relayd/tls/relay.pem" },
		{ "key", "/etc/relayd/tls/relay.key" },
	};
	struct config	*cf;
	const char	*path = srcpath("conf/relayd.conf");
	char		 want[256];
	unsigned int	 nbad = 0;
	size_t		 i;

	(void)state;
	cf = config_load(path, errbuf, sizeof(errbuf));
	for (i = 0; i < 3; i++) {
		if (access(files[i][1], R_OK) == 0)
			continue;
		nbad++;
		snprintf(want, sizeof(want), ": tls: cannot read %s %s: ",
		    files[i][0], files[i][1]);
		if (strstr(errbuf, want) == NULL)
			fail_msg("want %s\ngot: %s", want, errbuf);
	}
	if (nbad == 0) {
		if (cf == NULL)
			fail_msg("%s", errbuf);
		config_unref(cf);
		return;
	}
	assert_null(cf);
	assert_int_equal(count_lines(errbuf), nbad);
	/* Every line names the file and is about the TLS files. */
	snprintf(want, sizeof(want), "\n%s:", path);
	assert_int_equal(strncmp(errbuf, want + 1, strlen(want + 1)), 0);
	for (i = 0; errbuf[i] != '\0'; i++)
		if (errbuf[i] == '\n')
			assert_int_equal(strncmp(errbuf + i, want,
			    strlen(want)), 0);
}

static void
test_examples(void **state)
{
	static const char *const files[] = {
		"chain-relay1.conf",
		"chain-relay2.conf",
		"chain-relay3.conf",
		"fanout.conf",
	};
	struct config	*cf;
	char		 want[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		cf = config_load(example_copy(files[i]), errbuf,
		    sizeof(errbuf));
		if (cf == NULL)
			fail_msg("%s: %s", files[i], errbuf);
		assert_true(cf->nroutes > 0);
		assert_int_equal(cf->tls.enabled, 1);
		config_unref(cf);
	}
	cf = config_load(example_copy("chain-relay1.conf"), errbuf,
	    sizeof(errbuf));
	assert_non_null(cf);
	assert_int_equal(cf->npeers, 1);
	assert_string_equal(cf->peers[0].name, "relay2");
	assert_int_equal(cf->routes[0].nhops, 1);
	assert_int_equal(cf->routes[0].hops[0], 0);
	snprintf(want, sizeof(want), "%s/ex/tls/relay1.pem", tmpdir);
	assert_string_equal(cf->tls.cert, want);
	assert_string_equal(cf->peers[0].tls.cert, want);
	config_unref(cf);
	cf = config_load(example_copy("fanout.conf"), errbuf,
	    sizeof(errbuf));
	assert_non_null(cf);
	assert_int_equal(cf->tls.nallow, 3);
	assert_string_equal(cf->tls.allow[2], "sha256:5e0a2b9c4177d3086fe1c2"
	    "943ba07d5618c9e42f60b70d93a8354cf12e86db07");
	assert_int_equal(config_peer(cf, "mirror-c")->tls.nallow, 3);
	assert_int_equal(config_peer(cf, "collector2")->tls.nallow, 1);
	assert_string_equal(config_peer(cf, "collector2")->tls.allow[0],
	    "CN=collector2");
	snprintf(want, sizeof(want), "%s/ex/tls/logs-ca.pem", tmpdir);
	assert_string_equal(config_peer(cf, "collector1")->tls.ca, want);
	assert_string_equal(cf->listen_host, "::1");
	assert_int_equal(cf->routes[0].mode, ROUTE_FANOUT);
	assert_int_equal(cf->routes[0].nhops, 3);
	assert_int_equal(cf->routes[2].mode, ROUTE_FAILOVER);
	assert_int_equal(config_peer(cf, "collector2")->rate_limit, MIB);
	assert_string_equal(config_peer(cf, "mirror-c")->host, "2001:db8::12");
	assert_null(config_peer(cf, "nobody"));
	config_unref(cf);
}

static void
test_defaults(void **state)
{
	struct config	*cf;

	(void)state;
	cf = load_text("node_id = \"n\";\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->refcnt, 1);
	assert_string_equal(cf->node_id, "n");
	assert_null(cf->listen_host);
	assert_null(cf->listen_port);
	assert_string_equal(cf->control_socket, "/run/relayd/relayd.sock");
	assert_string_equal(cf->store_dir, "/var/lib/relayd/store");
	assert_int_equal(cf->max_payload, GIB);
	assert_true(cf->stream_inactivity_timeout == 30.0);
	assert_true(cf->handshake_timeout == 10.0);
	assert_true(cf->result_timeout == 60.0);
	assert_true(cf->connect_timeout == 5.0);
	assert_true(cf->idle_timeout == 60.0);
	assert_int_equal(cf->conn_window, 4 * MIB);
	assert_int_equal(cf->stream_window, MIB);
	assert_int_equal(cf->max_streams_per_peer, 1024);
	assert_int_equal(cf->max_buffered, 256 * MIB);
	assert_int_equal(cf->max_fork_lag, 16 * MIB);
	assert_int_equal(cf->max_output_buffer, 4 * MIB);
	assert_true(cf->output_timeout == 10.0);
	assert_int_equal(cf->npeers, 0);
	assert_int_equal(cf->nroutes, 0);
	assert_string_equal(cf->path, write_file("t.conf", "", 0));
	assert_int_equal(cf->tls.enabled, 0);
	assert_null(cf->tls.ca);
	assert_int_equal(cf->tls.nallow, 0);
	config_unref(cf);

	cf = load_text("node_id = \"n\";\n"
	    "peers = ( { name = \"p\"; address = \"h:1\"; } );\n"
	    "routes = ( { prefix = \"k\"; } );\ntls = false;\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->peers[0].rate_limit, 0);
	/* The secure default: the peer must present its own name. */
	assert_string_equal(cf->peers[0].identity, "p");
	assert_int_equal(cf->routes[0].mode, ROUTE_FANOUT);
	assert_int_equal(cf->routes[0].store, 0);
	assert_int_equal(cf->routes[0].nhops, 0);
	config_unref(cf);
}

static void
test_all_options(void **state)
{
	struct config	*cf;

	(void)state;
	cf = load_text(
	    "node_id = \"node-1.a\";\n"
	    "listen = \"[::]:0\";\n"
	    "control_socket = \"/tmp/x.sock\";\n"
	    "store_dir = \"store\";\n"
	    "max_payload = 5368709120L;\n"
	    "stream_inactivity_timeout = 0.1;\n"
	    "handshake_timeout = 3;\n"
	    "result_timeout = 3600L;\n"
	    "connect_timeout = 2.5;\n"
	    "idle_timeout = 1e2;\n"
	    "conn_window = 1073741824;\n"
	    "stream_window = 65536;\n"
	    "max_streams_per_peer = 1;\n"
	    "max_buffered = 0x10000;\n"
	    "peers = ( { name = \"b\"; address = \"10.0.0.1:65535\";"
	    " rate_limit = 10000000000L; },\n"
	    "  { name = \"a\"; address = \"[fe80::1]:1\"; } );\n"
	    "routes = ( { prefix = \"x/\"; hops = [ \"a\", \"b\" ];"
	    " mode = \"failover\"; store = true; },\n"
	    "  { prefix = \"\"; hops = ( \"b\" ); mode = \"fanout\"; } );\n"
	    TLS_GROUP);
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_string_equal(cf->node_id, "node-1.a");
	assert_string_equal(cf->listen_host, "::");
	assert_string_equal(cf->listen_port, "0");
	assert_string_equal(cf->control_socket, "/tmp/x.sock");
	assert_string_equal(cf->store_dir, "store");
	assert_int_equal(cf->max_payload, 5 * GIB);
	assert_true(cf->stream_inactivity_timeout == 0.1);
	assert_true(cf->handshake_timeout == 3.0);
	assert_true(cf->result_timeout == 3600.0);
	assert_true(cf->connect_timeout == 2.5);
	assert_true(cf->idle_timeout == 100.0);
	assert_int_equal(cf->conn_window, GIB);
	assert_int_equal(cf->stream_window, 65536);
	assert_int_equal(cf->max_streams_per_peer, 1);
	assert_int_equal(cf->max_buffered, 65536);
	assert_int_equal(cf->npeers, 2);
	assert_string_equal(cf->peers[0].host, "10.0.0.1");
	assert_string_equal(cf->peers[0].port, "65535");
	assert_int_equal(cf->peers[0].rate_limit, 10000000000ULL);
	assert_string_equal(cf->peers[1].host, "fe80::1");
	assert_int_equal(cf->nroutes, 2);
	assert_int_equal(cf->routes[0].prefix_len, 2);
	assert_int_equal(cf->routes[0].mode, ROUTE_FAILOVER);
	assert_int_equal(cf->routes[0].store, 1);
	assert_int_equal(cf->routes[0].nhops, 2);
	assert_int_equal(cf->routes[0].hops[0], 1);
	assert_int_equal(cf->routes[0].hops[1], 0);
	assert_int_equal(cf->routes[1].nhops, 1);
	assert_int_equal(cf->routes[1].hops[0], 0);
	assert_ptr_equal(config_peer(cf, "a"), &cf->peers[1]);
	config_unref(cf);
}

static void
test_generation_and_refs(void **state)
{
	struct config	*a, *b;

	(void)state;
	a = load_text("node_id = \"n\";\n");
	assert_non_null(a);
	assert_null(load_text("node_id = 1;\n"));
	b = load_text("node_id = \"n\";\n");
	assert_non_null(b);
	assert_int_equal(b->generation, a->generation + 1);
	config_ref(a);
	assert_int_equal(a->refcnt, 2);
	config_unref(a);
	assert_int_equal(a->refcnt, 1);
	config_unref(a);
	config_unref(b);
	config_unref(NULL);
}

struct addr_case {
	const char	*addr;
	const char	*host;		/* NULL: must be refused */
	const char	*port;
};

static void
test_addresses(void **state)
{
	static const struct addr_case listen_cases[] = {
		{ "127.0.0.1:7400", "127.0.0.1", "7400" },
		{ "[::1]:7400", "::1", "7400" },
		{ "0.0.0.0:0", "0.0.0.0", "0" },
		{ "[::]:0", "::", "0" },
		{ "localhost:00080", "localhost", "80" },
		{ "my-host.example_1:65535", "my-host.example_1", "65535" },
		{ "host", NULL, NULL },
		{ "host:", NULL, NULL },
		{ ":80", NULL, NULL },
		{ "host:65536", NULL, NULL },
		{ "host:123456", NULL, NULL },
		{ "host:-1", NULL, NULL },
		{ "host:8x", NULL, NULL },
		{ "host:http", NULL, NULL },
		{ "::1:80", NULL, NULL },
		{ "[::1]80", NULL, NULL },
		{ "[::1:80", NULL, NULL },
		{ "[]:80", NULL, NULL },
		{ "[1.2.3.4]:80", NULL, NULL },
		{ "a b:80", NULL, NULL },
		{ "", NULL, NULL },
	};
	static const struct addr_case peer_cases[] = {
		{ "h:1", "h", "1" },
		{ "h:0", NULL, NULL },
		{ "[::1]:0", NULL, NULL },
	};
	struct config	*cf;
	char		 text[512];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(listen_cases) / sizeof(listen_cases[0]); i++) {
		snprintf(text, sizeof(text), "node_id = \"n\";\n\n"
		    "listen = \"%s\";\ntls = false;\n", listen_cases[i].addr);
		if (listen_cases[i].host == NULL) {
			expect_error(text, 3, "listen: bad address");
			continue;
		}
		if ((cf = load_text(text)) == NULL)
			fail_msg("%s: %s", listen_cases[i].addr, errbuf);
		assert_string_equal(cf->listen_host, listen_cases[i].host);
		assert_string_equal(cf->listen_port, listen_cases[i].port);
		config_unref(cf);
	}
	for (i = 0; i < sizeof(peer_cases) / sizeof(peer_cases[0]); i++) {
		snprintf(text, sizeof(text), "node_id = \"n\";\npeers = (\n"
		    "{ name = \"p\";\n address = \"%s\"; } );\ntls = false;\n",
		    peer_cases[i].addr);
		if (peer_cases[i].host == NULL) {
			expect_error(text, 4, "peers[0].address: bad address");
			continue;
		}
		if ((cf = load_text(text)) == NULL)
			fail_msg("%s: %s", peer_cases[i].addr, errbuf);
		assert_string_equal(cf->peers[0].host, peer_cases[i].host);
		assert_string_equal(cf->peers[0].port, peer_cases[i].port);
		config_unref(cf);
	}
}

/* metrics: like listen, but "port" or ":port" mean the loopback. */
static void
test_metrics(void **state)
{
	static const struct addr_case cases[] = {
		{ "127.0.0.1:9464", "127.0.0.1", "9464" },
		{ "9464", "127.0.0.1", "9464" },
		{ ":9464", "127.0.0.1", "9464" },
		{ "09464", "127.0.0.1", "9464" },
		{ "[::1]:9100", "::1", "9100" },
		{ "0.0.0.0:65535", "0.0.0.0", "65535" },
		{ "metrics-host:1", "metrics-host", "1" },
		{ "", NULL, NULL },
		{ ":", NULL, NULL },
		{ "0", NULL, NULL },
		{ ":0", NULL, NULL },
		{ "h:0", NULL, NULL },
		{ "65536", NULL, NULL },
		{ ":123456", NULL, NULL },
		{ ":x", NULL, NULL },
		{ "h:", NULL, NULL },
		{ "host", NULL, NULL },
		{ "a b:1", NULL, NULL },
		{ "::1:80", NULL, NULL },
		{ "[::1]", NULL, NULL },
	};
	struct config	*cf;
	char		 text[512];
	size_t		 i;

	(void)state;
	cf = load_text("node_id = \"n\";\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_null(cf->metrics_host);
	assert_null(cf->metrics_port);
	config_unref(cf);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "node_id = \"n\";\n\n"
		    "metrics = \"%s\";\n", cases[i].addr);
		if (cases[i].host == NULL) {
			expect_error(text, 3, "metrics: bad address");
			continue;
		}
		if ((cf = load_text(text)) == NULL)
			fail_msg("%s: %s", cases[i].addr, errbuf);
		assert_string_equal(cf->metrics_host, cases[i].host);
		assert_string_equal(cf->metrics_port, cases[i].port);
		config_unref(cf);
	}
	expect_error("node_id = \"n\";\nmetrics = 9464;\n", 2,
	    "metrics: expected a string, got an integer");
}

struct err_case {
	const char	*text;
	unsigned int	 line;
	const char	*msg;
};

static void
test_errors(void **state)
{
	static const struct err_case cases[] = {
		{ "node_id = \"n\";\ntls = false;\npeers = ( { name = \"p\"; "
		    "address = \"h:1\";\nidentity = \"a b\"; } );\n", 4,
		    "peers[0].identity: non-printable or blank character 0x20" },
		{ "node_id = \"n\";\ntls = false;\npeers = ( { name = \"p\"; "
		    "address = \"h:1\";\nidentity = \"\"; } );\n", 4,
		    "peers[0].identity: must be 1..253 characters long, not 0" },
		{ "node_id = \"n\";\nnode_idd = \"x\";\n", 2,
		    "unknown setting \"node_idd\"" },
		{ "node_id = \"n\";\nstream_window = 1048576;\n"
		    "max_paylod = 1;\n", 3, "unknown setting \"max_paylod\"" },
		{ "listen = \"h:1\";\n", 1, "node_id: missing (required)" },
		{ "", 1, "node_id: missing (required)" },
		{ "# only a comment\n", 1, "node_id: missing (required)" },
		{ "\nnode_id = \"\";\n", 2, "node_id: must be 1..64" },
		{ "node_id = \"0123456789012345678901234567890123456789"
		    "0123456789012345678901234\";\n", 1,
		    "node_id: must be 1..64 characters long, not 65" },
		{ "node_id = \"a\\x01b\";\n", 1,
		    "node_id: non-printable or blank character 0x01" },
		{ "node_id = \"a\\tb\";\n", 1, "node_id: non-printable" },
		{ "node_id = \"a b\";\n", 1, "node_id: non-printable" },
		{ "node_id = \"caf\xc3\xa9\";\n", 1, "node_id: non-printable" },
		{ "node_id = 7;\n", 1, "node_id: expected a string, got an "
		    "integer" },
		{ "node_id = \"n\";\n\nlisten = \"::1:80\";\n", 3,
		    "listen: bad address \"::1:80\": IPv6 addresses go in "
		    "brackets" },
		{ "node_id = \"n\";\nlisten = 7400;\n", 2,
		    "listen: expected a string" },
		{ "node_id = \"n\";\ncontrol_socket = \"\";\n", 2,
		    "control_socket: empty path" },
		{ "node_id = \"n\";\ncontrol_socket = \"/aaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\";\n", 2,
		    "control_socket: path longer than 107 bytes" },
		{ "node_id = \"n\";\nstore_dir = [ \"a\" ];\n", 2,
		    "store_dir: expected a string, got an array" },
		{ "node_id = \"n\";\nmax_payload = 0;\n", 2,
		    "max_payload: 0 out of range" },
		{ "node_id = \"n\";\nmax_output_buffer = 1048576;\n", 2,
		    "max_output_buffer: 1048576 out of range" },
		{ "node_id = \"n\";\noutput_timeout = 0;\n", 2,
		    "output_timeout: " },
		{ "node_id = \"n\";\nstream_window = 1048576;\n"
		    "max_buffered = 524288;\n", 3,
		    "max_buffered (524288) is below stream_window (1048576)" },
		{ "node_id = \"n\";\nmax_payload = -5;\n", 2,
		    "max_payload: -5 out of range" },
		{ "node_id = \"n\";\nmax_payload = 1.5;\n", 2,
		    "max_payload: expected an integer, got a float" },
		{ "node_id = \"n\";\nmax_payload = \"1G\";\n", 2,
		    "max_payload: expected an integer, got a string" },
		{ "node_id = \"n\";\nmax_payload = 5000000000;\n", 2,
		    "integer 5000000000 does not fit in 32 bits; append L" },
		{ "node_id = \"n\";\nmax_buffered = 0x100000000;\n", 2,
		    "integer 0x100000000 does not fit in 32 bits" },
		{ "node_id = \"n\";\nmax_payload = 99999999999999999999;\n", 2,
		    "integer 99999999999999999999 does not fit in 64 bits" },
		{ "node_id = \"n\";\n\npeers = ( { name = \"a\";"
		    " address = \"h:1\"; rate_limit = -3000000000; } );\n", 3,
		    "integer -3000000000 does not fit in 32 bits" },
		{ "node_id = \"n\";\nmax_payload = 99999999999999999999L;\n", 2,
		    "integer 99999999999999999999L does not fit in 64 bits" },
		{ "node_id = \"n\";\nstream_inactivity_timeout = 0.09;\n", 2,
		    "stream_inactivity_timeout: 0.09 out of range (0.1..3600 "
		    "seconds)" },
		{ "node_id = \"n\";\nstream_inactivity_timeout = 3601;\n", 2,
		    "stream_inactivity_timeout: 3601 out of range" },
		{ "node_id = \"n\";\nstream_inactivity_timeout = 0;\n", 2,
		    "stream_inactivity_timeout: 0 out of range" },
		{ "node_id = \"n\";\nhandshake_timeout = \"10s\";\n", 2,
		    "handshake_timeout: expected a number of seconds, got a "
		    "string" },
		{ "node_id = \"n\";\nresult_timeout = -1.0;\n", 2,
		    "result_timeout: -1 out of range" },
		{ "node_id = \"n\";\nconnect_timeout = true;\n", 2,
		    "connect_timeout: expected a number of seconds, got a "
		    "boolean" },
		{ "node_id = \"n\";\nidle_timeout = 1e9;\n", 2,
		    "idle_timeout: 1e+09 out of range" },
		{ "node_id = \"n\";\nconn_window = 65535;\n", 2,
		    "conn_window: 65535 out of range (65536..1073741824)" },
		{ "node_id = \"n\";\nconn_window = 1073741825;\n", 2,
		    "conn_window: 1073741825 out of range" },
		{ "node_id = \"n\";\nstream_window = 4294967296L;\n", 2,
		    "stream_window: 4294967296 out of range" },
		{ "node_id = \"n\";\nstream_window = 1024;\n", 2,
		    "stream_window: 1024 out of range" },
		{ "node_id = \"n\";\nmax_streams_per_peer = 0;\n", 2,
		    "max_streams_per_peer: 0 out of range" },
		{ "node_id = \"n\";\nmax_buffered = 65535;\n", 2,
		    "max_buffered: 65535 out of range" },
		{ "node_id = \"n\";\npeers = { name = \"a\"; };\n", 2,
		    "peers: expected a list of groups" },
		{ "node_id = \"n\";\npeers = [ 1 ];\n", 2,
		    "peers: expected a list of groups" },
		{ "node_id = \"n\";\npeers = ( 1 );\n", 2,
		    "peers[0]: expected a group" },
		{ "node_id = \"n\";\npeers = (\n { address = \"h:1\"; } );\n", 3,
		    "peers[0].name: missing (required)" },
		{ "node_id = \"n\";\npeers = (\n { name = \"a\"; } );\n", 3,
		    "peers[0].address: missing (required)" },
		{ "node_id = \"n\";\npeers = ( { name = \"a\";\n"
		    " adress = \"h:1\"; } );\n", 3,
		    "peers[0]: unknown setting \"adress\"" },
		{ "node_id = \"n\";\npeers = ( { name = \"a b\";"
		    " address = \"h:1\"; } );\n", 2, "peers[0].name: "
		    "non-printable" },
		{ "node_id = \"n\";\npeers = ( { name = \"a\";"
		    " address = \"h:1\"; rate_limit = -1; } );\n", 2,
		    "peers[0].rate_limit: -1 out of range" },
		{ "node_id = \"n\";\npeers = (\n"
		    " { name = \"a\"; address = \"h:1\"; },\n"
		    " { name = \"b\"; address = \"h:2\"; },\n"
		    " { name = \"a\"; address = \"h:3\"; } );\n", 5,
		    "peers[2].name: duplicate peer name \"a\" (first at line 3)" },
		{ "node_id = \"n\";\npeers = (\n"
		    " { name = \"a\"; address = \"h:1\"; } );\nroutes = (\n"
		    " { prefix = \"\";\n   hops = [ \"a\", \"b\" ]; } );\n", 6,
		    "routes[0].hops[1]: unknown peer \"b\"" },
		{ "node_id = \"n\";\nroutes = (\n"
		    " { prefix = \"\"; hops = [ \"a\" ]; } );\n", 3,
		    "routes[0].hops[0]: unknown peer \"a\"" },
		{ "node_id = \"n\";\npeers = ("
		    " { name = \"a\"; address = \"h:1\"; } );\nroutes = (\n"
		    " { prefix = \"\";\n hops = [ \"a\", \"a\" ]; } );\n", 5,
		    "routes[0].hops[1]: peer \"a\" listed twice" },
		{ "node_id = \"n\";\npeers = ("
		    " { name = \"a\"; address = \"h:1\"; } );\nroutes = (\n"
		    " { prefix = \"\";\n hops = [ 1 ]; } );\n", 5,
		    "routes[0].hops[0]: expected a string" },
		{ "node_id = \"n\";\nroutes = ( { prefix = \"\";\n"
		    " hops = \"a\"; } );\n", 3,
		    "routes[0].hops: expected an array of peer names" },
		{ "node_id = \"n\";\nroutes = (\n { hops = [ ]; } );\n", 3,
		    "routes[0].prefix: missing (required" },
		{ "node_id = \"n\";\nroutes = ( { prefix = 1; } );\n", 2,
		    "routes[0].prefix: expected a string" },
		{ "node_id = \"n\";\nroutes = ( { prefix = \"\";\n"
		    " mode = \"all\"; } );\n", 3,
		    "routes[0].mode: \"all\": expected \"fanout\" or "
		    "\"failover\"" },
		{ "node_id = \"n\";\nroutes = ( { prefix = \"\";\n"
		    " store = \"yes\"; } );\n", 3,
		    "routes[0].store: expected true or false, got a string" },
		{ "node_id = \"n\";\nroutes = ( { prefix = \"\";\n"
		    " via = [ ]; } );\n", 3,
		    "routes[0]: unknown setting \"via\"" },
		{ "node_id = \"n\";\nroutes = ( 5 );\n", 2,
		    "routes[0]: expected a group" },
		{ "node_id = \"n\";\nroutes = (\n { prefix = \"a/\"; },\n"
		    " { prefix = \"b/\"; },\n { prefix = \"a/\"; } );\n", 5,
		    "routes[2].prefix: duplicate prefix \"a/\" (first at line "
		    "3)" },
		{ "node_id = \"n\";\n\nlisten = ;\n", 3, "syntax error" },
		{ "node_id = \"n\";\nroutes = ( { prefix = \"\";\n", 3,
		    "syntax error" },
		{ "node_id = \"n\";\nnode_id = \"m\";\n", 2,
		    "duplicate setting name" },
		{ "node_id = \"n\";\n@include \"/nonexistent/x.conf\"\n", 2,
		    "cannot open include file" },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].text, cases[i].line, cases[i].msg);
}

/* A config whose one route lists nhops peers, on line npeers + 5. */
static const char *
hops_config(int npeers, int nhops)
{
	static char	 text[4096];
	size_t		 len;
	int		 i;

	len = snprintf(text, sizeof(text), "node_id = \"n\";\npeers = (\n");
	for (i = 0; i < npeers; i++)
		len += snprintf(text + len, sizeof(text) - len,
		    "%s{ name = \"p%d\"; address = \"h:%d\"; }\n",
		    i > 0 ? "," : "", i, i + 1);
	len += snprintf(text + len, sizeof(text) - len,
	    ");\nroutes = ( { prefix = \"\";\n hops = [ ");
	for (i = 0; i < nhops; i++)
		len += snprintf(text + len, sizeof(text) - len, "%s\"p%d\"",
		    i > 0 ? ", " : "", i);
	snprintf(text + len, sizeof(text) - len, " ]; } );\ntls = false;\n");
	return text;
}

static void
test_too_many_hops(void **state)
{
	struct config	*cf;
	char		 want[128];

	(void)state;
	cf = load_text(hops_config(CONFIG_MAX_HOPS + 1, CONFIG_MAX_HOPS));
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->routes[0].nhops, CONFIG_MAX_HOPS);
	assert_int_equal(cf->routes[0].hops[CONFIG_MAX_HOPS - 1],
	    CONFIG_MAX_HOPS - 1);
	config_unref(cf);
	snprintf(want, sizeof(want), "routes[0].hops: %d hops, at most %d "
	    "allowed", CONFIG_MAX_HOPS + 1, CONFIG_MAX_HOPS);
	expect_error(hops_config(CONFIG_MAX_HOPS + 1, CONFIG_MAX_HOPS + 1),
	    (CONFIG_MAX_HOPS + 1) + 5, want);
}

/* Every problem in a file is reported, sorted by line. */
static void
test_collects_all(void **state)
{
	char	 want[256];
	char	*p;

	(void)state;
	assert_null(load_text(
	    "bogus = 1;\n"
	    "listen = \"x\";\n"
	    "max_payload = 0;\n"
	    "peers = ( { name = \"a\"; address = \"h:1\"; },\n"
	    "  { name = \"a\"; address = \"h:0\"; } );\n"
	    "routes = ( { prefix = \"\"; hops = [ \"zz\" ]; } );\n"
	    "tls = false;\n"));
	assert_int_equal(count_lines(errbuf), 7);
	snprintf(want, sizeof(want), "%s/t.conf:1: node_id: missing", tmpdir);
	assert_non_null(strstr(errbuf, want));
	snprintf(want, sizeof(want), "%s/t.conf:1: unknown setting", tmpdir);
	assert_non_null(p = strstr(errbuf, want));
	snprintf(want, sizeof(want), "%s/t.conf:6: routes[0].hops[0]", tmpdir);
	assert_true(strstr(errbuf, want) > p);
	snprintf(want, sizeof(want), "%s/t.conf:5: peers[1].address", tmpdir);
	assert_non_null(strstr(errbuf, want));
	snprintf(want, sizeof(want), "%s/t.conf:5: peers[1].name: duplicate",
	    tmpdir);
	assert_non_null(strstr(errbuf, want));
}

static void
test_err_buffer(void **state)
{
	char	 small[24];
	char	 text[8192];
	size_t	 len = 0;
	int	 i;

	(void)state;
	memset(small, 'x', sizeof(small));
	assert_null(config_load(write_file("t.conf", "x = 1;\n", 7), small,
	    sizeof(small)));
	assert_true(memchr(small, '\0', sizeof(small)) != NULL);
	assert_int_equal(strncmp(small, tmpdir, strlen(small)), 0);
	assert_null(config_load(write_file("t.conf", "x = 1;\n", 7), NULL,
	    0));
	small[0] = 'x';
	assert_null(config_load(write_file("t.conf", "x = 1;\n", 7), small,
	    0));
	assert_int_equal(small[0], 'x');
	/* More errors than are kept: a summary line, still bounded. */
	for (i = 0; i < 300; i++)
		len += snprintf(text + len, sizeof(text) - len, "u%d = 1;\n",
		    i);
	assert_null(load_text(text));
	assert_non_null(strstr(errbuf, "more errors not shown"));
}

static void
test_bad_files(void **state)
{
	static const unsigned char bin[] = { 0x7f, 'E', 'L', 'F', 0, 1, 2, 0xff,
	    0xfe, '\n', 0 };
	char		 path[256];
	unsigned char	 rnd[512];
	unsigned int	 seed = 12345;
	int		 i;
	size_t		 j;

	(void)state;
	assert_null(config_load(write_file("t.conf", "", 0), errbuf,
	    sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "node_id: missing"));
	assert_null(config_load(write_file("t.conf", bin, sizeof(bin)),
	    errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "t.conf:1: NUL byte"));
	assert_null(config_load(write_file("t.conf", "\xff\xfe\x01\n", 4),
	    errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "t.conf:1: "));
	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	assert_null(config_load(path, errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "missing.conf:0: cannot open: No such"));
	assert_null(config_load(tmpdir, errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, ":0: not a regular file"));
	for (i = 0; i < 200; i++) {
		for (j = 0; j < sizeof(rnd); j++) {
			seed = seed * 1103515245 + 12345;
			rnd[j] = (seed >> 16) & 0xff;
			/* Half the files are text, to get past the NUL check. */
			if (i % 2 == 0 && rnd[j] == 0)
				rnd[j] = ' ';
		}
		errbuf[0] = '\0';
		assert_null(config_load(write_file("t.conf", rnd,
		    sizeof(rnd)), errbuf, sizeof(errbuf)));
		assert_true(strlen(errbuf) > 0);
	}
}

/* Every truncation of the shipped file loads or fails cleanly. */
static void
test_truncated(void **state)
{
	struct config	*cf;
	FILE		*fp;
	char		 buf[8192];
	size_t		 len, n;
	unsigned int	 ok = 0;

	(void)state;
	fp = fopen(shipped_copy("tls/ca.pem", "tls/cert.pem", "tls/key.pem"),
	    "r");
	assert_non_null(fp);
	len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	assert_true(len > 0 && len < sizeof(buf));
	for (n = 0; n <= len; n++) {
		errbuf[0] = '\0';
		cf = config_load(write_file("t.conf", buf, n), errbuf,
		    sizeof(errbuf));
		if (cf != NULL) {
			ok++;
			config_unref(cf);
		} else
			assert_true(strlen(errbuf) > 0);
	}
	/* Cuts between statements load; cuts inside the routes list do not. */
	assert_true(ok > 1 && ok < len);
	assert_non_null(strstr(buf, "routes = ("));
	n = strstr(buf, "routes = (") - buf + 12;
	assert_null(config_load(write_file("t.conf", buf, n), errbuf,
	    sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "syntax error"));
}

/* Top-level group, inheritance by deep copy, per-peer false and group. */
static void
test_tls_inherit(void **state)
{
	struct config		*cf;
	const struct tls_conf	*top, *a, *b, *c;
	char			 want[256];

	(void)state;
	make_file("tls/b-ca.pem");
	cf = load_text("node_id = \"n\";\n"
	    "listen = \"127.0.0.1:1\";\n"
	    "\n"
	    "tls = {\n"
	    "  ca = \"tls/ca.pem\"; cert = \"tls/cert.pem\";\n"
	    "  key = \"tls/key.pem\";\n"
	    "  allow = [ \"CN=relay 2\", \"sha256:" "AB:CD:EF:01:23:45:67:89:"
	    "ab:cd:ef:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:"
	    "23:45:67:89\" ];\n"
	    "};\n"
	    "peers = (\n"
	    "  { name = \"a\"; address = \"h:1\"; },\n"
	    "  { name = \"b\"; address = \"h:2\";\n"
	    "    tls = { ca = \"tls/b-ca.pem\"; cert = \"tls/cert.pem\";\n"
	    "      key = \"tls/key.pem\"; }; },\n"
	    "  { name = \"c\"; address = \"h:3\";\n"
	    "    tls = false; }\n"
	    ");\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	top = &cf->tls;
	assert_int_equal(top->enabled, 1);
	assert_int_equal(top->line, 4);
	snprintf(want, sizeof(want), "%s/tls/ca.pem", tmpdir);
	assert_string_equal(top->ca, want);
	snprintf(want, sizeof(want), "%s/tls/cert.pem", tmpdir);
	assert_string_equal(top->cert, want);
	snprintf(want, sizeof(want), "%s/tls/key.pem", tmpdir);
	assert_string_equal(top->key, want);
	assert_int_equal(top->nallow, 2);
	assert_string_equal(top->allow[0], "CN=relay 2");
	assert_string_equal(top->allow[1], "sha256:abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef0123456789");

	/* a inherits: equal values, its own memory. */
	a = &config_peer(cf, "a")->tls;
	assert_int_equal(a->enabled, 1);
	assert_int_equal(a->line, 4);
	assert_string_equal(a->ca, top->ca);
	assert_string_equal(a->cert, top->cert);
	assert_string_equal(a->key, top->key);
	assert_ptr_not_equal(a->ca, top->ca);
	assert_ptr_not_equal(a->cert, top->cert);
	assert_ptr_not_equal(a->key, top->key);
	assert_int_equal(a->nallow, 2);
	assert_ptr_not_equal(a->allow, top->allow);
	assert_ptr_not_equal(a->allow[0], top->allow[0]);
	assert_string_equal(a->allow[1], top->allow[1]);

	b = &config_peer(cf, "b")->tls;
	assert_int_equal(b->enabled, 1);
	assert_int_equal(b->line, 12);
	snprintf(want, sizeof(want), "%s/tls/b-ca.pem", tmpdir);
	assert_string_equal(b->ca, want);
	assert_int_equal(b->nallow, 0);
	assert_null(b->allow);

	c = &config_peer(cf, "c")->tls;
	assert_int_equal(c->enabled, 0);
	assert_int_equal(c->line, 15);
	assert_null(c->ca);
	assert_null(c->cert);
	assert_null(c->key);
	assert_int_equal(c->nallow, 0);
	config_unref(cf);
}

/* tls = false: plaintext everywhere; a peer may still use TLS. */
static void
test_tls_false(void **state)
{
	struct config	*cf;

	(void)state;
	cf = load_text("node_id = \"n\";\nlisten = \"h:1\";\n"
	    "tls = false;\n"
	    "peers = ( { name = \"a\"; address = \"h:1\"; },\n"
	    "  { name = \"b\"; address = \"h:2\"; " TLS_GROUP " } );\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->tls.enabled, 0);
	assert_int_equal(cf->tls.line, 3);
	assert_null(cf->tls.ca);
	assert_int_equal(cf->peers[0].tls.enabled, 0);
	assert_int_equal(cf->peers[0].tls.line, 3);
	assert_null(cf->peers[0].tls.ca);
	assert_int_equal(cf->peers[1].tls.enabled, 1);
	assert_non_null(cf->peers[1].tls.key);
	config_unref(cf);

	/* No listener and every peer has its own: no top-level needed. */
	cf = load_text("node_id = \"n\";\n"
	    "peers = ( { name = \"a\"; address = \"h:1\"; tls = false; },\n"
	    "  { name = \"b\"; address = \"h:2\"; " TLS_GROUP " } );\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->tls.enabled, 0);
	assert_int_equal(cf->peers[0].tls.enabled, 0);
	assert_int_equal(cf->peers[1].tls.enabled, 1);
	config_unref(cf);
}

/* A config path without a directory: paths are made absolute. */
static void
test_tls_relative_config(void **state)
{
	struct config	*cf;
	char		 want[256];

	(void)state;
	write_file("rel.conf", "node_id = \"n\";\n" TLS_GROUP,
	    strlen("node_id = \"n\";\n" TLS_GROUP));
	assert_non_null(getcwd(oldcwd, sizeof(oldcwd)));
	assert_int_equal(chdir(tmpdir), 0);
	cf = config_load("rel.conf", errbuf, sizeof(errbuf));
	if (cf == NULL)
		fail_msg("%s", errbuf);
	snprintf(want, sizeof(want), "%s/tls/ca.pem", tmpdir);
	assert_string_equal(cf->tls.ca, want);
	config_unref(cf);
	assert_int_equal(chdir("/"), 0);
	snprintf(want, sizeof(want), "%s/rel.conf", tmpdir + 1);
	cf = config_load(want, errbuf, sizeof(errbuf));
	if (cf == NULL)
		fail_msg("%s", errbuf);
	snprintf(want, sizeof(want), "%s/tls/key.pem", tmpdir);
	assert_string_equal(cf->tls.key, want);
	config_unref(cf);
}

static int
restore_cwd(void **state)
{
	(void)state;
	return oldcwd[0] == '\0' ? 0 : chdir(oldcwd);
}

/* Missing, unreadable or directory TLS files, at their setting's line. */
static void
test_tls_unreadable(void **state)
{
	char	 text[512], msg[512];

	(void)state;
	snprintf(text, sizeof(text), "node_id = \"n\";\ntls = {\n"
	    " ca = \"tls/ca.pem\";\n cert = \"tls/nope.pem\";\n"
	    " key = \"tls/key.pem\"; };\n");
	snprintf(msg, sizeof(msg), "tls: cannot read cert %s/tls/nope.pem: "
	    "No such file or directory", tmpdir);
	expect_error(text, 4, msg);

	snprintf(text, sizeof(text), "node_id = \"n\";\ntls = false;\n"
	    "peers = ( { name = \"a\"; address = \"h:1\";\n tls = {\n"
	    " ca = \"%s/tls\";\n cert = \"tls/cert.pem\";\n"
	    " key = \"tls/key.pem\"; }; } );\n", tmpdir);
	snprintf(msg, sizeof(msg), "peers[0].tls: cannot read ca %s/tls: "
	    "Is a directory", tmpdir);
	expect_error(text, 5, msg);

	/* Permissions do not stop root; only test them as another user. */
	if (geteuid() == 0)
		return;
	assert_int_equal(chmod(make_file("tls/secret.key"), 0), 0);
	snprintf(text, sizeof(text), "node_id = \"n\";\ntls = {\n"
	    " ca = \"tls/ca.pem\";\n cert = \"tls/cert.pem\";\n"
	    " key = \"tls/secret.key\"; };\n");
	snprintf(msg, sizeof(msg), "tls: cannot read key %s/tls/secret.key: "
	    "Permission denied", tmpdir);
	expect_error(text, 5, msg);
}

static void
test_tls_errors(void **state)
{
	static const struct err_case cases[] = {
		{ "node_id = \"n\";\n\ntls = true;\n", 3,
		    "tls = true needs a group with ca, cert and key" },
		{ "node_id = \"n\";\ntls = false;\npeers = (\n"
		    " { name = \"a\"; address = \"h:1\"; tls = true; } );\n", 4,
		    "peers[0].tls = true needs a group with ca, cert and key" },
		{ "node_id = \"n\";\ntls = 1;\n", 2, "tls: expected a group "
		    "{ ca = ...; cert = ...; key = ...; } or false, got an "
		    "integer" },
		{ "node_id = \"n\";\ntls = \"/etc/tls\";\n", 2,
		    "tls: expected a group" },
		{ "node_id = \"n\";\ntls = ( );\n", 2,
		    "tls: expected a group" },
		{ "node_id = \"n\";\nlisten = \"h:1\";\n", 2,
		    "listener needs TLS material (tls = { ca; cert; key; }) "
		    "or an explicit tls = false" },
		{ "node_id = \"n\";\nlisten = \"bad\";\n", 2,
		    "listener needs TLS material" },
		{ "node_id = \"n\";\npeers = (\n"
		    " { name = \"a\"; address = \"h:1\"; },\n"
		    " { name = \"b\";\n   address = \"h:2\"; } );\n", 4,
		    "peer b needs tls = { ... } or tls = false (no top-level "
		    "tls to inherit)" },
		{ "node_id = \"n\";\npeers = (\n { address = \"h:2\"; } );\n", 3,
		    "peer peers[0] needs tls = { ... } or tls = false" },
		{ "node_id = \"n\";\ntls = {\n cert = \"tls/cert.pem\";\n"
		    " key = \"tls/key.pem\"; };\n", 2,
		    "tls.ca: missing (required)" },
		{ "node_id = \"n\";\ntls = {\n ca = \"tls/ca.pem\";\n"
		    " key = \"tls/key.pem\"; };\n", 2,
		    "tls.cert: missing (required)" },
		{ "node_id = \"n\";\ntls = { };\n", 2,
		    "tls.key: missing (required)" },
		{ "node_id = \"n\";\ntls = false;\npeers = ( { name = \"a\";\n"
		    " address = \"h:1\"; tls = { ca = \"tls/ca.pem\";\n"
		    " cert = \"tls/cert.pem\"; }; } );\n", 4,
		    "peers[0].tls.key: missing (required)" },
		{ "node_id = \"n\";\ntls = { ca = \"tls/ca.pem\";\n"
		    " cert = 5; key = \"tls/key.pem\"; };\n", 3,
		    "tls.cert: expected a string, got an integer" },
		{ "node_id = \"n\";\ntls = { ca = \"\";\n"
		    " cert = \"tls/cert.pem\"; key = \"tls/key.pem\"; };\n", 2,
		    "tls.ca: empty path" },
		{ "node_id = \"n\";\ntls = { ca = \"tls/ca.pem\";\n"
		    " cert = \"tls/cert.pem\"; key = \"tls/key.pem\";\n"
		    " crl = \"x\"; };\n", 4, "tls: unknown setting \"crl\"" },
		{ "node_id = \"n\";\ntls = false;\npeers = ( { name = \"a\";\n"
		    " address = \"h:1\";\n tls = { ca = \"tls/ca.pem\";\n"
		    " cert = \"tls/cert.pem\"; key = \"tls/key.pem\";\n"
		    " verify = false; }; } );\n", 7,
		    "peers[0].tls: unknown setting \"verify\"" },
		{ "node_id = \"n\";\nlisten = \"h:1\";\ntls = false;\n"
		    "tls = false;\n", 4, "duplicate setting name" },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].text, cases[i].line, cases[i].msg);
}

/* A config whose tls allow list is entries, on line 4. */
static const char *
allow_config(const char *entries)
{
	static char	 text[16384];

	snprintf(text, sizeof(text), "node_id = \"n\";\n"
	    "tls = { ca = \"tls/ca.pem\"; cert = \"tls/cert.pem\";\n"
	    "  key = \"tls/key.pem\";\n"
	    "  allow = %s; };\n", entries);
	return text;
}

#define HEX64	"0123456789abcdef0123456789abcdef" \
		"0123456789abcdef0123456789abcdef"

static void
test_tls_allow(void **state)
{
	static const char *const good[][2] = {
		{ "CN=a", "CN=a" },
		{ "CN=relay-2.example.org", "CN=relay-2.example.org" },
		{ "CN= spaced out ", "CN= spaced out " },
		{ "CN=CN=x", "CN=CN=x" },
		{ "CN=0123456789012345678901234567890123456789012345678901"
		    "234567890123", "CN=012345678901234567890123456789012345"
		    "6789012345678901234567890123" },
		{ "sha256:" HEX64, "sha256:" HEX64 },
		{ "sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
		    "0123456789ABCDEF", "sha256:" HEX64 },
		{ "sha256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:"
		    "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:aB:Cd:eF",
		    "sha256:" HEX64 },
		{ "sha256:0123:456789abcdef0123456789abcdef0123456789abcdef"
		    "0123456789ab:cdef", "sha256:" HEX64 },
	};
	static const char *const bad[] = {
		"", "CN=", "cn=a", "CN", "a", "O=org", "sha256:",
		"CN=0123456789012345678901234567890123456789012345678901"
		    "2345678901234",
		"CN=a\tb", "CN=caf\xc3\xa9", "CN=a\x7f",
		"sha256:" HEX64 "00",
		"sha256:" HEX64 ":",
		"sha256::" HEX64,
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
		    "0123456789abcde",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
		    "0123456789abcdeg",
		"sha256:01::23456789abcdef0123456789abcdef0123456789abcdef"
		    "0123456789abcdef",
		"sha256:0:123456789abcdef0123456789abcdef0123456789abcdef"
		    "0123456789abcdef",
		"SHA256:" HEX64, "sha1:0123456789abcdef0123456789abcdef01234567",
		"sha256: " HEX64, "sha256:" HEX64 " ",
	};
	struct config	*cf;
	char		 entries[8192], msg[512];
	size_t		 i, len;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(entries, sizeof(entries), "[ \"%s\" ]", good[i][0]);
		if ((cf = load_text(allow_config(entries))) == NULL)
			fail_msg("%s: %s", good[i][0], errbuf);
		assert_int_equal(cf->tls.nallow, 1);
		assert_string_equal(cf->tls.allow[0], good[i][1]);
		config_unref(cf);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(entries, sizeof(entries), "( \"CN=ok\",\n\"%s\" )",
		    bad[i]);
		snprintf(msg, sizeof(msg), "tls.allow[1]: bad entry \"");
		expect_error(allow_config(entries), 5, msg);
		assert_non_null(strstr(errbuf, "\": expected \"CN=<1..64 "
		    "printable characters>\" or \"sha256:<64 hex digits>\""));
	}
	/* The entry is named, with non-printable bytes shown as '?'. */
	expect_error(allow_config("[ \"CN=x\", \"O=org\" ]"), 4,
	    "tls.allow[1]: bad entry \"O=org\"");
	expect_error(allow_config("[ \"CN=a\\tb\" ]"), 4,
	    "tls.allow[0]: bad entry \"CN=a?b\"");
	expect_error(allow_config("\"CN=x\""), 4,
	    "tls.allow: expected an array of strings, got a string");
	expect_error(allow_config("[ 1 ]"), 4,
	    "tls.allow[0]: expected a string, got an integer");
	expect_error(allow_config("( \"CN=x\", { a = 1; } )"), 4,
	    "tls.allow[1]: expected a string, got a group");

	/* Empty, a list, and 64 entries load; 65 do not. */
	cf = load_text(allow_config("[ ]"));
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->tls.nallow, 0);
	assert_null(cf->tls.allow);
	config_unref(cf);
	len = snprintf(entries, sizeof(entries), "[ ");
	for (i = 0; i < 64; i++)
		len += snprintf(entries + len, sizeof(entries) - len,
		    "%s\"CN=n%zu\"", i > 0 ? ", " : "", i);
	snprintf(entries + len, sizeof(entries) - len, " ]");
	if ((cf = load_text(allow_config(entries))) == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->tls.nallow, 64);
	assert_string_equal(cf->tls.allow[63], "CN=n63");
	config_unref(cf);
	snprintf(entries + len, sizeof(entries) - len, ", \"CN=n64\" ]");
	expect_error(allow_config(entries), 4,
	    "tls.allow: 65 entries, at most 64 allowed");
	/* Errors in a peer's own list name the peer. */
	expect_error("node_id = \"n\";\ntls = false;\npeers = ( { name = \"a\";"
	    " address = \"h:1\";\n tls = { ca = \"tls/ca.pem\"; cert = "
	    "\"tls/cert.pem\"; key = \"tls/key.pem\";\n allow = [ \"CN=\" ];"
	    " }; } );\n", 5, "peers[0].tls.allow[0]: bad entry \"CN=\"");
}

/*
 * An included file gets the main file's 32-bit guard, at its own path and
 * line, and an absolute @include path is read (libconfig 1.5 alone puts
 * its include directory in front of it).
 */
static void
test_include(void **state)
{
	struct config	*cf;
	char		 text[1024], want[600];

	(void)state;
	write_file("inc-big.conf", "\nconn_window = 5000000000;\n", 27);
	cf = load_text("node_id = \"n\";\ntls = false;\n"
	    "@include \"inc-big.conf\"\n");
	snprintf(want, sizeof(want), "%s/inc-big.conf:2: integer 5000000000 "
	    "does not fit in 32 bits", tmpdir);
	if (cf != NULL || strstr(errbuf, want) == NULL)
		fail_msg("want: %s\ngot: %s", want, cf ? "(loaded)" : errbuf);
	write_file("inc-ok.conf", "max_payload = 4096;\n", 20);
	snprintf(text, sizeof(text), "node_id = \"n\";\ntls = false;\n"
	    "@include \"%s/inc-ok.conf\"\n", tmpdir);
	if ((cf = load_text(text)) == NULL)
		fail_msg("absolute include: %s", errbuf);
	assert_int_equal(cf->max_payload, 4096);
	config_unref(cf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped),
		cmocka_unit_test(test_shipped_needs_tls_files),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_generation_and_refs),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_hops),
		cmocka_unit_test(test_collects_all),
		cmocka_unit_test(test_err_buffer),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_tls_inherit),
		cmocka_unit_test(test_tls_false),
		cmocka_unit_test_teardown(test_tls_relative_config,
		    restore_cwd),
		cmocka_unit_test(test_tls_unreadable),
		cmocka_unit_test(test_tls_errors),
		cmocka_unit_test(test_tls_allow),
		cmocka_unit_test(test_include),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
