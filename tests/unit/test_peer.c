/*
 * Unit tests for one peer link, seen from the remote end: the handshake,
 * keepalive, the output bound, PING/PONG folding, credit overflow,
 * framing errors and a PUT in, with every timeout driven by the fake
 * clock (clock_fake_advance), never by waiting.
 *
 * The daemon's modules are linked in and this file stands in for
 * relayd.c: it loads a plaintext config, opens the store, and hands
 * peer_listen() a listening Unix socket, as systemd would.  Each test
 * connects to it and plays the remote relay by hand: it writes frames
 * encoded with src/wire.c and decodes what relayd sends back with
 * wire_decode().  Only the peer's public behaviour is looked at (bytes
 * on the socket, whether relayd reads them, the socket closing, the
 * counters in `stats`, peer_totals() and session_count()), never the
 * peer's structs, so the tests hold whatever the peer and pipe modules
 * look like inside.  The loop runs a bounded number of turns that never
 * wait (EVLOOP_NONBLOCK), except where the store's worker thread must
 * answer (turn_worker).
 *
 * A Unix socket, not TCP, because there SIOCOUTQ says how many of our
 * bytes relayd has not read yet: that is how the tests see relayd stop
 * reading a link whose output is over max_output_buffer.  The stream
 * credit test needs a stream relayd opened, so there relayd dials us
 * instead, as its configured next hop "n" on a loopback TCP port.
 */
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <linux/sockios.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "fixture.h"
#include "listener.h"
#include "log.h"
#include "outcome.h"
#include "peer.h"
#include "route.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "wire.h"

/* The daemon context relayd.c defines; this test is the modules' main. */
struct relayd	*env;

#define HANDSHAKE	2.0
#define IDLE		6.0
#define OUT_TIMEOUT	4.0
#define MAX_OUTPUT	(2 * 1024 * 1024)	/* the smallest allowed */
#define CONN_WINDOW	(4 * 1024 * 1024)	/* relayd's defaults */
#define STREAM_WINDOW	(1024 * 1024)
#define TURNS		400		/* loop turns any wait may take */
#define IN_MAX		(1024 * 1024)	/* relayd's bytes kept to decode */

struct fixture {
	char		 dir[64];
	struct relayd	 relayd;
	int		 fd;		/* our end of the link */
	int		 lfd;		/* "n"'s listener, or -1 */
	int		 eof;		/* read gave 0 or ECONNRESET */
	uint8_t		 in[IN_MAX];	/* what relayd sent us */
	size_t		 inlen;
	size_t		 dropped;	/* read after in[] was full */
};

/*
 * hop_port 0: no configured peer.  Else relayd dials peer "n" there, and
 * keys under "f/" are forwarded to it.
 */
static void
write_conf(const char *path, const char *dir, int hop_port)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "node_id = \"r\";\ntls = false;\n"
	    "control_socket = \"%s/ctl.sock\";\nstore_dir = \"%s/store\";\n"
	    "max_payload = 1048576;\nhandshake_timeout = %.1f;\n"
	    "idle_timeout = %.1f;\noutput_timeout = %.1f;\n"
	    "max_output_buffer = %d;\n", dir, dir, HANDSHAKE, IDLE,
	    OUT_TIMEOUT, MAX_OUTPUT);
	if (hop_port == 0)
		fprintf(f, "peers = ( );\nroutes = ( ");
	else
		fprintf(f, "peers = ( { name = \"n\"; address = "
		    "\"127.0.0.1:%d\"; } );\nroutes = ( { prefix = \"f/\"; "
		    "hops = [ \"n\" ]; mode = \"fanout\"; store = false; }, ",
		    hop_port);
	fprintf(f, "{ prefix = \"\"; hops = [ ]; mode = \"fanout\"; "
	    "store = true; } );\n");
	fclose(f);
}

/* One pass of the loop over what is ready now; it never waits. */
static void
turn(void)
{
	event_base_loop(env->base, EVLOOP_NONBLOCK);
}

/*
 * A turn that may wait up to 10 ms of real time: only for the store's
 * worker thread, whose completions come back through the loop.
 */
static void
turn_worker(void)
{
	struct timeval tick = { 0, 10000 };

	event_base_loopexit(env->base, &tick);
	event_base_loop(env->base, EVLOOP_ONCE);
}

static void
turns(int n)
{
	while (n-- > 0)
		turn();
}

/* Read what relayd sent (non-blocking) into fx->in. */
static void
rd(struct fixture *fx)
{
	static uint8_t scratch[65536];
	ssize_t n;

	for (;;) {
		if (fx->inlen < sizeof(fx->in))
			n = read(fx->fd, fx->in + fx->inlen,
			    sizeof(fx->in) - fx->inlen);
		else
			n = read(fx->fd, scratch, sizeof(scratch));
		if (n == 0 || (n == -1 && errno == ECONNRESET)) {
			fx->eof = 1;
			return;
		}
		if (n < 0)
			return;
		if (fx->inlen < sizeof(fx->in))
			fx->inlen += (size_t)n;
		else
			fx->dropped += (size_t)n;
	}
}

