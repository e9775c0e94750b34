/*
 * store: see store.h.  Two halves share one mutex:
 *
 * - The loop half (every function not prefixed store_worker_) reads the
 *   job's stream_reader, takes chunk references, queues requests and
 *   handles completions.  Only it touches readers and chunks (stream is
 *   not thread-safe) and only it runs callbacks.
 * - The worker half does every system call that can block on the disk:
 *   open, write, fsync, rename, unlink, and the SHA-256.
 *
 * A request goes loop -> st_reqs -> worker -> st_done -> loop.  Every
 * request a job has out (queued, running or completed but not yet seen
 * by the loop) counts in job->pending, and a job is freed only once it
 * has reached its end (final request seen) with nothing pending, so a
 * late completion never finds freed memory.
 */
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "store.h"
#include "stream.h"

#define STORE_TMP_PREFIX	".tmp-"
#define STORE_MSGLEN		160
/* The SHA-256 of a stored file, in hex, kept with it (store.h). */
#define STORE_XATTR_SHA256	"user.relayd.sha256"

enum store_req_type {
	STORE_REQ_OPEN,
	STORE_REQ_WRITE,
	STORE_REQ_FINAL,	/* finish, or abort if the job was stopped */
};

/*
 * A write request carries at most this many pieces (one per chunk, the
 * first may start inside one): a full STORE_MAX_INFLIGHT of default
 * chunks, taken in one go.
 */
#define STORE_IOV	(STORE_MAX_INFLIGHT / STREAM_CHUNK_SIZE + 1)
/*
 * While a job has a write out, the loop lets bytes gather until this
 * many are readable (or the room left under STORE_MAX_INFLIGHT, if
 * less) and hands them over in one request: a few large writev(2)s
 * instead of one small write, wakeup and completion per append.  With
 * nothing out it takes whatever is there, so the worker never waits
 * for a batch to fill, and a stream window smaller than this costs
 * batching, not progress.
 */
#define STORE_BATCH	(256 * 1024)

/*
 * One unit of work.  Write requests are allocated per write and freed by
 * the loop; the open and final requests are embedded in the job.
 */
struct store_req {
	TAILQ_ENTRY(store_req)	 entry;
	enum store_req_type	 type;
	struct store_job	*job;
	struct stream_piece	*piece;		/* WRITE: STORE_IOV of them
						 * after the request, chunk
						 * refs held until done */
	int			 npieces;	/* WRITE */
	size_t			 len;		/* WRITE: bytes in pieces */
	uint64_t		 off;		/* WRITE: payload offset */
#ifdef RELAYD_TEST_HOOKS
	uint64_t		 sum;		/* WRITE: data's digest at take */
#endif
	int			 err;		/* set by the worker */
	char			 msg[STORE_MSGLEN]; /* set with err */
	int			 renamed;	/* FINAL: in place (worker) */
	uint64_t		 replaced;	/* FINAL: size of the file it
						 * replaced (worker) */
};
TAILQ_HEAD(store_reqq, store_req);

/*
 * Owned by the store (st_jobs); freed by store_job_free() from the loop.
 * Fields are grouped by which thread may touch them.
 */
struct store_job {
	TAILQ_ENTRY(store_job)	 entry;
	struct store		*store;

	/* Loop thread only. */
	struct stream_reader	*reader;	/* owned */
	store_done_cb		 cb;
	void			*arg;
	uint64_t		 queued;	/* bytes handed to the worker */
	uint64_t		 inflight;	/* of those, not done yet */
	uint64_t		 written;
	unsigned int		 pending;	/* requests out */
	int			 final_queued;
	int			 open_queued;	/* temp file asked for */
	int			 pumping;	/* store_job_pump() is running */
	int			 repump;	/* ... and was asked to run again */
	int			 ended;		/* final request came back */
	int			 failing;
	int			 cancelled;
	char			 reason[STORE_MSGLEN];
	struct store_req	 req_open;
	struct store_req	 req_final;

	/* Set at begin, then read-only. */
	char			 name[NAME_MAX + 1];
	char			 tmpname[64];
	uint64_t		 size;
	uint8_t			 sha256[32];

	/* Under st_mtx. */
	int			 stop;		/* failed or cancelled */

	/* Worker thread only. */
	int			 fd;
	int			 tmp_exists;
	int			 werr;		/* first error; skip the rest */
	uint64_t		 wbytes;
	EVP_MD_CTX		*md;
};

struct store {
	struct event_base	*st_base;
	struct event		*st_ev;
	int			 st_dirfd;
	int			 st_pipe[2];	/* worker -> loop wakeups */
	long			 st_pid;	/* in temp names: getpid(2) is
						 * a system call per PUT */
	unsigned long		 st_seq;
	TAILQ_HEAD(, store_job)	 st_jobs;	/* loop only */
	uint64_t		 st_used;	/* loop: bytes of final files */
	uint64_t		 st_reserved;	/* loop: declared sizes of jobs
						 * not ended */

	pthread_t		 st_thread;
	int			 st_thread_started;
	pthread_mutex_t		 st_mtx;
	pthread_cond_t		 st_cond;
	struct store_reqq	 st_reqs;	/* under st_mtx */
	struct store_reqq	 st_done;	/* under st_mtx */
	int			 st_stopping;	/* under st_mtx */
	int			 st_idle;	/* under st_mtx: worker waits */
	EVP_MD			*st_sha256;	/* loop: store_warm(); then
						 * read-only */
};

