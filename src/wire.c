/*
 * wire: encode and decode relayd peer protocol frames (see wire.h and
 * relayd-protocol(7)).  Every function here is pure: it reads only the
 * bytes it was given, never more than the lengths say, and allocates
 * nothing.  Decoders are strict so that whatever they accept, the
 * encoders turn back into the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire.h"

#define WIRE_HELLO_FIXED	17
#define WIRE_PUT_FIXED		60
#define WIRE_TEXT_FIXED		4
#define WIRE_ENTRY_FIXED	29
#define WIRE_RESULT_FIXED	2
#define WIRE_RESULT_MAX		(WIRE_RESULT_FIXED + WIRE_MAX_ENTRIES * \
	    (WIRE_ENTRY_FIXED + WIRE_MAX_NODE + WIRE_MAX_TEXT))
#define WIRE_MAX_WINDOW		0x7fffffffU

enum wire_sid {
	WIRE_SID_ZERO,		/* connection-level frame */
	WIRE_SID_NONZERO,	/* stream frame */
	WIRE_SID_ANY,
};

/* What the header alone fixes about each type; indexed by type. */
struct wire_typeinfo {
	const char	*name;
	enum wire_sid	 sid;
	uint32_t	 min;	/* body length bounds */
	uint32_t	 max;
};

static const struct wire_typeinfo wire_types[] = {
	[WIRE_HELLO] = { "HELLO", WIRE_SID_ZERO, WIRE_HELLO_FIXED + 1,
	    WIRE_HELLO_FIXED + WIRE_MAX_NODE },
	[WIRE_PUT] = { "PUT", WIRE_SID_NONZERO, WIRE_PUT_FIXED + 1,
	    WIRE_PUT_FIXED + WIRE_MAX_KEY },
	[WIRE_DATA] = { "DATA", WIRE_SID_NONZERO, 1, WIRE_MAX_DATA },
	[WIRE_END] = { "END", WIRE_SID_NONZERO, 0, 0 },
	[WIRE_ABORT] = { "ABORT", WIRE_SID_NONZERO, WIRE_TEXT_FIXED,
	    WIRE_TEXT_FIXED + WIRE_MAX_TEXT },
	[WIRE_RESULT] = { "RESULT", WIRE_SID_NONZERO, WIRE_RESULT_FIXED,
	    WIRE_RESULT_MAX },
	[WIRE_CREDIT] = { "CREDIT", WIRE_SID_ANY, 4, 4 },
	[WIRE_PING] = { "PING", WIRE_SID_ZERO, 8, 8 },
	[WIRE_PONG] = { "PONG", WIRE_SID_ZERO, 8, 8 },
	[WIRE_GOAWAY] = { "GOAWAY", WIRE_SID_ZERO, WIRE_TEXT_FIXED,
	    WIRE_TEXT_FIXED + WIRE_MAX_TEXT },
};
#define WIRE_NTYPES	(sizeof(wire_types) / sizeof(wire_types[0]))

static const char *const wire_abort_names[] = {
	[WIRE_ABORT_NONE] = "none",
	[WIRE_ABORT_PROTOCOL] = "protocol",
	[WIRE_ABORT_TOO_LARGE] = "too-large",
	[WIRE_ABORT_UPSTREAM_LOST] = "upstream-lost",
	[WIRE_ABORT_TIMEOUT] = "timeout",
	[WIRE_ABORT_LOOP] = "loop",
	[WIRE_ABORT_NO_ROUTE] = "no-route",
	[WIRE_ABORT_LIMIT] = "limit",
	[WIRE_ABORT_SHUTDOWN] = "shutdown",
	[WIRE_ABORT_CANCELLED] = "cancelled",
	[WIRE_ABORT_INTERNAL] = "internal",
	[WIRE_ABORT_SIZE] = "size",
};
#define WIRE_NABORTS	(sizeof(wire_abort_names) / sizeof(wire_abort_names[0]))

static uint16_t
wire_get16(const uint8_t *p)
{
	return (uint16_t)((unsigned int)p[0] << 8 | p[1]);
}

static uint32_t
wire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
wire_get64(const uint8_t *p)
{
	return (uint64_t)wire_get32(p) << 32 | wire_get32(p + 4);
}

static void
wire_set16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void
wire_set32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

static void
wire_set64(uint8_t *p, uint64_t v)
{
	wire_set32(p, v >> 32);
	wire_set32(p + 4, v & 0xffffffffU);
}

