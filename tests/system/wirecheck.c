/*
 * wirecheck: a line-driven harness over src/wire.c, used by
 * test_wire_compat.py to compare the C encoder/decoder with relaywire.py.
 * Compiled at test time; reads commands on stdin, writes one line each.
 * Hex strings use "-" for empty.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define OUTCAP	(WIRE_HDR_LEN + WIRE_MAX_BODY + 64)

static uint8_t	outbuf[OUTCAP];
static size_t	cap = OUTCAP;

static int
unhex(const char *s, uint8_t *out, size_t max, size_t *lenp)
{
	size_t	 n, i;
	unsigned int v;

	if (strcmp(s, "-") == 0) {
		*lenp = 0;
		return 0;
	}
	n = strlen(s);
	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*lenp = n / 2;
	return 0;
}

static void
puthex(const void *p, size_t n)
{
	const uint8_t	*b = p;
	size_t		 i;

	if (n == 0)
		fputc('-', stdout);
	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static void
emit(int rc)
{
	if (rc < 0)
		printf("%d", rc);
	else
		puthex(outbuf, (size_t)rc);
	printf("\n");
}

static char *
tok(void)
{
	char *t = strtok(NULL, " \n");

	if (t == NULL) {
		fprintf(stderr, "wirecheck: missing argument\n");
		exit(2);
	}
	return t;
}

static uint64_t
num(void)
{
	return strtoull(tok(), NULL, 0);
}

static uint8_t	scratch[WIRE_MAX_BODY + 64];
static uint8_t	scratch2[WIRE_MAX_BODY + 64];

static size_t
hexarg(uint8_t *out, size_t max)
{
	size_t n;

	if (unhex(tok(), out, max, &n) == -1) {
		fprintf(stderr, "wirecheck: bad hex\n");
		exit(2);
	}
	return n;
}

static void
do_hello(void)
{
	struct wire_hello	h;
	size_t			n;

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.conn_window = (uint32_t)num();
	h.stream_window = (uint32_t)num();
	n = hexarg(scratch, 255);
	h.node_len = (uint8_t)n;
	h.node = (const char *)scratch;
	if (n > 255)
		h.node_len = 0;
	emit(wire_enc_hello(outbuf, cap, &h));
}

static void
do_put(void)
{
	struct wire_put	p;
	uint32_t	stream;
	size_t		n;

	memset(&p, 0, sizeof(p));
	stream = (uint32_t)num();
	if (hexarg(p.put_id, sizeof(p.put_id)) != sizeof(p.put_id))
		exit(2);
	p.hops = (uint8_t)num();
	p.size = num();
	if (hexarg(p.sha256, sizeof(p.sha256)) != sizeof(p.sha256))
		exit(2);
	n = hexarg(scratch, 65535);
	p.key_len = (uint16_t)n;
	p.key = (const char *)scratch;
	emit(wire_enc_put(outbuf, cap, stream, &p));
}

static void
do_text(int goaway)
{
	uint32_t	stream = 0;
	uint16_t	code;
	size_t		n;

	if (!goaway)
		stream = (uint32_t)num();
	code = (uint16_t)num();
	n = hexarg(scratch, sizeof(scratch) - 1);
	scratch[n] = '\0';
	if (goaway)
		emit(wire_enc_goaway(outbuf, cap, code, (const char *)scratch));
	else
		emit(wire_enc_abort(outbuf, cap, stream, code,
		    (const char *)scratch));
}

static void
do_result(void)
{
	static struct wire_entry	 ents[300];
	uint32_t			 stream;
	unsigned int			 n, i;
	size_t				 off = 0, l;

	stream = (uint32_t)num();
	n = (unsigned int)num();
	if (n > 300)
		exit(2);
	for (i = 0; i < n; i++) {
		ents[i].status = (uint8_t)num();
		ents[i].depth = (uint8_t)num();
		l = hexarg(scratch + off, 255);
		ents[i].node = (const char *)scratch + off;
		ents[i].node_len = (uint8_t)l;
		off += l;
		ents[i].bytes = num();
		ents[i].first_us = num();
		ents[i].last_us = num();
		l = hexarg(scratch2 + off, 65535);
		ents[i].reason = (const char *)scratch2 + off;
		ents[i].reason_len = (uint16_t)l;
		off += l;
	}
	emit(wire_enc_result(outbuf, cap, stream, ents, n));
}

static void
describe(const uint8_t *buf, int rc, const struct wire_frame *f)
{
	struct wire_entry	e;
	unsigned int		i;

	printf("rc=%d", rc);
	if (rc < 0) {
		printf("\n");
		return;
	}
	printf(" type=%u stream=%" PRIu32 " len=%" PRIu32 " bodyoff=%td",
	    f->hdr.type, f->hdr.stream, f->hdr.len, f->body - buf);
	switch (f->hdr.type) {
	case WIRE_HELLO:
		printf(" v=%u cw=%" PRIu32 " sw=%" PRIu32 " node=",
		    f->u.hello.version, f->u.hello.conn_window,
		    f->u.hello.stream_window);
		puthex(f->u.hello.node, f->u.hello.node_len);
		break;
	case WIRE_PUT:
		printf(" id=");
		puthex(f->u.put.put_id, WIRE_PUT_ID_LEN);
		printf(" hops=%u size=%" PRIu64 " sha=", f->u.put.hops,
		    f->u.put.size);
		puthex(f->u.put.sha256, WIRE_SHA256_LEN);
		printf(" key=");
		puthex(f->u.put.key, f->u.put.key_len);
		break;
	case WIRE_ABORT:
	case WIRE_GOAWAY:
		printf(" code=%u msg=", f->u.text.code);
		puthex(f->u.text.msg, f->u.text.msg_len);
		break;
	case WIRE_RESULT:
		printf(" count=%u", f->u.result.count);
		for (i = 0; i < f->u.result.count; i++) {
			if (wire_result_entry(f, i, &e) != 0) {
				printf(" entry%u=ERR", i);
				continue;
			}
			printf(" [%u,%u,", e.status, e.depth);
			puthex(e.node, e.node_len);
			printf(",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", e.bytes,
			    e.first_us, e.last_us);
			puthex(e.reason, e.reason_len);
			printf("]");
		}
		/* one past the end must fail */
		if (wire_result_entry(f, f->u.result.count, &e) == 0)
			printf(" past-end-ok");
		break;
	case WIRE_CREDIT:
		printf(" inc=%" PRIu32, f->u.credit);
		break;
	case WIRE_PING:
	case WIRE_PONG:
		printf(" opaque=%" PRIu64, f->u.ping);
		break;
	default:
		break;
	}
	printf("\n");
}

