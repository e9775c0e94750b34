/*
 * config unit tests: the shipped files load, defaults, every option, and
 * every error case reports "FILE:LINE: message" without crashing.
 */
#include <sys/stat.h>

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
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
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

	(void)state;
	cf = config_load(srcpath("conf/relayd.conf"), errbuf, sizeof(errbuf));
	if (cf == NULL)
		fail_msg("%s", errbuf);
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

static void
test_examples(void **state)
{
	static const char *const files[] = {
		"conf/examples/chain-relay1.conf",
		"conf/examples/chain-relay2.conf",
		"conf/examples/chain-relay3.conf",
		"conf/examples/fanout.conf",
	};
	struct config	*cf;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		cf = config_load(srcpath(files[i]), errbuf, sizeof(errbuf));
		if (cf == NULL)
			fail_msg("%s: %s", files[i], errbuf);
		assert_true(cf->nroutes > 0);
		config_unref(cf);
	}
	cf = config_load(srcpath("conf/examples/chain-relay1.conf"), errbuf,
	    sizeof(errbuf));
	assert_non_null(cf);
	assert_int_equal(cf->npeers, 1);
	assert_string_equal(cf->peers[0].name, "relay2");
	assert_int_equal(cf->routes[0].nhops, 1);
	assert_int_equal(cf->routes[0].hops[0], 0);
	config_unref(cf);
	cf = config_load(srcpath("conf/examples/fanout.conf"), errbuf,
	    sizeof(errbuf));
	assert_non_null(cf);
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
	assert_int_equal(cf->npeers, 0);
	assert_int_equal(cf->nroutes, 0);
	assert_string_equal(cf->path, write_file("t.conf", "", 0));
	config_unref(cf);

	cf = load_text("node_id = \"n\";\n"
	    "peers = ( { name = \"p\"; address = \"h:1\"; } );\n"
	    "routes = ( { prefix = \"k\"; } );\n");
	if (cf == NULL)
		fail_msg("%s", errbuf);
	assert_int_equal(cf->peers[0].rate_limit, 0);
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
	    "  { prefix = \"\"; hops = ( \"b\" ); mode = \"fanout\"; } );\n");
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
		    "listen = \"%s\";\n", listen_cases[i].addr);
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
		    "{ name = \"p\";\n address = \"%s\"; } );\n",
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

struct err_case {
	const char	*text;
	unsigned int	 line;
	const char	*msg;
};

static void
test_errors(void **state)
{
	static const struct err_case cases[] = {
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
	snprintf(text + len, sizeof(text) - len, " ]; } );\n");
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
	    "routes = ( { prefix = \"\"; hops = [ \"zz\" ]; } );\n"));
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
	fp = fopen(srcpath("conf/relayd.conf"), "r");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_generation_and_refs),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_hops),
		cmocka_unit_test(test_collects_all),
		cmocka_unit_test(test_err_buffer),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