/* The idx-th frame of type t relayd sent (0 the first), or 0. */
static int
frame(struct fixture *fx, uint8_t t, int idx, struct wire_frame *out)
{
	struct wire_frame f;
	size_t off = 0;
	int k;

	while ((k = wire_decode(fx->in + off, fx->inlen - off, &f)) > 0) {
		if (f.hdr.type == t && idx-- == 0) {
			if (out != NULL)
				*out = f;
			return 1;
		}
		off += (size_t)k;
	}
	return 0;
}

static int
count(struct fixture *fx, uint8_t t)
{
	int n = 0;

	while (frame(fx, t, n, NULL))
		n++;
	return n;
}

/* Turn the loop and read until relayd sent n frames of type t. */
static void
wait_frames(struct fixture *fx, uint8_t t, int n)
{
	int i;

	for (i = 0; i < TURNS && count(fx, t) < n && !fx->eof; i++) {
		turn();
		rd(fx);
	}
	assert_int_equal(count(fx, t), n);
}

static void
wait_eof(struct fixture *fx)
{
	int i;

	for (i = 0; i < TURNS && !fx->eof; i++) {
		turn();
		rd(fx);
	}
	assert_true(fx->eof);
}

static unsigned int
links(void)
{
	struct peer_totals t;

	peer_totals(&t);
	return t.links;
}

static unsigned int
links_up(void)
{
	struct peer_totals t;

	peer_totals(&t);
	return t.up;
}

/* relayd has not closed its end (we may not have read everything). */
static int
is_open(struct fixture *fx)
{
	struct pollfd pfd = { fx->fd, POLLIN | POLLRDHUP, 0 };

	assert_true(poll(&pfd, 1, 0) >= 0);
	return (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR)) == 0;
}

/* Our bytes relayd has not read yet. */
static int
outq(struct fixture *fx)
{
	int n = 0;

	assert_int_equal(ioctl(fx->fd, SIOCOUTQ, &n), 0);
	return n;
}

/* Write every byte, turning the loop while the socket is full. */
static void
send_all(struct fixture *fx, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;
	int i;

	for (i = 0; len > 0 && i < TURNS; i++) {
		if ((n = write(fx->fd, p, len)) > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		assert_true(n == -1 && errno == EAGAIN);
		turn();
	}
	assert_int_equal(len, 0);
}

/* Send the bytes, then let relayd read and answer them. */
static void
send_turn(struct fixture *fx, const void *buf, size_t len)
{
	send_all(fx, buf, len);
	turns(3);
	rd(fx);
}

/* --- setup: relayd listening on a Unix socket, and our connection --- */

static int
listen_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >=
	    0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int
connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	return fd;
}

static void
start_relayd(struct fixture *fx, int hop_port)
{
	char path[128], err[1024];

	snprintf(path, sizeof(path), "%s/relayd.conf", fx->dir);
	write_conf(path, fx->dir, hop_port);
	fixture_daemon_up(&fx->relayd, path);
	peer_set_sink(&session_sink_ops);	/* relayd_setup() does */
	snprintf(path, sizeof(path), "%s/peer.sock", fx->dir);
	if (peer_listen(NULL, NULL, listen_unix(path), err,
	    sizeof(err)) == -1)
		fail_msg("peer_listen: %s", err);
	peer_start_outbound();		/* dials "n", if configured */
	memset(&stats, 0, sizeof(stats));
}

/*
 * relayd running, and our connection accepted: relayd's HELLO (which it
 * sends at once, without waiting for ours) is in fx->in.
 */
static int
setup(void **state)
{
	struct fixture *fx;
	char path[128];

	assert_non_null(fx = calloc(1, sizeof(*fx)));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_peer.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	start_relayd(fx, 0);
	snprintf(path, sizeof(path), "%s/peer.sock", fx->dir);
	fx->lfd = -1;
	fx->fd = connect_unix(path);
	wait_frames(fx, WIRE_HELLO, 1);
	assert_int_equal(links(), 1);
	assert_int_equal(links_up(), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->fd >= 0)
		close(fx->fd);
	if (fx->lfd >= 0)
		close(fx->lfd);
	peer_listen_close();
	fixture_daemon_down();
	fixture_rm_tree(fx->dir);
	free(fx);
	return 0;
}

/* --- frames we send --- */

static size_t
enc_hello_w(uint8_t *buf, size_t cap, uint32_t conn_window,
    uint32_t stream_window)
{
	struct wire_hello h = { 1, conn_window, stream_window, 1, NULL };
	int n;

	/* Where relayd dials us we are its peer "n"; elsewhere just "t". */
	h.node = peer_find_outbound("n") != NULL ? "n" : "t";
	assert_true((n = wire_enc_hello(buf, cap, &h)) > 0);
	return (size_t)n;
}

static size_t
enc_hello(uint8_t *buf, size_t cap, uint32_t conn_window)
{
	return enc_hello_w(buf, cap, conn_window, STREAM_WINDOW);
}