/*
 * Test hook: when set, the worker calls it before each write(2).  The
 * unit test uses it to hold the worker and prove the loop runs on.
 */
void	(*store_test_write_hook)(void) = NULL;

#ifdef RELAYD_TEST_HOOKS
/*
 * Test builds only (make test-hooks): RELAYD_TEST_STORE_DELAY_US slows
 * every write so the worker lags the input, and each write request
 * carries a digest of its bytes taken on the loop, checked again by the
 * worker before and after it writes.  A chunk changed under the worker
 * aborts the daemon, so a test cannot miss it.
 */
static uint64_t
store_test_sum(const uint8_t *p, size_t len)
{
	uint64_t	 h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	size_t		 i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
store_test_sumv(const struct store_req *req)
{
	uint64_t	 h = 0;
	int		 i;

	for (i = 0; i < req->npieces; i++)
		h = h * 31 + store_test_sum(req->piece[i].data,
		    req->piece[i].len);
	return h;
}

static void
store_test_take(struct store_req *req)
{
	req->sum = store_test_sumv(req);
}

static long	 store_test_delay_us;

/* Loop thread, at store_open(): read the knob once, before the worker. */
static void
store_test_init(void)
{
	const char	*s;

	s = getenv("RELAYD_TEST_STORE_DELAY_US");
	store_test_delay_us = s != NULL ? strtol(s, NULL, 10) : 0;
	if (store_test_delay_us < 0 || store_test_delay_us > 1000000)
		store_test_delay_us = 0;
	log_info("store: test hooks on: chunk checks, write delay %ld us",
	    store_test_delay_us);
}

static void
store_test_check(struct store_req *req, const char *when)
{
	long	 delay_us = store_test_delay_us;

	if (store_test_sumv(req) != req->sum)
		fatalx("store: chunk bytes at offset %" PRIu64 " changed %s "
		    "while the worker held them", req->off, when);
	if (delay_us > 0 && strcmp(when, "before write") == 0)
		usleep((useconds_t)delay_us);
}
#else
#define store_test_init()		do { } while (0)
#define store_test_take(req)		do { } while (0)
#define store_test_check(req, when)	do { } while (0)
#endif

static void	store_job_pump(struct store_job *);
static void	store_job_pump_once(struct store_job *);
static void	store_job_fail(struct store_job *, const char *);

static void
store_errmsg(char *buf, size_t len, const char *what, int err)
{
	char	 tmp[128];
	char	*s;

	/* GNU strerror_r: thread-safe, returns the message pointer. */
	s = strerror_r(err, tmp, sizeof(tmp));
	if (what == NULL)
		snprintf(buf, len, "%s", s);
	else
		snprintf(buf, len, "%s: %s", what, s);
}

static int
store_keep_byte(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int
store_key_filename(const char *key, size_t key_len, char *out, size_t cap)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 i, o = 0;
	unsigned char		 c;

	/* An empty key would name the directory itself. */
	if (key == NULL || key_len == 0 || out == NULL || cap == 0)
		return -1;
	for (i = 0; i < key_len; i++) {
		c = (unsigned char)key[i];
		if (store_keep_byte(c) && !(i == 0 && c == '.')) {
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)c;
			continue;
		}
		if (o + 3 >= cap)
			return -1;
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 0x0f];
	}
	out[o] = '\0';
	return 0;
}

int
store_key_check(const char *key, size_t key_len, char *why, size_t whylen)
{
	char	 name[NAME_MAX + 1];
	size_t	 i, n = 0;

	if (store_key_filename(key, key_len, name, sizeof(name)) == 0)
		return 0;
	for (i = 0; key != NULL && i < key_len; i++)
		n += store_keep_byte((unsigned char)key[i]) &&
		    !(i == 0 && key[i] == '.') ? 1 : 3;
	if (key_len == 0)
		snprintf(why, whylen, "key empty: no file name for it");
	else
		snprintf(why, whylen, "key too long for a file name: %zu "
		    "bytes, %zu once escaped, at most %d", key_len, n,
		    NAME_MAX);
	return -1;
}

/* path cut to the directory it is in ("." for a bare name). */
static void
store_parent(char *path)
{
	size_t	 n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	while (n > 0 && path[n - 1] != '/')
		n--;
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0)
		path[n++] = '.';
	path[n] = '\0';
}

int
store_check_dir(const char *dir, char *why, size_t whylen)
{
	struct stat	 st;
	char		 parent[PATH_MAX];

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(why, whylen, "%s: not a directory", dir);
			return -1;
		}
		if (access(dir, W_OK | X_OK) == -1) {
			snprintf(why, whylen, "%s: not writable: %s", dir,
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT && errno != ENOTDIR) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* store_open makes it and its missing parents: in the nearest. */
	snprintf(parent, sizeof(parent), "%s", dir);
	do
		store_parent(parent);
	while (stat(parent, &st) == -1 && (errno == ENOENT ||
	    errno == ENOTDIR) && strcmp(parent, ".") != 0 &&
	    strcmp(parent, "/") != 0);
	if (stat(parent, &st) == 0 && !S_ISDIR(st.st_mode))
		errno = ENOTDIR;
	else if (stat(parent, &st) == 0 && access(parent, W_OK | X_OK) == 0)
		return 0;
	snprintf(why, whylen, "%s: missing, and cannot be made in %s: %s",
	    dir, parent, strerror(errno));
	return -1;
}

