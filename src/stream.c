/*
 * stream: the shared buffer of one PUT payload and its readers.
 *
 * Bookkeeping:
 * - `released` is the offset below which no live reader will read again:
 *   the slowest live reader's offset, or everything appended when no live
 *   reader is left.  It only grows.  held = appended - released.
 * - A chunk in the buffer's list holds one reference for being there; it
 *   leaves the list once released passes its end (its whole capacity, or
 *   its filled length once the buffer is closed, so a half-filled tail
 *   stays for the next append).  Outputs add references with
 *   stream_chunk_ref(), so a chunk may outlive the buffer.  Chunk counts
 *   are atomic because the store worker thread may drop the last one.
 * - A reader caches the chunk that holds its cursor; a chunk leaving the
 *   list clears every cache that points to it.
 * - Waiters are a FIFO stamped with the wake generation they subscribed
 *   in; a wake pops only older stamps, so a callback that subscribes
 *   again waits for the next wake instead of looping in this one.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

struct stream_chunk {
	TAILQ_ENTRY(stream_chunk) entry;
	atomic_uint	 refs;
	uint64_t	 start;		/* absolute offset of data[0] */
	size_t		 len;		/* bytes filled */
	uint8_t		*data;		/* after the header, or page aligned */
};
TAILQ_HEAD(stream_chunks, stream_chunk);

/* Owned by its creator; holds one reference on buf. */
struct stream_reader {
	struct stream_buf	*buf;
	TAILQ_ENTRY(stream_reader) entry;	/* buf->readers */
	TAILQ_ENTRY(stream_reader) wentry;	/* buf->waiters, if waiting */
	struct stream_chunk	*chunk;		/* cache: holds offset, or NULL */
	uint64_t		 offset;
	uint64_t		 wait_gen;
	stream_wake_cb		 cb;
	void			*cb_arg;
	int			 cancelled;
	int			 waiting;
};
TAILQ_HEAD(stream_readers, stream_reader);

struct stream_buf {
	unsigned int		 refs;
	size_t			 chunk_size;
	uint64_t		 size;
	uint64_t		 appended;
	uint64_t		 released;
	uint64_t		 wake_gen;
	struct stream_chunks	 chunks;
	struct stream_readers	 readers;
	struct stream_readers	 waiters;
	unsigned int		 nlive;
	unsigned int		 nwaiters;
	int			 complete;
	int			 failed;
	int			 releasing;	/* release_cb is running */
	char			 reason[128];
	stream_release_cb	 release_cb;
	void			*release_arg;
};

static uint64_t	 stream_held_total;

static void	 stream_chunk_drop(struct stream_chunk *);
static struct stream_chunk *stream_chunk_new(struct stream_buf *);
static int	 stream_chunk_done(const struct stream_buf *,
		    const struct stream_chunk *);
static void	 stream_buf_free(struct stream_buf *);
static void	 stream_buf_unlink_chunk(struct stream_buf *,
		    struct stream_chunk *);
static void	 stream_buf_release(struct stream_buf *);
static void	 stream_buf_wake(struct stream_buf *);
static void	 stream_buf_published(struct stream_buf *, size_t);
static struct stream_reader *stream_reader_alloc(struct stream_buf *);
static struct stream_chunk *stream_reader_chunk(struct stream_reader *);

struct stream_buf *
stream_buf_new(uint64_t size, size_t chunk_size)
{
	struct stream_buf	*b;

	if (chunk_size == 0)
		chunk_size = STREAM_CHUNK_SIZE;
	/*
	 * A payload smaller than a chunk gets one chunk of its own size: a
	 * 4 KiB PUT does not take (and free) 64 KiB, whose free also makes
	 * malloc consolidate its fast bins.
	 */
	if (size > 0 && size < chunk_size)
		chunk_size = size;
	if (chunk_size > SIZE_MAX - sizeof(struct stream_chunk))
		return (NULL);
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (NULL);
	b->refs = 1;
	b->size = size;
	b->chunk_size = chunk_size;
	TAILQ_INIT(&b->chunks);
	TAILQ_INIT(&b->readers);
	TAILQ_INIT(&b->waiters);
	return (b);
}

