/*
 * ctlproto unit tests: a table of good and bad control request lines,
 * the fields a good put yields, and the exact reason for each bad one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl.h"
#include "ctlproto.h"

#define SHA	"00112233445566778899aabbccddeeff" \
		"00112233445566778899AABBCCDDEEFF"
#define PID	"0123456789abcdef0123456789ABCDEF"
#define PUT	"{\"cmd\":\"put\",\"key\":\"k\",\"size\":5,\"sha256\":\"" SHA "\""

#define MALFORMED	"malformed request: "
#define NEEDS		"put needs key (string), size (integer), sha256 (hex)"

struct reqcase {
	const char		*line;
	enum ctl_command	 cmd;	/* CTL_CMD_NONE: must fail */
	const char		*err;	/* the reason, or its prefix */
	int			 prefix;
};

static const struct reqcase reqcases[] = {
	{ "{\"cmd\":\"status\"}", CTL_CMD_STATUS, NULL, 0 },
	{ " { \"cmd\" : \"status\" }\r", CTL_CMD_STATUS, NULL, 0 },
	{ PUT "}", CTL_CMD_PUT, NULL, 0 },
	{ PUT ",\"hops\":0,\"put_id\":\"" PID "\"}", CTL_CMD_PUT, NULL, 0 },
	{ "{\"size\":0,\"sha256\":\"" SHA "\",\"key\":\"a/b\",\"hops\":255,"
	  "\"cmd\":\"put\"}", CTL_CMD_PUT, NULL, 0 },

	{ "{\"cmd\":\"show\",\"what\":\"peers\"}", CTL_CMD_SHOW, NULL, 0 },
	{ "{\"cmd\":\"show\",\"what\":\"stats\"}", CTL_CMD_SHOW, NULL, 0 },
	{ "{\"cmd\":\"show\",\"what\":\"puts\"}", CTL_CMD_SHOW, NULL, 0 },
	{ "{\"cmd\":\"monitor\"}", CTL_CMD_MONITOR, NULL, 0 },
	{ "{\"cmd\":\"outcome\",\"put_id\":\"" PID "\"}", CTL_CMD_OUTCOME,
	  NULL, 0 },
	{ "{\"cmd\":\"reload\"}", CTL_CMD_RELOAD, NULL, 0 },
	{ "{\"cmd\":\"drain\"}", CTL_CMD_DRAIN, NULL, 0 },
	{ "{\"cmd\":\"log\",\"level\":\"debug\"}", CTL_CMD_LOG, NULL, 0 },

	{ "{\"cmd\":\"show\"}", CTL_CMD_NONE, "show needs what: peers, "
	  "streams, routes, config, stats, puts or store", 0 },
	{ "{\"cmd\":\"show\",\"what\":\"peer\"}", CTL_CMD_NONE,
	  "show needs what: peers, streams, routes, config, stats, puts or "
	  "store", 0 },
	{ "{\"cmd\":\"outcome\",\"put_id\":\"12\"}", CTL_CMD_NONE,
	  "outcome needs put_id: 32 hex digits", 0 },
	{ "{\"cmd\":\"log\",\"level\":\"trace\"}", CTL_CMD_NONE,
	  "log needs level: warn, info or debug", 0 },
	{ "{\"cmd\":\"drain\",\"now\":true}", CTL_CMD_NONE,
	  "unknown field \"now\" for drain", 0 },
	{ "{\"cmd\":\"peer\",\"action\":\"pause\",\"name\":\"a\"}",
	  CTL_CMD_NONE, "peer needs action: disable, enable or drain", 0 },
	{ "{\"cmd\":\"peer\",\"action\":\"drain\"}", CTL_CMD_NONE,
	  "peer needs name (string)", 0 },
	{ "{\"cmd\":\"peer\",\"action\":\"drain\",\"name\":\"\"}",
	  CTL_CMD_NONE, "peer name must be 1..64 bytes", 0 },
	{ "{\"cmd\":\"peer\",\"action\":\"drain\",\"name\":\"a\\u0000\"}",
	  CTL_CMD_NONE, "peer name must not contain NUL", 0 },

	{ "", CTL_CMD_NONE, MALFORMED, 1 },
	{ "{", CTL_CMD_NONE, MALFORMED, 1 },
	{ "{\"cmd\":\"status\"} x", CTL_CMD_NONE, MALFORMED, 1 },
	{ "{\"cmd\":\"status\",\"cmd\":\"status\"}", CTL_CMD_NONE, MALFORMED,
	  1 },
	{ "\"status\"", CTL_CMD_NONE, MALFORMED, 1 },
	{ "{\"cmd\":\"status\xff\"}", CTL_CMD_NONE, MALFORMED, 1 },
	{ "[]", CTL_CMD_NONE, MALFORMED "not an object", 0 },
	{ "{}", CTL_CMD_NONE, "request has no \"cmd\" string", 0 },
	{ "{\"cmd\":1}", CTL_CMD_NONE, "request has no \"cmd\" string", 0 },
	{ "{\"cmd\":null}", CTL_CMD_NONE, "request has no \"cmd\" string", 0 },
	{ "{\"cmd\":\"stat\"}", CTL_CMD_NONE, "unknown command \"stat\"", 0 },
	{ "{\"cmd\":\"STATUS\"}", CTL_CMD_NONE, "unknown command \"STATUS\"",
	  0 },
	{ "{\"cmd\":\"status\\u0000x\"}", CTL_CMD_NONE,
	  "unknown command \"status?x\"", 0 },
	{ "{\"cmd\":\"st\\u00e9\"}", CTL_CMD_NONE,
	  "unknown command \"st??\"", 0 },
	{ "{\"cmd\":\"status\",\"verbose\":true}", CTL_CMD_NONE,
	  "unknown field \"verbose\" for status", 0 },
	{ "{\"cmd\":\"status\",\"key\":\"k\"}", CTL_CMD_NONE,
	  "unknown field \"key\" for status", 0 },
	{ PUT ",\"extra\":1}", CTL_CMD_NONE,
	  "unknown field \"extra\" for put", 0 },
	{ "{\"cmd\":\"put\",\"size\":5,\"sha256\":\"" SHA "\"}", CTL_CMD_NONE,
	  NEEDS, 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"sha256\":\"" SHA "\"}", CTL_CMD_NONE,
	  NEEDS, 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":5}", CTL_CMD_NONE, NEEDS,
	  0 },
	{ "{\"cmd\":\"put\",\"key\":7,\"size\":5,\"sha256\":\"" SHA "\"}",
	  CTL_CMD_NONE, NEEDS, 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":\"5\",\"sha256\":\"" SHA
	  "\"}", CTL_CMD_NONE, NEEDS, 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":5.0,\"sha256\":\"" SHA
	  "\"}", CTL_CMD_NONE, NEEDS, 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":5,\"sha256\":null}",
	  CTL_CMD_NONE, NEEDS, 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":99999999999999999999,"
	  "\"sha256\":\"" SHA "\"}", CTL_CMD_NONE, MALFORMED, 1 },
	{ "{\"cmd\":\"put\",\"key\":\"\",\"size\":5,\"sha256\":\"" SHA "\"}",
	  CTL_CMD_NONE, "key must be 1..512 bytes", 0 },
	{ "{\"cmd\":\"put\",\"key\":\"a\\u0000b\",\"size\":5,\"sha256\":\""
	  SHA "\"}", CTL_CMD_NONE, "key must not contain NUL", 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":-1,\"sha256\":\"" SHA
	  "\"}", CTL_CMD_NONE, "size must not be negative", 0 },
	{ PUT ",\"hops\":256}", CTL_CMD_NONE, "hops must be 0..255", 0 },
	{ PUT ",\"hops\":-1}", CTL_CMD_NONE, "hops must be 0..255", 0 },
	{ PUT ",\"hops\":\"3\"}", CTL_CMD_NONE, "hops must be 0..255", 0 },
	{ PUT ",\"hops\":null}", CTL_CMD_NONE, "hops must be 0..255", 0 },
	{ PUT ",\"hops\":1.5}", CTL_CMD_NONE, "hops must be 0..255", 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":5,\"sha256\":\"" SHA
	  "0\"}", CTL_CMD_NONE, "sha256 must be 64 hex digits", 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":5,\"sha256\":\"0"
	  "0112233445566778899aabbccddeeff00112233445566778899aabbccddeef\"}",
	  CTL_CMD_NONE, "sha256 must be 64 hex digits", 0 },
	{ "{\"cmd\":\"put\",\"key\":\"k\",\"size\":5,\"sha256\":\"g"
	  "0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}",
	  CTL_CMD_NONE, "sha256 must be 64 hex digits", 0 },
	{ PUT ",\"put_id\":\"0123456789abcdef0123456789abcde\"}", CTL_CMD_NONE,
	  "put_id must be 32 hex digits", 0 },
	{ PUT ",\"put_id\":\"0123456789abcdef0123456789abcdez\"}",
	  CTL_CMD_NONE, "put_id must be 32 hex digits", 0 },
	{ PUT ",\"put_id\":\"0123456789abcdef0123456789abcde\\u0000\"}",
	  CTL_CMD_NONE, "put_id must be 32 hex digits", 0 },
	{ PUT ",\"put_id\":12}", CTL_CMD_NONE, "put_id must be 32 hex digits",
	  0 },
	{ PUT ",\"put_id\":null}", CTL_CMD_NONE,
	  "put_id must be 32 hex digits", 0 },
};