static void
do_decode(void)
{
	static uint8_t		 in[WIRE_HDR_LEN + WIRE_MAX_BODY + 4096];
	struct wire_frame	 f;
	size_t			 n;
	uint8_t			*copy;
	int			 rc;

	n = hexarg(in, sizeof(in));
	/* An exact-size heap copy so ASan catches any read past the end. */
	copy = malloc(n ? n : 1);
	if (copy == NULL)
		exit(2);
	memcpy(copy, in, n);
	memset(&f, 0, sizeof(f));
	rc = wire_decode(copy, n, &f);
	describe(copy, rc, &f);
	free(copy);
}

static void
do_dechdr(void)
{
	uint8_t			in[64];
	struct wire_hdr		h;
	size_t			n;
	int			rc;

	n = hexarg(in, sizeof(in));
	memset(&h, 0, sizeof(h));
	rc = wire_decode_hdr(in, n, &h);
	if (rc < 0)
		printf("rc=%d\n", rc);
	else
		printf("rc=%d len=%" PRIu32 " type=%u stream=%" PRIu32 "\n",
		    rc, h.len, h.type, h.stream);
}

int
main(void)
{
	static char	 line[4 * (WIRE_HDR_LEN + WIRE_MAX_BODY) + 4096];
	char		*cmd;
	uint32_t	 s;
	uint64_t	 a, b;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		cmd = strtok(line, " \n");
		if (cmd == NULL)
			continue;
		if (strcmp(cmd, "cap") == 0) {
			cap = (size_t)num();
			if (cap > OUTCAP)
				cap = OUTCAP;
			printf("ok\n");
		} else if (strcmp(cmd, "hdr") == 0) {
			a = num();
			b = num();
			s = (uint32_t)num();
			wire_put_hdr(outbuf, (uint32_t)a, (uint8_t)b, s);
			emit(WIRE_HDR_LEN);
		} else if (strcmp(cmd, "hello") == 0)
			do_hello();
		else if (strcmp(cmd, "put") == 0)
			do_put();
		else if (strcmp(cmd, "datahdr") == 0) {
			s = (uint32_t)num();
			a = num();
			emit(wire_enc_data_hdr(outbuf, cap, s, (uint32_t)a));
		} else if (strcmp(cmd, "end") == 0)
			emit(wire_enc_end(outbuf, cap, (uint32_t)num()));
		else if (strcmp(cmd, "abort") == 0)
			do_text(0);
		else if (strcmp(cmd, "goaway") == 0)
			do_text(1);
		else if (strcmp(cmd, "credit") == 0) {
			s = (uint32_t)num();
			a = num();
			emit(wire_enc_credit(outbuf, cap, s, (uint32_t)a));
		} else if (strcmp(cmd, "ping") == 0) {
			a = num();
			b = num();
			emit(wire_enc_ping(outbuf, cap, (int)a, b));
		} else if (strcmp(cmd, "result") == 0)
			do_result();
		else if (strcmp(cmd, "decode") == 0)
			do_decode();
		else if (strcmp(cmd, "dechdr") == 0)
			do_dechdr();
		else {
			fprintf(stderr, "wirecheck: unknown command %s\n", cmd);
			return 2;
		}
		fflush(stdout);
	}
	return 0;
}
