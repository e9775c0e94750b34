/*
 * fuzz_relay: a stateful libFuzzer target that drives a real relayd event
 * loop in-process, with fake peers on socketpairs and no network.
 *
 * What it drives.  Every module of the daemon (the Makefile's MODS) is
 * linked in, and relayd.c itself is compiled into this file with its
 * main() renamed, so the daemon's own relayd_setup() and
 * relayd_teardown() bring a relay up and down for each input; nothing of
 * relayd.c is copied.  The config (written once to a temporary directory
 * under /dev/shm) is plaintext, with a local store, a next hop "hop" and
 * routes that store ("s..."), forward ("f..."), do both ("b...") or fail
 * over ("o...").  Two fake upstream peers connect to a Unix listening
 * socket handed to peer_listen() as if systemd had passed it; the next
 * hop is the third fake peer: the link's connect() is wrapped (ld --wrap)
 * so that it gets one end of a socketpair.  The input is decoded into
 * operations: a frame from one fake peer (HELLO, PUT, DATA, END, ABORT,
 * CREDIT, PING, PONG, RESULT, GOAWAY, encoded with src/wire.c so most are
 * well formed, fields and stream ids chosen by the input), raw bytes, run
 * the loop N times, close or reopen a peer, stop or resume reading, and
 * warp time.  Time: clock_gettime(CLOCK_MONOTONIC) is wrapped too, so a
 * warp moves relayd's clock_mono() forward and fires, by hand, each libevent
 * timer that would have expired by then; timeouts are never waited for.
 * The fake next hop learns the PUTs relayd sends it, so its CREDIT, END
 * and RESULT frames can name real streams and true byte counts.  DATA
 * bytes follow a pattern known to the fake, so a PUT can carry its true
 * SHA-256 and be stored.
 *
 * What it checks.  Any crash, ASan or UBSan report (and LeakSanitizer's
 * leaks between inputs).  After every run of the loop: bytes held by
 * stream buffers (stream_total_held()) within max_buffered.  After the
 * input, once the loop is drained: the same, and every session on
 * env->sessions has a timer armed or is about to be reaped (an event of
 * its own pending or active).  Then teardown: every fake peer closes, the
 * loop runs (time warped past every timeout if needed, bounded) until no
 * session is left, and then session_count() == 0, env->sessions empty,
 * stream_total_held() == 0, and after relayd_teardown() as many
 * descriptors open in /proc/self/fd as before the input.  A failed check
 * prints why and aborts, so libFuzzer keeps the input.
 *
 * Run it with -close_fd_mask=2 to silence relayd's log (the Makefile
 * does); libFuzzer's and the sanitizers' reports still go to stderr.
 * The cap is max_buffered exactly: credit is reserved before it is
 * granted, so nothing more may ever be held (the corpus's first-windows
 * input broke it before that).  FUZZ_RELAY_CAP_SLACK=N allows N bytes
 * more, to look past a cap bug in a campaign.
 * FUZZ_RELAY_LOG=1 (or 2) in the environment shows relayd's info (or
 * debug) lines when replaying one input.  tests/fuzz/relay_seeds.py
 * writes the seed corpus and documents the input format.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

/* The daemon's main file, main() renamed: setup, teardown, env, utils. */
#define main relayd_main
#include "relayd.c"
#undef main
/* session.c here too (not linked apart): its timers are checked. */
#include "session.c"

#include "stream.h"
#include "wire.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	__wrap_connect(int, const struct sockaddr *, socklen_t);
int	__real_connect(int, const struct sockaddr *, socklen_t);
int	__wrap_clock_gettime(clockid_t, struct timespec *);
int	__real_clock_gettime(clockid_t, struct timespec *);

#define FZ_PEERS	3		/* 0, 1 upstream; 2 the next hop */
#define FZ_HOP		2
#define FZ_STREAMS	8		/* streams a fake peer tracks */
#define FZ_RX_MAX	(2 * (WIRE_HDR_LEN + WIRE_MAX_BODY))
#define FZ_HOP_PORT	9		/* the next hop's (fake) address */
#define FZ_MAX_BUFFERED	131072		/* as in the config below */
#define FZ_SHA_MAX	(512 * 1024)	/* true SHA-256 up to this size */
#define FZ_TIMERS	4096

/* A stream one fake peer knows: opened by it, or by relayd towards it. */
struct fz_stream {
	int		 used;
	uint32_t	 id;
	uint64_t	 size;
	uint64_t	 off;		/* bytes sent (or received, next hop) */
	uint8_t		 seed;		/* payload pattern */
	int		 ended;		/* END sent (or received) */
};