static const struct wire_typeinfo *
wire_typeinfo(uint8_t type)
{
	if (type >= WIRE_NTYPES || wire_types[type].name == NULL)
		return NULL;
	return &wire_types[type];
}

/*
 * Node ids end up in logs and key=value lines, and must be names
 * relayd.conf can hold: printable ASCII without blanks (0x21 to 0x7e).
 */
static int
wire_node_ok(const char *node, size_t len)
{
	size_t	i;

	if (len == 0 || len > WIRE_MAX_NODE || node == NULL)
		return 0;
	for (i = 0; i < len; i++)
		if (node[i] < 0x21 || node[i] > 0x7e)
			return 0;
	return 1;
}

/* Text may be anything but NUL, so it survives a trip through a C string. */
static int
wire_text_ok(const char *s, size_t len)
{
	if (len > WIRE_MAX_TEXT)
		return 0;
	if (len == 0)
		return 1;
	return s != NULL && memchr(s, '\0', len) == NULL;
}

/*
 * Check as much of a header as the first len bytes hold, so garbage is
 * refused before anyone waits for the rest of it.
 */
static int
wire_check_hdr(const uint8_t *buf, size_t len, struct wire_hdr *h)
{
	const struct wire_typeinfo	*ti = NULL;
	uint32_t			 blen = 0, sid;

	if (len >= 4) {
		blen = wire_get32(buf);
		if (blen > WIRE_MAX_BODY)
			return WIRE_ETOOBIG;
	}
	if (len >= 5 && (ti = wire_typeinfo(buf[4])) == NULL)
		return WIRE_ETYPE;
	if (len >= 6 && buf[5] != 0)
		return WIRE_EHEADER;
	if (len >= 8 && (buf[6] != 0 || buf[7] != 0))
		return WIRE_EHEADER;
	if (len < WIRE_HDR_LEN)
		return WIRE_EAGAIN;

	sid = wire_get32(buf + 8);
	if ((ti->sid == WIRE_SID_ZERO && sid != 0) ||
	    (ti->sid == WIRE_SID_NONZERO && sid == 0))
		return WIRE_ESTREAM;
	if (blen < ti->min || blen > ti->max)
		return WIRE_EBODY;
	h->len = blen;
	h->type = buf[4];
	h->stream = sid;
	return WIRE_OK;
}

int
wire_decode_hdr(const uint8_t *buf, size_t len, struct wire_hdr *h)
{
	return wire_check_hdr(buf, len, h);
}

static int
wire_dec_hello(const uint8_t *b, uint32_t len, struct wire_hello *h)
{
	if (memcmp(b, WIRE_MAGIC, 4) != 0)
		return WIRE_EVERSION;
	h->version = wire_get16(b + 4);
	if (h->version != WIRE_VERSION)
		return WIRE_EVERSION;
	if (wire_get16(b + 6) != 0)
		return WIRE_EHEADER;
	h->conn_window = wire_get32(b + 8);
	h->stream_window = wire_get32(b + 12);
	h->node_len = b[16];
	h->node = (const char *)b + WIRE_HELLO_FIXED;
	if (h->conn_window > WIRE_MAX_WINDOW ||
	    h->stream_window > WIRE_MAX_WINDOW)
		return WIRE_EBODY;
	if (len != WIRE_HELLO_FIXED + (uint32_t)h->node_len ||
	    !wire_node_ok(h->node, h->node_len))
		return WIRE_EBODY;
	return WIRE_OK;
}

static int
wire_dec_put(const uint8_t *b, uint32_t len, struct wire_put *p)
{
	memcpy(p->put_id, b, WIRE_PUT_ID_LEN);
	p->hops = b[16];
	if (b[17] != 0)
		return WIRE_EHEADER;
	p->key_len = wire_get16(b + 18);
	p->size = wire_get64(b + 20);
	memcpy(p->sha256, b + 28, WIRE_SHA256_LEN);
	p->key = (const char *)b + WIRE_PUT_FIXED;
	if (p->key_len == 0 || p->key_len > WIRE_MAX_KEY ||
	    len != WIRE_PUT_FIXED + (uint32_t)p->key_len)
		return WIRE_EBODY;
	return WIRE_OK;
}

