/*
 * xport: a peer link's byte transport (see xport.h for why it is not a
 * bufferevent).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "xport.h"

#define XPORT_READ_MAX		(256 * 1024)	/* bytes per read call */
#define XPORT_READ_ROUNDS	16		/* read calls per wake-up */
#define XPORT_BOUNDARY_READ	(16 * 1024)	/* at a frame boundary */
#define XPORT_WRITE_ROUNDS	16		/* writev calls per flush */
#define XPORT_RECORD		16384		/* TLS plaintext per record */
#define XPORT_RAW_HIGH		(256 * 1024)	/* ciphertext queued, max */
#define XPORT_TLS_RBUF		(64 * 1024)	/* OpenSSL's socket reads */
#define XPORT_TLS_BUDGET	(1024 * 1024)	/* plaintext per wake-up */

struct xport {
	struct event_base	*base;
	int			 fd;
	SSL			*ssl;
	struct event		*rev;		/* readable, persistent */
	struct event		*wev;		/* writable or connected */
	struct event		*flush_ev;	/* write after this pass */
	struct evbuffer		*in;		/* plaintext received */
	struct evbuffer		*out;		/* plaintext to send */
	struct evbuffer		*raw_out;	/* TLS: ciphertext to send */
	xport_cb		 readcb;
	xport_cb		 writecb;
	xport_event_cb		 eventcb;
	xport_sink_cb		 sink;
	xport_sunk_cb		 sunk;
	size_t			 sink_tail;
	void			*arg;
	size_t			 lowat;
	uint64_t		 out_drained;	/* bytes ever taken from out */
	int			 busy;		/* our frames on the stack */
	int			 err;		/* errno of the failure */
	unsigned long		 ssl_err;
	unsigned int		 server:1;
	unsigned int		 connecting:1;
	unsigned int		 handshaking:1;
	unsigned int		 reading:1;	/* rev wanted */
	unsigned int		 ended:1;	/* EOF or error delivered */
	unsigned int		 flush_pending:1;
	unsigned int		 dead:1;	/* freed while busy */
};

static BIO_METHOD	*xport_bio_meth;
static unsigned char	 xport_stage[XPORT_RECORD];

static void	xport_read_ev(evutil_socket_t, short, void *);
static void	xport_write_ev(evutil_socket_t, short, void *);
static void	xport_flush_ev(evutil_socket_t, short, void *);
static void	xport_flush(struct xport *);

/* --- OpenSSL writes ciphertext to an evbuffer --- */

static int
xport_bio_write(BIO *b, const char *buf, int len)
{
	struct xport *x = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (evbuffer_add(x->raw_out, buf, len) == -1)
		return -1;
	return len;
}

static long
xport_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static int
xport_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO *
xport_bio_new(struct xport *x)
{
	BIO *b;

	if (xport_bio_meth == NULL) {
		xport_bio_meth = BIO_meth_new(BIO_get_new_index() |
		    BIO_TYPE_SOURCE_SINK, "relayd xport");
		if (xport_bio_meth == NULL)
			return NULL;
		BIO_meth_set_write(xport_bio_meth, xport_bio_write);
		BIO_meth_set_ctrl(xport_bio_meth, xport_bio_ctrl);
		BIO_meth_set_create(xport_bio_meth, xport_bio_create);
	}
	if ((b = BIO_new(xport_bio_meth)) == NULL)
		return NULL;
	BIO_set_data(b, x);
	return b;
}

/* --- life cycle --- */

static int
xport_set_fd(struct xport *x, int fd)
{
	BIO *rbio;

	x->fd = fd;
	evutil_make_socket_nonblocking(fd);
	x->rev = event_new(x->base, fd, EV_READ | EV_PERSIST, xport_read_ev,
	    x);
	x->wev = event_new(x->base, fd, EV_WRITE, xport_write_ev, x);
	if (x->rev == NULL || x->wev == NULL)
		return -1;
	if (x->ssl != NULL) {
		if ((rbio = BIO_new_socket(fd, BIO_NOCLOSE)) == NULL)
			return -1;
		SSL_set0_rbio(x->ssl, rbio);
	}
	return 0;
}