struct fz_peer {
	int		 fd;		/* -1: not connected */
	int		 reading;
	struct fz_stream st[FZ_STREAMS];
	unsigned int	 next_slot;
	uint8_t		*rx;		/* relayd's frames, being parsed */
	size_t		 rx_len;
	size_t		 rx_skip;	/* DATA payload still to skip */
	uint32_t	 rx_data_id;
};

struct fz_in {				/* the input being decoded */
	const uint8_t	*p;
	size_t		 left;
};

static char		 fz_dir[64];
static char		 fz_store[128];
static struct config	*fz_conf;	/* loaded once; one reference */
static struct fz_peer	 fz_peers[FZ_PEERS];
static int		 fz_errfd = 2;	/* stderr before libFuzzer closes it */
static double		 fz_warp;	/* seconds added to CLOCK_MONOTONIC */
static int		 fz_refuse;	/* connect() to the next hop fails */
static int		 fz_hop_fd = -1;	/* our end of the next hop */
static char		 fz_listen_name[64];
static uint8_t		 fz_put_ids[4][WIRE_PUT_ID_LEN];
static unsigned int	 fz_nput;
static uint8_t		 fz_frame[WIRE_HDR_LEN + WIRE_MAX_BODY];
static struct event	*fz_timers[FZ_TIMERS];
static unsigned int	 fz_ntimers;
static unsigned long long fz_cap_slack;	/* FUZZ_RELAY_CAP_SLACK, bytes */

static void __attribute__((format(printf, 1, 2), noreturn))
fz_fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(fz_errfd, "fuzz_relay: ", 12) < 0 ||
	    write(fz_errfd, msg, n) < 0)
		;
	abort();
}

/* --- the wrapped clock and connect --- */

int
__wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	double t;
	int r;

	if ((r = __real_clock_gettime(clk, ts)) != 0 || clk != CLOCK_MONOTONIC)
		return r;
	t = ts->tv_sec + ts->tv_nsec / 1e9 + fz_warp;
	ts->tv_sec = (time_t)t;
	ts->tv_nsec = (long)((t - ts->tv_sec) * 1e9);
	return 0;
}

/*
 * The next hop's address gets a socketpair instead of TCP: its other end
 * is the fake next hop.  Anything else is refused: no network here.
 */
int
__wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_in *sin = (const void *)sa;
	int sp[2];

	(void)len;
	if (sa->sa_family != AF_INET || ntohs(sin->sin_port) != FZ_HOP_PORT ||
	    fz_refuse || fz_hop_fd != -1) {
		errno = ECONNREFUSED;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sp) == -1)
		return -1;
	if (dup2(sp[0], fd) == -1) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	close(sp[0]);
	fz_hop_fd = sp[1];
	errno = EINPROGRESS;
	return -1;
}

/* --- input decoding --- */