void
stream_buf_ref(struct stream_buf *b)
{
	b->refs++;
}

void
stream_buf_unref(struct stream_buf *b)
{
	if (b == NULL)
		return;
	if (--b->refs == 0)
		stream_buf_free(b);
}

/* Only reached with no readers left: every reader holds a reference. */
static void
stream_buf_free(struct stream_buf *b)
{
	struct stream_chunk	*c;

	stream_held_total -= b->appended - b->released;
	while ((c = TAILQ_FIRST(&b->chunks)) != NULL) {
		TAILQ_REMOVE(&b->chunks, c, entry);
		stream_chunk_drop(c);
	}
	free(b);
}

void
stream_buf_set_release_cb(struct stream_buf *b, stream_release_cb cb,
    void *arg)
{
	b->release_cb = cb;
	b->release_arg = arg;
}

/*
 * A full-size chunk is one block, its data after the header.  A chunk
 * cut to a small payload's size gets page-aligned data of its own, so
 * a stream holding n bytes touches ceil(n / page) pages, not one more
 * for the header in front (bench-scale, 10,000 streams holding 4 KiB
 * each at the storing hop: 12.5 KiB per stream instead of 14.6).
 * Full-size chunks stay one block:
 * aligned 64 KiB blocks, taken and freed all along a long stream, left
 * gaps in the heap that doubled a forwarding hop's peak RSS on 256 MiB
 * (7.7 to 14.3 MiB).
 */
static struct stream_chunk *
stream_chunk_new(struct stream_buf *b)
{
	struct stream_chunk	*c;
	void			*block;

	if (b->chunk_size >= STREAM_CHUNK_SIZE) {
		if ((c = malloc(sizeof(*c) + b->chunk_size)) == NULL)
			return (NULL);
		c->data = (uint8_t *)(c + 1);
	} else {
		if ((c = malloc(sizeof(*c))) == NULL)
			return (NULL);
		if (posix_memalign(&block, 4096, b->chunk_size) != 0) {
			free(c);
			return (NULL);
		}
		c->data = block;
	}
	atomic_init(&c->refs, 1);
	c->start = b->appended;
	c->len = 0;
	return (c);
}

static void
stream_chunk_drop(struct stream_chunk *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1) {
		if (c->data != (uint8_t *)(c + 1))
			free(c->data);
		free(c);
	}
}