/* Our HELLO, and relayd takes the link up. */
static void
hello_w(struct fixture *fx, uint32_t conn_window, uint32_t stream_window)
{
	uint8_t buf[128];
	int i;

	send_turn(fx, buf, enc_hello_w(buf, sizeof(buf), conn_window,
	    stream_window));
	for (i = 0; i < TURNS && links_up() == 0; i++)
		turn();
	assert_int_equal(links_up(), 1);
}

static void
hello(struct fixture *fx, uint32_t conn_window)
{
	hello_w(fx, conn_window, STREAM_WINDOW);
}

static void
send_ping(struct fixture *fx, uint64_t value)
{
	uint8_t buf[WIRE_HDR_LEN + 8];

	assert_int_equal(wire_enc_ping(buf, sizeof(buf), 0, value),
	    sizeof(buf));
	send_turn(fx, buf, sizeof(buf));
}

/* A PUT of size bytes of `fill` on stream id; the frame's length. */
static size_t
enc_put(uint8_t *buf, size_t cap, uint32_t id, uint64_t size,
    uint8_t fill, uint8_t put_id)
{
	static uint8_t data[65536];
	struct wire_put put;
	int n;

	assert_true(size <= sizeof(data));
	memset(data, fill, size);
	memset(&put, 0, sizeof(put));
	memset(put.put_id, put_id, sizeof(put.put_id));
	put.hops = 4;
	put.key = "k";
	put.key_len = 1;
	put.size = size;
	EVP_Digest(data, size, put.sha256, NULL, EVP_sha256(), NULL);
	assert_true((n = wire_enc_put(buf, cap, id, &put)) > 0);
	return (size_t)n;
}

/*
 * relayd answered a protocol error: GOAWAY code protocol naming it
 * (msg, if not NULL, is in its text), then it closed the link, and the
 * link is gone from its list.
 */
static void
assert_goaway_closed(struct fixture *fx, const char *msg)
{
	struct wire_frame f;
	int i;

	wait_eof(fx);
	assert_int_equal(count(fx, WIRE_GOAWAY), 1);
	assert_true(frame(fx, WIRE_GOAWAY, 0, &f));
	assert_int_equal(f.u.text.code, WIRE_ABORT_PROTOCOL);
	if (msg != NULL && memmem(f.u.text.msg, f.u.text.msg_len, msg,
	    strlen(msg)) == NULL)
		fail_msg("GOAWAY says \"%.*s\", not \"%s\"",
		    (int)f.u.text.msg_len, f.u.text.msg, msg);
	for (i = 0; i < TURNS && links() > 0; i++)
		turn();
	assert_int_equal(links(), 0);
}

/* Closed without a GOAWAY, and gone from relayd's list. */
static void
assert_dropped(struct fixture *fx)
{
	int i;

	wait_eof(fx);
	assert_int_equal(count(fx, WIRE_GOAWAY), 0);
	for (i = 0; i < TURNS && links() > 0; i++)
		turn();
	assert_int_equal(links(), 0);
}

/* Still open after the loop had its chance to close it. */
static void
assert_open(struct fixture *fx)
{
	turns(5);
	rd(fx);
	assert_false(fx->eof);
	assert_true(is_open(fx));
	assert_int_equal(links(), 1);
}

/* --- the handshake --- */

/*
 * relayd's HELLO comes first and at once: version 1, its node id, its
 * configured windows.  Ours, sent one byte per loop turn, takes the link
 * up; nothing else comes back for it (no GOAWAY), and the link stays.
 */
static void
test_hello_ok(void **state)
{
	struct fixture *fx = *state;
	struct wire_frame f;
	uint8_t buf[128];
	size_t i, n;

	assert_true(frame(fx, WIRE_HELLO, 0, &f));
	assert_int_equal(f.u.hello.version, WIRE_VERSION);
	assert_int_equal(f.u.hello.conn_window, CONN_WINDOW);
	assert_int_equal(f.u.hello.stream_window, STREAM_WINDOW);
	assert_int_equal(f.u.hello.node_len, 1);
	assert_memory_equal(f.u.hello.node, "r", 1);
	n = enc_hello(buf, sizeof(buf), CONN_WINDOW);
	for (i = 0; i < n; i++) {
		assert_int_equal(links_up(), 0);
		send_turn(fx, buf + i, 1);
	}
	turns(5);
	assert_int_equal(links_up(), 1);
	assert_open(fx);
	assert_int_equal(count(fx, WIRE_HELLO), 1);
	assert_int_equal(count(fx, WIRE_GOAWAY), 0);
}

/* A HELLO with another magic: GOAWAY protocol, then the link closes. */
static void
test_hello_bad_magic(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[128];
	size_t n;

	n = enc_hello(buf, sizeof(buf), CONN_WINDOW);
	memcpy(buf + WIRE_HDR_LEN, "RLYX", 4);
	send_turn(fx, buf, n);
	assert_goaway_closed(fx, wire_strerror(WIRE_EVERSION));
	assert_int_equal(links_up(), 0);
}

/* Version 2: not negotiated, refused the same way. */
static void
test_hello_bad_version(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[128];
	size_t n;

	n = enc_hello(buf, sizeof(buf), CONN_WINDOW);
	buf[WIRE_HDR_LEN + 4] = 0;
	buf[WIRE_HDR_LEN + 5] = 2;
	send_turn(fx, buf, n);
	assert_goaway_closed(fx, wire_strerror(WIRE_EVERSION));
}

