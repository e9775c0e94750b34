/*
 * loadgen: the load case's origins and sink for scripts/bench.
 *
 *   loadgen wire --port P --conc C --size S --count N [--first F]
 *	[--links L] [--hops B] [--entries E] [--node ID] [TLS] [--timeout T]
 *   loadgen raw  --port P --conc C --size S --count N [--first F]
 *	[TLS] [--timeout T]
 *   loadgen sink --port P --max-size S [--cert PEM --key KEY]
 *
 * TLS: --tls --ca CA --cert PEM --key KEY --name NAME (the name the server
 * must prove).  TLS 1.3 only.
 *
 * wire: L long-lived links (default C) to a relayd at 127.0.0.1:P, speaking
 * relayd-protocol(7) (its own small frame encoder, written from the page),
 * node id ID in HELLO (on TLS the certificate's name).  The links come up
 * before the timed window.  Then C PUTs stay in flight, spread over the
 * links, until N are done: each PUT has a random put id, key load/<n>
 * (n = F .. F+N-1), DATA within the connection and stream credit, END, and
 * waits for RESULT.  A PUT is good when its RESULT has E entries (0: any
 * number), none failed, every one with S bytes, and one of them stored.
 *
 * raw: one connection per PUT to 127.0.0.1:P (what a user of a raw TCP
 * forwarder does), C in flight: a 16-byte header (n and S, 64-bit big
 * endian), the payload, then one byte back from the sink ('K' good).
 *
 * Payload n is variant n % 16 of size S: bytes from splitmix64 seeded with
 * S and the variant, so origin and sink make the same bytes without talking
 * about them; the origin prints the 16 SHA-256s (the bench checks stored
 * files against them) and the sink recomputes them.
 *
 * Latency per PUT: CLOCK_MONOTONIC from the PUT frame queued (wire) or
 * connect() (raw) to RESULT (wire) or the sink's byte (raw).  Both origins
 * print one JSON object: counts, elapsed, PUTs/s, p50/p99/max/mean latency
 * (nearest rank), the first error.
 *
 * sink: accepts on 127.0.0.1:P, many connections at once; reads the
 * header (a size above --max-size is refused), hashes the payload as it
 * arrives, compares size and SHA-256 with the variant's, answers 'K' or
 * 'F' and closes.  Each line on stdin makes it print its counters as JSON;
 * EOF on stdin ends it.
 */

#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define NVAR		16
#define MAXCONC		4096
#define FRAME_HDR	12
#define MAX_BODY	262144
#define MAX_DATA	65536
#define OUT_HIGH	(256 * 1024)
#define RAW_HDR		16
#define T_HELLO		1
#define T_PUT		2
#define T_DATA		3
#define T_END		4
#define T_ABORT		5
#define T_RESULT	6
#define T_CREDIT	7
#define T_PING		8
#define T_PONG		9
#define T_GOAWAY	10
#define WINDOW_GRANT	(1U << 24)

struct opts {
	const char	*mode;
	int		 port;
	int		 conc;
	int		 links;
	uint64_t	 size;
	uint64_t	 max_size;
	long		 count;
	long		 first;
	int		 hops;
	int		 entries;
	const char	*node;
	int		 tls;
	const char	*ca, *cert, *key, *name;
	double		 timeout;
};

/* One socket, plain or TLS; owned by its put (raw, sink) or link (wire). */
struct conn {
	int		 fd;
	SSL		*ssl;
	int		 hs_done;
	int		 want_out;	/* epoll asked for EPOLLOUT */
	int		 ssl_wants_write;
};

struct link;

/* One PUT in flight.  Owned by the put table; points at its link. */
struct put {
	int		 used;
	long		 n;
	uint32_t	 sid;
	uint64_t	 sent;
	int64_t		 win;
	int		 ended;		/* END queued */
	uint64_t	 t0;
	struct link	*link;
	/* raw mode */
	struct conn	 c;
	int		 state;
	unsigned char	 hdr[RAW_HDR];
	uint64_t	 off;		/* header + payload bytes written */
};

/* One long-lived wire link. */
struct link {
	struct conn	 c;
	int		 hello;		/* peer's HELLO seen */
	int64_t		 cwin;
	int64_t		 swin0;
	uint32_t	 next_sid;
	unsigned char	*out;
	size_t		 olen, ooff, ocap;
	unsigned char	*in;
	size_t		 ilen, icap;
	int		 nputs;
};

struct variant {
	uint64_t	 size;
	unsigned char	*buf;		/* origins only */
	unsigned char	 sha[NVAR][32];
};