static uint8_t
fz_u8(struct fz_in *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

/* Big-endian; one call per statement, so the bytes come in order. */
static uint16_t
fz_u16(struct fz_in *in)
{
	uint16_t v = fz_u8(in);

	return (uint16_t)(v << 8 | fz_u8(in));
}

static uint32_t
fz_u32(struct fz_in *in)
{
	uint32_t v = fz_u16(in);

	return v << 16 | fz_u16(in);
}

static uint64_t
fz_u64(struct fz_in *in)
{
	uint64_t v = fz_u32(in);

	return v << 32 | fz_u32(in);
}

static void
fz_be32(uint8_t *out, uint32_t v)
{
	out[0] = v >> 24;
	out[1] = v >> 16;
	out[2] = v >> 8;
	out[3] = v;
}

/* Up to max bytes of text from the input (the first byte is the length). */
static size_t
fz_text(struct fz_in *in, char *out, size_t max)
{
	size_t n = fz_u8(in), i;

	if (n > max)
		n = max;
	for (i = 0; i < n; i++)
		out[i] = (char)fz_u8(in);
	out[n] = '\0';
	return n;
}

/* --- fake peers --- */

static void
fz_peer_reset(struct fz_peer *fp)
{
	uint8_t *rx = fp->rx;

	memset(fp, 0, sizeof(*fp));
	fp->rx = rx;
	fp->fd = -1;
	fp->reading = 1;
}

static void
fz_peer_close(struct fz_peer *fp)
{
	if (fp->fd != -1)
		close(fp->fd);
	if (fp == &fz_peers[FZ_HOP]) {
		/* Dialled but not adopted yet: ours to close all the same. */
		if (fz_hop_fd != -1 && fz_hop_fd != fp->fd)
			close(fz_hop_fd);
		fz_hop_fd = -1;
	}
	fz_peer_reset(fp);
}

static void
fz_connect_in(struct fz_peer *fp)
{
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	fz_peer_close(fp);
	/* Non-blocking: a full backlog (relayd not accepting) is no hang. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fz_fail("socket: %s", strerror(errno));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, fz_listen_name, sizeof(fz_listen_name));
	len = offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(fz_listen_name + 1);
	if (__real_connect(fd, (struct sockaddr *)&sun, len) == -1) {
		if (errno != EAGAIN)
			fz_fail("connect to the listener: %s", strerror(errno));
		close(fd);
		return;
	}
	fp->fd = fd;
}

/* The next hop's socket, once relayd has connected to it. */
static void
fz_hop_adopt(void)
{
	struct fz_peer *fp = &fz_peers[FZ_HOP];

	if (fp->fd == -1 && fz_hop_fd != -1)
		fp->fd = fz_hop_fd;
}

static struct fz_stream *
fz_find(struct fz_peer *fp, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < FZ_STREAMS; i++)
		if (fp->st[i].used && fp->st[i].id == id)
			return &fp->st[i];
	return NULL;
}

static struct fz_stream *
fz_slot(struct fz_peer *fp, uint32_t id)
{
	struct fz_stream *st;

	if ((st = fz_find(fp, id)) == NULL)
		st = &fp->st[fp->next_slot++ % FZ_STREAMS];
	memset(st, 0, sizeof(*st));
	st->used = 1;
	st->id = id;
	return st;
}

/* A frame relayd sent to the fake next hop: learn its streams. */
static void
fz_hop_learn(struct fz_peer *fp, const struct wire_frame *f)
{
	struct fz_stream *st;

	if (fp != &fz_peers[FZ_HOP])
		return;
	switch (f->hdr.type) {
	case WIRE_PUT:
		st = fz_slot(fp, f->hdr.stream);
		st->size = f->u.put.size;
		break;
	case WIRE_END:
		if ((st = fz_find(fp, f->hdr.stream)) != NULL)
			st->ended = 1;
		break;
	}
}

/* Parse what relayd sent; DATA payloads are skipped as they come. */
static void
fz_parse(struct fz_peer *fp)
{
	struct wire_frame f;
	struct wire_hdr h;
	struct fz_stream *st;
	size_t pos = 0, n;
	int r;

	while (pos < fp->rx_len) {
		if (fp->rx_skip > 0) {
			n = fp->rx_len - pos;
			if (n > fp->rx_skip)
				n = fp->rx_skip;
			if ((st = fz_find(fp, fp->rx_data_id)) != NULL &&
			    fp == &fz_peers[FZ_HOP])
				st->off += n;
			fp->rx_skip -= n;
			pos += n;
			continue;
		}
		if (fp->rx_len - pos < WIRE_HDR_LEN)
			break;
		if (wire_decode_hdr(fp->rx + pos, WIRE_HDR_LEN, &h) != 0)
			fz_fail("relayd sent a bad frame header");
		if (h.type == WIRE_DATA) {
			fp->rx_skip = h.len;
			fp->rx_data_id = h.stream;
			pos += WIRE_HDR_LEN;
			continue;
		}
		if (fp->rx_len - pos < WIRE_HDR_LEN + (size_t)h.len)
			break;
		if ((r = wire_decode(fp->rx + pos, fp->rx_len - pos, &f)) < 0)
			fz_fail("relayd sent a frame wire_decode refuses: %s",
			    wire_strerror(r));
		fz_hop_learn(fp, &f);
		pos += r;
	}
	memmove(fp->rx, fp->rx + pos, fp->rx_len - pos);
	fp->rx_len -= pos;
}

/* Read whatever relayd sent this fake peer (unless it plays deaf). */
static void
fz_peer_read(struct fz_peer *fp)
{
	size_t room;
	ssize_t n;
	int rounds;

	for (rounds = 0; rounds < 64; rounds++) {
		room = FZ_RX_MAX - fp->rx_len;
		n = read(fp->fd, fp->rx + fp->rx_len, room);
		if (n <= 0)
			break;
		fp->rx_len += n;
		fz_parse(fp);
		if ((size_t)n < room)
			break;		/* drained: no read just to see EAGAIN */
	}
}

/* One poll() for the fake peers that listen, then a read for each ready. */
static void
fz_read_all(void)
{
	struct pollfd pfd[FZ_PEERS];
	struct fz_peer *who[FZ_PEERS];
	unsigned int i, n = 0;

	fz_hop_adopt();
	for (i = 0; i < FZ_PEERS; i++) {
		if (fz_peers[i].fd == -1 || !fz_peers[i].reading)
			continue;
		pfd[n].fd = fz_peers[i].fd;
		pfd[n].events = POLLIN;
		who[n++] = &fz_peers[i];
	}
	if (n == 0 || poll(pfd, n, 0) <= 0)
		return;
	for (i = 0; i < n; i++)
		if (pfd[i].revents != 0)
			fz_peer_read(who[i]);
}

/* Held bytes within the cap, checked after every turn of the loop. */
static void
fz_check_cap(const char *when)
{
	uint64_t held = stream_total_held();

	if (held > FZ_MAX_BUFFERED + fz_cap_slack)
		fz_fail("%s: %llu bytes held in stream buffers, above "
		    "max_buffered %u + slack %llu", when,
		    (unsigned long long)held, FZ_MAX_BUFFERED,
		    (unsigned long long)fz_cap_slack);
}

static void
fz_loop(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		event_base_loop(env->base, EVLOOP_NONBLOCK);
		fz_read_all();
		fz_check_cap("after a loop turn");
	}
}