static int
wire_dec_text(const uint8_t *b, uint32_t len, struct wire_text *t)
{
	t->code = wire_get16(b);
	t->msg_len = wire_get16(b + 2);
	t->msg = (const char *)b + WIRE_TEXT_FIXED;
	if (len != WIRE_TEXT_FIXED + (uint32_t)t->msg_len ||
	    !wire_text_ok(t->msg, t->msg_len))
		return WIRE_EBODY;
	return WIRE_OK;
}

/* One RESULT entry from the avail bytes at p: its length, or -1. */
static int
wire_dec_entry(const uint8_t *p, size_t avail, struct wire_entry *e)
{
	size_t	need;

	if (avail < WIRE_ENTRY_FIXED)
		return -1;
	e->status = p[0];
	e->depth = p[1];
	e->node_len = p[2];
	e->bytes = wire_get64(p + 3);
	e->first_us = wire_get64(p + 11);
	e->last_us = wire_get64(p + 19);
	e->reason_len = wire_get16(p + 27);
	if (e->status < WIRE_RES_STORED || e->status > WIRE_RES_FAILED)
		return -1;
	need = WIRE_ENTRY_FIXED + (size_t)e->node_len + e->reason_len;
	if (e->node_len == 0 || e->node_len > WIRE_MAX_NODE ||
	    e->reason_len > WIRE_MAX_TEXT || need > avail)
		return -1;
	e->node = (const char *)p + WIRE_ENTRY_FIXED;
	e->reason = e->node + e->node_len;
	if (!wire_node_ok(e->node, e->node_len) ||
	    !wire_text_ok(e->reason, e->reason_len))
		return -1;
	return (int)need;
}

static int
wire_dec_result(const uint8_t *b, uint32_t len, uint16_t *countp)
{
	struct wire_entry	e;
	size_t			off = WIRE_RESULT_FIXED;
	unsigned int		i, count;
	int			n;

	count = wire_get16(b);
	if (count > WIRE_MAX_ENTRIES)
		return WIRE_EBODY;
	for (i = 0; i < count; i++) {
		if ((n = wire_dec_entry(b + off, len - off, &e)) < 0)
			return WIRE_EBODY;
		off += (size_t)n;
	}
	if (off != len)
		return WIRE_EBODY;
	*countp = (uint16_t)count;
	return WIRE_OK;
}

static int
wire_dec_credit(const uint8_t *b, uint32_t *credit)
{
	*credit = wire_get32(b);
	if (*credit == 0 || *credit > WIRE_MAX_WINDOW)
		return WIRE_EBODY;
	return WIRE_OK;
}

static int
wire_dec_body(struct wire_frame *f)
{
	const uint8_t	*b = f->body;
	uint32_t	 len = f->hdr.len;

	switch (f->hdr.type) {
	case WIRE_HELLO:
		return wire_dec_hello(b, len, &f->u.hello);
	case WIRE_PUT:
		return wire_dec_put(b, len, &f->u.put);
	case WIRE_ABORT:
	case WIRE_GOAWAY:
		return wire_dec_text(b, len, &f->u.text);
	case WIRE_RESULT:
		return wire_dec_result(b, len, &f->u.result.count);
	case WIRE_CREDIT:
		return wire_dec_credit(b, &f->u.credit);
	case WIRE_PING:
	case WIRE_PONG:
		f->u.ping = wire_get64(b);
		return WIRE_OK;
	default:	/* DATA, END: the header check said all there is */
		return WIRE_OK;
	}
}

int
wire_decode(const uint8_t *buf, size_t len, struct wire_frame *f)
{
	int	rv;

	memset(f, 0, sizeof(*f));
	if ((rv = wire_check_hdr(buf, len, &f->hdr)) != WIRE_OK)
		return rv;
	if (len - WIRE_HDR_LEN < f->hdr.len)
		return WIRE_EAGAIN;
	f->body = buf + WIRE_HDR_LEN;
	if ((rv = wire_dec_body(f)) != WIRE_OK)
		return rv;
	return WIRE_HDR_LEN + (int)f->hdr.len;
}

int
wire_result_entry(const struct wire_frame *f, unsigned int i,
    struct wire_entry *e)
{
	size_t		off = WIRE_RESULT_FIXED;
	unsigned int	j;
	int		n;

	if (f->hdr.type != WIRE_RESULT || i >= f->u.result.count)
		return WIRE_EBODY;
	for (j = 0; j <= i; j++) {
		n = wire_dec_entry(f->body + off, f->hdr.len - off, e);
		if (n < 0)
			return WIRE_EBODY;
		off += (size_t)n;
	}
	return WIRE_OK;
}