static struct opts	 o;
static SSL_CTX		*ctx;
static int		 ep = -1;
static struct put	*puts_tab;
static struct link	*links_tab;
static struct variant	 var;
static uint64_t		*lat;
static long		 nlat, ngood, nbad, next_n, end_n;
static char		 first_err[256];

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void
note_err(const char *fmt, ...)
{
	va_list ap;

	if (first_err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(first_err, sizeof(first_err), fmt, ap);
	va_end(ap);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
variant_fill(unsigned char *b, uint64_t size, int v)
{
	uint64_t s = size * 1315423911ULL + (uint64_t)v, x;
	uint64_t i;

	for (i = 0; i + 8 <= size; i += 8) {
		x = splitmix(&s);
		memcpy(b + i, &x, 8);
	}
	x = splitmix(&s);
	if (i < size)
		memcpy(b + i, &x, size - i);
}

/* keep: the origins keep all 16 payloads, the sink only their hashes. */
static void
variants_make(uint64_t size, int keep)
{
	unsigned char *b;
	unsigned int len;
	int v;

	if ((b = malloc(size ? size : 1)) == NULL)
		die("out of memory for a %" PRIu64 " B payload", size);
	if (keep && (var.buf = malloc((size ? size : 1) * NVAR)) == NULL)
		die("out of memory for the payloads");
	for (v = 0; v < NVAR; v++) {
		variant_fill(b, size, v);
		if (EVP_Digest(b, size, var.sha[v], &len, EVP_sha256(),
		    NULL) != 1)
			die("SHA-256 failed");
		if (keep)
			memcpy(var.buf + size * v, b, size);
	}
	free(b);
	var.size = size;
}

static const unsigned char *
payload(long n)
{
	return var.buf + var.size * (uint64_t)(n % NVAR);
}

/* ------------------------------------------------------------ sockets */

static void
conn_events(struct conn *c, void *ptr, int add)
{
	struct epoll_event ev;
	int out = c->ssl_wants_write || c->want_out;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
	ev.data.ptr = ptr;
	if (epoll_ctl(ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd,
	    &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
}

static int
conn_dial(struct conn *c)
{
	struct sockaddr_in sin;
	int one = 1;

	memset(c, 0, sizeof(*c));
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(o.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	if (ctx != NULL) {
		if ((c->ssl = SSL_new(ctx)) == NULL)
			die("SSL_new failed");
		SSL_set_fd(c->ssl, c->fd);
		SSL_set_connect_state(c->ssl);
		SSL_set_tlsext_host_name(c->ssl, o.name);
		if (SSL_set1_host(c->ssl, o.name) != 1)
			die("SSL_set1_host failed");
	} else
		c->hs_done = 1;
	c->want_out = 1;	/* connect completes as writable */
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		if (c->hs_done)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
}

/* 1 done, 0 in progress, -1 failed. */
static int
conn_handshake(struct conn *c)
{
	int r, e;

	if (c->hs_done)
		return 1;
	c->ssl_wants_write = 0;
	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		c->hs_done = 1;
		return 1;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_WANT_WRITE) {
		c->ssl_wants_write = 1;
		return 0;
	}
	note_err("TLS handshake: %s", ERR_reason_error_string(
	    ERR_peek_last_error()) ? ERR_reason_error_string(
	    ERR_peek_last_error()) : "failed");
	ERR_clear_error();
	return -1;
}

/* Bytes written, 0 if it would block, -1 on error. */
static ssize_t
conn_write(struct conn *c, const void *b, size_t n)
{
	ssize_t w;
	int r, e;

	if (c->ssl == NULL) {
		w = send(c->fd, b, n, MSG_NOSIGNAL);
		if (w == -1)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		return w;
	}
	c->ssl_wants_write = 0;
	if (n > INT32_MAX)
		n = INT32_MAX;
	if ((r = SSL_write(c->ssl, b, (int)n)) > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE) {
		c->ssl_wants_write = 1;
		return 0;
	}
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	ERR_clear_error();
	return -1;
}

/* Bytes read, 0 if it would block, -1 on error, -2 on EOF. */
static ssize_t
conn_read(struct conn *c, void *b, size_t n)
{
	ssize_t r;
	int e;

	if (c->ssl == NULL) {
		r = recv(c->fd, b, n, 0);
		if (r == 0)
			return -2;
		if (r == -1)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		return r;
	}
	c->ssl_wants_write = 0;
	if (n > INT32_MAX)
		n = INT32_MAX;
	if ((r = SSL_read(c->ssl, b, (int)n)) > 0)
		return r;
	e = SSL_get_error(c->ssl, (int)r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_WANT_WRITE) {
		c->ssl_wants_write = 1;
		return 0;
	}
	ERR_clear_error();
	return e == SSL_ERROR_ZERO_RETURN ? -2 : -1;
}

static int
connect_done(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0 && err != EINPROGRESS) {
		note_err("connect: %s", strerror(err));
		return -1;
	}
	return err == 0;
}

static void
tls_init(int server)
{
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (o.cert == NULL || o.key == NULL)
		die("TLS needs --cert and --key");
	if (SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1)
		die("cannot load %s / %s", o.cert, o.key);
	if (server)
		return;		/* the sink is the harness: no client check */
	if (o.ca == NULL || o.name == NULL)
		die("TLS needs --ca and --name");
	if (SSL_CTX_load_verify_locations(ctx, o.ca, NULL) != 1)
		die("cannot load %s", o.ca);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
}

static void
lat_add(uint64_t t0)
{
	lat[nlat++] = now_ns() - t0;
}

/* ------------------------------------------------------------ wire */

static void
out_reserve(struct link *l, size_t n)
{
	size_t cap;

	if (l->ooff > 0 && l->ooff == l->olen)
		l->ooff = l->olen = 0;
	if (l->olen + n <= l->ocap)
		return;
	if (l->ooff > 0) {
		memmove(l->out, l->out + l->ooff, l->olen - l->ooff);
		l->olen -= l->ooff;
		l->ooff = 0;
	}
	if (l->olen + n <= l->ocap)
		return;
	cap = l->ocap ? l->ocap : 65536;
	while (cap < l->olen + n)
		cap *= 2;
	if ((l->out = realloc(l->out, cap)) == NULL)
		die("out of memory");
	l->ocap = cap;
}

static unsigned char *
frame(struct link *l, int type, uint32_t sid, size_t len)
{
	unsigned char *p;

	out_reserve(l, FRAME_HDR + len);
	p = l->out + l->olen;
	put_be(p, len, 4);
	p[4] = type;
	p[5] = p[6] = p[7] = 0;
	put_be(p + 8, sid, 4);
	l->olen += FRAME_HDR + len;
	return p + FRAME_HDR;
}

static void
send_hello(struct link *l)
{
	size_t nl = strlen(o.node);
	unsigned char *p = frame(l, T_HELLO, 0, 17 + nl);

	memcpy(p, "RLYD", 4);
	put_be(p + 4, 1, 2);
	put_be(p + 6, 0, 2);
	put_be(p + 8, WINDOW_GRANT, 4);
	put_be(p + 12, WINDOW_GRANT, 4);
	p[16] = nl;
	memcpy(p + 17, o.node, nl);
}

static void
wire_start_put(struct link *l, struct put *u)
{
	char key[64];
	size_t kl;
	unsigned char *p;

	kl = (size_t)snprintf(key, sizeof(key), "load/%ld", next_n);
	memset(u, 0, sizeof(*u));
	u->used = 1;
	u->n = next_n++;
	u->link = l;
	u->sid = l->next_sid;
	l->next_sid += 2;
	u->win = l->swin0;
	p = frame(l, T_PUT, u->sid, 60 + kl);
	if (getrandom(p, 16, 0) != 16)
		die("getrandom: %s", strerror(errno));
	p[16] = o.hops;
	p[17] = 0;
	put_be(p + 18, kl, 2);
	put_be(p + 20, var.size, 8);
	memcpy(p + 28, var.sha[u->n % NVAR], 32);
	memcpy(p + 60, key, kl);
	u->t0 = now_ns();
	l->nputs++;
	if (var.size == 0) {
		frame(l, T_END, u->sid, 0);
		u->ended = 1;
	}
}

/* Queue DATA within credit, and END, until the output is full enough. */
static void
wire_fill(struct link *l)
{
	int i, progress = 1;
	uint64_t n;
	struct put *u;

	while (progress && l->olen - l->ooff < OUT_HIGH) {
		progress = 0;
		for (i = 0; i < o.conc; i++) {
			u = &puts_tab[i];
			if (!u->used || u->link != l || u->ended)
				continue;
			n = var.size - u->sent;
			if (n > MAX_DATA)
				n = MAX_DATA;
			if ((int64_t)n > u->win)
				n = u->win;
			if ((int64_t)n > l->cwin)
				n = l->cwin;
			if (n == 0)
				continue;
			memcpy(frame(l, T_DATA, u->sid, n), payload(u->n) +
			    u->sent, n);
			u->sent += n;
			u->win -= n;
			l->cwin -= n;
			if (u->sent == var.size) {
				frame(l, T_END, u->sid, 0);
				u->ended = 1;
			}
			progress = 1;
		}
	}
}

static struct put *
wire_find(struct link *l, uint32_t sid)
{
	int i;

	for (i = 0; i < o.conc; i++)
		if (puts_tab[i].used && puts_tab[i].link == l &&
		    puts_tab[i].sid == sid)
			return &puts_tab[i];
	return NULL;
}

/* NULL if the RESULT says the PUT was stored on the whole path. */
static const char *
result_check(const unsigned char *b, size_t len)
{
	size_t off = 2, nl, rl;
	unsigned int count, i, stored = 0;

	if (len < 2)
		return "short RESULT";
	count = get_be(b, 2);
	if (o.entries > 0 && count != (unsigned int)o.entries)
		return "wrong number of RESULT entries";
	for (i = 0; i < count; i++) {
		if (len - off < 29)
			return "RESULT entry past the end";
		nl = b[off + 2];
		rl = get_be(b + off + 27, 2);
		if (len - off < 29 + nl + rl)
			return "RESULT entry past the end";
		if (b[off] != 1 && b[off] != 2)
			return "an entry failed";
		if (get_be(b + off + 3, 8) != var.size)
			return "an entry has the wrong byte count";
		stored += b[off] == 1;
		off += 29 + nl + rl;
	}
	if (off != len)
		return "bytes after the RESULT entries";
	return stored ? NULL : "no entry stored";
}

static void
put_done(struct put *u, const char *err)
{
	if (err == NULL) {
		ngood++;
		lat_add(u->t0);
	} else {
		nbad++;
		note_err("put %ld: %s", u->n, err);
	}
	u->used = 0;
	if (u->link != NULL)
		u->link->nputs--;
}

static int
wire_hello(struct link *l, const unsigned char *b, size_t len)
{
	if (len < 18 || memcmp(b, "RLYD", 4) != 0 || get_be(b + 4, 2) != 1) {
		note_err("bad HELLO");
		return -1;
	}
	l->cwin = get_be(b + 8, 4);
	l->swin0 = get_be(b + 12, 4);
	l->hello = 1;
	return 0;
}

static int
wire_stream_frame(struct link *l, int type, uint32_t sid,
    const unsigned char *b, size_t len)
{
	struct put *u = wire_find(l, sid);
	char msg[128];
	size_t ml;

	if (u == NULL)
		return 0;	/* a late frame of a stream that ended */
	if (type == T_CREDIT && len == 4)
		u->win += get_be(b, 4);
	else if (type == T_RESULT)
		put_done(u, u->ended ? result_check(b, len) :
		    "RESULT before END");
	else if (type == T_ABORT && len >= 4) {
		ml = len - 4 < sizeof(msg) - 1 ? len - 4 : sizeof(msg) - 1;
		memcpy(msg, b + 4, ml);
		msg[ml] = '\0';
		for (size_t i = 0; i < ml; i++)
			if (msg[i] < 0x20 || msg[i] > 0x7e)
				msg[i] = '?';
		note_err("put %ld: ABORT code %u: %s", u->n,
		    (unsigned)get_be(b, 2), msg);
		put_done(u, "aborted");
	} else {
		note_err("unexpected frame type %d on stream %u", type, sid);
		return -1;
	}
	return 0;
}

static int
wire_frame(struct link *l, int type, uint32_t sid, const unsigned char *b,
    size_t len)
{
	unsigned char *p;

	if (!l->hello)
		return type == T_HELLO ? wire_hello(l, b, len) : -1;
	if (sid != 0)
		return wire_stream_frame(l, type, sid, b, len);
	switch (type) {
	case T_CREDIT:
		if (len == 4)
			l->cwin += get_be(b, 4);
		return 0;
	case T_PING:
		/* a peer that pings and does not read gets no more PONGs */
		if (len == 8 && l->olen - l->ooff < 4 * OUT_HIGH) {
			p = frame(l, T_PONG, 0, 8);
			memcpy(p, b, 8);
		}
		return 0;
	case T_PONG:
		return 0;
	case T_GOAWAY:
		note_err("GOAWAY code %u", len >= 2 ? (unsigned)get_be(b, 2) :
		    0);
		return -1;
	default:
		note_err("unexpected frame type %d on the connection", type);
		return -1;
	}
}

static int
wire_input(struct link *l)
{
	size_t off = 0, len;
	ssize_t r;

	for (;;) {
		if (l->icap - l->ilen < 65536) {
			l->icap = l->icap ? l->icap * 2 : FRAME_HDR + MAX_BODY +
			    65536;
			if ((l->in = realloc(l->in, l->icap)) == NULL)
				die("out of memory");
		}
		r = conn_read(&l->c, l->in + l->ilen, l->icap - l->ilen);
		if (r == 0)
			break;
		if (r < 0) {
			note_err("link to hop 1 %s", r == -2 ? "closed" :
			    "failed");
			return -1;
		}
		l->ilen += r;
		while (l->ilen - off >= FRAME_HDR) {
			len = get_be(l->in + off, 4);
			if (len > MAX_BODY) {
				note_err("frame body of %zu bytes", len);
				return -1;
			}
			if (l->ilen - off < FRAME_HDR + len)
				break;
			if (wire_frame(l, l->in[off + 4], get_be(l->in + off +
			    8, 4), l->in + off + FRAME_HDR, len) == -1)
				return -1;
			off += FRAME_HDR + len;
		}
		memmove(l->in, l->in + off, l->ilen - off);
		l->ilen -= off;
		off = 0;
	}
	return 0;
}

static int
wire_output(struct link *l)
{
	ssize_t w;

	if (l->hello)
		wire_fill(l);
	while (l->ooff < l->olen) {
		w = conn_write(&l->c, l->out + l->ooff, l->olen - l->ooff);
		if (w < 0) {
			note_err("write to hop 1 failed");
			return -1;
		}
		if (w == 0)
			break;
		l->ooff += w;
		if (l->hello && l->olen - l->ooff < OUT_HIGH / 2)
			wire_fill(l);
	}
	l->c.want_out = l->ooff < l->olen;
	return 0;
}

/* Start new PUTs on free slots, each on the link with the fewest. */
static void
wire_refill(void)
{
	int i, j, best;

	for (i = 0; i < o.conc && next_n < end_n; i++) {
		if (puts_tab[i].used)
			continue;
		best = 0;
		for (j = 1; j < o.links; j++)
			if (links_tab[j].nputs < links_tab[best].nputs)
				best = j;
		wire_start_put(&links_tab[best], &puts_tab[i]);
	}
}

static int
wire_event(struct link *l, uint32_t events)
{
	int r;

	if (l->c.want_out && !l->c.hs_done && (events & EPOLLOUT)) {
		if ((r = connect_done(&l->c)) <= 0)
			return r;
		l->c.want_out = 0;
		if (l->c.ssl == NULL)
			l->c.hs_done = 1;
	}
	if ((r = conn_handshake(&l->c)) != 1) {
		conn_events(&l->c, l, 0);
		return r;
	}
	if (wire_input(l) == -1 || wire_output(l) == -1)
		return -1;
	conn_events(&l->c, l, 0);
	return 0;
}

static int
loop_wait(uint64_t deadline, struct epoll_event *evs, int n)
{
	uint64_t t = now_ns();
	int r;

	if (t >= deadline) {
		note_err("timed out");
		return -1;
	}
	r = epoll_wait(ep, evs, n, (int)((deadline - t) / 1000000) + 1);
	if (r == -1 && errno != EINTR)
		die("epoll_wait: %s", strerror(errno));
	return r < 0 ? 0 : r;
}

/* The links up and through HELLO, before the timed window. */
static int
wire_connect(uint64_t deadline)
{
	struct epoll_event evs[64];
	int i, n, up;
	struct link *l;

	for (i = 0; i < o.links; i++) {
		l = &links_tab[i];
		if (conn_dial(&l->c) == -1)
			die("connect: %s", strerror(errno));
		l->next_sid = 1;
		send_hello(l);
		conn_events(&l->c, l, 1);
	}
	for (;;) {
		for (up = 0, i = 0; i < o.links; i++)
			up += links_tab[i].hello;
		if (up == o.links)
			return 0;
		if ((n = loop_wait(deadline, evs, 64)) < 0)
			return -1;
		for (i = 0; i < n; i++)
			if (wire_event(evs[i].data.ptr, evs[i].events) == -1)
				return -1;
	}
}

static int
wire_run(uint64_t deadline)
{
	struct epoll_event evs[64];
	int i, n;

	wire_refill();
	for (i = 0; i < o.links; i++) {
		if (wire_output(&links_tab[i]) == -1)
			return -1;
		conn_events(&links_tab[i].c, &links_tab[i], 0);
	}
	while (ngood + nbad < o.count) {
		if ((n = loop_wait(deadline, evs, 64)) < 0)
			return -1;
		for (i = 0; i < n; i++)
			if (wire_event(evs[i].data.ptr, evs[i].events) == -1)
				return -1;
		if (next_n < end_n) {
			wire_refill();
			for (i = 0; i < o.links; i++) {
				if (wire_output(&links_tab[i]) == -1)
					return -1;
				conn_events(&links_tab[i].c, &links_tab[i], 0);
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ raw */

enum { R_CONNECT, R_SEND, R_REPLY };

static void
raw_start(struct put *u)
{
	memset(u, 0, sizeof(*u));
	u->used = 1;
	u->n = next_n++;
	u->t0 = now_ns();
	put_be(u->hdr, (uint64_t)u->n, 8);
	put_be(u->hdr + 8, var.size, 8);
	if (conn_dial(&u->c) == -1) {
		note_err("connect: %s", strerror(errno));
		u->c.fd = -1;
		put_done(u, "connect failed");
		return;
	}
	u->state = R_CONNECT;
	conn_events(&u->c, u, 1);
}

static int
raw_send(struct put *u)
{
	uint64_t total = RAW_HDR + var.size;
	const unsigned char *p;
	size_t n;
	ssize_t w;

	while (u->off < total) {
		if (u->off < RAW_HDR) {
			p = u->hdr + u->off;
			n = RAW_HDR - u->off;
		} else {
			p = payload(u->n) + (u->off - RAW_HDR);
			n = total - u->off;
		}
		if ((w = conn_write(&u->c, p, n)) < 0)
			return -1;
		if (w == 0)
			return 0;
		u->off += w;
	}
	u->state = R_REPLY;
	u->c.want_out = 0;
	return 0;
}

static const char *
raw_step(struct put *u, uint32_t events)
{
	unsigned char b;
	ssize_t r;
	int c;

	if (u->state == R_CONNECT) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return NULL;
		if ((c = connect_done(&u->c)) < 0)
			return "connect failed";
		if (c == 0)
			return NULL;
		u->state = R_SEND;
	}
	if ((c = conn_handshake(&u->c)) < 0)
		return "TLS handshake failed";
	if (c == 0)
		return NULL;
	if (u->state == R_SEND && raw_send(u) == -1)
		return "send failed";
	if (u->state != R_REPLY)
		return NULL;
	if ((r = conn_read(&u->c, &b, 1)) == 0)
		return NULL;
	if (r < 0)
		return "closed without a reply";
	return b == 'K' ? "" : "the sink found the payload bad";
}

static void
raw_event(struct put *u, uint32_t events)
{
	const char *err = raw_step(u, events);

	if (err == NULL) {
		conn_events(&u->c, u, 0);
		return;
	}
	conn_close(&u->c);
	put_done(u, err[0] == '\0' ? NULL : err);
	if (next_n < end_n)
		raw_start(u);
}

static int
raw_run(uint64_t deadline)
{
	struct epoll_event evs[64];
	int i, n;

	for (i = 0; i < o.conc && next_n < end_n; i++)
		raw_start(&puts_tab[i]);
	while (ngood + nbad < o.count) {
		if ((n = loop_wait(deadline, evs, 64)) < 0)
			return -1;
		for (i = 0; i < n; i++)
			raw_event(evs[i].data.ptr, evs[i].events);
		for (i = 0; i < o.conc && next_n < end_n; i++)
			if (!puts_tab[i].used)
				raw_start(&puts_tab[i]);
	}
	return 0;
}

/* ------------------------------------------------------------ report */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
rank_us(double q)
{
	long i;

	if (nlat == 0)
		return 0;
	i = (long)(q * nlat + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= nlat)
		i = nlat - 1;
	return lat[i] / 1e3;
}

static void
report(uint64_t elapsed)
{
	json_t *j, *v;
	char hex[65];
	double sum = 0;
	long i;
	int k, b;

	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	for (i = 0; i < nlat; i++)
		sum += lat[i];
	v = json_array();
	for (k = 0; k < NVAR; k++) {
		for (b = 0; b < 32; b++)
			snprintf(hex + 2 * b, 3, "%02x", var.sha[k][b]);
		json_array_append_new(v, json_string(hex));
	}
	j = json_pack("{s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:f, "
	    "s:f, s:f, s:f, s:f, s:o}", "mode", o.mode, "conc", o.conc,
	    "links", o.links, "size", (json_int_t)var.size,
	    "count", (json_int_t)o.count, "first", (json_int_t)o.first,
	    "good", (json_int_t)ngood, "bad", (json_int_t)nbad,
	    "elapsed_s", elapsed / 1e9,
	    "puts_per_s", elapsed ? ngood / (elapsed / 1e9) : 0.0,
	    "p50_us", rank_us(0.50), "p99_us", rank_us(0.99),
	    "max_us", rank_us(1.0), "mean_us", nlat ? sum / nlat / 1e3 : 0.0,
	    "variants", v);
	if (j == NULL)
		die("json_pack failed");
	json_object_set_new(j, "error", first_err[0] ? json_string(first_err)
	    : json_null());
	json_dumpf(j, stdout, JSON_COMPACT);
	printf("\n");
	fflush(stdout);
	json_decref(j);
}

static int
origin_main(int wire)
{
	uint64_t deadline, t0;
	int r;

	if (o.conc < 1 || o.conc > MAXCONC || o.count < 1 || o.port <= 0)
		die("need --port, --conc 1..%d and --count >= 1", MAXCONC);
	if (o.links <= 0 || o.links > o.conc)
		o.links = o.conc;
	if (o.tls)
		tls_init(0);
	variants_make(o.size, 1);
	if ((puts_tab = calloc(o.conc, sizeof(*puts_tab))) == NULL ||
	    (lat = calloc(o.count, sizeof(*lat))) == NULL ||
	    (links_tab = calloc(o.links, sizeof(*links_tab))) == NULL)
		die("out of memory");
	next_n = o.first;
	end_n = o.first + o.count;
	deadline = now_ns() + (uint64_t)(o.timeout * 1e9);
	if (wire && wire_connect(deadline) == -1) {
		report(0);
		return 1;
	}
	t0 = now_ns();
	r = wire ? wire_run(deadline) : raw_run(deadline);
	report(now_ns() - t0);
	return r == -1 || nbad > 0;
}

/* ------------------------------------------------------------ sink */

enum { S_HDR, S_BODY, S_REPLY };

/* One connection into the sink; freed when it closes. */
struct sconn {
	struct conn	 c;
	int		 state;
	unsigned char	 hdr[RAW_HDR];
	size_t		 hlen;
	uint64_t	 n, size, got;
	EVP_MD_CTX	*md;
	char		 verdict;
};

static long	 s_good, s_bad, s_conns;
static char	 s_err[256];

static void
sink_bad(struct sconn *s, const char *fmt, ...)
{
	va_list ap;

	s->verdict = 'F';
	if (s_err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(s_err, sizeof(s_err), fmt, ap);
	va_end(ap);
}

static void
sink_verdict(struct sconn *s)
{
	unsigned char sha[32];
	unsigned int len;

	s->state = S_REPLY;
	s->c.want_out = 1;
	if (var.size != s->size) {
		variants_make(s->size, 0);
	}
	EVP_DigestFinal_ex(s->md, sha, &len);
	if (memcmp(sha, var.sha[s->n % NVAR], 32) != 0)
		sink_bad(s, "put %" PRIu64 ": SHA-256 differs", s->n);
	else
		s->verdict = 'K';
}

static int
sink_input(struct sconn *s)
{
	unsigned char buf[65536];
	size_t take;
	ssize_t r;

	while (s->state != S_REPLY) {
		if ((r = conn_read(&s->c, buf, sizeof(buf))) == 0)
			return 0;
		if (r < 0) {
			sink_bad(s, "put %" PRIu64 ": ended after %" PRIu64
			    " of %" PRIu64 " bytes", s->n, s->got, s->size);
			return -1;
		}
		take = 0;
		if (s->state == S_HDR) {
			take = RAW_HDR - s->hlen < (size_t)r ? RAW_HDR -
			    s->hlen : (size_t)r;
			memcpy(s->hdr + s->hlen, buf, take);
			if ((s->hlen += take) == RAW_HDR) {
				s->n = get_be(s->hdr, 8);
				s->size = get_be(s->hdr + 8, 8);
				if (s->size > o.max_size) {
					sink_bad(s, "size %" PRIu64 " over "
					    "--max-size", s->size);
					return -1;
				}
				s->state = S_BODY;
			}
		}
		if ((size_t)r - take > s->size - s->got) {
			sink_bad(s, "put %" PRIu64 ": too many bytes", s->n);
			return -1;
		}
		EVP_DigestUpdate(s->md, buf + take, r - take);
		s->got += r - take;
		if (s->state == S_BODY && s->got == s->size)
			sink_verdict(s);
	}
	return 0;
}

/* 1 when the connection is finished with. */
static int
sink_step(struct sconn *s)
{
	int r;

	if ((r = conn_handshake(&s->c)) < 0)
		return 1;
	if (r == 0)
		return 0;
	if (sink_input(s) == -1)
		return 1;
	if (s->state != S_REPLY)
		return 0;
	return conn_write(&s->c, &s->verdict, 1) != 0;
}

static void
sink_close(struct sconn *s)
{
	if (s->verdict == 'K')
		s_good++;
	else {
		s_bad++;
		if (s_err[0] == '\0')
			snprintf(s_err, sizeof(s_err), "a connection ended "
			    "before its payload");
	}
	conn_close(&s->c);
	EVP_MD_CTX_free(s->md);
	free(s);
}

static void
sink_accept(int ls)
{
	struct sconn *s;
	int fd, one = 1;

	while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((s = calloc(1, sizeof(*s))) == NULL ||
		    (s->md = EVP_MD_CTX_new()) == NULL)
			die("out of memory");
		EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
		s->c.fd = fd;
		s->c.hs_done = ctx == NULL;
		if (ctx != NULL) {
			if ((s->c.ssl = SSL_new(ctx)) == NULL)
				die("SSL_new failed");
			SSL_set_fd(s->c.ssl, fd);
			SSL_set_accept_state(s->c.ssl);
		}
		s_conns++;
		conn_events(&s->c, s, 1);
	}
}

static int
sink_stdin(void)
{
	char buf[256];
	ssize_t r = read(0, buf, sizeof(buf));
	json_t *j;

	if (r <= 0)
		return -1;
	j = json_pack("{s:I, s:I, s:I}", "good", (json_int_t)s_good, "bad",
	    (json_int_t)s_bad, "conns", (json_int_t)s_conns);
	json_object_set_new(j, "error", s_err[0] ? json_string(s_err) :
	    json_null());
	json_dumpf(j, stdout, JSON_COMPACT);
	printf("\n");
	fflush(stdout);
	json_decref(j);
	return 0;
}

static int
sink_listen(void)
{
	struct sockaddr_in sin;
	int ls, one = 1;

	if ((ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		die("socket: %s", strerror(errno));
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(o.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ls, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(ls, 4096) == -1)
		die("listen on port %d: %s", o.port, strerror(errno));
	return ls;
}

static int
sink_main(void)
{
	struct epoll_event ev, evs[64];
	static int lsmark, inmark;
	int ls, i, n;
	struct sconn *s;

	if (o.port <= 0 || o.max_size == 0)
		die("sink needs --port and --max-size");
	if (o.cert != NULL)
		tls_init(1);
	ls = sink_listen();
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &lsmark;
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	ev.data.ptr = &inmark;
	epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
	printf("{\"ready\": true}\n");
	fflush(stdout);
	for (;;) {
		if ((n = epoll_wait(ep, evs, 64, -1)) == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &lsmark)
				sink_accept(ls);
			else if (evs[i].data.ptr == &inmark) {
				if (sink_stdin() == -1)
					return 0;
			} else if (sink_step((s = evs[i].data.ptr)))
				sink_close(s);
			else
				conn_events(&s->c, s, 0);
		}
	}
}

/* ------------------------------------------------------------ main */

static void
parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", 1, NULL, 'p' }, { "conc", 1, NULL, 'c' },
		{ "size", 1, NULL, 's' }, { "count", 1, NULL, 'n' },
		{ "first", 1, NULL, 'f' }, { "links", 1, NULL, 'l' },
		{ "hops", 1, NULL, 'b' }, { "entries", 1, NULL, 'e' },
		{ "node", 1, NULL, 'i' }, { "tls", 0, NULL, 't' },
		{ "ca", 1, NULL, 'A' }, { "cert", 1, NULL, 'C' },
		{ "key", 1, NULL, 'K' }, { "name", 1, NULL, 'N' },
		{ "timeout", 1, NULL, 'T' }, { "max-size", 1, NULL, 'M' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	if (argc < 2)
		die("usage: loadgen wire|raw|sink [options]");
	o.mode = argv[1];
	o.hops = 16;
	o.node = "loadgen";
	o.timeout = 120;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': o.port = atoi(optarg); break;
		case 'c': o.conc = atoi(optarg); break;
		case 's': o.size = strtoull(optarg, NULL, 10); break;
		case 'n': o.count = atol(optarg); break;
		case 'f': o.first = atol(optarg); break;
		case 'l': o.links = atoi(optarg); break;
		case 'b': o.hops = atoi(optarg); break;
		case 'e': o.entries = atoi(optarg); break;
		case 'i': o.node = optarg; break;
		case 't': o.tls = 1; break;
		case 'A': o.ca = optarg; break;
		case 'C': o.cert = optarg; break;
		case 'K': o.key = optarg; break;
		case 'N': o.name = optarg; break;
		case 'T': o.timeout = atof(optarg); break;
		case 'M': o.max_size = strtoull(optarg, NULL, 10); break;
		default: die("bad option");
		}
	}
	if (strlen(o.node) < 1 || strlen(o.node) > 64 || o.hops < 0 ||
	    o.hops > 255 || o.first < 0 || o.size > (1ULL << 32))
		die("bad --node, --hops, --first or --size");
}

int
main(int argc, char **argv)
{
	parse(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	if (strcmp(o.mode, "wire") == 0)
		return origin_main(1);
	if (strcmp(o.mode, "raw") == 0)
		return origin_main(0);
	if (strcmp(o.mode, "sink") == 0)
		return sink_main();
	die("unknown mode %s (want wire, raw or sink)", o.mode);
	return 2;
}