void
stream_chunk_ref(struct stream_chunk *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void
stream_chunk_unref(struct stream_chunk *c)
{
	if (c != NULL)
		stream_chunk_drop(c);
}

static int
stream_chunk_done(const struct stream_buf *b, const struct stream_chunk *c)
{
	if (b->released >= c->start + b->chunk_size)
		return (1);
	/* A closed buffer's tail gets no more bytes. */
	if ((b->complete || b->failed) && b->released >= c->start + c->len)
		return (1);
	return (0);
}

static void
stream_buf_unlink_chunk(struct stream_buf *b, struct stream_chunk *c)
{
	struct stream_reader	*r;

	TAILQ_FOREACH(r, &b->readers, entry)
		if (r->chunk == c)
			r->chunk = NULL;
	TAILQ_REMOVE(&b->chunks, c, entry);
	stream_chunk_drop(c);
}

/*
 * Move `released` up to the slowest live reader (or to the end with none),
 * free the chunks everyone has passed and report the growth.
 */
static void
stream_buf_release(struct stream_buf *b)
{
	struct stream_reader	*r;
	struct stream_chunk	*c;
	uint64_t		 target = b->appended, grown;

	TAILQ_FOREACH(r, &b->readers, entry)
		if (!r->cancelled && r->offset < target)
			target = r->offset;
	if (target > b->released) {
		grown = target - b->released;
		b->released = target;
		stream_held_total -= grown;
	} else
		grown = 0;
	while ((c = TAILQ_FIRST(&b->chunks)) != NULL &&
	    stream_chunk_done(b, c))
		stream_buf_unlink_chunk(b, c);
	if (grown > 0 && b->release_cb != NULL) {
		b->releasing++;
		b->release_cb(b, grown, b->release_arg);
		b->releasing--;
	}
}

/*
 * Wake every reader that subscribed before this call.  Each is unlinked
 * before its callback runs; the temporary reference keeps the buffer
 * alive if a callback drops the writer's reference.
 */
static void
stream_buf_wake(struct stream_buf *b)
{
	struct stream_reader	*r;
	uint64_t		 gen;

	b->refs++;
	gen = ++b->wake_gen;
	while ((r = TAILQ_FIRST(&b->waiters)) != NULL && r->wait_gen < gen) {
		TAILQ_REMOVE(&b->waiters, r, wentry);
		r->waiting = 0;
		b->nwaiters--;
		r->cb(r, r->cb_arg);
	}
	stream_buf_unref(b);
}

static void
stream_buf_published(struct stream_buf *b, size_t n)
{
	b->appended += n;
	stream_held_total += n;
	if (b->nlive == 0)
		stream_buf_release(b);
	stream_buf_wake(b);
}

int
stream_append(struct stream_buf *b, const void *data, size_t len)
{
	struct stream_chunks	 fresh;
	struct stream_chunk	*c, *tail;
	const uint8_t		*p = data;
	uint64_t		 next;
	size_t			 room, n;

	if (b->complete || b->failed || b->releasing ||
	    len > b->size - b->appended)
		return (-1);
	if (len == 0)
		return (0);

	/* Allocate every chunk first so that failure appends nothing. */
	TAILQ_INIT(&fresh);
	tail = TAILQ_LAST(&b->chunks, stream_chunks);
	room = tail != NULL ? b->chunk_size - tail->len : 0;
	for (next = b->appended + room; next < b->appended + len;
	    next += b->chunk_size) {
		if ((c = stream_chunk_new(b)) == NULL)
			goto fail;
		c->start = next;
		TAILQ_INSERT_TAIL(&fresh, c, entry);
	}
	TAILQ_CONCAT(&b->chunks, &fresh, entry);

	if (tail == NULL)
		c = TAILQ_FIRST(&b->chunks);
	else if (room == 0)
		c = TAILQ_NEXT(tail, entry);
	else
		c = tail;
	for (n = 0; n < len; c = TAILQ_NEXT(c, entry)) {
		room = b->chunk_size - c->len;
		if (room > len - n)
			room = len - n;
		memcpy(c->data + c->len, p + n, room);
		c->len += room;
		n += room;
	}
	stream_buf_published(b, len);
	return (0);

 fail:
	while ((c = TAILQ_FIRST(&fresh)) != NULL) {
		TAILQ_REMOVE(&fresh, c, entry);
		stream_chunk_drop(c);
	}
	return (-1);
}

void *
stream_append_space(struct stream_buf *b, size_t *room)
{
	struct stream_chunk	*c;
	uint64_t		 left = b->size - b->appended;

	*room = 0;
	if (b->complete || b->failed || b->releasing || left == 0)
		return (NULL);
	c = TAILQ_LAST(&b->chunks, stream_chunks);
	if (c == NULL || c->len == b->chunk_size) {
		if ((c = stream_chunk_new(b)) == NULL)
			return (NULL);
		TAILQ_INSERT_TAIL(&b->chunks, c, entry);
	}
	*room = b->chunk_size - c->len;
	if (*room > left)
		*room = left;
	return (c->data + c->len);
}

int
stream_append_commit(struct stream_buf *b, size_t n)
{
	struct stream_chunk	*c;

	if (b->complete || b->failed || b->releasing ||
	    n > b->size - b->appended)
		return (-1);
	if (n == 0)
		return (0);
	c = TAILQ_LAST(&b->chunks, stream_chunks);
	if (c == NULL || n > b->chunk_size - c->len)
		return (-1);
	c->len += n;
	stream_buf_published(b, n);
	return (0);
}

int
stream_finish(struct stream_buf *b)
{
	char	 why[sizeof(b->reason)];

	if (b->failed)
		return (-1);
	if (b->complete)
		return (0);
	if (b->appended < b->size) {
		snprintf(why, sizeof(why), "finished at %" PRIu64 " of %"
		    PRIu64 " bytes", b->appended, b->size);
		stream_fail(b, why);
		return (-1);
	}
	b->complete = 1;
	stream_buf_release(b);
	stream_buf_wake(b);
	return (0);
}

/* No reader will read a failed buffer, so every chunk goes at once. */
void
stream_fail(struct stream_buf *b, const char *reason)
{
	struct stream_chunk	*c;
	uint64_t		 grown;

	if (b->complete || b->failed)
		return;
	b->failed = 1;
	snprintf(b->reason, sizeof(b->reason), "%s",
	    reason != NULL ? reason : "failed");
	grown = b->appended - b->released;
	b->released = b->appended;
	stream_held_total -= grown;
	while ((c = TAILQ_FIRST(&b->chunks)) != NULL)
		stream_buf_unlink_chunk(b, c);
	b->refs++;
	if (grown > 0 && b->release_cb != NULL) {
		b->releasing++;
		b->release_cb(b, grown, b->release_arg);
		b->releasing--;
	}
	stream_buf_wake(b);
	stream_buf_unref(b);
}

uint64_t
stream_buf_size(const struct stream_buf *b)
{
	return (b->size);
}

uint64_t
stream_buf_appended(const struct stream_buf *b)
{
	return (b->appended);
}

uint64_t
stream_buf_held(const struct stream_buf *b)
{
	return (b->appended - b->released);
}

int
stream_buf_complete(const struct stream_buf *b)
{
	return (b->complete);
}

int
stream_buf_failed(const struct stream_buf *b)
{
	return (b->failed);
}

const char *
stream_buf_fail_reason(const struct stream_buf *b)
{
	return (b->failed ? b->reason : NULL);
}

/* Live (not cancelled) readers. */
unsigned int
stream_buf_readers(const struct stream_buf *b)
{
	return (b->nlive);
}

unsigned int
stream_buf_waiters(const struct stream_buf *b)
{
	return (b->nwaiters);
}

uint64_t
stream_total_held(void)
{
	return (stream_held_total);
}

static struct stream_reader *
stream_reader_alloc(struct stream_buf *b)
{
	struct stream_reader	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->buf = b;
	b->refs++;
	TAILQ_INSERT_TAIL(&b->readers, r, entry);
	return (r);
}

struct stream_reader *
stream_reader_new(struct stream_buf *b)
{
	struct stream_reader	*r;

	if (b->released > 0)
		return (NULL);
	if ((r = stream_reader_alloc(b)) == NULL)
		return (NULL);
	b->nlive++;
	return (r);
}

struct stream_reader *
stream_fork(struct stream_reader *r)
{
	struct stream_reader	*f;

	if ((f = stream_reader_alloc(r->buf)) == NULL)
		return (NULL);
	f->offset = r->offset;
	f->cancelled = r->cancelled;
	if (!f->cancelled) {
		f->chunk = r->chunk;
		r->buf->nlive++;
	}
	return (f);
}

void
stream_reader_free(struct stream_reader *r)
{
	struct stream_buf	*b;

	if (r == NULL)
		return;
	b = r->buf;
	stream_cancel(r);
	TAILQ_REMOVE(&b->readers, r, entry);
	free(r);
	stream_buf_unref(b);
}

void
stream_cancel(struct stream_reader *r)
{
	if (r->cancelled)
		return;
	stream_unwait(r);
	r->cancelled = 1;
	r->chunk = NULL;
	r->buf->nlive--;
	stream_buf_release(r->buf);
}

int
stream_cancelled(const struct stream_reader *r)
{
	return (r->cancelled);
}

enum stream_state
stream_state(const struct stream_reader *r)
{
	const struct stream_buf	*b = r->buf;

	if (r->cancelled)
		return (STREAM_CANCELLED);
	if (b->failed)
		return (STREAM_FAILED);
	if (r->offset < b->appended)
		return (STREAM_READY);
	if (b->complete)
		return (STREAM_EOF);
	return (STREAM_WAIT);
}

uint64_t
stream_offset(const struct stream_reader *r)
{
	return (r->offset);
}

struct stream_buf *
stream_reader_buf(const struct stream_reader *r)
{
	return (r->buf);
}

/* The chunk holding r's cursor; r must be live and offset < appended. */
static struct stream_chunk *
stream_reader_chunk(struct stream_reader *r)
{
	struct stream_buf	*b = r->buf;
	struct stream_chunk	*c = r->chunk;

	if (c != NULL && r->offset >= c->start &&
	    r->offset - c->start < b->chunk_size)
		return (c);
	/* Readers without a cache are at the frontier: search from there. */
	TAILQ_FOREACH_REVERSE(c, &b->chunks, stream_chunks, entry)
		if (c->start <= r->offset)
			break;
	if (c == NULL || r->offset - c->start >= c->len)
		return (NULL);
	r->chunk = c;
	return (c);
}

size_t
stream_peek(struct stream_reader *r, size_t max, const uint8_t **data,
    struct stream_chunk **chunk)
{
	struct stream_chunk	*c;
	size_t			 at, n;

	*data = NULL;
	if (chunk != NULL)
		*chunk = NULL;
	if (stream_state(r) != STREAM_READY || max == 0)
		return (0);
	if ((c = stream_reader_chunk(r)) == NULL)
		return (0);
	at = r->offset - c->start;
	n = c->len - at;
	if (n > max)
		n = max;
	*data = c->data + at;
	if (chunk != NULL)
		*chunk = c;
	return (n);
}

int
stream_peekv(struct stream_reader *r, size_t max, struct stream_piece *out,
    int n)
{
	struct stream_buf	*b = r->buf;
	struct stream_chunk	*c;
	size_t			 at, len, got = 0;
	int			 i = 0;

	if (stream_state(r) != STREAM_READY ||
	    (c = stream_reader_chunk(r)) == NULL)
		return (0);
	at = r->offset - c->start;
	/* Chunks follow each other without gaps; only the tail is short. */
	while (c != NULL && i < n && got < max && at < c->len) {
		len = c->len - at;
		if (len > max - got)
			len = max - got;
		out[i].data = c->data + at;
		out[i].len = len;
		out[i].chunk = c;
		got += len;
		i++;
		if (c->len < b->chunk_size)
			break;
		c = TAILQ_NEXT(c, entry);
		at = 0;
	}
	return (i);
}

void
stream_consume(struct stream_reader *r, size_t n)
{
	struct stream_buf	*b = r->buf;
	struct stream_chunk	*c;

	if (stream_state(r) != STREAM_READY || n == 0)
		return;
	if (n > b->appended - r->offset)
		n = b->appended - r->offset;
	r->offset += n;
	c = r->chunk;
	while (c != NULL && r->offset - c->start >= b->chunk_size)
		c = TAILQ_NEXT(c, entry);
	r->chunk = c;
	stream_buf_release(b);
}

size_t
stream_read(struct stream_reader *r, void *out, size_t len)
{
	const uint8_t	*p;
	size_t		 got = 0, n;

	while (got < len &&
	    (n = stream_peek(r, len - got, &p, NULL)) > 0) {
		memcpy((uint8_t *)out + got, p, n);
		stream_consume(r, n);
		got += n;
	}
	return (got);
}

enum stream_state
stream_wait(struct stream_reader *r, stream_wake_cb cb, void *arg)
{
	struct stream_buf	*b = r->buf;

	if (r->cancelled)
		return (STREAM_CANCELLED);
	r->cb = cb;
	r->cb_arg = arg;
	if (!r->waiting) {
		r->waiting = 1;
		r->wait_gen = b->wake_gen;
		TAILQ_INSERT_TAIL(&b->waiters, r, wentry);
		b->nwaiters++;
	}
	return (stream_state(r));
}

void
stream_unwait(struct stream_reader *r)
{
	if (!r->waiting)
		return;
	TAILQ_REMOVE(&r->buf->waiters, r, wentry);
	r->waiting = 0;
	r->buf->nwaiters--;
}

int
stream_waiting(const struct stream_reader *r)
{
	return (r->waiting);
}
