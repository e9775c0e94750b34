/*
 * wire: the relayd peer protocol, version 1, as pure functions over bytes.
 * No I/O, no allocation on decode: decoded frames point into the input.
 *
 * Every frame is a 12-byte header followed by `len` body bytes.  All
 * integers are unsigned, big-endian (network order).
 *
 *   offset size field
 *   0      4    len        body length in bytes, 0..WIRE_MAX_BODY
 *   4      1    type       enum wire_type
 *   5      1    flags      must be 0 in version 1
 *   6      2    reserved   must be 0
 *   8      4    stream     stream id; 0 for connection-level frames
 *
 * Bodies (offsets relative to the body start):
 *
 * HELLO (stream 0), sent once by each side as its first frame:
 *   0  4  magic "RLYD"
 *   4  2  version (WIRE_VERSION)
 *   6  2  reserved, 0
 *   8  4  conn_window    initial connection-level credit granted to the
 *                        other side for DATA bytes (sum over all streams)
 *   12 4  stream_window  initial credit per new stream, for DATA bytes
 *   16 1  node_len       1..WIRE_MAX_NODE
 *   17 n  node           node id (printable ASCII)
 *
 * PUT (stream != 0), opens a stream.  The side that opened the TCP
 * connection uses odd stream ids, the side that accepted it even ones, so
 * every frame's stream id names one stream unambiguously; an id must not
 * be in use when a PUT opens it:
 *   0  16 put_id         unique 128-bit PUT id (loop protection)
 *   16 1  hops           hop budget left for the receiver's next hops
 *   17 1  flags          0
 *   18 2  key_len        1..WIRE_MAX_KEY
 *   20 8  size           declared payload size in bytes
 *   28 32 sha256         SHA-256 of the whole payload
 *   60 n  key
 *
 * DATA (stream != 0): the body is 1..WIRE_MAX_DATA payload bytes.  A sender
 *   may only send DATA it has credit for, on the stream and on the
 *   connection.
 *
 * END (stream != 0), empty body: all `size` bytes have been sent.
 *
 * ABORT (stream != 0), either direction; the stream is dead for both sides:
 *   0  2  code           enum wire_abort_code
 *   2  2  msg_len        0..WIRE_MAX_TEXT
 *   4  n  msg            human-readable reason
 *
 * RESULT (stream != 0), receiver -> sender, ends the stream; the outcome of
 * the receiving hop and every hop behind it:
 *   0  2  count          0..WIRE_MAX_ENTRIES
 *   2  .. count entries, each:
 *      0  1  status      enum wire_result_status
 *      1  1  depth       hops behind the sender of this RESULT (its
 *                        own entry 0); a hop adds 1 to each entry it
 *                        passes upstream, so at the origin relay this
 *                        is the hop count from the origin (origin = 0)
 *      2  1  node_len    1..WIRE_MAX_NODE
 *      3  8  bytes       payload bytes received by that hop
 *      11 8  first_us    wall clock of its first byte (us since epoch)
 *      19 8  last_us     wall clock of its last byte
 *      27 2  reason_len  0..WIRE_MAX_TEXT
 *      29 n  node, then reason
 *
 * CREDIT (stream 0 = connection window, else that stream's window):
 *   0  4  increment      1..2^31-1 bytes
 *
 * PING, PONG (stream 0):
 *   0  8  opaque         PONG echoes the PING's value
 *
 * GOAWAY (stream 0): the sender opens no new streams and accepts none;
 * streams in flight finish:
 *   0  2  code           enum wire_abort_code
 *   2  2  msg_len        0..WIRE_MAX_TEXT
 *   4  n  msg
 */
#ifndef RELAYD_WIRE_H
#define RELAYD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION		1
#define WIRE_HDR_LEN		12
#define WIRE_MAX_DATA		(64 * 1024)
#define WIRE_MAX_BODY		(256 * 1024)
#define WIRE_MAX_NODE		64
#define WIRE_MAX_KEY		512
#define WIRE_MAX_TEXT		512
#define WIRE_MAX_ENTRIES	255
#define WIRE_PUT_ID_LEN		16
#define WIRE_SHA256_LEN		32
#define WIRE_MAGIC		"RLYD"

enum wire_type {
	WIRE_HELLO = 1,
	WIRE_PUT = 2,
	WIRE_DATA = 3,
	WIRE_END = 4,
	WIRE_ABORT = 5,
	WIRE_RESULT = 6,
	WIRE_CREDIT = 7,
	WIRE_PING = 8,
	WIRE_PONG = 9,
	WIRE_GOAWAY = 10,
};

enum wire_abort_code {
	WIRE_ABORT_NONE = 0,
	WIRE_ABORT_PROTOCOL = 1,	/* malformed or unexpected frame */
	WIRE_ABORT_TOO_LARGE = 2,	/* declared size above max_payload */
	WIRE_ABORT_UPSTREAM_LOST = 3,	/* upstream connection lost mid-stream */
	WIRE_ABORT_TIMEOUT = 4,		/* no progress for the inactivity timeout */
	WIRE_ABORT_LOOP = 5,		/* PUT id already seen on this relay */
	WIRE_ABORT_NO_ROUTE = 6,	/* no route and no store for the key */
	WIRE_ABORT_LIMIT = 7,		/* stream or memory limit reached */
	WIRE_ABORT_SHUTDOWN = 8,	/* relay is draining or stopping */
	WIRE_ABORT_CANCELLED = 9,	/* origin or operator cancelled */
	WIRE_ABORT_INTERNAL = 10,	/* internal error on this relay */
	WIRE_ABORT_SIZE = 11,		/* payload longer or shorter than declared */
};