const char *
wire_strerror(int err)
{
	switch (err) {
	case WIRE_OK:
		return "ok";
	case WIRE_EAGAIN:
		return "incomplete frame";
	case WIRE_ETOOBIG:
		return "frame body too large";
	case WIRE_ETYPE:
		return "unknown frame type";
	case WIRE_EHEADER:
		return "nonzero flags or reserved field";
	case WIRE_ESTREAM:
		return "stream id not allowed for frame type";
	case WIRE_EBODY:
		return "malformed frame body";
	case WIRE_EVERSION:
		return "bad magic or protocol version";
	default:
		return "unknown error";
	}
}

const char *
wire_type_name(uint8_t type)
{
	const struct wire_typeinfo	*ti;

	if ((ti = wire_typeinfo(type)) == NULL)
		return "UNKNOWN";
	return ti->name;
}

const char *
wire_abort_name(uint16_t code)
{
	if (code >= WIRE_NABORTS)
		return "unknown";
	return wire_abort_names[code];
}

void
wire_put_hdr(uint8_t *out, uint32_t len, uint8_t type, uint32_t stream)
{
	wire_set32(out, len);
	out[4] = type;
	out[5] = 0;
	out[6] = 0;
	out[7] = 0;
	wire_set32(out + 8, stream);
}

int
wire_enc_hello(uint8_t *out, size_t cap, const struct wire_hello *h)
{
	uint8_t	*b = out + WIRE_HDR_LEN;
	size_t	 blen = WIRE_HELLO_FIXED + (size_t)h->node_len;

	if (!wire_node_ok(h->node, h->node_len) ||
	    h->conn_window > WIRE_MAX_WINDOW ||
	    h->stream_window > WIRE_MAX_WINDOW || cap < WIRE_HDR_LEN + blen)
		return -1;
	wire_put_hdr(out, (uint32_t)blen, WIRE_HELLO, 0);
	memcpy(b, WIRE_MAGIC, 4);
	wire_set16(b + 4, WIRE_VERSION);	/* h->version is ignored */
	wire_set16(b + 6, 0);
	wire_set32(b + 8, h->conn_window);
	wire_set32(b + 12, h->stream_window);
	b[16] = h->node_len;
	memcpy(b + WIRE_HELLO_FIXED, h->node, h->node_len);
	return (int)(WIRE_HDR_LEN + blen);
}

int
wire_enc_put(uint8_t *out, size_t cap, uint32_t stream,
    const struct wire_put *p)
{
	uint8_t	*b = out + WIRE_HDR_LEN;
	size_t	 blen = WIRE_PUT_FIXED + (size_t)p->key_len;

	if (stream == 0 || p->key == NULL || p->key_len == 0 ||
	    p->key_len > WIRE_MAX_KEY || cap < WIRE_HDR_LEN + blen)
		return -1;
	wire_put_hdr(out, (uint32_t)blen, WIRE_PUT, stream);
	memcpy(b, p->put_id, WIRE_PUT_ID_LEN);
	b[16] = p->hops;
	b[17] = 0;
	wire_set16(b + 18, p->key_len);
	wire_set64(b + 20, p->size);
	memcpy(b + 28, p->sha256, WIRE_SHA256_LEN);
	memcpy(b + WIRE_PUT_FIXED, p->key, p->key_len);
	return (int)(WIRE_HDR_LEN + blen);
}

int
wire_enc_data_hdr(uint8_t *out, size_t cap, uint32_t stream, uint32_t len)
{
	if (stream == 0 || len == 0 || len > WIRE_MAX_DATA ||
	    cap < WIRE_HDR_LEN)
		return -1;
	wire_put_hdr(out, len, WIRE_DATA, stream);
	return WIRE_HDR_LEN;
}

int
wire_enc_end(uint8_t *out, size_t cap, uint32_t stream)
{
	if (stream == 0 || cap < WIRE_HDR_LEN)
		return -1;
	wire_put_hdr(out, 0, WIRE_END, stream);
	return WIRE_HDR_LEN;
}

/* strlen(s), but stops looking past max; NULL is empty. */
static size_t
wire_strlen(const char *s, size_t max)
{
	size_t	n = 0;

	if (s == NULL)
		return 0;
	while (n <= max && s[n] != '\0')
		n++;
	return n;
}