/* Worker side. */

static void
store_worker_discard(struct store_job *job)
{
	if (job->fd != -1) {
		close(job->fd);
		job->fd = -1;
	}
	if (job->tmp_exists) {
		if (unlinkat(job->store->st_dirfd, job->tmpname, 0) == -1 &&
		    errno != ENOENT)
			log_warn("store: unlink tmp=%s", job->tmpname);
		job->tmp_exists = 0;
	}
	EVP_MD_CTX_free(job->md);
	job->md = NULL;
}

static void
store_worker_error(struct store_job *job, struct store_req *req, int err,
    const char *what)
{
	req->err = err;
	store_errmsg(req->msg, sizeof(req->msg), what, err);
	if (job->werr == 0)
		job->werr = err;
	store_worker_discard(job);
}

static void
store_worker_open(struct store_job *job, struct store_req *req)
{
	job->fd = openat(job->store->st_dirfd, job->tmpname,
	    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (job->fd == -1) {
		store_worker_error(job, req, errno, "create temp file");
		return;
	}
	job->tmp_exists = 1;
	job->md = EVP_MD_CTX_new();
	if (job->md == NULL ||
	    EVP_DigestInit_ex(job->md, job->store->st_sha256, NULL) != 1)
		store_worker_error(job, req, ENOMEM, "sha256 init");
}

/*
 * writev(2) all of the request's pieces, resuming after short writes.
 * 0, or -1 with errno set.
 */
static int
store_worker_writev(int fd, const struct store_req *req)
{
	struct iovec	 iov[STORE_IOV];
	int		 i, first = 0;
	ssize_t		 n;

	for (i = 0; i < req->npieces; i++) {
		iov[i].iov_base = (void *)(uintptr_t)req->piece[i].data;
		iov[i].iov_len = req->piece[i].len;
	}
	while (first < req->npieces) {
		n = writev(fd, iov + first, req->npieces - first);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0)
			return -1;
		while (first < req->npieces && (size_t)n >= iov[first].iov_len)
			n -= (ssize_t)iov[first++].iov_len;
		if (first < req->npieces) {
			iov[first].iov_base = (uint8_t *)iov[first].iov_base + n;
			iov[first].iov_len -= (size_t)n;
		}
	}
	return 0;
}

/*
 * Each byte is hashed once, here, right after the kernel copied it into
 * the file: the request's pieces are still in this core's cache.
 */
static void
store_worker_write(struct store_job *job, struct store_req *req)
{
	int	 i;

	/*
	 * Requests arrive in payload order or the hash is of other bytes:
	 * say so instead of reporting a bare sha256 mismatch.
	 */
	if (req->off != job->wbytes) {
		req->err = EIO;
		snprintf(req->msg, sizeof(req->msg), "internal: write at "
		    "offset %" PRIu64 " while %" PRIu64 " bytes are written",
		    req->off, job->wbytes);
		job->werr = EIO;
		store_worker_discard(job);
		return;
	}
	if (store_test_write_hook != NULL)
		store_test_write_hook();
	store_test_check(req, "before write");
	if (store_worker_writev(job->fd, req) == -1) {
		/* The bare strerror text: "No space left on device". */
		store_worker_error(job, req, errno, NULL);
		return;
	}
	for (i = 0; i < req->npieces; i++)
		if (EVP_DigestUpdate(job->md, req->piece[i].data,
		    req->piece[i].len) != 1) {
			store_worker_error(job, req, EIO, "sha256 update");
			return;
		}
	store_test_check(req, "after write");
	job->wbytes += req->len;
}

static int
store_worker_verify(struct store_job *job, struct store_req *req)
{
	uint8_t		 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;

	if (job->wbytes != job->size) {
		req->err = EINVAL;
		snprintf(req->msg, sizeof(req->msg),
		    "size mismatch: got %" PRIu64 " bytes, declared %" PRIu64,
		    job->wbytes, job->size);
		return -1;
	}
	if (EVP_DigestFinal_ex(job->md, md, &mdlen) != 1 || mdlen != 32) {
		req->err = EIO;
		snprintf(req->msg, sizeof(req->msg), "sha256 final failed");
		return -1;
	}
	if (CRYPTO_memcmp(md, job->sha256, 32) != 0) {
		req->err = EINVAL;
		snprintf(req->msg, sizeof(req->msg), "sha256 mismatch");
		return -1;
	}
	return 0;
}

/*
 * Keep the verified SHA-256 with the file, so that `show store` need not
 * read it back.  Best effort: a file system without user xattrs (tmpfs
 * before Linux 6.6) stores the payload all the same, and show store
 * says the hash is unknown.
 */
static void
store_worker_tag(struct store_job *job)
{
	static const char	 hex[] = "0123456789abcdef";
	char			 h[64];
	int			 i;

	for (i = 0; i < 32; i++) {
		h[2 * i] = hex[job->sha256[i] >> 4];
		h[2 * i + 1] = hex[job->sha256[i] & 0x0f];
	}
	(void)fsetxattr(job->fd, STORE_XATTR_SHA256, h, sizeof(h), 0);
}