static void
xport_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct xport *x = arg;

	(void)b;
	x->out_drained += info->n_deleted;
	if (info->n_added == 0 || x->flush_pending || x->ended)
		return;
	x->flush_pending = 1;
	event_active(x->flush_ev, EV_WRITE, 0);
}

struct xport *
xport_new(struct event_base *base, int fd, SSL *ssl, int server)
{
	struct xport *x;
	BIO *bio;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->base = base;
	x->fd = -1;
	x->server = server != 0;
	x->reading = 1;
	x->in = evbuffer_new();
	x->out = evbuffer_new();
	x->flush_ev = event_new(base, -1, 0, xport_flush_ev, x);
	if (x->in == NULL || x->out == NULL || x->flush_ev == NULL)
		goto fail;
	if (evbuffer_add_cb(x->out, xport_out_cb, x) == NULL)
		goto fail;
	if (ssl != NULL) {
		x->raw_out = evbuffer_new();
		if (x->raw_out == NULL || (bio = xport_bio_new(x)) == NULL)
			goto fail;
		/*
		 * Writes go to raw_out (one writev for many records); reads
		 * come from the socket (xport_set_fd) straight into OpenSSL's
		 * buffer, XPORT_TLS_RBUF at a time.  An EOF without
		 * close_notify is an EOF: the frames say whether a stream
		 * ended well.
		 */
		SSL_set0_wbio(ssl, bio);
		SSL_set_read_ahead(ssl, 1);
		SSL_set_default_read_buffer_len(ssl, XPORT_TLS_RBUF);
		SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
		if (server)
			SSL_set_accept_state(ssl);
		else
			SSL_set_connect_state(ssl);
		x->ssl = ssl;
	}
	if (fd != -1) {
		if (xport_set_fd(x, fd) == -1)
			goto fail;
		event_add(x->rev, NULL);
		x->handshaking = x->ssl != NULL;
	}
	return x;
 fail:
	/* The caller still owns fd and ssl. */
	x->fd = -1;
	if (x->ssl != NULL) {
		SSL_set_bio(ssl, NULL, NULL);
		x->ssl = NULL;
	}
	x->fd = -1;
	xport_free(x);
	return NULL;
}

void
xport_set_sink(struct xport *x, xport_sink_cb sink, xport_sunk_cb sunk,
    size_t tail)
{
	x->sink = sink;
	x->sunk = sunk;
	x->sink_tail = tail > 0 ? tail : 1;
}

/* Where the next plaintext goes if not into the input buffer, or NULL. */
static void *
xport_sink_space(struct xport *x, size_t *len)
{
	void *p;

	if (x->sink == NULL || evbuffer_get_length(x->in) > 0)
		return NULL;
	*len = 0;
	p = x->sink(x, len, x->arg);
	return p != NULL && *len > 0 ? p : NULL;
}

void
xport_setcb(struct xport *x, xport_cb readcb, xport_cb writecb,
    xport_event_cb eventcb, void *arg)
{
	x->readcb = readcb;
	x->writecb = writecb;
	x->eventcb = eventcb;
	x->arg = arg;
}

static void
xport_destroy(struct xport *x)
{
	if (x->ssl != NULL) {
		/* A courteous close_notify, if the link got that far. */
		if (!x->handshaking && !x->ended && x->fd != -1 &&
		    SSL_shutdown(x->ssl) >= 0 &&
		    evbuffer_get_length(x->raw_out) > 0)
			evbuffer_write(x->raw_out, x->fd);
		ERR_clear_error();
		SSL_free(x->ssl);
	}
	if (x->rev != NULL)
		event_free(x->rev);
	if (x->wev != NULL)
		event_free(x->wev);
	if (x->flush_ev != NULL)
		event_free(x->flush_ev);
	if (x->fd != -1)
		close(x->fd);
	if (x->in != NULL)
		evbuffer_free(x->in);
	if (x->out != NULL)
		evbuffer_free(x->out);
	if (x->raw_out != NULL)
		evbuffer_free(x->raw_out);
	free(x);
}

