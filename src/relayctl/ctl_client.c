/*
 * The parts every command shares: error messages, JSON field and text
 * table output, and the connection to relayd.  Each request is one JSON
 * line; answers are read as JSON lines until the final one (see
 * ctl_is_final).
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "relayctl.h"

static void
ctl_verr(int with_errno, const char *fmt, va_list ap)
{
	int	 saved = errno;

	fputs("relayctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (with_errno)
		fprintf(stderr, ": %s", strerror(saved));
	fputc('\n', stderr);
	errno = saved;
}

void __attribute__((format(printf, 1, 2)))
ctl_err(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	ctl_verr(0, fmt, ap);
	va_end(ap);
}

void __attribute__((format(printf, 1, 2)))
ctl_errno(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	ctl_verr(1, fmt, ap);
	va_end(ap);
}

void __attribute__((noreturn))
ctl_oom(void)
{
	ctl_err("out of memory");
	exit(CTL_EXIT_FAIL);
}

/*
 * Text from relayd (keys, node names, reasons) is shown on a terminal:
 * replace control characters so it cannot move the cursor or worse.
 */
char *
ctl_clean(const char *s)
{
	char	*c, *p;

	if ((c = strdup(s)) == NULL)
		ctl_oom();
	for (p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

uint64_t
ctl_now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int
ctl_parse_num(const char *s, long long min, long long max, long long *out)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

void
ctl_hex(const unsigned char *in, size_t len, char *out)
{
	static const char	 digits[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

/* JSON accessors that tolerate a missing or mistyped member. */
const char *
ctl_jstr(const json_t *o, const char *key)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

int
ctl_jint(const json_t *o, const char *key, long long *v)
{
	json_t	*j = json_object_get(o, key);

	if (!json_is_integer(j))
		return -1;
	*v = json_integer_value(j);
	return 0;
}

char *
ctl_jintstr(const json_t *o, const char *key, char *buf, size_t len)
{
	long long	 v;

	if (ctl_jint(o, key, &v) == -1)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%lld", v);
	return buf;
}

char *
ctl_jsecs(const json_t *o, const char *key, char *buf, size_t len)
{
	json_t	*j = json_object_get(o, key);

	if (!json_is_number(j))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1fs", json_number_value(j));
	return buf;
}

/* A JSON value as text for "key = value" lines; malloc'd, cleaned. */
char *
ctl_jtext(const json_t *v)
{
	char	*s, *c;

	if (json_is_real(v)) {
		if (asprintf(&s, "%.3f", json_real_value(v)) == -1)
			ctl_oom();
	} else if ((s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) ==
	    NULL)
		ctl_oom();
	c = ctl_clean(s);
	free(s);
	return c;
}

void
ctl_table_init(struct ctl_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Appends a row of t->ncols strings; NULL shows as "-". */
void
ctl_table_row(struct ctl_table *t, ...)
{
	va_list		 ap;
	const char	*s;
	size_t		 i;
	char		**n;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		n = reallocarray(t->cells, t->cap * t->ncols, sizeof(*n));
		if (n == NULL)
			ctl_oom();
		t->cells = n;
	}
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		s = va_arg(ap, const char *);
		t->cells[t->nrows * t->ncols + i] = ctl_clean(s ? s : "-");
	}
	va_end(ap);
	t->nrows++;
}

void
ctl_table_print(const struct ctl_table *t, FILE *fp)
{
	size_t	 r, c, w, *width;
	char	*cell;

	if ((width = calloc(t->ncols, sizeof(*width))) == NULL)
		ctl_oom();
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			w = strlen(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			cell = t->cells[r * t->ncols + c];
			if (c == 0)
				fprintf(fp, "%*s", (int)t->indent, "");
			if (c + 1 == t->ncols)
				fprintf(fp, "%s\n", cell);
			else
				fprintf(fp, "%-*s  ", (int)width[c], cell);
		}
	}
	free(width);
}

void
ctl_table_free(struct ctl_table *t)
{
	size_t	 i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

int
ctl_connect(const struct ctl_ctx *ctx, struct ctl_conn *conn)
{
	struct sockaddr_un	 sun;

	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ctx->sock) >= sizeof(sun.sun_path)) {
		ctl_err("socket path too long: %s", ctx->sock);
		return CTL_EXIT_USAGE;
	}
	strcpy(sun.sun_path, ctx->sock);
	conn->cap = CTL_MAX_LINE + 2;
	if ((conn->buf = malloc(conn->cap)) == NULL)
		ctl_oom();
	if ((conn->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		ctl_errno("socket");
		return CTL_EXIT_CONN;
	}
	if (connect(conn->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		ctl_errno("cannot reach relayd at %s", ctx->sock);
		return CTL_EXIT_CONN;
	}
	log_debug("relayctl: connected to %s", ctx->sock);
	return CTL_EXIT_OK;
}

void
ctl_conn_close(struct ctl_conn *conn)
{
	if (conn->fd != -1)
		close(conn->fd);
	free(conn->buf);
	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
}

/* Reads once: > 0 bytes read, 0 at EOF, -1 on error (errno set). */
ssize_t
ctl_conn_fill(struct ctl_conn *conn)
{
	ssize_t	 n;
	char	*nbuf;

	/* A status of many streams is one long line: grow, within a bound. */
	if (conn->len + 1 >= conn->cap && conn->cap < CTL_MAX_REPLY + 2) {
		size_t ncap = conn->cap * 2;

		if (ncap > CTL_MAX_REPLY + 2)
			ncap = CTL_MAX_REPLY + 2;
		if ((nbuf = realloc(conn->buf, ncap)) == NULL)
			ctl_oom();
		conn->buf = nbuf;
		conn->cap = ncap;
	}
	do {
		n = read(conn->fd, conn->buf + conn->len,
		    conn->cap - 1 - conn->len);
	} while (n == -1 && errno == EINTR);
	if (n > 0)
		conn->len += (size_t)n;
	return n;
}

/*
 * Takes the next complete line off the buffer as JSON.  Returns 1 with
 * *out set (the caller owns it), 0 if no full line is buffered yet, -1
 * if relayd sent something that is not a JSON object line.
 */
int
ctl_conn_next(struct ctl_conn *conn, json_t **out)
{
	json_error_t	 jerr;
	char		*nl;
	size_t		 linelen;

	*out = NULL;
	nl = memchr(conn->buf, '\n', conn->len);
	if (nl == NULL) {
		if (conn->len > CTL_MAX_REPLY) {
			ctl_err("reply line from relayd longer than %d bytes",
			    CTL_MAX_REPLY);
			return -1;
		}
		return 0;
	}
	*nl = '\0';
	linelen = (size_t)(nl - conn->buf) + 1;
	log_debug("relayctl: < %.*s", (int)(linelen - 1), conn->buf);
	*out = json_loadb(conn->buf, linelen - 1, 0, &jerr);
	conn->len -= linelen;
	memmove(conn->buf, nl + 1, conn->len);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		ctl_err("bad reply from relayd: %s", jerr.text);
		return -1;
	}
	return 1;
}

/*
 * The final answer carries "ok" and no "event".  Monitor events carry
 * "ok" as data, and monitor's first answer carries both (see
 * ctl_monitor_line).
 */
int
ctl_is_final(const json_t *j)
{
	return json_is_boolean(json_object_get(j, "ok")) &&
	    json_object_get(j, "event") == NULL;
}

int
ctl_lost(void)
{
	ctl_err("connection to relayd lost before the result");
	return CTL_EXIT_CONN;
}

/* Encodes a request as one line; NULL (after a message) if too long. */
char *
ctl_request_line(const json_t *req, size_t *len)
{
	char	*line, *n;

	if ((line = json_dumps(req, JSON_COMPACT)) == NULL)
		ctl_oom();
	*len = strlen(line) + 1;
	if (*len > CTL_MAX_LINE) {
		ctl_err("request longer than %d bytes", CTL_MAX_LINE);
		free(line);
		return NULL;
	}
	if ((n = realloc(line, *len + 1)) == NULL)
		ctl_oom();
	n[*len - 1] = '\n';
	n[*len] = '\0';
	log_debug("relayctl: > %.*s", (int)(*len - 1), n);
	return n;
}

/* Sends a request line, blocking.  Returns an exit code. */
int
ctl_send_request(struct ctl_conn *conn, const json_t *req)
{
	char	*line;
	size_t	 len, off = 0;
	ssize_t	 n;

	if ((line = ctl_request_line(req, &len)) == NULL)
		return CTL_EXIT_USAGE;
	while (off < len) {
		n = send(conn->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(line);
			ctl_errno("send to relayd");
			return ctl_lost();
		}
		off += (size_t)n;
	}
	free(line);
	return CTL_EXIT_OK;
}

/* Blocking exchange for simple commands: one request, the final answer. */
static int
ctl_exchange(struct ctl_conn *conn, const json_t *req, json_t **final)
{
	ssize_t	 n;
	json_t	*j;
	int	 r;

	*final = NULL;
	if ((r = ctl_send_request(conn, req)) != CTL_EXIT_OK)
		return r;
	for (;;) {
		while ((r = ctl_conn_next(conn, &j)) == 1) {
			if (ctl_is_final(j)) {
				*final = j;
				return CTL_EXIT_OK;
			}
			json_decref(j);
		}
		if (r == -1)
			return CTL_EXIT_CONN;
		if ((n = ctl_conn_fill(conn)) == -1)
			ctl_errno("read from relayd");
		if (n <= 0)
			return ctl_lost();
	}
}

void
ctl_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

/* Reports an "ok": false answer; returns the exit code for it. */
int
ctl_failed(const json_t *final)
{
	char	*e;

	e = ctl_clean(ctl_jstr(final, "error"));
	ctl_err("%s", e);
	free(e);
	return CTL_EXIT_FAIL;
}

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "-", in buf. */
/*
 * One request, one answer: JSON with -j, else show() for an answer that
 * said ok.  With failtag, a failure is also told on stdout ("FAIL: why").
 * The request is consumed.
 */
int
ctl_simple(const struct ctl_ctx *ctx, json_t *req, void (*show)(json_t *),
    const char *failtag)
{
	struct ctl_conn	 conn;
	json_t		*final = NULL;
	char		*e;
	int		 rc;

	if (req == NULL)
		ctl_oom();
	if ((rc = ctl_connect(ctx, &conn)) != CTL_EXIT_OK)
		goto done;
	if ((rc = ctl_exchange(&conn, req, &final)) != CTL_EXIT_OK)
		goto done;
	if (ctx->json)
		ctl_print_json(final);
	if (json_is_true(json_object_get(final, "ok"))) {
		if (!ctx->json)
			show(final);
		goto done;
	}
	if (failtag != NULL && !ctx->json) {
		e = ctl_clean(ctl_jstr(final, "error"));
		printf("%s%s\n", failtag, e);
		fflush(stdout);
		free(e);
	}
	rc = ctl_failed(final);
 done:
	json_decref(req);
	json_decref(final);
	ctl_conn_close(&conn);
	return rc;
}
