/*
 * put and outcome: a file or stdin (spooled when it is a pipe) sent after
 * the request line, a progress bar on a terminal, then every hop's result.
 */

#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "relayctl.h"

static int
ctl_write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * put needs the size and the hash before the first byte goes out, so a
 * pipe or terminal on stdin is first copied to an unlinked temporary file.
 */
static int
ctl_put_spool(int in)
{
	const char	*dir;
	char		 path[4096], *buf;
	ssize_t		 n;
	int		 fd;

	if ((dir = getenv("TMPDIR")) == NULL || dir[0] == '\0')
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/relayctl.XXXXXX", dir);
	if ((fd = mkstemp(path)) == -1) {
		ctl_errno("mkstemp %s", path);
		return -1;
	}
	unlink(path);
	if ((buf = malloc(CTL_BLOCK)) == NULL)
		ctl_oom();
	while ((n = read(in, buf, CTL_BLOCK)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ctl_errno("read stdin");
			goto fail;
		}
		if (ctl_write_all(fd, buf, (size_t)n) == -1) {
			ctl_errno("write %s", path);
			goto fail;
		}
	}
	free(buf);
	return fd;
 fail:
	free(buf);
	close(fd);
	return -1;
}

/* Opens FILE ('-' is stdin) as a regular file; sets *size. */
static int
ctl_put_open(const char *path, uint64_t *size)
{
	struct stat	 st;
	int		 fd, sp;

	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		ctl_errno("%s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		ctl_errno("fstat %s", path);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		ctl_err("%s: is a directory", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		sp = ctl_put_spool(fd);
		if (fd != STDIN_FILENO)
			close(fd);
		if ((fd = sp) == -1 || fstat(fd, &st) == -1)
			goto fail;
	}
	*size = (uint64_t)st.st_size;
	return fd;
 fail:
	if (fd != -1 && fd != STDIN_FILENO)
		close(fd);
	return -1;
}

static int
ctl_put_sha256(int fd, uint64_t size, char *hex)
{
	struct ctl_digest	*md;
	unsigned char		 digest[CTL_SHA256_LEN];
	char			*buf;
	uint64_t		 off = 0;
	ssize_t			 n;
	int			 ok, rc = -1;

	if ((md = ctl_digest_new()) == NULL)
		return -1;
	if ((buf = malloc(CTL_BLOCK)) == NULL)
		ctl_oom();
	ok = 1;
	while (ok && off < size) {
		n = pread(fd, buf, size - off < CTL_BLOCK ? size - off :
		    CTL_BLOCK, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				ctl_err("file shrank while reading it");
			else
				ctl_errno("read");
			goto done;
		}
		ok = ctl_digest_update(md, buf, (size_t)n) == 0;
		off += (uint64_t)n;
	}
	if (!ok || ctl_digest_final(md, digest) == -1) {
		ctl_err("SHA-256 computation failed");
		goto done;
	}
	ctl_hex(digest, sizeof(digest), hex);
	rc = 0;
 done:
	ctl_digest_free(md);
	free(buf);
	return rc;
}