static int
wire_enc_text(uint8_t *out, size_t cap, uint8_t type, uint32_t stream,
    uint16_t code, const char *msg)
{
	size_t	mlen = wire_strlen(msg, WIRE_MAX_TEXT);
	size_t	blen = WIRE_TEXT_FIXED + mlen;

	if (mlen > WIRE_MAX_TEXT || cap < WIRE_HDR_LEN + blen)
		return -1;
	wire_put_hdr(out, (uint32_t)blen, type, stream);
	wire_set16(out + WIRE_HDR_LEN, code);
	wire_set16(out + WIRE_HDR_LEN + 2, (uint16_t)mlen);
	if (mlen > 0)
		memcpy(out + WIRE_HDR_LEN + WIRE_TEXT_FIXED, msg, mlen);
	return (int)(WIRE_HDR_LEN + blen);
}

int
wire_enc_abort(uint8_t *out, size_t cap, uint32_t stream, uint16_t code,
    const char *msg)
{
	if (stream == 0)
		return -1;
	return wire_enc_text(out, cap, WIRE_ABORT, stream, code, msg);
}

int
wire_enc_goaway(uint8_t *out, size_t cap, uint16_t code, const char *msg)
{
	return wire_enc_text(out, cap, WIRE_GOAWAY, 0, code, msg);
}

int
wire_enc_credit(uint8_t *out, size_t cap, uint32_t stream,
    uint32_t increment)
{
	if (increment == 0 || increment > WIRE_MAX_WINDOW ||
	    cap < WIRE_HDR_LEN + 4)
		return -1;
	wire_put_hdr(out, 4, WIRE_CREDIT, stream);
	wire_set32(out + WIRE_HDR_LEN, increment);
	return WIRE_HDR_LEN + 4;
}

int
wire_enc_ping(uint8_t *out, size_t cap, int pong, uint64_t opaque)
{
	if (cap < WIRE_HDR_LEN + 8)
		return -1;
	wire_put_hdr(out, 8, pong ? WIRE_PONG : WIRE_PING, 0);
	wire_set64(out + WIRE_HDR_LEN, opaque);
	return WIRE_HDR_LEN + 8;
}

/* The encoded length of one entry, or 0 if it cannot be encoded. */
static size_t
wire_entry_len(const struct wire_entry *e)
{
	if (e->status < WIRE_RES_STORED || e->status > WIRE_RES_FAILED)
		return 0;
	if (!wire_node_ok(e->node, e->node_len) ||
	    !wire_text_ok(e->reason, e->reason_len))
		return 0;
	return WIRE_ENTRY_FIXED + (size_t)e->node_len + e->reason_len;
}

static size_t
wire_enc_entry(uint8_t *p, const struct wire_entry *e)
{
	p[0] = e->status;
	p[1] = e->depth;
	p[2] = e->node_len;
	wire_set64(p + 3, e->bytes);
	wire_set64(p + 11, e->first_us);
	wire_set64(p + 19, e->last_us);
	wire_set16(p + 27, e->reason_len);
	memcpy(p + WIRE_ENTRY_FIXED, e->node, e->node_len);
	if (e->reason_len > 0)
		memcpy(p + WIRE_ENTRY_FIXED + e->node_len, e->reason,
		    e->reason_len);
	return WIRE_ENTRY_FIXED + (size_t)e->node_len + e->reason_len;
}

int
wire_enc_result(uint8_t *out, size_t cap, uint32_t stream,
    const struct wire_entry *entries, unsigned int n)
{
	size_t		blen = WIRE_RESULT_FIXED, elen, off;
	unsigned int	i;

	if (stream == 0 || n > WIRE_MAX_ENTRIES || (n > 0 && entries == NULL))
		return -1;
	for (i = 0; i < n; i++) {
		if ((elen = wire_entry_len(&entries[i])) == 0)
			return -1;
		blen += elen;
	}
	if (cap < WIRE_HDR_LEN + blen)
		return -1;
	wire_put_hdr(out, (uint32_t)blen, WIRE_RESULT, stream);
	wire_set16(out + WIRE_HDR_LEN, (uint16_t)n);
	off = WIRE_HDR_LEN + WIRE_RESULT_FIXED;
	for (i = 0; i < n; i++)
		off += wire_enc_entry(out + off, &entries[i]);
	return (int)off;
}