enum wire_result_status {
	WIRE_RES_STORED = 1,		/* verified and stored on that hop */
	WIRE_RES_FORWARDED = 2,		/* relayed without storing */
	WIRE_RES_FAILED = 3,		/* failed there; reason says why */
};

/* Decode errors; wire_strerror() names them. */
enum wire_err {
	WIRE_OK = 0,
	WIRE_EAGAIN = -1,	/* not a whole frame yet: read more */
	WIRE_ETOOBIG = -2,	/* len above WIRE_MAX_BODY */
	WIRE_ETYPE = -3,	/* unknown frame type */
	WIRE_EHEADER = -4,	/* nonzero flags or reserved bits */
	WIRE_ESTREAM = -5,	/* stream id 0 where not allowed, or vice versa */
	WIRE_EBODY = -6,	/* body length or field out of range */
	WIRE_EVERSION = -7,	/* HELLO with bad magic or version */
};

struct wire_hdr {
	uint32_t	len;
	uint8_t		type;
	uint32_t	stream;
};

struct wire_hello {
	uint16_t	version;
	uint32_t	conn_window;
	uint32_t	stream_window;
	uint8_t		node_len;
	const char	*node;		/* not NUL-terminated */
};

struct wire_put {
	uint8_t		put_id[WIRE_PUT_ID_LEN];
	uint8_t		hops;
	uint16_t	key_len;
	uint64_t	size;
	uint8_t		sha256[WIRE_SHA256_LEN];
	const char	*key;		/* not NUL-terminated */
};

struct wire_text {			/* ABORT and GOAWAY */
	uint16_t	code;
	uint16_t	msg_len;
	const char	*msg;
};

struct wire_entry {
	uint8_t		status;
	uint8_t		depth;
	uint8_t		node_len;
	uint64_t	bytes;
	uint64_t	first_us;
	uint64_t	last_us;
	uint16_t	reason_len;
	const char	*node;
	const char	*reason;
};

struct wire_frame {
	struct wire_hdr	hdr;
	const uint8_t	*body;		/* hdr.len bytes, points into input */
	union {
		struct wire_hello	hello;
		struct wire_put		put;
		struct wire_text	text;
		uint32_t		credit;
		uint64_t		ping;
		struct {
			uint16_t	count;	/* entries: wire_result_entry() */
		} result;
	} u;
};

/*
 * Decode one frame from buf.  Returns the number of bytes consumed (> 0),
 * WIRE_EAGAIN if buf holds no whole frame yet (after checking what header
 * fields it can), or another enum wire_err.  A RESULT body is validated
 * whole here, so wire_result_entry() cannot fail afterwards.
 */
int	wire_decode(const uint8_t *buf, size_t len, struct wire_frame *f);
/*
 * Decode only the header, checked like above, including the body length
 * bounds its type fixes.  Returns WIRE_OK (0, not a byte count),
 * WIRE_EAGAIN if len < WIRE_HDR_LEN and the bytes so far are valid, or
 * another enum wire_err.
 */
int	wire_decode_hdr(const uint8_t *buf, size_t len, struct wire_hdr *h);
/* The i-th entry of a decoded RESULT frame; 0 or WIRE_EBODY. */
int	wire_result_entry(const struct wire_frame *f, unsigned int i,
	    struct wire_entry *e);
const char	*wire_strerror(int err);
const char	*wire_type_name(uint8_t type);
const char	*wire_abort_name(uint16_t code);

/*
 * Encoders write a whole frame (header + body) into out, which has room
 * for cap bytes.  They return the frame length, or -1 if it does not fit
 * or a field is out of range.
 */
void	wire_put_hdr(uint8_t *out, uint32_t len, uint8_t type,
	    uint32_t stream);
int	wire_enc_hello(uint8_t *out, size_t cap, const struct wire_hello *h);
int	wire_enc_put(uint8_t *out, size_t cap, uint32_t stream,
	    const struct wire_put *p);
/* DATA: writes only the 12-byte header; the payload follows separately. */
int	wire_enc_data_hdr(uint8_t *out, size_t cap, uint32_t stream,
	    uint32_t len);
int	wire_enc_end(uint8_t *out, size_t cap, uint32_t stream);
int	wire_enc_abort(uint8_t *out, size_t cap, uint32_t stream,
	    uint16_t code, const char *msg);
int	wire_enc_goaway(uint8_t *out, size_t cap, uint16_t code,
	    const char *msg);
int	wire_enc_credit(uint8_t *out, size_t cap, uint32_t stream,
	    uint32_t increment);
int	wire_enc_ping(uint8_t *out, size_t cap, int pong, uint64_t opaque);
/* RESULT: entries[n]; each entry's node and reason use their _len. */
int	wire_enc_result(uint8_t *out, size_t cap, uint32_t stream,
	    const struct wire_entry *entries, unsigned int n);

#endif
