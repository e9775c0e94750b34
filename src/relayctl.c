/*
 * relayctl: the command-line client of relayd's control socket (ctl.h).
 *
 * Commands live in one table (ctl_cmds) that drives parsing, prefix
 * matching and the help text.  Each request is one JSON line; answers are
 * read as JSON lines until the final one (the one carrying "ok").
 *
 * Exit codes: 0 the final answer said ok, 1 it did not (or a local failure
 * such as an unreadable file), 2 usage error, 3 relayd unreachable or the
 * connection broke before the final answer.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ctl.h"
#include "log.h"

#define CTL_BLOCK	(256 * 1024)	/* file read and socket write unit */
#define CTL_REDRAW_US	100000		/* progress bar: at most 10 Hz */
#define CTL_BAR_WIDTH	30
#define CTL_PUTID_LEN	16		/* bytes; 32 hex digits on the wire */

enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_CONN = 3,
};

struct ctl_ctx {
	const char	*sock;
	int		 json;
	int		 verbose;
	long long	 hops;			/* put -b */
	char		 put_id[2 * CTL_PUTID_LEN + 1];	/* put -i, or "" */
};

struct ctl_cmd {
	const char	*name;
	const char	*usage;		/* operands and command options */
	const char	*help;
	const char	*opts;		/* getopt(3) string for its options */
	int		 min_args;
	int		 max_args;
	int		(*handler)(struct ctl_ctx *, int, char **);
};

/* A connection to relayd and its partial input line. */
struct ctl_conn {
	int		 fd;
	char		*buf;		/* grows up to CTL_MAX_REPLY + 1 */
	size_t		 len;
	size_t		 cap;
};

/* A text table: row 0 is the header; every cell is owned by the table. */
struct ctl_table {
	size_t		 ncols;
	size_t		 nrows;
	size_t		 cap;
	char		**cells;
};

struct ctl_progress {
	int		 enabled;
	int		 drawn;
	uint64_t	 shown;		/* bytes in the last frame */
	uint64_t	 start_us;
	uint64_t	 last_us;
};

/* One upload in flight: the request line, then `size` file bytes. */
struct ctl_put {
	struct ctl_conn	*conn;
	int		 file;		/* a regular file, read with pread */
	uint64_t	 size;
	uint64_t	 offset;	/* file bytes read into block */
	uint64_t	 sent;		/* file bytes written to the socket */
	uint64_t	 acked;		/* last "progress" from relayd */
	char		*hdr;		/* request line, from json_dumps */
	size_t		 hdrlen;
	size_t		 hdroff;
	char		*block;
	size_t		 blen;
	size_t		 boff;
	int		 wclosed;	/* relayd stopped reading: only read */
	json_t		*final;
	struct ctl_progress prog;
};

static int	ctl_cmd_status(struct ctl_ctx *, int, char **);
static int	ctl_cmd_put(struct ctl_ctx *, int, char **);
static int	ctl_cmd_help(struct ctl_ctx *, int, char **);

static const struct ctl_cmd ctl_cmds[] = {
	{ "status", "", "show the node, its peers and its streams",
	    "", 0, 0, ctl_cmd_status },
	{ "put", "[-b hops] [-i putid] key file",
	    "push file ('-' for stdin) under key; wait for every hop's result",
	    "b:i:", 2, 2, ctl_cmd_put },
	{ "help", "[command]", "show this help, or one command's",
	    "", 0, 1, ctl_cmd_help },
};
#define CTL_NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

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

static void __attribute__((format(printf, 1, 2)))
ctl_err(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	ctl_verr(0, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 1, 2)))
ctl_errno(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	ctl_verr(1, fmt, ap);
	va_end(ap);
}

static void __attribute__((noreturn))
ctl_oom(void)
{
	ctl_err("out of memory");
	exit(CTL_EXIT_FAIL);
}

/*
 * Text from relayd (keys, node names, reasons) is shown on a terminal:
 * replace control characters so it cannot move the cursor or worse.
 */