/*
 * Move the temp file to its name, and say in req->replaced how many bytes
 * the file it replaced held (0: none).  A new key, the common case, takes
 * one renameat2(RENAME_NOREPLACE); only when a file is there already (or
 * the file system cannot refuse to replace) does the worker stat it and
 * rename over it.  The worker is the only writer of the directory, so
 * nothing comes between the two.
 */
static int
store_worker_rename(struct store_job *job, struct store_req *req)
{
	int		 dirfd = job->store->st_dirfd;
	struct stat	 sb;

	req->replaced = 0;
	if (renameat2(dirfd, job->tmpname, dirfd, job->name,
	    RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST && errno != EINVAL && errno != ENOSYS)
		return -1;
	if (fstatat(dirfd, job->name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(sb.st_mode))
		req->replaced = (uint64_t)sb.st_size;
	return renameat(dirfd, job->tmpname, dirfd, job->name);
}

static void
store_worker_finish(struct store_job *job, struct store_req *req)
{
	int	 dirfd = job->store->st_dirfd;

	if (store_worker_verify(job, req) == -1)
		goto fail;
	store_worker_tag(job);
	if (fsync(job->fd) == -1) {
		store_worker_error(job, req, errno, "fsync");
		return;
	}
	if (close(job->fd) == -1) {
		job->fd = -1;
		store_worker_error(job, req, errno, "close");
		return;
	}
	job->fd = -1;
	if (store_worker_rename(job, req) == -1) {
		store_worker_error(job, req, errno, "rename");
		return;
	}
	req->renamed = 1;
	job->tmp_exists = 0;
	/* The rename is durable only once the directory is. */
	if (fsync(dirfd) == -1) {
		store_errmsg(req->msg, sizeof(req->msg), "fsync dir", errno);
		req->err = errno;
	}
	store_worker_discard(job);
	return;
 fail:
	store_worker_discard(job);
}

static void
store_worker_do(struct store_req *req, int stop)
{
	struct store_job	*job = req->job;

	switch (req->type) {
	case STORE_REQ_OPEN:
		if (!stop)
			store_worker_open(job, req);
		break;
	case STORE_REQ_WRITE:
		if (!stop && job->werr == 0)
			store_worker_write(job, req);
		break;
	case STORE_REQ_FINAL:
		if (stop) {
			store_worker_discard(job);
			req->err = ECANCELED;
			snprintf(req->msg, sizeof(req->msg), "aborted");
		} else if (job->werr != 0) {
			req->err = job->werr;
			store_errmsg(req->msg, sizeof(req->msg), NULL,
			    job->werr);
		} else
			store_worker_finish(job, req);
		break;
	}
}

static void
store_worker_notify(struct store *st)
{
	char	 c = 0;

	/* EAGAIN: the pipe is full, so the loop will wake anyway. */
	while (write(st->st_pipe[1], &c, 1) == -1 && errno == EINTR)
		;
}

static void *
store_worker_main(void *arg)
{
	struct store		*st = arg;
	struct store_req	*req;
	int			 stop, was_empty;

	pthread_mutex_lock(&st->st_mtx);
	for (;;) {
		while (TAILQ_EMPTY(&st->st_reqs) && !st->st_stopping) {
			st->st_idle = 1;
			pthread_cond_wait(&st->st_cond, &st->st_mtx);
			st->st_idle = 0;
		}
		if ((req = TAILQ_FIRST(&st->st_reqs)) == NULL)
			break;
		TAILQ_REMOVE(&st->st_reqs, req, entry);
		stop = req->job->stop;
		pthread_mutex_unlock(&st->st_mtx);

		store_worker_do(req, stop);

		pthread_mutex_lock(&st->st_mtx);
		was_empty = TAILQ_EMPTY(&st->st_done);
		TAILQ_INSERT_TAIL(&st->st_done, req, entry);
		if (was_empty)
			store_worker_notify(st);
	}
	pthread_mutex_unlock(&st->st_mtx);
	return NULL;
}

/* Loop side. */

/*
 * The worker is woken only if it sleeps, and after the unlock, so that
 * it does not wake only to block on the mutex this thread still holds.
 */
static void
store_queue(struct store_job *job, struct store_req *req)
{
	struct store	*st = job->store;
	int		 wake;

	req->job = job;
	req->err = 0;
	req->msg[0] = '\0';
	req->renamed = 0;
	job->pending++;
	pthread_mutex_lock(&st->st_mtx);
	TAILQ_INSERT_TAIL(&st->st_reqs, req, entry);
	wake = st->st_idle;
	pthread_mutex_unlock(&st->st_mtx);
	if (wake)
		pthread_cond_signal(&st->st_cond);
}

static void
store_queue_final(struct store_job *job)
{
	if (job->final_queued)
		return;
	job->final_queued = 1;
	job->req_final.type = STORE_REQ_FINAL;
	store_queue(job, &job->req_final);
}

/* Make the worker drop the job: skip writes, abort instead of finish. */
static void
store_job_stop(struct store_job *job)
{
	struct store	*st = job->store;

	pthread_mutex_lock(&st->st_mtx);
	job->stop = 1;
	pthread_mutex_unlock(&st->st_mtx);
	store_queue_final(job);
}

/*
 * The temp file is created with the first byte (or at EOF for an empty
 * payload), not at admission: a stream that is admitted but never sends
 * holds no descriptor, so open streams do not eat the daemon's fd limit.
 */
static void
store_job_open(struct store_job *job)
{
	if (job->open_queued)
		return;
	job->open_queued = 1;
	job->req_open.type = STORE_REQ_OPEN;
	store_queue(job, &job->req_open);
}

static void
store_job_fail(struct store_job *job, const char *reason)
{
	if (job->failing || job->cancelled)
		return;
	job->failing = 1;
	snprintf(job->reason, sizeof(job->reason), "%s", reason);
	/* A cancelled reader holds no chunks: the buffer is not held back. */
	stream_cancel(job->reader);
	store_job_stop(job);
}

static void
store_job_wake(struct stream_reader *r, void *arg)
{
	(void)r;
	store_job_pump(arg);
}

/*
 * Where stream meets store.  A chunk handed to the worker is immutable
 * and alive until the worker's completion is back on the loop: the
 * request holds a chunk reference (dropped in store_complete()), and
 * bytes below the buffer's append offset are never written again by any
 * input path.  The request is complete and queued before the reader
 * moves: stream_consume() can run callbacks (the buffer's release
 * callback grants upstream credit), and whatever they set off, including
 * a new append that wakes this job, must find the bookkeeping already
 * past these bytes, so that requests reach the worker in payload order.
 */
static int
store_job_take(struct store_job *job)
{
	struct store_req	*req;
	size_t			 n = 0;
	int			 i;

	/*
	 * The pieces live after the request, in the same block: the open
	 * and final requests, embedded in every job, carry none.
	 */
	if ((req = calloc(1, sizeof(*req) +
	    STORE_IOV * sizeof(struct stream_piece))) == NULL) {
		store_job_fail(job, "out of memory");
		return -1;
	}
	req->piece = (struct stream_piece *)(req + 1);
	req->npieces = stream_peekv(job->reader, STORE_MAX_INFLIGHT -
	    job->inflight, req->piece, STORE_IOV);
	for (i = 0; i < req->npieces; i++)
		n += req->piece[i].len;
	if (n == 0 || n > job->size - job->queued) {
		free(req);
		store_job_fail(job, n == 0 ? "stream ready but nothing to "
		    "read" : "size mismatch: more bytes than declared");
		return -1;
	}
	req->type = STORE_REQ_WRITE;
	req->len = n;
	req->off = job->queued;
	for (i = 0; i < req->npieces; i++)
		stream_chunk_ref(req->piece[i].chunk);
	store_test_take(req);
	store_job_open(job);
	job->queued += n;
	job->inflight += n;
	store_queue(job, req);
	stream_consume(job->reader, n);
	return 0;
}

/*
 * Move readable bytes to the worker until the reader runs dry or
 * STORE_MAX_INFLIGHT bytes are out; a write completion calls this again.
 * Runs from stream wake callbacks too, so it never calls back the user.
 * It is not re-entered: a wake that arrives while it runs (from inside
 * its own stream_consume()) only asks the running pump for another pass.
 */
static void
store_job_pump(struct store_job *job)
{
	if (job->pumping) {
		job->repump = 1;
		return;
	}
	job->pumping = 1;
	do {
		job->repump = 0;
		store_job_pump_once(job);
	} while (job->repump);
	job->pumping = 0;
}

/*
 * 1 if the readable bytes should wait for more (STORE_BATCH): a write is
 * out, whose completion pumps again, and the batch is not full yet.
 */
static int
store_job_gather(struct store_job *job)
{
	uint64_t	 readable, room, batch;

	if (job->inflight == 0)
		return 0;
	readable = stream_buf_appended(stream_reader_buf(job->reader)) -
	    stream_offset(job->reader);
	room = STORE_MAX_INFLIGHT - job->inflight;
	batch = room < STORE_BATCH ? room : STORE_BATCH;
	/* The last bytes of the payload go as soon as they are in. */
	return readable < batch && job->queued + readable < job->size;
}

static void
store_job_pump_once(struct store_job *job)
{
	struct stream_buf	*buf;
	const char		*why;
	char			 reason[STORE_MSGLEN];

	while (!job->failing && !job->cancelled && !job->final_queued) {
		if (job->inflight >= STORE_MAX_INFLIGHT) {
			stream_unwait(job->reader);
			return;
		}
		switch (stream_wait(job->reader, store_job_wake, job)) {
		case STREAM_WAIT:
			return;
		case STREAM_READY:
			if (store_job_gather(job))
				return;		/* still subscribed */
			if (store_job_take(job) == -1) {
				stream_unwait(job->reader);
				return;
			}
			break;
		case STREAM_EOF:
			stream_unwait(job->reader);
			store_job_open(job);
			store_queue_final(job);
			return;
		case STREAM_FAILED:
			stream_unwait(job->reader);
			buf = stream_reader_buf(job->reader);
			why = stream_buf_fail_reason(buf);
			snprintf(reason, sizeof(reason), "upstream failed: %s",
			    why != NULL ? why : "unknown");
			store_job_fail(job, reason);
			return;
		case STREAM_CANCELLED:
		default:
			stream_unwait(job->reader);
			store_job_fail(job, "cancelled");
			return;
		}
	}
}

static void
store_job_free(struct store_job *job)
{
	TAILQ_REMOVE(&job->store->st_jobs, job, entry);
	stream_unwait(job->reader);
	stream_reader_free(job->reader);
	EVP_MD_CTX_free(job->md);
	free(job);
}

/*
 * The job's reservation goes; a file renamed into place (even for a job
 * cancelled too late to stop the rename) counts as used, less the file
 * it replaced.
 */
static void
store_account(struct store_job *job, struct store_req *req)
{
	struct store	*st = job->store;

	st->st_reserved -= job->size;
	if (!req->renamed)
		return;
	st->st_used += job->size;
	st->st_used -= req->replaced < st->st_used ? req->replaced :
	    st->st_used;
}

static void
store_job_end(struct store_job *job, struct store_req *req)
{
	const char	*reason;
	int		 ok;

	job->ended = 1;
	store_account(job, req);
	if (job->cancelled)
		return;
	ok = !job->failing && req->err == 0;
	if (ok) {
		reason = "stored";
		log_info("store: stored name=%s bytes=%" PRIu64, job->name,
		    job->written);
	} else {
		reason = job->failing ? job->reason : req->msg;
		log_warnx("store: failed name=%s bytes=%" PRIu64 " reason=%s",
		    job->name, job->written, reason);
	}
	/* Mark first: the callback may try to cancel this very job. */
	job->cancelled = 1;
	job->cb(job, ok, reason, job->arg);
}

static void
store_complete(struct store_req *req)
{
	struct store_job	*job = req->job;
	int			 i;

	job->pending--;
	switch (req->type) {
	case STORE_REQ_OPEN:
		if (req->err != 0)
			store_job_fail(job, req->msg);
		break;
	case STORE_REQ_WRITE:
		for (i = 0; i < req->npieces; i++)
			stream_chunk_unref(req->piece[i].chunk);
		job->inflight -= req->len;
		if (req->err != 0)
			store_job_fail(job, req->msg);
		else if (!job->failing)
			job->written += req->len;
		free(req);
		store_job_pump(job);
		break;
	case STORE_REQ_FINAL:
		store_job_end(job, req);
		break;
	}
	if (job->ended && job->pending == 0)
		store_job_free(job);
}

static void
store_drain(struct store *st)
{
	struct store_reqq	 done;
	struct store_req	*req;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&st->st_mtx);
	TAILQ_CONCAT(&done, &st->st_done, entry);
	pthread_mutex_unlock(&st->st_mtx);
	while ((req = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, req, entry);
		store_complete(req);
	}
}

static void
store_event(evutil_socket_t fd, short events, void *arg)
{
	char	 buf[256];
	ssize_t	 n;

	(void)events;
	/*
	 * Empty the pipe before taking the list: no wakeup is lost.  A short
	 * read has emptied it (the worker writes a byte only when the done
	 * list turns non-empty), so no second read just to see EAGAIN.
	 */
	do
		n = read(fd, buf, sizeof(buf));
	while (n == (ssize_t)sizeof(buf) || (n == -1 && errno == EINTR));
	store_drain(arg);
}

/*
 * SHA-256 is fetched once, in the loop thread, before the first job
 * needs it.  OpenSSL's first fetch in a process loads its provider and
 * builds its tables (about 1 ms and 2 MiB here): a relay with a storing
 * route pays that at start, one without only if it ever stores.
 */
int
store_warm(struct store *st)
{
	if (st->st_sha256 == NULL)
		st->st_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	return st->st_sha256 != NULL ? 0 : -1;
}

struct store_job *
store_begin(struct store *st, const char *key, size_t key_len,
    uint64_t size, const uint8_t sha256[32], struct stream_reader *reader,
    store_done_cb cb, void *arg)
{
	struct store_job	*job;
	char			 why[STORE_MSGLEN];
	int			 badkey;

	if (reader == NULL)
		return NULL;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		stream_reader_free(reader);
		return NULL;
	}
	job->store = st;
	job->reader = reader;
	job->cb = cb;
	job->arg = arg;
	job->size = size;
	job->fd = -1;
	memcpy(job->sha256, sha256, sizeof(job->sha256));
	snprintf(job->tmpname, sizeof(job->tmpname), STORE_TMP_PREFIX "%ld-%lu",
	    st->st_pid, ++st->st_seq);
	badkey = store_key_check(key, key_len, why, sizeof(why)) == -1 ||
	    store_key_filename(key, key_len, job->name,
	    sizeof(job->name)) == -1;
	if (badkey)
		snprintf(job->name, sizeof(job->name), "(invalid)");
	TAILQ_INSERT_TAIL(&st->st_jobs, job, entry);
	st->st_reserved += size;

	if (badkey)
		store_job_fail(job, why);
	else if (store_warm(st) == -1)
		store_job_fail(job, "OpenSSL has no SHA-256");
	else
		store_job_pump(job);
	return job;
}

