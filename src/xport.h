/*
 * xport: the byte transport of a peer link, plain TCP or TLS over a
 * non-blocking socket, with a plaintext input and output evbuffer.
 *
 * It exists instead of a libevent bufferevent for speed: a bufferevent
 * reads at most 4096 bytes per call in libevent 2.1 and re-arms the
 * socket's write interest in epoll around every write.  xport reads up to
 * XPORT_READ_MAX per call straight into the input buffer, writes the
 * output buffer as soon as the current callbacks are done (one writev per
 * loop pass, not per frame), and asks epoll for writability only when the
 * kernel's send buffer is full.  With TLS, OpenSSL reads the socket
 * itself (read-ahead into a 64 KiB buffer) and writes its records into an
 * evbuffer (a BIO), so ciphertext also leaves in big writes; small frames
 * share a record, and a payload chunk fills whole 16 KiB records.
 *
 * Events, through the event callback: XPORT_CONNECTED (an outbound TCP
 * connect finished, and for TLS on either side the handshake too),
 * XPORT_EOF, XPORT_ERROR (xport_errno() or xport_ssl_error() say why).
 * The read callback runs after new plaintext arrived; the write callback
 * after a write left the output at or below the low watermark.  Any
 * callback may call xport_free(); the transport defers the free until its
 * own frames have returned.
 *
 * Ownership: xport_new() takes the socket (and the SSL, if any) and
 * xport_free() closes and frees them.
 */
#ifndef RELAYD_XPORT_H
#define RELAYD_XPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

struct evbuffer;
struct xport;
typedef struct ssl_st SSL;

#define XPORT_CONNECTED	0x01
#define XPORT_EOF	0x02
#define XPORT_ERROR	0x04

typedef void	(*xport_cb)(struct xport *, void *);
typedef void	(*xport_event_cb)(struct xport *, short what, void *);
typedef void	*(*xport_sink_cb)(struct xport *, size_t *len, void *);
typedef void	(*xport_sunk_cb)(struct xport *, size_t n, void *);

/*
 * A transport over fd (a connected socket), or with fd -1 one that gets a
 * socket from xport_connect().  ssl: NULL for plain TCP, else an SSL
 * (server = 1 accepts the handshake, 0 starts it) that xport drives.
 */
struct xport	*xport_new(struct event_base *, int fd, SSL *ssl, int server);
void		 xport_setcb(struct xport *, xport_cb readcb,
		    xport_cb writecb, xport_event_cb eventcb, void *arg);
/*
 * Zero-copy receive.  While the input buffer is empty, each read first
 * asks sink() where the next plaintext bytes belong (NULL: the input
 * buffer); up to *len bytes go there, and sunk() says how many did.  After
 * a sink the read takes at most tail more bytes into the input buffer (a
 * frame header) and the read callback runs before the next read, so the
 * next payload can go to its sink too.  So a payload lands in its final
 * buffer without passing through the input buffer.
 */
void		 xport_set_sink(struct xport *, xport_sink_cb sink,
		    xport_sunk_cb sunk, size_t tail);
/* Start a non-blocking connect; -1 with errno if it failed at once. */
int		 xport_connect(struct xport *, const struct sockaddr *,
		    socklen_t);
/* The write callback runs when the output is at or below lowat. */
void		 xport_set_lowat(struct xport *, size_t lowat);
/*
 * Stop or resume reading (a closing link reads nothing more; a link whose
 * peer does not read its output stops too).  Stopping takes effect inside
 * the current wake-up: no more rounds are read after the read callback.
 */
void		 xport_read_enable(struct xport *, int on);
/* Plaintext in (drain it) and out (add to it; it goes out soon). */
struct evbuffer	*xport_input(struct xport *);
struct evbuffer	*xport_output(struct xport *);
int		 xport_write(struct xport *, const void *, size_t);
/* Bytes ever taken from the output buffer (written, or encrypted and
 * queued for the socket): a frame queued when the output held n bytes
 * less than this total has left. */
uint64_t	 xport_out_drained(const struct xport *);
int		 xport_fd(const struct xport *);
SSL		*xport_ssl(const struct xport *);
/* Why the last XPORT_ERROR: errno, and the OpenSSL error (or 0). */
int		 xport_errno(const struct xport *);
unsigned long	 xport_ssl_error(const struct xport *);
void		 xport_free(struct xport *);

#endif