static void
ctl_progress_draw(struct ctl_progress *pr, uint64_t done, uint64_t total,
    uint64_t now)
{
	double	 frac, secs, rate;
	int	 i, fill;

	frac = total ? (double)done / (double)total : 1.0;
	secs = (double)(now - pr->start_us) / 1e6;
	rate = secs > 0 ? (double)done / secs / 1e6 : 0.0;
	fill = (int)(frac * CTL_BAR_WIDTH);
	fputs("\r[", stderr);
	for (i = 0; i < CTL_BAR_WIDTH; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %.1f/%.1f MB %3d%% %.1f MB/s%s\033[K",
	    (double)done / 1e6, (double)total / 1e6, (int)(frac * 100), rate,
	    done == total ? " (waiting for results)" : "");
	fflush(stderr);
	pr->drawn = 1;
	pr->shown = done;
	pr->last_us = now;
}

static void
ctl_progress_update(struct ctl_progress *pr, uint64_t done, uint64_t total)
{
	uint64_t	 now;

	if (!pr->enabled)
		return;
	now = ctl_now_us();
	/* The 100% frame is always shown: results may take a while. */
	if (now - pr->last_us >= CTL_REDRAW_US ||
	    (done == total && pr->shown != total))
		ctl_progress_draw(pr, done, total, now);
}

static void
ctl_progress_clear(struct ctl_progress *pr)
{
	if (!pr->drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	pr->drawn = 0;
}

/*
 * The next bytes to send: the rest of the request line, then the file in
 * CTL_BLOCK pieces.  Returns 1 with buf and len set, 0 when all is sent, -1
 * on a local read error.
 */
static int
ctl_put_pending(struct ctl_put *p, const char **buf, size_t *len)
{
	ssize_t	 n;
	size_t	 want;

	if (p->hdroff < p->hdrlen) {
		*buf = p->hdr + p->hdroff;
		*len = p->hdrlen - p->hdroff;
		return 1;
	}
	if (p->boff == p->blen) {
		if (p->offset == p->size)
			return 0;
		want = p->size - p->offset < CTL_BLOCK ?
		    (size_t)(p->size - p->offset) : CTL_BLOCK;
		do {
			n = pread(p->file, p->block, want, (off_t)p->offset);
		} while (n == -1 && errno == EINTR);
		if (n <= 0) {
			if (n == 0)
				ctl_err("file shrank while sending it");
			else
				ctl_errno("read");
			return -1;
		}
		p->offset += (uint64_t)n;
		p->blen = (size_t)n;
		p->boff = 0;
	}
	*buf = p->block + p->boff;
	*len = p->blen - p->boff;
	return 1;
}

static void
ctl_put_advance(struct ctl_put *p, size_t n)
{
	if (p->hdroff < p->hdrlen) {
		p->hdroff += n;
		return;
	}
	p->boff += n;
	p->sent += n;
}

/* Writes until the socket is full.  Returns -1 on a local error only. */
static int
ctl_put_write(struct ctl_put *p)
{
	const char	*buf;
	size_t		 len;
	ssize_t		 n;
	int		 r;

	while ((r = ctl_put_pending(p, &buf, &len)) == 1) {
		n = send(p->conn->fd, buf, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n == -1) {
			/* relayd may still have said why: keep reading. */
			log_debug("relayctl: send: %s", strerror(errno));
			p->wclosed = 1;
			return 0;
		}
		ctl_put_advance(p, (size_t)n);
	}
	return r;
}

/* Reads what relayd sent.  Returns an exit code, or -1 to go on. */
static int
ctl_put_read(struct ctl_put *p)
{
	json_t		*j;
	const char	*ev;
	long long	 v;
	ssize_t		 n;
	int		 r;

	n = ctl_conn_fill(p->conn);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	if (n == -1)
		log_debug("relayctl: read: %s", strerror(errno));
	while ((r = ctl_conn_next(p->conn, &j)) == 1) {
		if (ctl_is_final(j)) {
			p->final = j;
			return CTL_EXIT_OK;
		}
		ev = json_string_value(json_object_get(j, "event"));
		if (ev != NULL && strcmp(ev, "progress") == 0 &&
		    ctl_jint(j, "bytes", &v) == 0 && v >= 0)
			p->acked = (uint64_t)v;
		json_decref(j);
	}
	if (r == -1)
		return CTL_EXIT_CONN;
	if (n <= 0)
		return ctl_lost();
	return -1;
}

/*
 * One poll loop serves both directions, so relayd's event lines are read
 * while the upload runs and neither side can block the other.
 */
static int
ctl_put_loop(struct ctl_put *p)
{
	struct pollfd	 pfd;
	int		 r;

	if (fcntl(p->conn->fd, F_SETFL, O_NONBLOCK) == -1) {
		ctl_errno("fcntl");
		return CTL_EXIT_FAIL;
	}
	p->prog.start_us = ctl_now_us();
	for (;;) {
		pfd.fd = p->conn->fd;
		pfd.events = POLLIN;
		if (!p->wclosed && (p->hdroff < p->hdrlen ||
		    p->boff < p->blen || p->offset < p->size))
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		r = poll(&pfd, 1, p->prog.enabled ? CTL_REDRAW_US / 1000 : -1);
		if (r == -1 && errno != EINTR) {
			ctl_errno("poll");
			return CTL_EXIT_FAIL;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			if ((r = ctl_put_read(p)) != -1)
				return r;
		}
		if ((pfd.events & POLLOUT) && (pfd.revents & POLLOUT)) {
			if (ctl_put_write(p) == -1)
				return CTL_EXIT_FAIL;
		}
		ctl_progress_update(&p->prog, p->sent, p->size);
	}
}

static int
ctl_put_cmpdepth(const void *a, const void *b)
{
	const json_t	*ja = *(json_t * const *)a, *jb = *(json_t * const *)b;
	long long	 da, db;

	if (ctl_jint(ja, "depth", &da) == -1)
		da = LLONG_MAX;
	if (ctl_jint(jb, "depth", &db) == -1)
		db = LLONG_MAX;
	if (da != db)
		return da < db ? -1 : 1;
	return strcmp(ctl_jstr(ja, "node"), ctl_jstr(jb, "node"));
}

static char *
ctl_put_ms(const json_t *r, const char *key, long long t0, char *buf,
    size_t len)
{
	long long	 t;

	if (t0 == LLONG_MAX || ctl_jint(r, key, &t) == -1 || t <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", (double)(t - t0) / 1000.0);
	return buf;
}

/* The per-hop table; returns how many hops stored. */
static size_t
ctl_put_table(json_t **res, size_t n, int print)
{
	struct ctl_table	 t;
	long long		 t0 = LLONG_MAX, v;
	size_t			 i, stored = 0;
	char			 depth[32], bytes[32], first[32], last[32];

	for (i = 0; i < n; i++)
		if (ctl_jint(res[i], "first_us", &v) == 0 && v > 0 && v < t0)
			t0 = v;
	ctl_table_init(&t, 8);
	ctl_table_row(&t, "DEPTH", "NODE", "VIA", "STATUS", "BYTES",
	    "FIRST_MS", "LAST_MS", "REASON");
	for (i = 0; i < n; i++) {
		if (strcmp(ctl_jstr(res[i], "status"), "stored") == 0)
			stored++;
		ctl_table_row(&t,
		    ctl_jintstr(res[i], "depth", depth, sizeof(depth)),
		    ctl_jstr(res[i], "node"), ctl_jstr(res[i], "via"),
		    ctl_jstr(res[i], "status"),
		    ctl_jintstr(res[i], "bytes", bytes, sizeof(bytes)),
		    ctl_put_ms(res[i], "first_us", t0, first, sizeof(first)),
		    ctl_put_ms(res[i], "last_us", t0, last, sizeof(last)),
		    json_string_value(json_object_get(res[i], "reason")));
	}
	if (print && n > 0)
		ctl_table_print(&t, stdout);
	ctl_table_free(&t);
	return stored;
}

static void
ctl_put_failures(json_t **res, size_t n)
{
	size_t	 i;
	char	*node, *via, *reason, depth[32];

	for (i = 0; i < n; i++) {
		if (strcmp(ctl_jstr(res[i], "status"), "failed") != 0)
			continue;
		node = ctl_clean(ctl_jstr(res[i], "node"));
		via = ctl_clean(ctl_jstr(res[i], "via"));
		reason = ctl_clean(ctl_jstr(res[i], "reason"));
		ctl_err("hop %s at depth %s failed (reported by %s): %s", node,
		    ctl_jintstr(res[i], "depth", depth, sizeof(depth)), via,
		    reason);
		free(node);
		free(via);
		free(reason);
	}
}

/* The "results" objects of an answer by depth; free the array. */
static json_t **
ctl_results_sorted(const json_t *final, size_t *np)
{
	const json_t	*results = json_object_get(final, "results");
	json_t		**res, *r;
	size_t		 i, n = 0;

	if ((res = calloc(json_array_size(results) + 1, sizeof(*res))) ==
	    NULL)
		ctl_oom();
	json_array_foreach(results, i, r)
		if (json_is_object(r))
			res[n++] = r;
	qsort(res, n, sizeof(*res), ctl_put_cmpdepth);
	*np = n;
	return res;
}

static int
ctl_put_report(const struct ctl_ctx *ctx, const json_t *final)
{
	json_t		**res;
	size_t		 n, stored;
	char		*err;
	int		 rc = CTL_EXIT_OK;

	res = ctl_results_sorted(final, &n);
	if (ctx->json)
		ctl_print_json(final);
	stored = ctl_put_table(res, n, !ctx->json);
	if (json_is_true(json_object_get(final, "ok"))) {
		if (!ctx->json)
			printf("stored at %zu hop(s)\n", stored);
		goto done;
	}
	rc = CTL_EXIT_FAIL;
	err = ctl_clean(ctl_jstr(final, "error"));
	if (!ctx->json)
		printf("FAILED: %s\n", err);
	fflush(stdout);
	ctl_err("put failed: %s", err);
	free(err);
	ctl_put_failures(res, n);
 done:
	free(res);
	return rc;
}

static json_t *
ctl_put_request(const struct ctl_ctx *ctx, const char *key, uint64_t size,
    const char *sha, char *put_id)
{
	unsigned char	 raw[CTL_PUTID_LEN];
	json_t		*req;

	if (ctx->put_id[0] != '\0')
		memcpy(put_id, ctx->put_id, sizeof(ctx->put_id));
	else {
		if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
			ctl_errno("getrandom");
			return NULL;
		}
		ctl_hex(raw, sizeof(raw), put_id);
	}
	req = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s}", "cmd", "put",
	    "key", key, "size", (json_int_t)size, "sha256", sha,
	    "hops", (json_int_t)ctx->hops, "put_id", put_id);
	if (req == NULL)
		ctl_err("cannot encode the request (is the key UTF-8?)");
	return req;
}