void
xport_free(struct xport *x)
{
	if (x == NULL)
		return;
	if (x->busy > 0) {
		/* A callback of ours is on the stack: free on the way out. */
		x->dead = 1;
		x->ended = 1;
		if (x->rev != NULL)
			event_del(x->rev);
		if (x->wev != NULL)
			event_del(x->wev);
		event_del(x->flush_ev);
		return;
	}
	xport_destroy(x);
}

/* Leave one of our frames; 1 if the transport is gone. */
static int
xport_release(struct xport *x)
{
	if (--x->busy == 0 && x->dead) {
		xport_destroy(x);
		return 1;
	}
	return x->dead;
}

static void
xport_event(struct xport *x, short what)
{
	if (what & (XPORT_EOF | XPORT_ERROR)) {
		x->ended = 1;
		event_del(x->rev);
		event_del(x->wev);
		event_del(x->flush_ev);
	}
	if (x->eventcb != NULL)
		x->eventcb(x, what, x->arg);
}

int
xport_connect(struct xport *x, const struct sockaddr *sa, socklen_t len)
{
	int fd, err;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (xport_set_fd(x, fd) == -1) {
		x->fd = -1;
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	x->connecting = 1;
	if (connect(fd, sa, len) == -1 && errno != EINPROGRESS) {
		/* Reported from the loop, like a refusal that comes later. */
		err = errno;
		x->err = err;
		event_active(x->wev, EV_WRITE, 0);
		return 0;
	}
	event_add(x->wev, NULL);
	return 0;
}

/* --- input --- */

/*
 * One read from a plain TCP socket: into the sink first if there is
 * one, then at most sink_tail bytes into the input buffer (the next frame
 * header, so the next read can go to the next sink); at a frame boundary
 * with no sink, XPORT_BOUNDARY_READ bytes; else as much as fits there.
 * (TLS links never come here: OpenSSL reads their socket.)
 * Bytes read (0 at EOF with *eof set, or when there is nothing), or -1.
 * *full: the read filled all the room it had (there may be more).
 */
static ssize_t
xport_read_once(struct xport *x, int *eof, int *full)
{
	struct evbuffer *buf = x->in;
	struct evbuffer_iovec v[3];
	size_t want, left, sunk, slen = 0, cap = XPORT_READ_MAX;
	void *sp;
	ssize_t n;
	int i, nv, small;

	*full = 0;
	if ((sp = xport_sink_space(x, &slen)) == NULL)
		slen = 0;
	/*
	 * Only a header into the input buffer after a sink: the next read
	 * then knows where the payload goes.  One more read call per frame
	 * costs less than copying the frame.  At a frame boundary with no
	 * sink yet, a few KiB: small frames (PUT, END, RESULT, CREDIT) come
	 * whole in one call, and at most that much of a payload is copied.
	 */
	if (sp != NULL)
		cap = x->sink_tail;
	else if (x->sink != NULL && evbuffer_get_length(buf) == 0)
		cap = x->sink_tail > XPORT_BOUNDARY_READ ? x->sink_tail :
		    XPORT_BOUNDARY_READ;
	small = cap != XPORT_READ_MAX;
	nv = evbuffer_reserve_space(buf, cap, v + 1, small ? 1 : 2);
	if (nv <= 0) {
		x->err = ENOMEM;
		return -1;
	}
	if (small && v[1].iov_len > cap)
		v[1].iov_len = cap;
	v[0].iov_base = sp;
	v[0].iov_len = slen;
	for (want = 0, i = 0; i <= nv; i++)
		want += v[i].iov_len;
	do
		n = readv(x->fd, (struct iovec *)(sp != NULL ? v : v + 1),
		    sp != NULL ? nv + 1 : nv);
	while (n == -1 && errno == EINTR);
	if (n == 0) {
		*eof = 1;
		return 0;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		x->err = errno;
		return -1;
	}
	sunk = (size_t)n < slen ? (size_t)n : slen;
	for (left = n - sunk, i = 1; i <= nv; i++) {
		if (v[i].iov_len > left)
			v[i].iov_len = left;
		left -= v[i].iov_len;
	}
	evbuffer_commit_space(buf, v + 1, nv);
	*full = (size_t)n == want;
	if (sunk > 0)
		x->sunk(x, sunk, x->arg);
	return n;
}

/*
 * Plain TCP input: read rounds; between rounds the read callback parses
 * what came, so the next read knows its sink.  -1 on a socket error.
 */
static int
xport_plain_input(struct xport *x, int *eof)
{
	ssize_t n;
	int round, full;

	for (round = 0; round < XPORT_READ_ROUNDS; round++) {
		n = xport_read_once(x, eof, &full);
		if (n < 0)
			return -1;
		if (x->dead || x->ended)
			return 0;
		if (evbuffer_get_length(x->in) > 0 && x->readcb != NULL) {
			x->readcb(x, x->arg);
			if (x->dead || x->ended)
				return 0;
		}
		/* The read callback paused input: take nothing more. */
		if (n == 0 || !full || !x->reading)
			break;
	}
	return 0;
}

/*
 * An SSL call failed with SSL_get_error() e: the peer's EOF (*eof set,
 * 0), or a failure (-1): a TLS error (ssl_err) or a socket error (err).
 */
static int
xport_tls_failed(struct xport *x, int e, int *eof)
{
	int err = errno;

	x->ssl_err = ERR_peek_error();
	if (x->ssl_err != 0)
		return -1;
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && err == 0)) {
		*eof = 1;
		return 0;
	}
	x->err = e == SSL_ERROR_SYSCALL ? err : EPROTO;
	return -1;
}

