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
 * an event on a pipe/eventfd.  The loop never blocks on the disk.  While
 * a job has a write out, the bytes that arrive gather until 256 KiB are
 * ready (or the payload's end), and go as one request, which the worker
 * writes with one writev(2) of the chunks themselves (no copy) and hashes
 * right after, so each byte is copied once (into the file) and hashed
 * once.
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
/*
 * Load SHA-256 from OpenSSL now rather than at the first stored PUT
 * (store_begin does it otherwise).  -1 if OpenSSL has none.
 */
int		 store_warm(struct store *);

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

/*
 * Bytes of the stored files (counted once by store_open, then kept up
 * as files are stored or replaced), and the declared sizes of the jobs
 * still running.
 */
uint64_t	 store_used(const struct store *);
uint64_t	 store_reserved(const struct store *);
/*
 * 0 if a new job of size bytes fits under max (0: no limit) with what is
 * stored and being stored; -1 with the reason in err if not.  A PUT that
 * replaces a file is counted in full (it may need both while it runs).
 */
int		 store_admit(const struct store *, uint64_t size, uint64_t max,
		    char *err, size_t errlen);

/* One stored file, for `show store`; key is the decoded file name. */
struct store_entry {
	char		 key[256];	/* NAME_MAX + 1; not NUL-safe */
	size_t		 key_len;
	uint64_t	 size;
	int64_t		 mtime;		/* seconds since the epoch */
	char		 sha256[65];	/* hex, "" if not kept (no xattr) */
};

/*
 * The stored files whose key starts with the plen bytes of prefix: the
 * max smallest keys of them into out, sorted by key; *matched says how
 * many matched in all (more than returned: the list was cut).  Each
 * file's SHA-256 comes from the user.relayd.sha256 extended attribute
 * the worker set before the rename; nothing is read back.  The count
 * listed, or -1 if the directory cannot be read.  store_list() walks the
 * whole directory at once; the loop uses a walk instead.
 */
int		 store_list(const struct store *, const char *prefix,
		    size_t plen, struct store_entry *out, size_t max,
		    size_t *matched);
/*
 * The same listing in steps, for the loop: a walk reads at most budget
 * directory entries (a stat and an xattr read for each one listed) per
 * store_walk_step(), which returns 0 while there is more, 1 when the
 * directory is done, -1 on a read error (errno).  out (max entries, held
 * by the caller) is filled as the walk goes; store_walk_result() sorts
 * it and gives the count and *matched.  NULL from store_walk_new():
 * errno says why (EINVAL: max is 0).
 */
struct store_walk;
struct store_walk *store_walk_new(const struct store *, const char *prefix,
		    size_t plen, struct store_entry *out, size_t max);
int		 store_walk_step(struct store_walk *, unsigned int budget);
size_t		 store_walk_result(struct store_walk *, size_t *matched);
void		 store_walk_free(struct store_walk *);
/* The key a file name stands for (store_key_filename undone): its
 * length, or -1 if name is not one store_key_filename makes. */
int		 store_filename_key(const char *name, char *out, size_t cap);

#endif