int
ctl_cmd_put(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_conn	 conn;
	struct ctl_put	 p;
	json_t		*req = NULL;
	char		 sha[2 * CTL_SHA256_LEN + 1];
	char		 put_id[2 * CTL_PUTID_LEN + 1];
	int		 rc = CTL_EXIT_FAIL;

	(void)argc;
	memset(&p, 0, sizeof(p));
	memset(&conn, 0, sizeof(conn));
	conn.fd = -1;
	if (argv[0][0] == '\0') {
		ctl_err("put: empty key");
		rc = CTL_EXIT_USAGE;
		goto done;
	}
	if ((p.file = ctl_put_open(argv[1], &p.size)) == -1)
		goto done;
	if (ctl_put_sha256(p.file, p.size, sha) == -1)
		goto done;
	if ((req = ctl_put_request(ctx, argv[0], p.size, sha, put_id)) == NULL)
		goto done;
	if ((p.hdr = ctl_request_line(req, &p.hdrlen)) == NULL) {
		rc = CTL_EXIT_USAGE;
		goto done;
	}
	log_debug("relayctl: put_id=%s key=%s bytes=%" PRIu64 " sha256=%s",
	    put_id, argv[0], p.size, sha);
	/* First, so a PUT that never ends can still be looked up. */
	if (!ctx->json) {
		printf("put_id %s\n", put_id);
		fflush(stdout);
	}
	if ((rc = ctl_connect(ctx, &conn)) != CTL_EXIT_OK)
		goto done;
	if ((p.block = malloc(CTL_BLOCK)) == NULL)
		ctl_oom();
	p.conn = &conn;
	p.prog.enabled = isatty(STDERR_FILENO);
	rc = ctl_put_loop(&p);
	ctl_progress_clear(&p.prog);
	log_debug("relayctl: sent=%" PRIu64 " acked=%" PRIu64, p.sent,
	    p.acked);
	if (rc == CTL_EXIT_OK)
		rc = ctl_put_report(ctx, p.final);
 done:
	if (p.file > STDIN_FILENO)
		close(p.file);
	json_decref(p.final);
	json_decref(req);
	free(p.hdr);
	free(p.block);
	ctl_conn_close(&conn);
	return rc;
}