/* Decrypt what came in; plaintext bytes added, or -1 (ssl_err set). */
static ssize_t
xport_decrypt(struct xport *x, int *eof)
{
	struct evbuffer_iovec v;
	ssize_t total = 0;
	size_t slen = 0, done;
	void *sp;
	int r = 0, e;

	for (done = 0; !x->dead && x->reading; done += r) {
		if (done >= XPORT_TLS_BUDGET) {
			/* Fair to other links; come back for what is left. */
			if (SSL_has_pending(x->ssl))
				event_active(x->rev, EV_READ, 0);
			return total;
		}
		if ((sp = xport_sink_space(x, &slen)) != NULL) {
			/* Decrypt straight into the payload's buffer. */
			ERR_clear_error();
			errno = 0;
			r = SSL_read(x->ssl, sp, slen > INT_MAX ? INT_MAX :
			    (int)slen);
			if (r > 0) {
				x->sunk(x, r, x->arg);
				continue;
			}
		} else {
			if (evbuffer_reserve_space(x->in, 4 * XPORT_RECORD,
			    &v, 1) != 1)
				return -1;
			/* With a sink, stop after a header: parse it first. */
			if (x->sink != NULL && v.iov_len > x->sink_tail &&
			    evbuffer_get_length(x->in) == 0)
				v.iov_len = x->sink_tail;
			ERR_clear_error();
			errno = 0;
			r = SSL_read(x->ssl, v.iov_base, v.iov_len);
			if (r > 0) {
				v.iov_len = r;
				evbuffer_commit_space(x->in, &v, 1);
				if (x->sink != NULL && x->readcb != NULL)
					x->readcb(x, x->arg);
				else
					total += r;
				if (x->ended)
					return 0;
				continue;
			}
		}
		e = SSL_get_error(x->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return total;
		return xport_tls_failed(x, e, eof) == -1 ? -1 : total;
	}
	return total;
}

/* Advance the handshake: 1 done now, 0 not yet (or EOF), -1 failed. */
static int
xport_handshake(struct xport *x, int *eof)
{
	int r, e;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_do_handshake(x->ssl)) == 1) {
		x->handshaking = 0;
		return 1;
	}
	e = SSL_get_error(x->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	return xport_tls_failed(x, e, eof);
}