void
store_job_cancel(struct store_job *job)
{
	if (job == NULL || job->cancelled)
		return;
	job->cancelled = 1;
	stream_cancel(job->reader);
	store_job_stop(job);
}

uint64_t
store_job_written(const struct store_job *job)
{
	return job->written;
}

uint64_t
store_job_position(const struct store_job *job)
{
	/* The reader's cursor moves before the release callback runs. */
	if (job->failing || job->cancelled || job->reader == NULL ||
	    stream_cancelled(job->reader))
		return UINT64_MAX;
	return stream_offset(job->reader);
}

/* Removes stale temp files and counts the bytes of the stored ones. */
static int
store_clean_tmp(struct store *st, int dirfd, char *err, size_t errlen)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 sb;
	int		 fd;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		store_errmsg(err, errlen, "store directory", errno);
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, STORE_TMP_PREFIX,
		    strlen(STORE_TMP_PREFIX)) != 0) {
			if (de->d_name[0] != '.' && fstatat(dirfd, de->d_name,
			    &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(sb.st_mode))
				st->st_used += (uint64_t)sb.st_size;
			continue;
		}
		if (unlinkat(dirfd, de->d_name, 0) == -1)
			log_warn("store: unlink stale tmp=%s", de->d_name);
		else
			log_info("store: removed stale tmp=%s", de->d_name);
	}
	closedir(d);
	return 0;
}