/* Any other frame first (a PING here): GOAWAY protocol. */
static void
test_hello_not_first(void **state)
{
	struct fixture *fx = *state;

	send_ping(fx, 7);
	assert_goaway_closed(fx, "expected HELLO");
	assert_int_equal(count(fx, WIRE_PONG), 0);
}

/*
 * No HELLO from us: relayd gives up after handshake_timeout of fake
 * time, not before, and closes without a GOAWAY.
 */
static void
test_handshake_timeout(void **state)
{
	struct fixture *fx = *state;

	clock_fake_advance(HANDSHAKE - 0.1);
	assert_open(fx);
	clock_fake_advance(0.2);
	assert_dropped(fx);
	assert_int_equal(count(fx, WIRE_HELLO), 1);
}

/* A partial HELLO is no HELLO: the same bound holds. */
static void
test_handshake_timeout_partial(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[128];
	size_t n;

	n = enc_hello(buf, sizeof(buf), CONN_WINDOW);
	send_turn(fx, buf, n - 1);
	clock_fake_advance(HANDSHAKE - 0.1);
	assert_open(fx);
	assert_int_equal(links_up(), 0);
	clock_fake_advance(0.2);
	assert_dropped(fx);
}

/* --- keepalive --- */

/*
 * Past the PING sent on link-up (for the round-trip time), an idle
 * link gets a PING after idle_timeout without a byte from us,
 * not before; with no PONG it is closed idle_timeout later (2 x
 * idle_timeout after the last byte we sent), not before, without a
 * GOAWAY.
 */
static void
test_keepalive_no_pong(void **state)
{
	struct fixture *fx = *state;

	hello(fx, CONN_WINDOW);
	wait_frames(fx, WIRE_PING, 1);		/* link-up: the rtt's */
	clock_fake_advance(IDLE - 0.1);
	assert_open(fx);
	assert_int_equal(count(fx, WIRE_PING), 1);
	clock_fake_advance(0.2);
	wait_frames(fx, WIRE_PING, 2);
	clock_fake_advance(IDLE - 0.2);
	assert_open(fx);
	assert_int_equal(count(fx, WIRE_PING), 2);
	clock_fake_advance(0.2);
	assert_dropped(fx);
	assert_int_equal(count(fx, WIRE_PING), 2);
}

/* A PONG answers the PING: the link stays past 2 x idle_timeout and
 * gets its next PING one idle_timeout after the PONG. */
static void
test_keepalive_pong(void **state)
{
	struct fixture *fx = *state;
	struct wire_frame f;
	uint8_t buf[WIRE_HDR_LEN + 8];

	hello(fx, CONN_WINDOW);
	clock_fake_advance(IDLE + 0.1);
	wait_frames(fx, WIRE_PING, 2);		/* link-up, keepalive */
	assert_true(frame(fx, WIRE_PING, 1, &f));
	assert_int_equal(wire_enc_ping(buf, sizeof(buf), 1, f.u.ping),
	    sizeof(buf));
	send_turn(fx, buf, sizeof(buf));
	clock_fake_advance(IDLE - 0.1);
	assert_open(fx);
	assert_int_equal(count(fx, WIRE_PING), 2);
	clock_fake_advance(0.2);
	wait_frames(fx, WIRE_PING, 3);
	assert_open(fx);
}

static double
link_ms(const char *field)
{
	json_t *a = peer_json_all(), *v;
	double ms = -1;

	assert_int_equal(json_array_size(a), 1);
	v = json_object_get(json_array_get(a, 0), field);
	if (json_is_number(v))
		ms = json_number_value(v);
	json_decref(a);
	return ms;
}

static void
send_pong(struct fixture *fx, uint64_t value)
{
	uint8_t buf[WIRE_HDR_LEN + 8];

	assert_int_equal(wire_enc_ping(buf, sizeof(buf), 1, value),
	    sizeof(buf));
	send_turn(fx, buf, sizeof(buf));
}

/*
 * The round-trip time: the PING sent on link-up, answered 250 ms later
 * (fake clock), gives rtt and srtt 250 ms; a PONG echoing another value
 * measures nothing; a keepalive PING answered in 150 ms gives rtt 150
 * and srtt 250 + (150 - 250) / 8.
 */
static void
test_rtt(void **state)
{
	struct fixture *fx = *state;
	struct wire_frame f;

	hello(fx, CONN_WINDOW);
	wait_frames(fx, WIRE_PING, 1);
	assert_true(frame(fx, WIRE_PING, 0, &f));
	assert_true(link_ms("rtt_ms") < 0);
	clock_fake_advance(0.25);
	send_pong(fx, f.u.ping + 1);
	assert_true(link_ms("rtt_ms") < 0);
	send_pong(fx, f.u.ping);
	assert_float_equal(link_ms("rtt_ms"), 250, 0.01);
	assert_float_equal(link_ms("srtt_ms"), 250, 0.01);
	send_pong(fx, f.u.ping);	/* measured once */
	assert_float_equal(link_ms("rtt_ms"), 250, 0.01);

	/* The keepalive PING leaves idle_timeout after our PONG, 0.1 s
	 * before this advance ends; its PONG comes 0.05 s after that. */
	clock_fake_advance(IDLE + 0.1);
	wait_frames(fx, WIRE_PING, 2);
	assert_true(frame(fx, WIRE_PING, 1, &f));
	clock_fake_advance(0.05);
	send_pong(fx, f.u.ping);
	assert_float_equal(link_ms("rtt_ms"), 150, 0.01);
	assert_float_equal(link_ms("srtt_ms"), 237.5, 0.01);
	assert_open(fx);
}

