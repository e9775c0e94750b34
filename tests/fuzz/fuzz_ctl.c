/*
 * libFuzzer target for the control request parser.  The bytes are one
 * request line.  A request that parses must hold fields in range, and
 * encoded again it must parse to the same fields; a request that fails
 * must say why in printable ASCII, the same way with a smaller buffer.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/ctlproto.c \
 *     tests/fuzz/fuzz_ctl.c -ljansson -o /tmp/fuzz_ctl
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "ctlproto.h"
#include "util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

static void
fuzz_put_ok(const struct ctl_put_req *p)
{
	fuzz_check(p->key != NULL);
	fuzz_check(p->key_len >= 1 && p->key_len <= WIRE_MAX_KEY);
	fuzz_check(p->key[p->key_len] == '\0');
	fuzz_check(strlen(p->key) == p->key_len);
	fuzz_check(p->size <= INT64_MAX);
	fuzz_check(p->hops <= 255);
	fuzz_check(p->has_put_id == 0 || p->has_put_id == 1);
}

/* Encode a parsed put as relayctl would; it must parse to the same. */
static void
fuzz_put_again(const struct ctl_put_req *p)
{
	struct ctl_request again;
	char sha[2 * WIRE_SHA256_LEN + 1], id[2 * WIRE_PUT_ID_LEN + 1];
	char err[256], *line;
	json_t *o;

	util_hex_encode(p->sha256, sizeof(p->sha256), sha);
	o = json_pack("{s:s,s:s%,s:I,s:s,s:I}", "cmd", "put", "key", p->key,
	    p->key_len, "size", (json_int_t)p->size, "sha256", sha, "hops",
	    (json_int_t)p->hops);
	fuzz_check(o != NULL);
	if (p->has_put_id) {
		util_hex_encode(p->put_id, sizeof(p->put_id), id);
		json_object_set_new(o, "put_id", json_string(id));
	}
	line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	fuzz_check(line != NULL);
	fuzz_check(ctl_parse_request(line, strlen(line), &again, err,
	    sizeof(err)) == 0);
	fuzz_check(again.cmd == CTL_CMD_PUT);
	fuzz_check(again.u.put.key_len == p->key_len &&
	    memcmp(again.u.put.key, p->key, p->key_len) == 0);
	fuzz_check(again.u.put.size == p->size && again.u.put.hops == p->hops);
	fuzz_check(memcmp(again.u.put.sha256, p->sha256,
	    sizeof(p->sha256)) == 0);
	fuzz_check(again.u.put.has_put_id == p->has_put_id);
	fuzz_check(!p->has_put_id || memcmp(again.u.put.put_id, p->put_id,
	    sizeof(p->put_id)) == 0);
	ctl_request_free(&again);
	free(line);
}

static void
fuzz_err_ok(const char *err, size_t errlen)
{
	size_t i;

	fuzz_check(memchr(err, '\0', errlen) != NULL);
	fuzz_check(errlen == 1 || err[0] != '\0');
	for (i = 0; err[i] != '\0'; i++)
		fuzz_check(err[i] >= 0x20 && err[i] <= 0x7e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req, req2;
	char err[256], small[24];
	char *copy;
	int rv;

	/* An exact-size copy, so ASan catches any read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);

	memset(err, 0x55, sizeof(err));
	rv = ctl_parse_request(copy, size, &req, err, sizeof(err));
	fuzz_check(rv == 0 || rv == -1);
	if (size > CTL_MAX_LINE)
		fuzz_check(rv == -1);
	if (rv == 0) {
		fuzz_check(req.cmd > CTL_CMD_NONE && req.cmd <= CTL_CMD_PEER);
		if (req.cmd == CTL_CMD_PUT) {
			fuzz_put_ok(&req.u.put);
			fuzz_put_again(&req.u.put);
		}
		if (req.cmd == CTL_CMD_SHOW)
			fuzz_check(req.u.show <= CTL_SHOW_STATS);
		if (req.cmd == CTL_CMD_LOG)
			fuzz_check(req.u.level >= 0 && req.u.level <= 2);
	} else {
		fuzz_check(req.cmd == CTL_CMD_NONE);
		fuzz_err_ok(err, sizeof(err));
	}

	/* The same bytes give the same answer; a short err is a prefix. */
	memset(small, 0x55, sizeof(small));
	fuzz_check(ctl_parse_request(copy, size, &req2, small,
	    sizeof(small)) == rv);
	fuzz_check(req2.cmd == req.cmd);
	if (rv == -1) {
		fuzz_err_ok(small, sizeof(small));
		fuzz_check(strncmp(small, err, sizeof(small) - 1) == 0);
	}
	ctl_request_free(&req2);
	ctl_request_free(&req);
	free(copy);
	return 0;
}