static void
assert_printable(const char *s)
{
	assert_true(s[0] != '\0');
	for (; *s != '\0'; s++)
		assert_true(*s >= 0x20 && *s <= 0x7e);
}

/*
 * Parse from an exact-size heap copy with a '\n' after it that is not
 * part of len, as the daemon's line reader hands it over.
 */
static int
parse(const char *line, size_t len, struct ctl_request *req, char *err,
    size_t errlen)
{
	char *copy;
	int rv;

	assert_non_null(copy = malloc(len + 1));
	memcpy(copy, line, len);
	copy[len] = '\n';
	rv = ctl_parse_request(copy, len, req, err, errlen);
	free(copy);
	return rv;
}

static void
test_table(void **state)
{
	struct ctl_request req;
	char err[256];
	size_t i;
	int rv;

	(void)state;
	for (i = 0; i < sizeof(reqcases) / sizeof(reqcases[0]); i++) {
		const struct reqcase *t = &reqcases[i];

		err[0] = '\0';
		rv = parse(t->line, strlen(t->line), &req, err, sizeof(err));
		if (t->cmd != CTL_CMD_NONE) {
			if (rv != 0 || req.cmd != t->cmd)
				fail_msg("case %zu %s: rv %d cmd %d: %s", i,
				    t->line, rv, req.cmd, err);
		} else {
			if (rv != -1 || req.cmd != CTL_CMD_NONE ||
			    (t->prefix ? strncmp(err, t->err,
			    strlen(t->err)) : strcmp(err, t->err)) != 0)
				fail_msg("case %zu %s: rv %d, got \"%s\"", i,
				    t->line, rv, err);
			assert_printable(err);
		}
		ctl_request_free(&req);
		ctl_request_free(&req);	/* emptied: a second free is safe */
	}
}

