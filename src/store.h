/*
 * store: atomic, verified payload storage, off the event loop.
 *
 * A payload is written as its bytes arrive to a temp file ".tmp-*" in the
 * store directory, hashed (SHA-256) on the way, fsync'd, and renamed to
 * its final name only if its size and hash match the declared ones;
 * otherwise the temp file is unlinked and the failure reported.  The temp
 * file is created with the job's first byte (or at EOF when the payload
 * is empty), so an admitted stream that sends nothing holds no
 * descriptor.  store_open
 * removes temp files a crash left behind.
 *
 * Threads: one worker thread per store does every write, hash, fsync,
 * rename and unlink.  Everything else here runs on the loop thread: a job
 * reads its stream_reader on the loop, takes chunk references, queues the
 * bytes to the worker (at most STORE_MAX_INFLIGHT bytes queued per job, so
 * a slow disk holds back only this reader, which the buffer's credit
 * turns into backpressure), and completions come back to the loop through
 * an event on a pipe/eventfd.  The loop never blocks on the disk.
 *
 * Ownership: the store owns its jobs.  store_begin() takes ownership of
 * the reader.  The done callback runs on the loop exactly once per job
 * unless the job was cancelled first; after it returns the job is freed
 * by the store (do not touch it again).
 */
#ifndef RELAYD_STORE_H
#define RELAYD_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_MAX_INFLIGHT	(1024 * 1024)

struct event_base;
struct stream_reader;
struct store;
struct store_job;

/* ok = 1 stored under its final name; 0 failed, reason says why. */
typedef void (*store_done_cb)(struct store_job *, int ok,
    const char *reason, void *arg);

/*
 * Open (create if missing, with its missing parents, mode 0750) the store
 * directory, remove stale temp files, start the worker.  NULL with a
 * message in err on failure.
 */
struct store	*store_open(struct event_base *, const char *dir,
		    char *err, size_t errlen);
/* Cancel all jobs (their temp files are unlinked), stop and join. */
void		 store_close(struct store *);

struct store_job *store_begin(struct store *, const char *key,
		    size_t key_len, uint64_t size,
		    const uint8_t sha256[32], struct stream_reader *reader,
		    store_done_cb cb, void *arg);
/* Abandon a job: no callback; its temp file is unlinked by the worker. */
void		 store_job_cancel(struct store_job *);
/*
 * Bytes the job has taken from its reader (queued to the worker), or
 * UINT64_MAX once it no longer reads (failed or cancelled).
 */
uint64_t	 store_job_position(const struct store_job *);
/* Bytes the worker has written for this job so far. */
uint64_t	 store_job_written(const struct store_job *);

/*
 * The file name a key is stored under, relative to the store directory:
 * bytes in [A-Za-z0-9._-] are kept, every other byte (and a leading '.')
 * becomes %XX (upper-case hex).  Returns -1 if it does not fit in cap.
 */
int		 store_key_filename(const char *key, size_t key_len,
		    char *out, size_t cap);
/*
 * 0 if key can be stored under a file name (NAME_MAX bytes after the
 * escaping above), else -1 with the reason in why.  Every relay checks
 * this when it admits a PUT, storing or not, so that a key no store
 * could name is refused at the first hop, not at the storing one.
 */
int		 store_key_check(const char *key, size_t key_len, char *why,
		    size_t whylen);
/*
 * relayd -n: 0 if dir is a writable directory, or missing and its
 * nearest existing parent a writable directory (store_open makes the
 * rest); else -1 and why.
 */
int		 store_check_dir(const char *dir, char *why, size_t whylen);

#endif