/* Ciphertext out now, best effort (handshake messages, alerts). */
static void
xport_write_raw(struct xport *x)
{
	if (evbuffer_get_length(x->raw_out) == 0)
		return;
	if (evbuffer_write(x->raw_out, x->fd) < 0 && errno != EAGAIN &&
	    errno != EWOULDBLOCK && errno != EINTR)
		return;
	if (evbuffer_get_length(x->raw_out) > 0)
		event_add(x->wev, NULL);
}

/* TLS bytes arrived: handshake, decrypt.  -1 if the TLS layer failed. */
static int
xport_tls_input(struct xport *x, int *eof, ssize_t *plain)
{
	ssize_t n;
	int r;

	if (x->handshaking) {
		if ((r = xport_handshake(x, eof)) == -1)
			return -1;
		xport_write_raw(x);
		if (r == 0)
			return 0;
		x->busy++;
		xport_event(x, XPORT_CONNECTED);
		if (xport_release(x) || x->ended)
			return 0;
	}
	if ((n = xport_decrypt(x, eof)) < 0)
		return -1;
	*plain += n;
	return 0;
}

static void
xport_read_ev(evutil_socket_t fd, short what, void *arg)
{
	struct xport *x = arg;
	ssize_t plain = 0;
	int eof = 0, failed = 0, tls_failed = 0;

	(void)fd;
	(void)what;
	x->busy++;
	if (x->ssl == NULL)
		failed = xport_plain_input(x, &eof) == -1;
	else if (xport_tls_input(x, &eof, &plain) == -1) {
		tls_failed = 1;
		xport_write_raw(x);	/* the alert, so the peer knows why */
	}
	if (x->dead || x->ended)
		goto done;
	if (plain > 0 && x->readcb != NULL) {
		x->readcb(x, x->arg);
		if (x->dead || x->ended)
			goto done;
	}
	if (failed || tls_failed)
		xport_event(x, XPORT_ERROR);
	else if (eof)
		xport_event(x, XPORT_EOF);
	else if (x->ssl != NULL && evbuffer_get_length(x->raw_out) > 0)
		xport_flush(x);
 done:
	xport_release(x);
}

/* --- output --- */

/* Bytes at the front of out made of small pieces, at most a record. */
static size_t
xport_small_run(struct evbuffer *out, size_t len)
{
	struct evbuffer_iovec v[16];
	size_t n = 0;
	int i, nv;

	nv = evbuffer_peek(out, -1, NULL, v, 16);
	if (nv > 16)
		nv = 16;
	for (i = 0; i < nv; i++) {
		if (v[i].iov_len >= XPORT_RECORD ||
		    n + v[i].iov_len > XPORT_RECORD)
			break;
		n += v[i].iov_len;
	}
	if (n == 0)
		n = len < XPORT_RECORD ? len : XPORT_RECORD;
	return n;
}

/* Encrypt queued plaintext while the ciphertext queue has room. */
static int
xport_encrypt(struct xport *x)
{
	struct evbuffer_iovec v;
	const void *p;
	size_t len, n;
	int r;

	while (evbuffer_get_length(x->raw_out) < XPORT_RAW_HIGH &&
	    (len = evbuffer_get_length(x->out)) > 0) {
		if (evbuffer_peek(x->out, -1, NULL, &v, 1) < 1)
			return -1;
		if (v.iov_len >= XPORT_RECORD || v.iov_len == len) {
			/* Big enough for full records as it is. */
			p = v.iov_base;
			n = v.iov_len > 4 * XPORT_RECORD ? 4 * XPORT_RECORD :
			    v.iov_len;
		} else {
			/*
			 * Small pieces (frames, a DATA header) share one
			 * record, up to the next big piece: a payload chunk
			 * then starts a record of its own and is encrypted
			 * where it lies, not copied here first.
			 */
			n = xport_small_run(x->out, len);
			if (evbuffer_copyout(x->out, xport_stage, n) !=
			    (ssize_t)n)
				return -1;
			p = xport_stage;
		}
		ERR_clear_error();
		if ((r = SSL_write(x->ssl, p, n)) <= 0) {
			x->ssl_err = ERR_peek_error();
			return -1;
		}
		evbuffer_drain(x->out, r);
	}
	return 0;
}