static void
test_put_fields(void **state)
{
	static const char line[] = PUT ",\"hops\":7,\"put_id\":\"" PID "\"}";
	static const uint8_t sha[32] = {
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	};
	static const uint8_t pid[16] = {
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	};
	struct ctl_request req;
	char err[256];

	(void)state;
	assert_int_equal(parse(line, strlen(line), &req, err, sizeof(err)),
	    0);
	assert_int_equal(req.cmd, CTL_CMD_PUT);
	assert_int_equal(req.u.put.key_len, 1);
	assert_string_equal(req.u.put.key, "k");
	assert_int_equal(req.u.put.size, 5);
	assert_int_equal(req.u.put.hops, 7);
	assert_memory_equal(req.u.put.sha256, sha, sizeof(sha));
	assert_true(req.u.put.has_put_id);
	assert_memory_equal(req.u.put.put_id, pid, sizeof(pid));
	ctl_request_free(&req);
	assert_null(req.u.put.key);
}

static void
test_put_defaults(void **state)
{
	static const char line[] =
	    "{\"cmd\":\"put\",\"key\":\"a\\\"b\\u00e9\",\"size\":"
	    "9223372036854775807,\"sha256\":\"" SHA "\"}";
	struct ctl_request req;
	char err[256];

	(void)state;
	assert_int_equal(parse(line, strlen(line), &req, err, sizeof(err)),
	    0);
	assert_int_equal(req.u.put.hops, CTL_DEFAULT_HOPS);
	assert_false(req.u.put.has_put_id);
	assert_int_equal(req.u.put.key_len, 5);	/* a " b and two UTF-8 */
	assert_string_equal(req.u.put.key, "a\"b\xc3\xa9");
	assert_true(req.u.put.size == INT64_MAX);
	ctl_request_free(&req);
}

/* A put line whose key is n bytes of 'k'. */
static char *
put_with_key(size_t n)
{
	static const char head[] = "{\"cmd\":\"put\",\"key\":\"";
	static const char tail[] = "\",\"size\":1,\"sha256\":\"" SHA "\"}";
	char *s;

	assert_non_null(s = malloc(sizeof(head) + n + sizeof(tail)));
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'k', n);
	memcpy(s + sizeof(head) - 1 + n, tail, sizeof(tail));
	return s;
}