/*
 * Write a whole frame, letting relayd read when the socket is full.  A
 * peer that cannot get its frame out in bounded time is closed, so a
 * frame is never cut (cut frames come from the raw op).
 */
static void
fz_send(struct fz_peer *fp, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;
	int tries = 0;

	while (fp->fd != -1 && len > 0) {
		n = send(fp->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= n;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			fz_peer_close(fp);
			return;
		}
		if (++tries > 32) {
			fz_peer_close(fp);
			return;
		}
		fz_loop(1);
	}
}

/* --- payload --- */

/*
 * Byte i of a payload with seed s is ((i * 131) + s) mod 256, so it
 * repeats every 256 bytes.  Each seed's bytes are laid out once, long
 * enough for one DATA frame from any offset, and copied from there: an
 * instrumented byte loop per frame was most of an execution's time.
 */
#define FZ_PAT_LEN	(WIRE_MAX_DATA + 256)
#define FZ_SHA_CACHE	64

struct fz_sha_memo {
	uint64_t	 size;
	uint8_t		 seed;
	int		 used;
	uint8_t		 md[32];
};

static uint8_t		*fz_pat[256];
static struct fz_sha_memo fz_sha_memo[FZ_SHA_CACHE];

static const uint8_t *
fz_pattern_at(uint64_t off, uint8_t seed)
{
	size_t i;

	if (fz_pat[seed] == NULL) {
		if ((fz_pat[seed] = malloc(FZ_PAT_LEN)) == NULL)
			fz_fail("out of memory");
		for (i = 0; i < FZ_PAT_LEN; i++)
			fz_pat[seed][i] = (uint8_t)(i * 131 + seed);
	}
	return fz_pat[seed] + off % 256;
}

static void
fz_pattern(uint8_t *out, uint64_t off, size_t len, uint8_t seed)
{
	memcpy(out, fz_pattern_at(off, seed), len);
}