/*
 * mkdir -p: dir and its missing parents, mode 0750 (relayd -n checks
 * that the nearest existing one is writable, see store_check_dir).
 */
static int
store_mkdirs(const char *dir, char *err, size_t errlen)
{
	char	 path[PATH_MAX];
	size_t	 i, n = strlen(dir);

	if (n >= sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	memcpy(path, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0750) == -1 && errno != EEXIST) {
			store_errmsg(err, errlen, path, errno);
			return -1;
		}
		path[i] = dir[i];
	}
	return 0;
}

static int
store_open_dir(struct store *st, const char *dir, char *err, size_t errlen)
{
	if (store_mkdirs(dir, err, errlen) == -1)
		return -1;
	st->st_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->st_dirfd == -1) {
		store_errmsg(err, errlen, dir, errno);
		return -1;
	}
	return store_clean_tmp(st, st->st_dirfd, err, errlen);
}

struct store *
store_open(struct event_base *base, const char *dir, char *err,
    size_t errlen)
{
	struct store	*st;
	int		 rc;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->st_base = base;
	st->st_pid = (long)getpid();
	st->st_dirfd = st->st_pipe[0] = st->st_pipe[1] = -1;
	TAILQ_INIT(&st->st_jobs);
	TAILQ_INIT(&st->st_reqs);
	TAILQ_INIT(&st->st_done);
	pthread_mutex_init(&st->st_mtx, NULL);
	pthread_cond_init(&st->st_cond, NULL);

	store_test_init();
	if (store_open_dir(st, dir, err, errlen) == -1)
		goto fail;
	if (pipe2(st->st_pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		store_errmsg(err, errlen, "pipe", errno);
		goto fail;
	}
	st->st_ev = event_new(base, st->st_pipe[0], EV_READ | EV_PERSIST,
	    store_event, st);
	if (st->st_ev == NULL || event_add(st->st_ev, NULL) == -1) {
		snprintf(err, errlen, "cannot add store event");
		goto fail;
	}
	if ((rc = pthread_create(&st->st_thread, NULL, store_worker_main,
	    st)) != 0) {
		store_errmsg(err, errlen, "pthread_create", rc);
		goto fail;
	}
	st->st_thread_started = 1;
	return st;
 fail:
	store_close(st);
	return NULL;
}

void
store_close(struct store *st)
{
	struct store_job	*job;

	if (st == NULL)
		return;
	TAILQ_FOREACH(job, &st->st_jobs, entry)
		store_job_cancel(job);
	if (st->st_thread_started) {
		pthread_mutex_lock(&st->st_mtx);
		st->st_stopping = 1;
		pthread_cond_signal(&st->st_cond);
		pthread_mutex_unlock(&st->st_mtx);
		pthread_join(st->st_thread, NULL);
	}
	/* The worker has answered every request: free the jobs here. */
	store_drain(st);
	if (!TAILQ_EMPTY(&st->st_jobs))
		fatalx("store: jobs left after close");
	if (st->st_ev != NULL)
		event_free(st->st_ev);
	if (st->st_pipe[0] != -1)
		close(st->st_pipe[0]);
	if (st->st_pipe[1] != -1)
		close(st->st_pipe[1]);
	if (st->st_dirfd != -1)
		close(st->st_dirfd);
	EVP_MD_free(st->st_sha256);
	pthread_cond_destroy(&st->st_cond);
	pthread_mutex_destroy(&st->st_mtx);
	free(st);
}

uint64_t
store_used(const struct store *st)
{
	return st != NULL ? st->st_used : 0;
}

uint64_t
store_reserved(const struct store *st)
{
	return st != NULL ? st->st_reserved : 0;
}

int
store_admit(const struct store *st, uint64_t size, uint64_t max,
    char *err, size_t errlen)
{
	uint64_t	 used = store_used(st), held = store_reserved(st);

	if (max == 0 || (used <= max && held <= max - used &&
	    size <= max - used - held))
		return 0;
	snprintf(err, errlen, "store full: %" PRIu64 " bytes stored + %"
	    PRIu64 " being stored + %" PRIu64 " declared would exceed "
	    "store_max_bytes %" PRIu64, used, held, size, max);
	return -1;
}

static int
store_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
store_filename_key(const char *name, char *out, size_t cap)
{
	size_t	 i, o = 0;
	int	 hi, lo;

	if (name[0] == '.' || name[0] == '\0')
		return -1;
	for (i = 0; name[i] != '\0'; i++) {
		if (o + 1 >= cap)
			return -1;
		if (name[i] != '%') {
			if (!store_keep_byte((unsigned char)name[i]))
				return -1;
			out[o++] = name[i];
			continue;
		}
		if ((hi = store_hexval(name[i + 1])) == -1 ||
		    (lo = store_hexval(name[i + 2])) == -1)
			return -1;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return (int)o;
}

/* One entry of a listing: name's stat and its hash, from the xattr. */
static int
store_list_entry(int dirfd, const char *name, struct store_entry *e)
{
	struct stat	 sb;
	ssize_t		 n;
	int		 fd, i;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(sb.st_mode))
		return -1;
	e->size = (uint64_t)sb.st_size;
	e->mtime = (int64_t)sb.st_mtime;
	e->sha256[0] = '\0';
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1)
		return 0;
	n = fgetxattr(fd, STORE_XATTR_SHA256, e->sha256, 64);
	close(fd);
	e->sha256[n == 64 ? 64 : 0] = '\0';
	for (i = 0; i < 64 && e->sha256[0] != '\0'; i++)
		if (strchr("0123456789abcdef", e->sha256[i]) == NULL)
			e->sha256[0] = '\0';
	return 0;
}