static void
test_key_bounds(void **state)
{
	struct ctl_request req;
	char err[256], *s;

	(void)state;
	s = put_with_key(WIRE_MAX_KEY);
	assert_int_equal(parse(s, strlen(s), &req, err, sizeof(err)), 0);
	assert_int_equal(req.u.put.key_len, WIRE_MAX_KEY);
	assert_int_equal(strlen(req.u.put.key), WIRE_MAX_KEY);
	ctl_request_free(&req);
	free(s);

	s = put_with_key(WIRE_MAX_KEY + 1);
	assert_int_equal(parse(s, strlen(s), &req, err, sizeof(err)), -1);
	assert_string_equal(err, "key must be 1..512 bytes");
	free(s);
}

/*
 * The limit is on the line: CTL_MAX_LINE bytes are parsed (and fail on
 * the key), one byte more is refused before parsing.
 */
static void
test_line_limit(void **state)
{
	struct ctl_request req;
	char err[256], *s;
	size_t n;

	(void)state;
	s = put_with_key(CTL_MAX_LINE - 200);
	n = strlen(s);
	assert_true(n < CTL_MAX_LINE);
	assert_non_null(s = realloc(s, CTL_MAX_LINE + 1));
	memset(s + n, ' ', CTL_MAX_LINE + 1 - n);	/* trailing blanks */
	assert_int_equal(parse(s, CTL_MAX_LINE, &req, err, sizeof(err)), -1);
	assert_string_equal(err, "key must be 1..512 bytes");
	assert_int_equal(parse(s, CTL_MAX_LINE + 1, &req, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "request line longer than 65536 bytes");
	free(s);
}

/* Bytes after len are not part of the request. */
static void
test_len_bounds_input(void **state)
{
	static const char line[] = "{\"cmd\":\"status\"}garbage";
	struct ctl_request req;
	char err[256];

	(void)state;
	assert_int_equal(ctl_parse_request(line, 16, &req, err, sizeof(err)),
	    0);
	assert_int_equal(req.cmd, CTL_CMD_STATUS);
	assert_int_equal(ctl_parse_request(line, 15, &req, err, sizeof(err)),
	    -1);
	assert_memory_equal(err, MALFORMED, strlen(MALFORMED));
}

/* A long bad name is quoted cut, and a small err buffer is respected. */
static void
test_peer_fields(void **state)
{
	struct ctl_request	 req;
	char			 err[256], line[256], name[80];
	int			 n;

	(void)state;
	n = snprintf(line, sizeof(line), "{\"cmd\":\"peer\",\"action\":"
	    "\"enable\",\"name\":\"relay-2\"}");
	assert_int_equal(ctl_parse_request(line, n, &req, err,
	    sizeof(err)), 0);
	assert_int_equal(req.cmd, CTL_CMD_PEER);
	assert_int_equal(req.u.peer.action, CTL_PEER_ENABLE);
	assert_string_equal(req.u.peer.name, "relay-2");
	ctl_request_free(&req);

	/* 64 bytes is the longest name; 65 is refused. */
	memset(name, 'n', 65);
	name[64] = '\0';
	n = snprintf(line, sizeof(line), "{\"cmd\":\"peer\",\"action\":"
	    "\"disable\",\"name\":\"%s\"}", name);
	assert_int_equal(ctl_parse_request(line, n, &req, err,
	    sizeof(err)), 0);
	assert_int_equal(req.u.peer.action, CTL_PEER_DISABLE);
	assert_int_equal(strlen(req.u.peer.name), 64);
	ctl_request_free(&req);
	name[64] = 'n';
	name[65] = '\0';
	n = snprintf(line, sizeof(line), "{\"cmd\":\"peer\",\"action\":"
	    "\"drain\",\"name\":\"%s\"}", name);
	assert_int_equal(ctl_parse_request(line, n, &req, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "peer name must be 1..64 bytes");
	ctl_request_free(&req);
}

static void
test_long_names(void **state)
{
	char line[512], err[256], small[8];
	struct ctl_request req;

	(void)state;
	snprintf(line, sizeof(line), "{\"cmd\":\"%0200d\"}", 1);
	assert_int_equal(ctl_parse_request(line, strlen(line), &req, err,
	    sizeof(err)), -1);
	assert_true(strlen(err) < 100);
	assert_non_null(strstr(err, "...\""));
	snprintf(line, sizeof(line), "{\"cmd\":\"status\",\"%0200d\":1}", 1);
	assert_int_equal(ctl_parse_request(line, strlen(line), &req, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "...\" for status"));
	assert_int_equal(ctl_parse_request(line, strlen(line), &req, small,
	    sizeof(small)), -1);
	assert_string_equal(small, "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_put_fields),
		cmocka_unit_test(test_put_defaults),
		cmocka_unit_test(test_key_bounds),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_len_bounds_input),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_peer_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