static void
fz_sha(uint64_t size, uint8_t seed, uint8_t *md)
{
	struct fz_sha_memo *m = &fz_sha_memo[(size * 31 + seed) %
	    FZ_SHA_CACHE];
	EVP_MD_CTX *c;
	uint64_t off;
	size_t n;

	if (m->used && m->size == size && m->seed == seed) {
		memcpy(md, m->md, sizeof(m->md));
		return;
	}
	if ((c = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
		fz_fail("EVP_DigestInit_ex");
	for (off = 0; off < size; off += n) {
		n = size - off < WIRE_MAX_DATA ? size - off : WIRE_MAX_DATA;
		EVP_DigestUpdate(c, fz_pattern_at(off, seed), n);
	}
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	m->used = 1;
	m->size = size;
	m->seed = seed;
	memcpy(m->md, md, sizeof(m->md));
}

/* --- frames from a fake peer --- */

static uint32_t
fz_stream_id(struct fz_in *in, struct fz_peer *fp)
{
	uint8_t s = fz_u8(in);
	struct fz_stream *st;

	if (s >= 0xf0)
		return fz_u32(in);
	if (fp == &fz_peers[FZ_HOP]) {
		/* The streams relayd opened towards it, or one of its own. */
		st = &fp->st[s % FZ_STREAMS];
		if (s < 0x80 && st->used)
			return st->id;
		return 2 * (s % 8) + 2;
	}
	return 2 * (s % 8) + 1;
}

static uint32_t
fz_window(struct fz_in *in)
{
	static const uint32_t w[] = { 65536, 1 << 20, 4 << 20, 0x7fffffff,
	    0, 1, 0xffffffffu };
	uint8_t s = fz_u8(in);

	if (s < 0x80)
		return w[s % 4];
	if (s < 0xf0)
		return w[4 + s % 3];
	return fz_u32(in);
}

static void
fz_op_hello(struct fz_in *in, struct fz_peer *fp, unsigned int idx)
{
	static const char *const names[] = { "up0", "up1", "hop", "fuzz" };
	struct wire_hello h;
	char node[WIRE_MAX_NODE + 1];
	uint8_t s;
	int n;

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.conn_window = fz_window(in);
	h.stream_window = fz_window(in);
	s = fz_u8(in);
	if (s < 0xc0)
		snprintf(node, sizeof(node), "%s", names[(idx + s) % 4]);
	else
		fz_text(in, node, WIRE_MAX_NODE);
	h.node = node;
	h.node_len = strlen(node);
	if (s == 0xff)
		h.version = fz_u16(in);
	if ((n = wire_enc_hello(fz_frame, sizeof(fz_frame), &h)) < 0) {
		/* Out of range on purpose: the header and body by hand. */
		wire_put_hdr(fz_frame, 17 + h.node_len, WIRE_HELLO, 0);
		memcpy(fz_frame + WIRE_HDR_LEN, WIRE_MAGIC, 4);
		fz_frame[16] = h.version >> 8;
		fz_frame[17] = h.version & 0xff;
		fz_frame[18] = fz_frame[19] = 0;
		fz_be32(fz_frame + 20, h.conn_window);
		fz_be32(fz_frame + 24, h.stream_window);
		fz_frame[28] = h.node_len;
		memcpy(fz_frame + 29, node, h.node_len);
		n = WIRE_HDR_LEN + 17 + h.node_len;
	}
	fz_send(fp, fz_frame, n);
}

static void
fz_op_put(struct fz_in *in, struct fz_peer *fp)
{
	static const char prefixes[] = "sfbo";
	static const uint64_t sizes[] = { 1, 100, 4096, 65536, 65537,
	    200000, 1048576, 1048577, 0 };
	struct fz_stream *st;
	struct wire_put put;
	char key[WIRE_MAX_KEY + 1];
	uint8_t s, k, idsel;
	int n;

	memset(&put, 0, sizeof(put));
	put.hops = 4;
	st = fz_slot(fp, fz_stream_id(in, fp));
	s = fz_u8(in);
	put.size = s < 0xf0 ? sizes[s % 9] : fz_u64(in);
	k = fz_u8(in);
	if (k < 0xf0)
		snprintf(key, sizeof(key), "%c%u", prefixes[k % 4],
		    (k >> 2) % 8);
	else
		fz_text(in, key, 64);
	put.key = key;
	put.key_len = strlen(key);
	idsel = fz_u8(in);
	if (idsel < 0xc0 || fz_nput == 0) {
		/* A fresh id, remembered to be replayed later. */
		memset(put.put_id, 0, sizeof(put.put_id));
		put.put_id[0] = 0xf5;
		memcpy(put.put_id + 1, &fz_nput, sizeof(fz_nput));
		memcpy(fz_put_ids[fz_nput++ % 4], put.put_id,
		    sizeof(put.put_id));
	} else if (idsel < 0xf0)
		memcpy(put.put_id, fz_put_ids[idsel % 4], sizeof(put.put_id));
	else
		for (n = 0; n < WIRE_PUT_ID_LEN; n++)
			put.put_id[n] = fz_u8(in);
	if (idsel & 1)
		put.hops = fz_u8(in);
	st->size = put.size;
	st->seed = fz_u8(in);
	if (put.size <= FZ_SHA_MAX && !(idsel & 2))
		fz_sha(put.size, st->seed, put.sha256);
	else
		memset(put.sha256, st->seed, sizeof(put.sha256));
	if ((n = wire_enc_put(fz_frame, sizeof(fz_frame), st->id,
	    &put)) < 0)
		return;		/* the raw op covers malformed PUTs */
	fz_send(fp, fz_frame, n);
}

static void
fz_op_data(struct fz_in *in, struct fz_peer *fp)
{
	uint32_t id = fz_stream_id(in, fp);
	struct fz_stream *st = fz_find(fp, id);
	uint16_t sel = fz_u16(in);
	uint64_t off = st != NULL ? st->off : 0;
	size_t len;

	if (sel != 0)
		len = sel;
	else if (st != NULL && st->size > st->off)
		len = st->size - st->off;	/* the rest, a frame at most */
	else
		len = 1;
	if (len > WIRE_MAX_DATA)
		len = WIRE_MAX_DATA;
	wire_enc_data_hdr(fz_frame, sizeof(fz_frame), id, len);
	fz_pattern(fz_frame + WIRE_HDR_LEN, off, len, st ? st->seed : 0);
	if (st != NULL)
		st->off += len;
	fz_send(fp, fz_frame, WIRE_HDR_LEN + len);
}

static void
fz_op_text(struct fz_in *in, struct fz_peer *fp, int goaway)
{
	char msg[WIRE_MAX_TEXT + 1];
	uint32_t id = goaway ? 0 : fz_stream_id(in, fp);
	uint16_t code = fz_u8(in) % 13;
	int n;

	fz_text(in, msg, 80);
	n = goaway ? wire_enc_goaway(fz_frame, sizeof(fz_frame), code, msg) :
	    wire_enc_abort(fz_frame, sizeof(fz_frame), id, code, msg);
	if (n > 0)
		fz_send(fp, fz_frame, n);
}

static void
fz_op_credit(struct fz_in *in, struct fz_peer *fp)
{
	uint8_t s = fz_u8(in);
	uint32_t id = s & 1 ? fz_stream_id(in, fp) : 0;
	uint32_t inc = fz_window(in);

	if (wire_enc_credit(fz_frame, sizeof(fz_frame), id, inc) < 0) {
		wire_put_hdr(fz_frame, 4, WIRE_CREDIT, id);
		fz_be32(fz_frame + WIRE_HDR_LEN, inc);
	}
	fz_send(fp, fz_frame, WIRE_HDR_LEN + 4);
}

static void
fz_op_result(struct fz_in *in, struct fz_peer *fp)
{
	static const char *const nodes[] = { "hop", "far", "fuzz", "up0" };
	struct wire_entry e[3];
	char names[3][WIRE_MAX_NODE + 1], reasons[3][81];
	uint32_t id = fz_stream_id(in, fp);
	struct fz_stream *st = fz_find(fp, id);
	unsigned int i, n = fz_u8(in) % 4;
	uint8_t s;
	int len;

	memset(e, 0, sizeof(e));
	for (i = 0; i < n; i++) {
		s = fz_u8(in);
		e[i].status = 1 + s % 3;
		e[i].depth = i;
		if (s & 0x80)
			fz_text(in, names[i], WIRE_MAX_NODE);
		else
			snprintf(names[i], sizeof(names[i]), "%s",
			    nodes[(s >> 2) % 4]);
		e[i].node = names[i];
		e[i].node_len = strlen(names[i]);
		/* The true count unless the input lies. */
		e[i].bytes = s & 0x40 ? fz_u64(in) : st ? st->off : 0;
		e[i].first_us = 1;
		e[i].last_us = 2;
		e[i].reason_len = fz_text(in, reasons[i], 80);
		e[i].reason = reasons[i];
	}
	if ((len = wire_enc_result(fz_frame, sizeof(fz_frame), id, e,
	    n)) > 0)
		fz_send(fp, fz_frame, len);
}

static void
fz_op_raw(struct fz_in *in, struct fz_peer *fp)
{
	size_t n = fz_u8(in), i;

	for (i = 0; i < n; i++)
		fz_frame[i] = fz_u8(in);
	fz_send(fp, fz_frame, n);
}

/* --- time --- */

static int
fz_collect_timer(const struct event_base *b, const struct event *ev,
    void *arg)
{
	const struct timeval *deadline = arg;
	struct timeval tv;

	(void)b;
	if (fz_ntimers >= FZ_TIMERS || event_get_fd(ev) != -1 ||
	    !event_pending(ev, EV_TIMEOUT, &tv) ||
	    evutil_timercmp(&tv, deadline, >))
		return 0;
	fz_timers[fz_ntimers++] = (struct event *)ev;
	return 0;
}

/*
 * Move relayd's clock on by secs, and run each timer that would have
 * expired by then (libevent keeps its own clock, so by hand).
 */
static void
fz_warp_time(double secs)
{
	struct timeval now, add, deadline;
	unsigned int i;

	fz_warp += secs;
	gettimeofday(&now, NULL);
	clock_tv(secs, &add);
	evutil_timeradd(&now, &add, &deadline);
	fz_ntimers = 0;
	event_base_foreach_event(env->base, fz_collect_timer, &deadline);
	for (i = 0; i < fz_ntimers; i++)
		event_active(fz_timers[i], EV_TIMEOUT, 1);
	fz_loop(2);
}

/* --- invariants --- */

/* Every live session has its timer armed, or is done and being reaped. */
static void
fz_check_timers(void)
{
	struct session *s;

	TAILQ_FOREACH(s, &env->sessions, entry) {
		if (s->state == SESS_DONE)
			continue;
		if (!clock_timer_pending(s->timer))
			fz_fail("session %llu (state %d) is alive with no "
			    "timer armed", (unsigned long long)s->id,
			    (int)s->state);
	}
}

static int
fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		fz_fail("opendir /proc/self/fd: %s", strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
fz_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* --- one relay per input --- */

static void
fz_setup(void)
{
	struct sockaddr_un sun;
	socklen_t len;
	char err[512];
	unsigned int i;
	int fd;

	memset(env, 0, sizeof(*env));
	TAILQ_INIT(&env->peers);
	TAILQ_INIT(&env->sessions);
	config_ref(fz_conf);
	env->conf = fz_conf;
	if ((env->base = event_base_new()) == NULL)
		fz_fail("event_base_new");
	env->start_time = clock_mono();
	fz_refuse = 0;
	fz_hop_fd = -1;
	fz_nput = 0;
	for (i = 0; i < FZ_PEERS; i++)
		fz_peer_reset(&fz_peers[i]);
	/* The listener systemd would pass, here a Unix socket. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fz_fail("socket: %s", strerror(errno));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, fz_listen_name, sizeof(fz_listen_name));
	len = offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(fz_listen_name + 1);
	if (bind(fd, (struct sockaddr *)&sun, len) == -1 ||
	    listen(fd, 16) == -1)
		fz_fail("listen: %s", strerror(errno));
	relayd_setup();
	if (peer_listen(NULL, NULL, fd, err, sizeof(err)) == -1)
		fz_fail("peer_listen: %s", err);
	fz_connect_in(&fz_peers[0]);
	fz_connect_in(&fz_peers[1]);
	fz_loop(2);
}

static void
fz_teardown(void)
{
	struct timeval tv = { 0, 2000 };
	unsigned int i;

	fz_refuse = 1;
	for (i = 0; i < FZ_PEERS; i++)
		fz_peer_close(&fz_peers[i]);
	/*
	 * Losing every peer ends every session, at worst by its timeout.
	 * Waits are for the store thread only, and short: the loop wakes
	 * as soon as a completion is back.
	 */
	for (i = 0; i < 200; i++) {
		if (TAILQ_EMPTY(&env->sessions) &&
		    stream_total_held() == 0)
			break;
		if (i % 10 == 9)
			fz_warp_time(4000);
		event_base_loopexit(env->base, &tv);
		event_base_loop(env->base, EVLOOP_ONCE);
	}
	if (getenv("FUZZ_RELAY_LOG") != NULL)
		log_info("fuzz: teardown took %u loop turns", i);
	if (!TAILQ_EMPTY(&env->sessions) || session_count() != 0)
		fz_fail("%u session(s) outlived every peer and timeout",
		    session_count());
	if (stream_total_held() != 0)
		fz_fail("%llu bytes still held with no session left",
		    (unsigned long long)stream_total_held());
	relayd_teardown();
	event_base_free(env->base);
	env->base = NULL;
	nftw(fz_store, fz_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static void
fz_write_config(const char *path)
{
	FILE *f;

	if ((f = fopen(path, "w")) == NULL)
		fz_fail("%s: %s", path, strerror(errno));
	fprintf(f,
	    "node_id = \"fuzz\";\n"
	    "control_socket = \"%s/ctl.sock\";\n"
	    "store_dir = \"%s\";\n"
	    "tls = false;\n"
	    "max_payload = 1048576;\n"
	    "stream_inactivity_timeout = 200.0;\n"
	    "handshake_timeout = 100.0;\n"
	    "result_timeout = 300.0;\n"
	    "connect_timeout = 100.0;\n"
	    "idle_timeout = 400.0;\n"
	    "conn_window = 262144;\n"
	    "stream_window = 65536;\n"
	    "max_streams_per_peer = 8;\n"
	    "max_buffered = %u;\n"
	    "max_fork_lag = 131072;\n"
	    "peers = ( { name = \"hop\"; address = \"127.0.0.1:%d\"; } );\n"
	    "routes = (\n"
	    "  { prefix = \"\"; hops = []; store = true; },\n"
	    "  { prefix = \"f\"; hops = [ \"hop\" ]; store = false; },\n"
	    "  { prefix = \"b\"; hops = [ \"hop\" ]; store = true; },\n"
	    "  { prefix = \"o\"; hops = [ \"hop\" ]; mode = \"failover\"; "
	    "store = false; }\n"
	    ");\n", fz_dir, fz_store, FZ_MAX_BUFFERED, FZ_HOP_PORT);
	fclose(f);
}

static void
fz_cleanup(void)
{
	nftw(fz_dir, fz_rm, 8, FTW_DEPTH | FTW_PHYS);
	rmdir(fz_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[160], err[4096];
	unsigned int i;
	static struct relayd relayd;

	(void)argc;
	(void)argv;
	if ((fz_errfd = dup(2)) == -1)
		fz_errfd = 2;
	fcntl(fz_errfd, F_SETFD, FD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	if (getenv("FUZZ_RELAY_CAP_SLACK") != NULL)
		fz_cap_slack = strtoull(getenv("FUZZ_RELAY_CAP_SLACK"), NULL,
		    10);
	/* FUZZ_RELAY_LOG=1 or 2: relayd's info or debug lines too. */
	log_init("relayd", 1, getenv("FUZZ_RELAY_LOG") != NULL ?
	    atoi(getenv("FUZZ_RELAY_LOG")) : LOG_LVL_WARN);
	snprintf(fz_dir, sizeof(fz_dir), "/dev/shm/relayd-fuzz.XXXXXX");
	if (mkdtemp(fz_dir) == NULL) {
		snprintf(fz_dir, sizeof(fz_dir), "/tmp/relayd-fuzz.XXXXXX");
		if (mkdtemp(fz_dir) == NULL)
			fz_fail("mkdtemp: %s", strerror(errno));
	}
	atexit(fz_cleanup);
	snprintf(fz_store, sizeof(fz_store), "%s/store", fz_dir);
	snprintf(path, sizeof(path), "%s/relayd.conf", fz_dir);
	fz_write_config(path);
	/* Abstract namespace: nothing on disk, unique per process. */
	snprintf(fz_listen_name + 1, sizeof(fz_listen_name) - 1,
	    "relayd-fuzz-%ld", (long)getpid());
	env = &relayd;
	if ((fz_conf = config_load(path, err, sizeof(err))) == NULL)
		fz_fail("config: %s", err);
	relayd_conffile = fz_conf->path;
	/* The descriptor caps derive from the limit, as in relayd's main. */
	listener_fd_init();
	for (i = 0; i < FZ_PEERS; i++) {
		if ((fz_peers[i].rx = malloc(FZ_RX_MAX)) == NULL)
			fz_fail("out of memory");
		fz_peer_reset(&fz_peers[i]);
	}
	return 0;
}

/*
 * The first byte: bit i set = fake peer i says HELLO at once (the fuzzer
 * need not find the handshake for every input).  Then one operation per
 * byte: its low 4 bits the kind, the rest (mod 3) the fake peer.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_peer *fp;
	unsigned int i, idx, ops = 0;
	uint8_t first, op;
	int fds;

	fds = fz_count_fds();
	fz_setup();
	first = fz_u8(&in);
	for (i = 0; i < FZ_PEERS; i++) {
		fz_hop_adopt();
		if (first & (1 << i)) {
			struct fz_in h = { (const uint8_t *)"\0\0\0", 3 };
			fz_op_hello(&h, &fz_peers[i], i);
		}
	}
	fz_loop(2);
	while (in.left > 0 && ops++ < 4096) {
		op = fz_u8(&in);
		idx = (op >> 4) % FZ_PEERS;
		fz_hop_adopt();
		fp = &fz_peers[idx];
		switch (op & 15) {
		case 0:
			fz_op_hello(&in, fp, idx);
			break;
		case 1:
			fz_op_put(&in, fp);
			break;
		case 2:
			fz_op_data(&in, fp);
			break;
		case 3: {
			uint32_t id = fz_stream_id(&in, fp);
			struct fz_stream *st = fz_find(fp, id);
			if (st != NULL)
				st->ended = 1;
			wire_enc_end(fz_frame, sizeof(fz_frame), id);
			fz_send(fp, fz_frame, WIRE_HDR_LEN);
			break;
		}
		case 4:
			fz_op_text(&in, fp, 0);
			break;
		case 5:
			fz_op_credit(&in, fp);
			break;
		case 6:
		case 7:
			wire_enc_ping(fz_frame, sizeof(fz_frame), (op & 15) == 7,
			    fz_u8(&in));
			fz_send(fp, fz_frame, WIRE_HDR_LEN + 8);
			break;
		case 8:
			fz_op_result(&in, fp);
			break;
		case 9:
			fz_op_text(&in, fp, 1);
			break;
		case 10:
			fz_op_raw(&in, fp);
			break;
		case 11:
			fz_loop(1 + fz_u8(&in) % 16);
			break;
		case 12:
			if (fz_u8(&in) & 1) {
				if (fp->fd != -1)
					shutdown(fp->fd, SHUT_WR);
			} else
				fz_peer_close(fp);
			break;
		case 13:
			/* The next hop comes back when relayd redials. */
			if (idx != FZ_HOP)
				fz_connect_in(fp);
			break;
		case 14: {
			static const double warps[] = { 0.05, 1, 6, 101, 201,
			    301, 401, 1000 };
			fz_warp_time(warps[fz_u8(&in) % 8]);
			break;
		}
		case 15:
			fp->reading = !fp->reading;
			break;
		}
	}
	fz_loop(16);
	fz_check_cap("after the input");
	fz_check_timers();
	fz_teardown();
	if (fz_count_fds() != fds)
		fz_fail("descriptors leaked: %d open before the input, %d "
		    "after teardown", fds, fz_count_fds());
	return 0;
}