/* --- PING and PONG --- */

/* A PING gets a PONG with the same opaque value. */
static void
test_ping_pong(void **state)
{
	struct fixture *fx = *state;
	struct wire_frame f;

	hello(fx, CONN_WINDOW);
	send_ping(fx, 0x0123456789abcdefULL);
	wait_frames(fx, WIRE_PONG, 1);
	assert_true(frame(fx, WIRE_PONG, 0, &f));
	assert_true(f.u.ping == 0x0123456789abcdefULL);
	assert_int_equal(f.hdr.stream, 0);
	assert_int_equal(stats.pongs_folded, 0);
	assert_open(fx);
}

/*
 * 100 PINGs in one write, read by relayd before its output goes out:
 * the first gets its PONG, the other 99 fold into one more PONG that
 * carries the latest value.
 */
static void
test_pongs_folded(void **state)
{
	struct fixture *fx = *state;
	static uint8_t buf[100 * (WIRE_HDR_LEN + 8)];
	struct wire_frame f;
	int i;

	hello(fx, CONN_WINDOW);
	for (i = 0; i < 100; i++)
		wire_enc_ping(buf + i * (WIRE_HDR_LEN + 8), WIRE_HDR_LEN + 8,
		    0, 1000 + i);
	send_turn(fx, buf, sizeof(buf));
	wait_frames(fx, WIRE_PONG, 2);
	turns(10);
	rd(fx);
	assert_int_equal(count(fx, WIRE_PONG), 2);
	assert_true(frame(fx, WIRE_PONG, 0, &f));
	assert_true(f.u.ping == 1000);
	assert_true(frame(fx, WIRE_PONG, 1, &f));
	assert_true(f.u.ping == 1099);
	assert_int_equal(stats.pongs_folded, 99);
	assert_open(fx);
}

/* --- flow control and framing errors --- */

static void
send_credit(struct fixture *fx, uint32_t id, uint32_t inc)
{
	uint8_t buf[WIRE_HDR_LEN + 4];

	assert_int_equal(wire_enc_credit(buf, sizeof(buf), id, inc),
	    sizeof(buf));
	send_turn(fx, buf, sizeof(buf));
}

/*
 * Connection credit up to 2^31-1 exactly is fine; one byte more is a
 * protocol error: GOAWAY protocol, the link closed, counted.
 */
static void
test_credit_overflow(void **state)
{
	struct fixture *fx = *state;

	hello(fx, 1000);
	send_credit(fx, 0, 0x7fffffff - 1000);
	send_ping(fx, 1);
	wait_frames(fx, WIRE_PONG, 1);
	assert_int_equal(count(fx, WIRE_GOAWAY), 0);
	assert_int_equal(stats.credit_overflow, 0);
	send_credit(fx, 0, 1);
	assert_goaway_closed(fx, "above 2147483647");
	assert_int_equal(stats.credit_overflow, 1);
}

/* DATA on stream 1, which no PUT opened: GOAWAY protocol, closed. */
static void
test_data_never_opened(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[WIRE_HDR_LEN + 10];

	hello(fx, CONN_WINDOW);
	assert_int_equal(wire_enc_data_hdr(buf, sizeof(buf), 1, 10),
	    WIRE_HDR_LEN);
	memset(buf + WIRE_HDR_LEN, 'x', 10);
	send_turn(fx, buf, sizeof(buf));
	assert_goaway_closed(fx, "never opened");
	assert_int_equal(stats.data_never_opened, 1);
	assert_int_equal(count(fx, WIRE_ABORT), 0);
}

/* A frame type relayd does not know: GOAWAY protocol, closed. */
static void
test_unknown_type(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[WIRE_HDR_LEN + 4];

	hello(fx, CONN_WINDOW);
	memset(buf, 0, sizeof(buf));
	wire_put_hdr(buf, 4, 42, 0);
	send_turn(fx, buf, sizeof(buf));
	assert_goaway_closed(fx, wire_strerror(WIRE_ETYPE));
}

/*
 * A length above 262144: refused from the header alone (relayd does not
 * wait for the body), GOAWAY protocol, closed.
 */
static void
test_oversize(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[WIRE_HDR_LEN];

	hello(fx, CONN_WINDOW);
	wire_put_hdr(buf, WIRE_MAX_BODY + 1, WIRE_RESULT, 1);
	send_turn(fx, buf, sizeof(buf));
	assert_goaway_closed(fx, wire_strerror(WIRE_ETOOBIG));
}

/* --- a PUT in --- */

