/*
 * stream: one PUT payload as a shared, reference-counted buffer of
 * fixed-size chunks, and the readers that consume it.  No sockets here.
 *
 * Ownership:
 * - struct stream_buf is reference counted.  stream_buf_new() returns one
 *   reference (the writer's, held by whoever appends: the inbound peer
 *   stream or the control client).  Every reader holds one more reference.
 *   The buffer is freed when the last reference goes.
 * - struct stream_reader is owned by whoever created it (a pipe, the store
 *   job, a test) and freed with stream_reader_free().  Readers never own
 *   each other: a fork shares nothing with its parent but the buffer.
 * - A chunk is freed once every live reader has passed it and no output
 *   holds a reference to it (stream_chunk_ref()).  With no live readers,
 *   appended bytes are counted and released at once.
 *
 * Invariants (see DESIGN.md):
 * - Each reader owns its cursor and its cancelled flag.  Cancelling or
 *   freeing one reader never affects another.  A fork of a cancelled
 *   reader is born cancelled.
 * - Notification lives on the buffer: every append, finish or fail wakes
 *   every reader waiting on the buffer, whoever appended.  stream_wait()
 *   subscribes first and then returns the reader's current state, so a
 *   wakeup cannot fall between a check and a wait.  A waiting reader is
 *   linked into the buffer's waiter list through a field embedded in the
 *   reader, so waiting costs no memory however often it is repeated.
 * - Wake callbacks run synchronously from stream_append()/stream_finish()/
 *   stream_fail(), one-shot (the reader is unlinked before its callback
 *   runs).  A callback may call stream_wait() again, read, or cancel its
 *   own reader, but must not free any reader or drop the last buffer
 *   reference.
 */
#ifndef RELAYD_STREAM_H
#define RELAYD_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define STREAM_CHUNK_SIZE	(64 * 1024)

struct stream_buf;
struct stream_reader;
struct stream_chunk;

enum stream_state {
	STREAM_READY = 0,	/* bytes are available at the cursor */
	STREAM_WAIT = 1,	/* no bytes now, more may come */
	STREAM_EOF = 2,		/* buffer complete and cursor at its end */
	STREAM_FAILED = 3,	/* buffer failed before completion */
	STREAM_CANCELLED = 4,	/* this reader was cancelled */
};

typedef void (*stream_wake_cb)(struct stream_reader *, void *arg);
/*
 * Called when the slowest live reader's position advances, from inside
 * that reader's stream_consume() or stream_cancel().  The reader is half
 * way through its step, so appending to the buffer from here is refused
 * (stream_append*() fail): a writer that gets credit here must append
 * later, from the loop.
 */
typedef void (*stream_release_cb)(struct stream_buf *, uint64_t released,
    void *arg);

/*
 * A new buffer for a payload of `size` bytes (the declared size) with
 * chunks of chunk_size bytes (0 = STREAM_CHUNK_SIZE; never more than size
 * when size is smaller, so a small payload takes one small chunk).
 * Returns NULL on allocation failure.  Appending beyond `size` is
 * refused.
 */
struct stream_buf	*stream_buf_new(uint64_t size, size_t chunk_size);
void		 stream_buf_ref(struct stream_buf *);
void		 stream_buf_unref(struct stream_buf *);
void		 stream_buf_set_release_cb(struct stream_buf *,
		    stream_release_cb, void *arg);

/*
 * Copy len bytes in.  Returns 0, or -1 if that would exceed the declared
 * size or the buffer is already complete or failed (nothing is appended),
 * or on allocation failure.  Wakes every waiting reader.
 */
int		 stream_append(struct stream_buf *, const void *, size_t);
/*
 * Zero-copy append: stream_append_space() returns writable room in the
 * tail chunk (allocating one if needed; NULL on failure or when nothing
 * more may be appended) and its length in *room;
 * stream_append_commit() publishes n of those bytes and wakes readers.
 */
void		*stream_append_space(struct stream_buf *, size_t *room);
int		 stream_append_commit(struct stream_buf *, size_t n);

/*
 * Mark the buffer complete.  Returns 0, or -1 if fewer bytes than the
 * declared size were appended (the buffer is then failed instead).  A
 * complete buffer stays complete: stream_fail() on it is a no-op.
 */
int		 stream_finish(struct stream_buf *);
/* Fail an incomplete buffer (upstream lost, aborted); wakes readers. */
void		 stream_fail(struct stream_buf *, const char *reason);

uint64_t	 stream_buf_size(const struct stream_buf *);	/* declared */
uint64_t	 stream_buf_appended(const struct stream_buf *);
/* Bytes held in chunks right now (appended minus released). */
uint64_t	 stream_buf_held(const struct stream_buf *);
int		 stream_buf_complete(const struct stream_buf *);
int		 stream_buf_failed(const struct stream_buf *);
const char	*stream_buf_fail_reason(const struct stream_buf *);
unsigned int	 stream_buf_readers(const struct stream_buf *);
unsigned int	 stream_buf_waiters(const struct stream_buf *);
/* Bytes held in chunks by all buffers in this process. */
uint64_t	 stream_total_held(void);

/*
 * A reader with its cursor at offset 0.  Must be made before any chunk is
 * released (i.e. before the first append, or while another reader still
 * holds offset 0); returns NULL otherwise or on allocation failure.
 */
struct stream_reader	*stream_reader_new(struct stream_buf *);
/* An independent reader at the same cursor; cancelled if r is. */
struct stream_reader	*stream_fork(struct stream_reader *r);
void		 stream_reader_free(struct stream_reader *);
/* Cancel this reader only; it is unsubscribed and no longer holds chunks. */
void		 stream_cancel(struct stream_reader *);
int		 stream_cancelled(const struct stream_reader *);
enum stream_state stream_state(const struct stream_reader *);
uint64_t	 stream_offset(const struct stream_reader *);
struct stream_buf	*stream_reader_buf(const struct stream_reader *);

/*
 * Contiguous readable bytes at the cursor: sets *data and *chunk (for
 * stream_chunk_ref) and returns their length, at most max; 0 if none.
 */
size_t		 stream_peek(struct stream_reader *, size_t max,
		    const uint8_t **data, struct stream_chunk **chunk);
/*
 * The same for up to n chunks at once, without consuming: the readable
 * bytes at the cursor (at most max), one piece per chunk, in order.
 * Returns the number of pieces filled, 0 if none.
 */
struct stream_piece {
	const uint8_t		*data;
	size_t			 len;
	struct stream_chunk	*chunk;
};
int		 stream_peekv(struct stream_reader *, size_t max,
		    struct stream_piece *, int n);
/* Advance the cursor by n (n <= readable bytes); may release chunks. */
void		 stream_consume(struct stream_reader *, size_t n);
/* Copy up to len bytes out and consume them; returns the count. */
size_t		 stream_read(struct stream_reader *, void *, size_t len);

/*
 * Subscribe r to the next append/finish/fail of its buffer (idempotent:
 * a reader already waiting is not linked twice), then return its state.
 * If the state is not STREAM_WAIT the caller should act on it; it stays
 * subscribed until woken or stream_unwait().
 */
enum stream_state stream_wait(struct stream_reader *, stream_wake_cb,
		    void *arg);
void		 stream_unwait(struct stream_reader *);
int		 stream_waiting(const struct stream_reader *);

/*
 * Keep a chunk alive while an output (evbuffer_add_reference) holds its
 * bytes; stream_chunk_unref() frees it once readers passed it too.
 */
void		 stream_chunk_ref(struct stream_chunk *);
void		 stream_chunk_unref(struct stream_chunk *);

#endif