static char *
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

static uint64_t
ctl_now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int
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

static void
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
static const char *
ctl_jstr(const json_t *o, const char *key)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

static int
ctl_jint(const json_t *o, const char *key, long long *v)
{
	json_t	*j = json_object_get(o, key);

	if (!json_is_integer(j))
		return -1;
	*v = json_integer_value(j);
	return 0;
}

static char *
ctl_jintstr(const json_t *o, const char *key, char *buf, size_t len)
{
	long long	 v;

	if (ctl_jint(o, key, &v) == -1)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%lld", v);
	return buf;
}

static char *
ctl_jsecs(const json_t *o, const char *key, char *buf, size_t len)
{
	json_t	*j = json_object_get(o, key);

	if (!json_is_number(j))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1fs", json_number_value(j));
	return buf;
}

static void
ctl_table_init(struct ctl_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Appends a row of t->ncols strings; NULL shows as "-". */
static void
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

static void
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
			if (c + 1 == t->ncols)
				fprintf(fp, "%s\n", cell);
			else
				fprintf(fp, "%-*s  ", (int)width[c], cell);
		}
	}
	free(width);
}

static void
ctl_table_free(struct ctl_table *t)
{
	size_t	 i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

static void
ctl_usage_cmd(FILE *fp, const struct ctl_cmd *cmd)
{
	fprintf(fp, "usage: relayctl [-jv] [-s socket] %s%s%s\n", cmd->name,
	    cmd->usage[0] ? " " : "", cmd->usage);
}

static void
ctl_help(FILE *fp)
{
	size_t	 i;
	char	 word[64];

	fprintf(fp, "usage: relayctl [-jv] [-s socket] command [args]\n"
	    "  -j         print JSON answers\n"
	    "  -s socket  control socket (default %s)\n"
	    "  -v         trace the control conversation on stderr\n"
	    "commands (any unique prefix will do):\n", CTL_DEFAULT_SOCKET);
	for (i = 0; i < CTL_NCMDS; i++) {
		snprintf(word, sizeof(word), "%s %s", ctl_cmds[i].name,
		    ctl_cmds[i].usage);
		fprintf(fp, "  %-38s %s\n", word, ctl_cmds[i].help);
	}
}

/* An exact name wins; otherwise the word must prefix exactly one name. */
static const struct ctl_cmd *
ctl_lookup(const char *word)
{
	const struct ctl_cmd	*found = NULL;
	size_t			 i, n = 0, len = strlen(word);
	char			*w;

	for (i = 0; i < CTL_NCMDS; i++) {
		if (strcmp(ctl_cmds[i].name, word) == 0)
			return &ctl_cmds[i];
		if (strncmp(ctl_cmds[i].name, word, len) == 0) {
			found = &ctl_cmds[i];
			n++;
		}
	}
	if (n == 1)
		return found;
	w = ctl_clean(word);
	if (n == 0) {
		ctl_err("unknown command '%s'; try 'relayctl help'", w);
		free(w);
		return NULL;
	}
	fprintf(stderr, "relayctl: ambiguous command '%s', could be:", w);
	for (i = 0; i < CTL_NCMDS; i++)
		if (strncmp(ctl_cmds[i].name, word, len) == 0)
			fprintf(stderr, " %s", ctl_cmds[i].name);
	fputc('\n', stderr);
	free(w);
	return NULL;
}

static int
ctl_cmd_opt(struct ctl_ctx *ctx, int ch, const char *arg)
{
	size_t	 i;

	switch (ch) {
	case 'b':
		if (ctl_parse_num(arg, 0, 255, &ctx->hops) == -1) {
			ctl_err("bad hop count '%s' (0 to 255)", arg);
			return -1;
		}
		return 0;
	case 'i':
		for (i = 0; arg[i] != '\0'; i++)
			if (i == 2 * CTL_PUTID_LEN ||
			    strchr("0123456789abcdefABCDEF", arg[i]) == NULL)
				break;
		if (i != 2 * CTL_PUTID_LEN || arg[i] != '\0') {
			ctl_err("bad put id (want %d hex digits)",
			    2 * CTL_PUTID_LEN);
			return -1;
		}
		for (i = 0; i < 2 * CTL_PUTID_LEN; i++)
			ctx->put_id[i] = (char)(arg[i] | 0x20);
		ctx->put_id[i] = '\0';
		return 0;
	default:
		return -1;
	}
}

/* getopt(3) runs silent (opterr = 0) so that messages carry our prefix. */
static int
ctl_badopt(int ch)
{
	if (ch == '?')
		ctl_err("unknown option -%c", optopt);
	else if (ch == ':')
		ctl_err("option -%c needs an argument", optopt);
	else
		return 0;
	return 1;
}

/* argv[0] is the command word as typed. */
static int
ctl_run(struct ctl_ctx *ctx, int argc, char **argv)
{
	const struct ctl_cmd	*cmd;
	char			 optstr[32];
	int			 ch, n;

	if ((cmd = ctl_lookup(argv[0])) == NULL)
		return CTL_EXIT_USAGE;
	snprintf(optstr, sizeof(optstr), "+:%s", cmd->opts);
	optind = 0;		/* glibc: restart getopt on the new vector */
	while ((ch = getopt(argc, argv, optstr)) != -1) {
		if (ctl_badopt(ch) || ctl_cmd_opt(ctx, ch, optarg) == -1) {
			ctl_usage_cmd(stderr, cmd);
			return CTL_EXIT_USAGE;
		}
	}
	n = argc - optind;
	if (n < cmd->min_args || n > cmd->max_args) {
		ctl_err("%s: wrong number of arguments", cmd->name);
		ctl_usage_cmd(stderr, cmd);
		return CTL_EXIT_USAGE;
	}
	return cmd->handler(ctx, n, argv + optind);
}

static int
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

static void
ctl_conn_close(struct ctl_conn *conn)
{
	if (conn->fd != -1)
		close(conn->fd);
	free(conn->buf);
	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
}

/* Reads once: > 0 bytes read, 0 at EOF, -1 on error (errno set). */
static ssize_t
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
static int
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

static int
ctl_is_final(const json_t *j)
{
	return json_is_boolean(json_object_get(j, "ok"));
}

static int
ctl_lost(void)
{
	ctl_err("connection to relayd lost before the result");
	return CTL_EXIT_CONN;
}

/* Encodes a request as one line; NULL (after a message) if too long. */
static char *
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

/* Blocking exchange for simple commands: one request, the final answer. */
static int
ctl_exchange(struct ctl_conn *conn, const json_t *req, json_t **final)
{
	char	*line;
	size_t	 len, off = 0;
	ssize_t	 n;
	json_t	*j;
	int	 r;

	*final = NULL;
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

static void
ctl_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

/* Reports an "ok": false answer; returns the exit code for it. */
static int
ctl_failed(const json_t *final)
{
	char	*e;

	e = ctl_clean(ctl_jstr(final, "error"));
	ctl_err("%s", e);
	free(e);
	return CTL_EXIT_FAIL;
}

static void
ctl_status_peers(const json_t *peers)
{
	struct ctl_table	 t;
	const json_t		*p;
	size_t			 i;
	char			 streams[32], in[32], out[32];

	ctl_table_init(&t, 7);
	ctl_table_row(&t, "NAME", "ADDRESS", "DIR", "STATE", "STREAMS",
	    "BYTES_IN", "BYTES_OUT");
	json_array_foreach(peers, i, p) {
		ctl_table_row(&t, ctl_jstr(p, "name"), ctl_jstr(p, "address"),
		    ctl_jstr(p, "direction"), ctl_jstr(p, "state"),
		    ctl_jintstr(p, "streams", streams, sizeof(streams)),
		    ctl_jintstr(p, "bytes_in", in, sizeof(in)),
		    ctl_jintstr(p, "bytes_out", out, sizeof(out)));
	}
	printf("\npeers: %zu\n", json_array_size(peers));
	if (json_array_size(peers) > 0)
		ctl_table_print(&t, stdout);
	ctl_table_free(&t);
}

/* "relay2:1234:sending,relay3:..." in a malloc'd string. */
static char *
ctl_status_forks(const json_t *forks)
{
	const json_t	*f;
	size_t		 i;
	long long	 out;
	char		*s = NULL, *n;

	json_array_foreach(forks, i, f) {
		if (ctl_jint(f, "bytes_out", &out) == -1)
			out = -1;
		if (asprintf(&n, "%s%s%s:%lld:%s", s ? s : "", s ? "," : "",
		    ctl_jstr(f, "peer"), out, ctl_jstr(f, "state")) == -1)
			ctl_oom();
		free(s);
		s = n;
	}
	if (s == NULL && (s = strdup("-")) == NULL)
		ctl_oom();
	return s;
}

static void
ctl_status_streams(const json_t *streams)
{
	struct ctl_table	 t;
	const json_t		*s;
	size_t			 i;
	char			 id[32], size[32], in[32], age[32], *forks;

	ctl_table_init(&t, 8);
	ctl_table_row(&t, "ID", "KEY", "SIZE", "BYTES_IN", "UPSTREAM",
	    "STORE", "AGE", "FORKS(PEER:BYTES_OUT:STATE)");
	json_array_foreach(streams, i, s) {
		forks = ctl_status_forks(json_object_get(s, "forks"));
		ctl_table_row(&t, ctl_jintstr(s, "id", id, sizeof(id)),
		    ctl_jstr(s, "key"),
		    ctl_jintstr(s, "size", size, sizeof(size)),
		    ctl_jintstr(s, "bytes_in", in, sizeof(in)),
		    ctl_jstr(s, "upstream"), ctl_jstr(s, "store"),
		    ctl_jsecs(s, "age_s", age, sizeof(age)), forks);
		free(forks);
	}
	printf("\nstreams: %zu\n", json_array_size(streams));
	if (json_array_size(streams) > 0)
		ctl_table_print(&t, stdout);
	ctl_table_free(&t);
}

static void
ctl_status_print(const json_t *st)
{
	char	*node, up[32], buffered[32];

	node = ctl_clean(ctl_jstr(st, "node"));
	printf("node %s  uptime %s  buffered %s bytes\n", node,
	    ctl_jsecs(st, "uptime_s", up, sizeof(up)),
	    ctl_jintstr(st, "buffered", buffered, sizeof(buffered)));
	free(node);
	ctl_status_peers(json_object_get(st, "peers"));
	ctl_status_streams(json_object_get(st, "streams"));
}

static int
ctl_cmd_status(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_conn	 conn;
	json_t		*req = NULL, *final = NULL;
	int		 rc;

	(void)argc;
	(void)argv;
	if ((rc = ctl_connect(ctx, &conn)) != CTL_EXIT_OK)
		goto done;
	if ((req = json_pack("{s:s}", "cmd", "status")) == NULL)
		ctl_oom();
	if ((rc = ctl_exchange(&conn, req, &final)) != CTL_EXIT_OK)
		goto done;
	if (ctx->json)
		ctl_print_json(final);
	if (!json_is_true(json_object_get(final, "ok")))
		rc = ctl_failed(final);
	else if (!ctx->json)
		ctl_status_print(final);
 done:
	json_decref(req);
	json_decref(final);
	ctl_conn_close(&conn);
	return rc;
}

static int
ctl_cmd_help(struct ctl_ctx *ctx, int argc, char **argv)
{
	const struct ctl_cmd	*cmd;

	(void)ctx;
	if (argc == 0) {
		ctl_help(stdout);
		return CTL_EXIT_OK;
	}
	if ((cmd = ctl_lookup(argv[0])) == NULL)
		return CTL_EXIT_USAGE;
	ctl_usage_cmd(stdout, cmd);
	printf("  %s\n", cmd->help);
	return CTL_EXIT_OK;
}

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
	EVP_MD_CTX	*md;
	unsigned char	 digest[EVP_MAX_MD_SIZE];
	unsigned int	 dlen;
	char		*buf;
	uint64_t	 off = 0;
	ssize_t		 n;
	int		 ok, rc = -1;

	if ((buf = malloc(CTL_BLOCK)) == NULL || (md = EVP_MD_CTX_new()) ==
	    NULL)
		ctl_oom();
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
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
		ok = EVP_DigestUpdate(md, buf, (size_t)n) == 1;
		off += (uint64_t)n;
	}
	if (!ok || EVP_DigestFinal_ex(md, digest, &dlen) != 1) {
		ctl_err("SHA-256 computation failed");
		goto done;
	}
	ctl_hex(digest, dlen, hex);
	rc = 0;
 done:
	EVP_MD_CTX_free(md);
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
	ctl_table_init(&t, 7);
	ctl_table_row(&t, "DEPTH", "NODE", "STATUS", "BYTES", "FIRST_MS",
	    "LAST_MS", "REASON");
	for (i = 0; i < n; i++) {
		if (strcmp(ctl_jstr(res[i], "status"), "stored") == 0)
			stored++;
		ctl_table_row(&t,
		    ctl_jintstr(res[i], "depth", depth, sizeof(depth)),
		    ctl_jstr(res[i], "node"), ctl_jstr(res[i], "status"),
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
	char	*node, *reason, depth[32];

	for (i = 0; i < n; i++) {
		if (strcmp(ctl_jstr(res[i], "status"), "failed") != 0)
			continue;
		node = ctl_clean(ctl_jstr(res[i], "node"));
		reason = ctl_clean(ctl_jstr(res[i], "reason"));
		ctl_err("hop %s at depth %s failed: %s", node,
		    ctl_jintstr(res[i], "depth", depth, sizeof(depth)), reason);
		free(node);
		free(reason);
	}
}

static int
ctl_put_report(const struct ctl_ctx *ctx, const json_t *final)
{
	const json_t	*results = json_object_get(final, "results");
	json_t		**res, *r;
	size_t		 i, n = 0, stored;
	char		*err;
	int		 rc = CTL_EXIT_OK;

	if ((res = calloc(json_array_size(results) + 1, sizeof(*res))) ==
	    NULL)
		ctl_oom();
	json_array_foreach(results, i, r)
		if (json_is_object(r))
			res[n++] = r;
	qsort(res, n, sizeof(*res), ctl_put_cmpdepth);
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
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			ctl_err("RAND_bytes failed");
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

static int
ctl_cmd_put(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_conn	 conn;
	struct ctl_put	 p;
	json_t		*req = NULL;
	char		 sha[2 * EVP_MAX_MD_SIZE + 1];
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

static void __attribute__((noreturn))
ctl_usage(void)
{
	ctl_help(stderr);
	exit(CTL_EXIT_USAGE);
}

int
main(int argc, char *argv[])
{
	struct ctl_ctx	 ctx;
	int		 ch;

	memset(&ctx, 0, sizeof(ctx));
	ctx.sock = CTL_DEFAULT_SOCKET;
	ctx.hops = CTL_DEFAULT_HOPS;
	opterr = 0;
	while ((ch = getopt(argc, argv, "+:hjs:v")) != -1) {
		if (ctl_badopt(ch))
			ctl_usage();
		switch (ch) {
		case 'j':
			ctx.json = 1;
			break;
		case 's':
			ctx.sock = optarg;
			break;
		case 'v':
			ctx.verbose = 1;
			break;
		case 'h':
		default:
			ctl_usage();
		}
	}
	argc -= optind;
	argv += optind;
	log_init("relayctl", 1, ctx.verbose ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	if (argc == 0)
		ctl_usage();
	return ctl_run(&ctx, argc, argv);
}