/*
 * A PUT opens a session; our ABORT ends it (the session goes), relayd
 * does not answer the ABORT, and the link and its other traffic go on.
 */
static void
test_put_abort(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[WIRE_HDR_LEN + 4 + WIRE_MAX_TEXT];
	int i, n;

	hello(fx, CONN_WINDOW);
	send_turn(fx, buf, enc_put(buf, sizeof(buf), 1, 1000, 'a', 1));
	assert_int_equal(session_count(), 1);
	assert_int_equal(stats.puts_received, 1);
	assert_true((n = wire_enc_abort(buf, sizeof(buf), 1,
	    WIRE_ABORT_CANCELLED, "test over")) > 0);
	send_turn(fx, buf, (size_t)n);
	/* The store's temp file is dropped by its worker. */
	for (i = 0; i < 2000 && session_count() > 0; i++)
		turn_worker();
	assert_int_equal(session_count(), 0);
	send_ping(fx, 2);
	wait_frames(fx, WIRE_PONG, 1);
	assert_int_equal(count(fx, WIRE_ABORT), 0);
	assert_int_equal(count(fx, WIRE_RESULT), 0);
	assert_open(fx);
}

/* A whole PUT in: stored, and RESULT "stored" on its stream. */
static void
test_put_stored(void **state)
{
	struct fixture *fx = *state;
	static uint8_t buf[WIRE_HDR_LEN + 65536];
	struct wire_entry e;
	struct wire_frame f;
	int i;

	hello(fx, CONN_WINDOW);
	send_turn(fx, buf, enc_put(buf, sizeof(buf), 3, 5000, 'b', 2));
	assert_int_equal(session_count(), 1);
	wire_enc_data_hdr(buf, sizeof(buf), 3, 5000);
	memset(buf + WIRE_HDR_LEN, 'b', 5000);
	send_turn(fx, buf, WIRE_HDR_LEN + 5000);
	wire_enc_end(buf, sizeof(buf), 3);
	send_turn(fx, buf, WIRE_HDR_LEN);
	/* The store's worker answers through the loop (real time). */
	for (i = 0; i < 2000 && count(fx, WIRE_RESULT) == 0; i++) {
		turn_worker();
		rd(fx);
	}
	assert_true(frame(fx, WIRE_RESULT, 0, &f));
	assert_int_equal(f.hdr.stream, 3);
	assert_int_equal(f.u.result.count, 1);
	assert_int_equal(wire_result_entry(&f, 0, &e), 0);
	assert_int_equal(e.status, WIRE_RES_STORED);
	assert_int_equal(e.bytes, 5000);
	assert_memory_equal(e.node, "r", 1);
	for (i = 0; i < 2000 && session_count() > 0; i++)
		turn_worker();
	assert_int_equal(session_count(), 0);
	assert_open(fx);
}

/*
 * A DATA frame's payload stays reserved against max_buffered from its
 * header until its bytes are in the buffer: with a frame's header and
 * 1,000 of its 5,000 bytes read, 4,000 are still reserved, so a second
 * stream cannot be granted them while the rest is on the wire.
 */
static void
test_data_landing_reserved(void **state)
{
	struct fixture *fx = *state;
	static uint8_t buf[WIRE_HDR_LEN + 65536];
	int i;

	hello(fx, CONN_WINDOW);
	send_turn(fx, buf, enc_put(buf, sizeof(buf), 5, 5000, 'd', 4));
	assert_int_equal(session_count(), 1);
	assert_int_equal(peer_reserved_bytes(), 5000);
	wire_enc_data_hdr(buf, sizeof(buf), 5, 5000);
	memset(buf + WIRE_HDR_LEN, 'd', 5000);
	send_turn(fx, buf, WIRE_HDR_LEN + 1000);
	assert_int_equal(peer_reserved_bytes(), 4000);
	send_turn(fx, buf + WIRE_HDR_LEN + 1000, 4000);
	assert_int_equal(peer_reserved_bytes(), 0);
	wire_enc_end(buf, sizeof(buf), 5);
	send_turn(fx, buf, WIRE_HDR_LEN);
	for (i = 0; i < 2000 && session_count() > 0; i++) {
		turn_worker();
		rd(fx);
	}
	assert_int_equal(session_count(), 0);
	assert_int_equal(count(fx, WIRE_RESULT), 1);
	assert_int_equal(count(fx, WIRE_ABORT), 0);
	assert_open(fx);
}

/* --- the output bound --- */

/*
 * PUTs on relayd's own parity (even ids: relayd accepted the link),
 * each of which relayd answers with an ABORT: a way for a peer to make
 * relayd write without reading.  `n` of them, built into buf.
 */
static size_t
enc_bad_puts(uint8_t *buf, size_t cap, unsigned int n)
{
	size_t one, off;
	unsigned int i;

	one = enc_put(buf, cap, 2, 1, 'c', 3);
	assert_true(one * n <= cap);
	for (i = 1, off = one; i < n; i++, off += one)
		memcpy(buf + off, buf, one);
	return off;
}

/*
 * Write PUTs relayd answers with ABORTs, never reading, until relayd
 * pauses reading the link (its output over max_output_buffer) or `puts`
 * have gone.  Returns the PUTs written.
 */