static int
store_entry_cmp(const void *a, const void *b)
{
	const struct store_entry *x = a, *y = b;
	size_t	 n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int	 c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/*
 * A listing in steps: the directory is read a bounded number of entries
 * at a time, so that a store_dir of any size never holds the loop (the
 * control socket answers once the last step is done).  out keeps the
 * max smallest matching keys seen so far; big is the index of the
 * largest of them once out is full.
 */
struct store_walk {
	DIR			*d;
	char			 prefix[256];
	size_t			 plen;
	struct store_entry	*out;
	size_t			 max;
	size_t			 n;
	size_t			 matched;
};

struct store_walk *
store_walk_new(const struct store *st, const char *prefix, size_t plen,
    struct store_entry *out, size_t max)
{
	struct store_walk	*w;
	int			 fd;

	if (max == 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	/* Its own open file: walks that run side by side (and a dup would
	 * share one offset) each read the directory whole. */
	if ((fd = openat(st->st_dirfd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || (w->d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		free(w);
		return NULL;
	}
	rewinddir(w->d);
	/* A prefix longer than any key matches none (store_walk_one). */
	memcpy(w->prefix, prefix, plen < sizeof(w->prefix) ? plen :
	    sizeof(w->prefix));
	w->plen = plen;
	w->out = out;
	w->max = max;
	return w;
}

/*
 * While walking, out is a max-heap by key: out[0] is the largest kept,
 * the one a smaller key replaces once out is full, in O(log max) steps,
 * whatever order readdir() returns the names in.
 */
static void
store_walk_swap(struct store_walk *w, size_t i, size_t j)
{
	struct store_entry	 t;

	t = w->out[i];
	w->out[i] = w->out[j];
	w->out[j] = t;
}

static void
store_walk_sift_up(struct store_walk *w, size_t i)
{
	while (i > 0 &&
	    store_entry_cmp(&w->out[(i - 1) / 2], &w->out[i]) < 0) {
		store_walk_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
store_walk_sift_down(struct store_walk *w, size_t i)
{
	size_t	 c, big;

	for (;;) {
		big = i;
		c = 2 * i + 1;
		if (c < w->n && store_entry_cmp(&w->out[c], &w->out[big]) > 0)
			big = c;
		if (c + 1 < w->n &&
		    store_entry_cmp(&w->out[c + 1], &w->out[big]) > 0)
			big = c + 1;
		if (big == i)
			return;
		store_walk_swap(w, i, big);
		i = big;
	}
}

/* One directory entry: listed, counted, or skipped. */
static void
store_walk_one(struct store_walk *w, const char *name)
{
	struct store_entry	 e;
	int			 len;

	if ((len = store_filename_key(name, e.key, sizeof(e.key))) == -1 ||
	    (size_t)len < w->plen || memcmp(e.key, w->prefix, w->plen) != 0)
		return;
	e.key_len = (size_t)len;
	if (w->n == w->max && store_entry_cmp(&e, &w->out[0]) >= 0) {
		w->matched++;	/* counted, not listed */
		return;
	}
	if (store_list_entry(dirfd(w->d), name, &e) == -1)
		return;
	w->matched++;
	if (w->n < w->max) {
		w->out[w->n++] = e;
		store_walk_sift_up(w, w->n - 1);
		return;
	}
	w->out[0] = e;
	store_walk_sift_down(w, 0);
}

int
store_walk_step(struct store_walk *w, unsigned int budget)
{
	struct dirent	*de;

	while (budget-- > 0) {
		errno = 0;
		if ((de = readdir(w->d)) == NULL)
			return errno == 0 ? 1 : -1;
		store_walk_one(w, de->d_name);
	}
	return 0;
}

size_t
store_walk_result(struct store_walk *w, size_t *matched)
{
	qsort(w->out, w->n, sizeof(*w->out), store_entry_cmp);
	*matched = w->matched;
	return w->n;
}

void
store_walk_free(struct store_walk *w)
{
	if (w == NULL)
		return;
	closedir(w->d);
	free(w);
}

int
store_list(const struct store *st, const char *prefix, size_t plen,
    struct store_entry *out, size_t max, size_t *matched)
{
	struct store_walk	*w;
	int			 r;

	*matched = 0;
	if ((w = store_walk_new(st, prefix, plen, out, max)) == NULL)
		return -1;
	while ((r = store_walk_step(w, 1024)) == 0)
		;
	if (r == 0 || r == 1)
		r = (int)store_walk_result(w, matched);
	store_walk_free(w);
	return r;
}