static void
ctl_show_outcome(json_t *final)
{
	json_t	**res;
	size_t	 n;
	char	*id, *state;

	id = ctl_clean(ctl_jstr(final, "put_id"));
	state = ctl_clean(ctl_jstr(final, "state"));
	printf("put_id  %s\nstate   %s\nstored  %s\n", id, state,
	    json_is_true(json_object_get(final, "stored")) ? "yes" : "no");
	free(id);
	free(state);
	if (json_is_string(json_object_get(final, "failing_hop"))) {
		id = ctl_clean(ctl_jstr(final, "failing_hop"));
		printf("failing hop  %s\n", id);
		free(id);
	}
	if (json_is_string(json_object_get(final, "reason"))) {
		id = ctl_clean(ctl_jstr(final, "reason"));
		printf("reason  %s\n", id);
		free(id);
	}
	res = ctl_results_sorted(final, &n);
	ctl_put_table(res, n, 1);
	free(res);
}

int
ctl_cmd_outcome(struct ctl_ctx *ctx, int argc, char **argv)
{
	char	 id[2 * CTL_PUTID_LEN + 1];

	(void)argc;
	if (ctl_parse_putid(argv[0], id) == -1) {
		ctl_usage_cmd(stderr, ctx->cmd);
		return CTL_EXIT_USAGE;
	}
	return ctl_simple(ctx, json_pack("{s:s, s:s}", "cmd", "outcome",
	    "put_id", id), ctl_show_outcome, NULL);
}