static unsigned long
flood(struct fixture *fx, unsigned long puts)
{
	static uint8_t buf[900 * 80];
	uint64_t total = 0;
	size_t len, one, off;
	ssize_t n;
	int i;

	/* Every frame is the same: we may start anywhere in one. */
	len = enc_bad_puts(buf, sizeof(buf), 900);
	one = len / 900;
	for (i = 0; i < 20000 && total / one < puts &&
	    stats.output_paused == 0; i++) {
		off = total % one;
		if ((n = write(fx->fd, buf + off, len - off)) > 0) {
			total += (uint64_t)n;
			continue;
		}
		assert_true(n == -1 && errno == EAGAIN);
		turn();
	}
	/* Never stop inside a frame: a PING may follow. */
	if ((off = total % one) != 0 && stats.output_paused == 0) {
		send_all(fx, buf + off, one - off);
		total += one - off;
	}
	return total / one;
}

/*
 * We never read while relayd answers: once its output is over
 * max_output_buffer it stops reading the link (our bytes stay unread
 * however often the loop turns), and closes it output_timeout later,
 * not before, without a GOAWAY (it would only queue more).
 */
static void
test_output_over_bound(void **state)
{
	struct fixture *fx = *state;
	struct wire_frame f;
	uint8_t ping[WIRE_HDR_LEN + 8];
	int left;

	hello(fx, CONN_WINDOW);
	flood(fx, 1000000);
	assert_int_equal(stats.output_paused, 1);
	/* Paused: what we send now stays in the socket, unread. */
	wire_enc_ping(ping, sizeof(ping), 0, 5);
	if (write(fx->fd, ping, sizeof(ping)) < 0)
		assert_int_equal(errno, EAGAIN);
	assert_true((left = outq(fx)) > 0);
	turns(20);
	assert_int_equal(outq(fx), left);

	clock_fake_advance(OUT_TIMEOUT - 0.1);
	turns(5);
	assert_true(is_open(fx));
	assert_int_equal(links(), 1);
	assert_int_equal(stats.output_closed, 0);
	clock_fake_advance(0.2);
	turns(5);
	assert_false(is_open(fx));
	assert_int_equal(stats.output_closed, 1);
	/* What reached the socket before the close is ABORTs, then EOF. */
	assert_dropped(fx);
	assert_true(count(fx, WIRE_ABORT) > 1000);
	assert_true(frame(fx, WIRE_ABORT, 0, &f));
	assert_int_equal(f.u.text.code, WIRE_ABORT_PROTOCOL);
	assert_int_equal(f.hdr.stream, 2);
	assert_int_equal(count(fx, WIRE_PONG), 0);
}

/*
 * PUTs whose ABORTs (40 bytes each) fill relayd's socket buffer (a Unix
 * socket's send buffer is net.core.wmem_default) and leave at least 512
 * KiB queued in its output, but well under max_output_buffer.
 */
static unsigned long
stuck_puts(void)
{
	unsigned long wmem = 212992;
	FILE *f;

	if ((f = fopen("/proc/sys/net/core/wmem_default", "r")) != NULL) {
		if (fscanf(f, "%lu", &wmem) != 1)
			wmem = 212992;
		fclose(f);
	}
	if (wmem + 512 * 1024 > MAX_OUTPUT - 256 * 1024) {
		/* test_hostile_memory's floods cover the bound in any case. */
		print_message("skipped: net.core.wmem_default %lu leaves no "
		    "room under max_output_buffer %d for a stuck PONG\n",
		    wmem, MAX_OUTPUT);
		skip();
	}
	return (wmem + 512 * 1024) / 40;
}

/*
 * Output stuck under the bound (we read nothing, relayd's socket is
 * full) while a PONG waits in it: a second PING folds into it, and the
 * link is closed when nothing has left for output_timeout, not before.
 * relayd never paused reading: the bound was not reached.
 */
static void
test_output_pong_stuck(void **state)
{
	struct fixture *fx = *state;
	uint8_t pings[2 * (WIRE_HDR_LEN + 8)];
	int i;

	hello(fx, CONN_WINDOW);
	flood(fx, stuck_puts());
	for (i = 0; i < TURNS && outq(fx) > 0; i++)
		turn();
	assert_int_equal(outq(fx), 0);
	assert_int_equal(stats.output_paused, 0);
	wire_enc_ping(pings, WIRE_HDR_LEN + 8, 0, 1);
	wire_enc_ping(pings + WIRE_HDR_LEN + 8, WIRE_HDR_LEN + 8, 0, 2);
	send_all(fx, pings, sizeof(pings));
	for (i = 0; i < TURNS && outq(fx) > 0; i++)
		turn();
	assert_int_equal(outq(fx), 0);
	assert_int_equal(stats.pongs_folded, 1);

	clock_fake_advance(OUT_TIMEOUT - 0.1);
	turns(5);
	assert_true(is_open(fx));
	assert_int_equal(stats.output_closed, 0);
	clock_fake_advance(0.2);
	turns(5);
	assert_false(is_open(fx));
	assert_int_equal(stats.output_closed, 1);
	assert_int_equal(stats.output_paused, 0);
	assert_dropped(fx);
}