static void
xport_flush(struct xport *x)
{
	struct evbuffer *wb = x->ssl != NULL ? x->raw_out : x->out;
	size_t before = evbuffer_get_length(x->out);
	int round, blocked = 0;

	if (x->dead || x->ended || x->connecting || x->fd == -1)
		return;
	for (round = 0; round < XPORT_WRITE_ROUNDS; round++) {
		if (x->ssl != NULL && !x->handshaking &&
		    xport_encrypt(x) == -1) {
			x->busy++;
			xport_event(x, XPORT_ERROR);
			xport_release(x);
			return;
		}
		if (evbuffer_get_length(wb) == 0)
			break;
		if (evbuffer_write(wb, x->fd) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR) {
				blocked = 1;
				break;
			}
			x->err = errno;
			x->busy++;
			xport_event(x, XPORT_ERROR);
			xport_release(x);
			return;
		}
	}
	if (blocked || evbuffer_get_length(wb) > 0 ||
	    (x->ssl != NULL && !x->handshaking &&
	    evbuffer_get_length(x->out) > 0))
		event_add(x->wev, NULL);
	if (x->writecb != NULL && evbuffer_get_length(x->out) < before &&
	    evbuffer_get_length(x->out) <= x->lowat) {
		x->busy++;
		x->writecb(x, x->arg);
		xport_release(x);
	}
}

static void
xport_flush_ev(evutil_socket_t fd, short what, void *arg)
{
	struct xport *x = arg;

	(void)fd;
	(void)what;
	x->flush_pending = 0;
	xport_flush(x);
}

/* The socket is writable, or an outbound connect finished. */
static void
xport_write_ev(evutil_socket_t fd, short what, void *arg)
{
	struct xport *x = arg;
	socklen_t len = sizeof(int);
	int e = x->err, eof = 0;

	(void)what;
	if (!x->connecting) {
		xport_flush(x);
		return;
	}
	if (e == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		e = errno;
	x->busy++;
	if (e != 0) {
		x->err = e;
		xport_event(x, XPORT_ERROR);
		xport_release(x);
		return;
	}
	x->connecting = 0;
	if (x->reading)
		event_add(x->rev, NULL);
	if (x->ssl != NULL) {
		/* The ClientHello; CONNECTED comes when the handshake ends. */
		x->handshaking = 1;
		if (xport_handshake(x, &eof) == -1) {
			xport_write_raw(x);
			xport_event(x, XPORT_ERROR);
		} else
			xport_write_raw(x);
		xport_release(x);
		return;
	}
	xport_event(x, XPORT_CONNECTED);
	if (!xport_release(x) && evbuffer_get_length(x->out) > 0)
		xport_flush(x);
}

/* --- accessors --- */

void
xport_set_lowat(struct xport *x, size_t lowat)
{
	x->lowat = lowat;
}

void
xport_read_enable(struct xport *x, int on)
{
	int was = x->reading;

	x->reading = on != 0;
	if (x->rev == NULL || x->connecting || x->ended)
		return;
	if (!on) {
		event_del(x->rev);
		return;
	}
	event_add(x->rev, NULL);
	/* Input may wait in the buffers (ours, OpenSSL's) with the socket
	 * already drained: epoll would not say so again. */
	if (!was)
		event_active(x->rev, EV_READ, 0);
}

struct evbuffer *
xport_input(struct xport *x)
{
	return x->in;
}

struct evbuffer *
xport_output(struct xport *x)
{
	return x->out;
}

int
xport_write(struct xport *x, const void *buf, size_t len)
{
	return evbuffer_add(x->out, buf, len);
}

uint64_t
xport_out_drained(const struct xport *x)
{
	return x->out_drained;
}

int
xport_fd(const struct xport *x)
{
	return x->fd;
}

SSL *
xport_ssl(const struct xport *x)
{
	return x->ssl;
}

int
xport_errno(const struct xport *x)
{
	return x->err;
}

unsigned long
xport_ssl_error(const struct xport *x)
{
	return x->ssl_err;
}
