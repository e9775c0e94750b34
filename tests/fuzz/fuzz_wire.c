/*
 * libFuzzer target for the wire decoder.  Decodes every frame it can from
 * the input, walks RESULT entries, and re-encodes each decoded frame: the
 * encoders must give back exactly the bytes the decoder accepted.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/wire.c \
 *     tests/fuzz/fuzz_wire.c -o /tmp/fuzz_wire
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint8_t			fuzz_out[WIRE_HDR_LEN + WIRE_MAX_BODY];
static struct wire_entry	fuzz_entries[WIRE_MAX_ENTRIES];

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

static int
fuzz_text(const struct wire_frame *f)
{
	char	msg[WIRE_MAX_TEXT + 1];

	fuzz_check(f->u.text.msg_len <= WIRE_MAX_TEXT);
	memcpy(msg, f->u.text.msg, f->u.text.msg_len);
	msg[f->u.text.msg_len] = '\0';
	if (f->hdr.type == WIRE_GOAWAY)
		return wire_enc_goaway(fuzz_out, sizeof(fuzz_out),
		    f->u.text.code, msg);
	return wire_enc_abort(fuzz_out, sizeof(fuzz_out), f->hdr.stream,
	    f->u.text.code, msg);
}

static int
fuzz_result(const struct wire_frame *f)
{
	const uint8_t	*end = f->body + f->hdr.len;
	unsigned int	 i;

	for (i = 0; i < f->u.result.count; i++) {
		struct wire_entry *e = &fuzz_entries[i];

		fuzz_check(wire_result_entry(f, i, e) == WIRE_OK);
		fuzz_check((const uint8_t *)e->node >= f->body);
		fuzz_check((const uint8_t *)e->reason + e->reason_len <= end);
	}
	fuzz_check(wire_result_entry(f, i, &fuzz_entries[0]) == WIRE_EBODY);
	return wire_enc_result(fuzz_out, sizeof(fuzz_out), f->hdr.stream,
	    fuzz_entries, f->u.result.count);
}

/* Encode f again; returns the length, or -1 if an encoder refused it. */
static int
fuzz_reencode(const struct wire_frame *f)
{
	int	n;

	switch (f->hdr.type) {
	case WIRE_HELLO:
		return wire_enc_hello(fuzz_out, sizeof(fuzz_out), &f->u.hello);
	case WIRE_PUT:
		return wire_enc_put(fuzz_out, sizeof(fuzz_out), f->hdr.stream,
		    &f->u.put);
	case WIRE_DATA:
		n = wire_enc_data_hdr(fuzz_out, sizeof(fuzz_out),
		    f->hdr.stream, f->hdr.len);
		if (n == WIRE_HDR_LEN)
			memcpy(fuzz_out + n, f->body, f->hdr.len);
		return n < 0 ? n : n + (int)f->hdr.len;
	case WIRE_END:
		return wire_enc_end(fuzz_out, sizeof(fuzz_out), f->hdr.stream);
	case WIRE_ABORT:
	case WIRE_GOAWAY:
		return fuzz_text(f);
	case WIRE_RESULT:
		return fuzz_result(f);
	case WIRE_CREDIT:
		return wire_enc_credit(fuzz_out, sizeof(fuzz_out),
		    f->hdr.stream, f->u.credit);
	case WIRE_PING:
	case WIRE_PONG:
		return wire_enc_ping(fuzz_out, sizeof(fuzz_out),
		    f->hdr.type == WIRE_PONG, f->u.ping);
	default:
		abort();	/* the decoder accepted an unknown type */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_frame	 f;
	struct wire_hdr		 h;
	uint8_t			*copy;
	int			 n, hn;

	/* An exact-size copy, so ASan catches any read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	data = copy;

	while ((n = wire_decode(data, size, &f)) > 0) {
		fuzz_check((size_t)n <= size);
		fuzz_check((size_t)n == WIRE_HDR_LEN + f.hdr.len);
		fuzz_check(wire_decode_hdr(data, size, &h) == WIRE_OK);
		fuzz_check(h.len == f.hdr.len && h.type == f.hdr.type &&
		    h.stream == f.hdr.stream);
		fuzz_check(fuzz_reencode(&f) == n);
		fuzz_check(memcmp(fuzz_out, data, (size_t)n) == 0);
		/* Every shorter prefix of a good frame is incomplete. */
		fuzz_check(wire_decode(data, (size_t)n - 1, &f) ==
		    WIRE_EAGAIN);
		data += n;
		size -= (size_t)n;
	}
	fuzz_check(n == WIRE_EAGAIN || n == WIRE_ETOOBIG ||
	    n == WIRE_ETYPE || n == WIRE_EHEADER || n == WIRE_ESTREAM ||
	    n == WIRE_EBODY || n == WIRE_EVERSION);
	/* A header error is the same whichever decoder sees it. */
	hn = wire_decode_hdr(data, size, &h);
	fuzz_check(hn == WIRE_OK || hn == n);
	free(copy);
	return 0;
}