/* --- relayd dialling out: we are its next hop "n" --- */

/*
 * relayd running with peer "n" on a loopback port we listen on: the
 * link it dials is accepted, and its HELLO is in fx->in.
 */
static int
setup_forward(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct fixture *fx;
	int i, one = 1;

	assert_non_null(fx = calloc(1, sizeof(*fx)));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_peer.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_true((fx->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fx->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(fx->lfd, 4), 0);
	assert_int_equal(getsockname(fx->lfd, (struct sockaddr *)&sin, &len),
	    0);
	start_relayd(fx, ntohs(sin.sin_port));
	fx->fd = -1;
	for (i = 0; i < TURNS && fx->fd < 0; i++) {
		turn();
		fx->fd = accept4(fx->lfd, NULL, NULL, SOCK_NONBLOCK);
	}
	assert_true(fx->fd >= 0);
	/* No Nagle: a frame must not wait for the ACK of the last one. */
	assert_int_equal(setsockopt(fx->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)), 0);
	*state = fx;
	wait_frames(fx, WIRE_HELLO, 1);
	return 0;
}

struct upstream {
	int		 results;
	int		 aborts;
};

static void
up_result(void *arg, struct session *s, const struct session_entry *e,
    unsigned int n, int ok)
{
	struct upstream *u = arg;

	(void)s;
	(void)e;
	(void)n;
	(void)ok;
	u->results++;
}

static void
up_abort(void *arg, struct session *s, uint16_t code, const char *msg)
{
	struct upstream *u = arg;

	(void)s;
	(void)code;
	(void)msg;
	u->aborts++;
}

static void
up_credit(void *arg, struct session *s, uint64_t bytes)
{
	(void)arg;
	(void)s;
	(void)bytes;
}

static const struct session_upstream_ops up_ops = {
	up_result, up_abort, up_credit,
};

/* A PUT for key "f/x" from a local upstream: relayd forwards it to us. */
static struct session *
put_local(struct upstream *u, uint64_t size)
{
	struct session_params sp;
	struct wire_put put;
	struct session *s;
	uint16_t code;
	char err[256];

	memset(&put, 0, sizeof(put));
	memset(put.put_id, 9, sizeof(put.put_id));
	put.hops = 4;
	put.key = "f/x";
	put.key_len = 3;
	put.size = size;
	memset(&sp, 0, sizeof(sp));
	sp.put = &put;
	sp.upstream_name = "unit";
	sp.ops = &up_ops;
	sp.up = u;
	if ((s = session_new(&sp, &code, err, sizeof(err))) == NULL)
		fail_msg("session_new: %s", err);
	return s;
}

/*
 * The stream window of a stream relayd opened towards us, raised to
 * 2^31-1 exactly, is fine; one byte more is a protocol error: GOAWAY
 * protocol, and the link is closed (an outbound link stays on the list,
 * down, to be dialled again).
 */
static void
test_stream_credit_overflow(void **state)
{
	struct fixture *fx = *state;
	struct upstream u = { 0 };
	struct wire_frame f;

	hello_w(fx, CONN_WINDOW, 1000);
	put_local(&u, 5000);
	wait_frames(fx, WIRE_PUT, 1);
	assert_true(frame(fx, WIRE_PUT, 0, &f));
	assert_int_equal(f.hdr.stream & 1, 1);	/* relayd dialled: odd */
	send_credit(fx, f.hdr.stream, 0x7fffffff - 1000);
	send_ping(fx, 3);
	wait_frames(fx, WIRE_PONG, 1);
	assert_int_equal(count(fx, WIRE_GOAWAY), 0);
	assert_int_equal(stats.credit_overflow, 0);
	send_credit(fx, f.hdr.stream, 1);
	wait_eof(fx);
	assert_true(frame(fx, WIRE_GOAWAY, 0, &f));
	assert_int_equal(f.u.text.code, WIRE_ABORT_PROTOCOL);
	assert_non_null(memmem(f.u.text.msg, f.u.text.msg_len,
	    "above 2147483647", 16));
	assert_int_equal(stats.credit_overflow, 1);
	assert_int_equal(links_up(), 0);
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_hello_ok),
		T(test_hello_bad_magic),
		T(test_hello_bad_version),
		T(test_hello_not_first),
		T(test_handshake_timeout),
		T(test_handshake_timeout_partial),
		T(test_keepalive_no_pong),
		T(test_keepalive_pong),
		T(test_rtt),
		T(test_ping_pong),
		T(test_pongs_folded),
		T(test_credit_overflow),
		cmocka_unit_test_setup_teardown(test_stream_credit_overflow,
		    setup_forward, teardown),
		T(test_data_never_opened),
		T(test_unknown_type),
		T(test_oversize),
		T(test_put_abort),
		T(test_put_stored),
		T(test_data_landing_reserved),
		T(test_output_over_bound),
		T(test_output_pong_stuck),
	};

	/* As in relayd: a write to a closed link fails, it does not kill. */
	signal(SIGPIPE, SIG_IGN);
	log_init("test_peer", 1, LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
