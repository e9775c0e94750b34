/*
 * relayctl: the command-line client of relayd's control socket (ctl.h).
 *
 * Commands live in one table (ctl_cmds), and the fixed words after some
 * of them ("show peers", "log level debug") in word tables; the same
 * tables drive parsing, unique-prefix matching, usage lines and help.
 * Each request is one JSON line; answers are read as JSON lines until the
 * final one (see ctl_is_final).  monitor reads events until relayd ends
 * it or a signal does.
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
#include <signal.h>
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
#define CTL_MAX_WORDS	4		/* fixed words after a command */
#define CTL_USAGE_LEN	256

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
	const struct ctl_cmd *cmd;		/* the command running */
	const char	*words[CTL_MAX_WORDS];	/* fixed words chosen */
	size_t		 nwords;
};

/*
 * A fixed word after a command ("show peers", "log level debug"): each
 * table is matched by unique prefix, then the chosen word's next table.
 */
struct ctl_word {
	const char		*name;
	const char		*help;
	const struct ctl_word	*next;
	size_t			 nnext;
};

/* Words first (any options go before them), then free operands. */
struct ctl_cmd {
	const char		*name;
	const char		*usage;		/* options and free operands */
	const char		*help;
	const char		*opts;		/* getopt(3) string */
	int			 min_args;	/* free operands */
	int			 max_args;
	const struct ctl_word	*words;
	size_t			 nwords;
	int			(*handler)(struct ctl_ctx *, int, char **);
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
	size_t		 indent;	/* spaces before each row */
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
static int	ctl_cmd_show(struct ctl_ctx *, int, char **);
static int	ctl_cmd_monitor(struct ctl_ctx *, int, char **);
static int	ctl_cmd_put(struct ctl_ctx *, int, char **);
static int	ctl_cmd_outcome(struct ctl_ctx *, int, char **);
static int	ctl_cmd_reload(struct ctl_ctx *, int, char **);
static int	ctl_cmd_drain(struct ctl_ctx *, int, char **);
static int	ctl_cmd_log(struct ctl_ctx *, int, char **);
static int	ctl_cmd_help(struct ctl_ctx *, int, char **);

#define CTL_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* In the order of enum log_level (log.h); the names go on the wire. */
static const struct ctl_word ctl_levels[] = {
	{ "warn", "warnings and errors only", NULL, 0 },
	{ "info", "also links, PUTs, reloads", NULL, 0 },
	{ "debug", "everything, for troubleshooting", NULL, 0 },
};

static const struct ctl_word ctl_log_words[] = {
	{ "level", "set relayd's log level until the next restart",
	    ctl_levels, CTL_NITEMS(ctl_levels) },
};

/* The names go on the wire as "what". */
static const struct ctl_word ctl_show_words[] = {
	{ "peers", "peer links: state, streams, bytes, TLS", NULL, 0 },
	{ "streams", "streams in flight and their forks", NULL, 0 },
	{ "routes", "the routes of the running config", NULL, 0 },
	{ "config", "the running config, option by option", NULL, 0 },
	{ "stats", "counters since start", NULL, 0 },
};

static const struct ctl_cmd ctl_cmds[] = {
	{ "status", "", "show the node, its peers and its streams",
	    "", 0, 0, NULL, 0, ctl_cmd_status },
	{ "show", "", "show one part of relayd's state",
	    "", 0, 0, ctl_show_words, CTL_NITEMS(ctl_show_words),
	    ctl_cmd_show },
	{ "monitor", "", "print relayd's events as they happen, until "
	    "Ctrl-C", "", 0, 0, NULL, 0, ctl_cmd_monitor },
	{ "put", "[-b hops] [-i putid] key file",
	    "push file ('-' for stdin) under key; wait for every hop's result",
	    "b:i:", 2, 2, NULL, 0, ctl_cmd_put },
	{ "outcome", "putid", "show what became of a PUT, by its id",
	    "", 1, 1, NULL, 0, ctl_cmd_outcome },
	{ "reload", "", "load the config file again; say if it was taken",
	    "", 0, 0, NULL, 0, ctl_cmd_reload },
	{ "drain", "", "refuse new PUTs, finish the others, then exit",
	    "", 0, 0, NULL, 0, ctl_cmd_drain },
	{ "log", "", "change what relayd logs",
	    "", 0, 0, ctl_log_words, CTL_NITEMS(ctl_log_words), ctl_cmd_log },
	{ "help", "[command]", "show this help, or one command's",
	    "", 0, 1, NULL, 0, ctl_cmd_help },
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

static void
ctl_table_free(struct ctl_table *t)
{
	size_t	 i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* "peers|streams|..." or "level warn|info|debug", for usage lines. */
static void
ctl_words_usage(const struct ctl_word *w, size_t n, char *buf, size_t len)
{
	size_t	 i, off;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		off = strlen(buf);
		snprintf(buf + off, len - off, "%s%s", i ? "|" : "", w[i].name);
		if (w[i].next != NULL) {
			off = strlen(buf);
			snprintf(buf + off, len - off, " ");
			off = strlen(buf);
			ctl_words_usage(w[i].next, w[i].nnext, buf + off,
			    len - off);
		}
	}
}

/* The command with its words and operands, as on a usage line. */
static void
ctl_cmd_synopsis(const struct ctl_cmd *cmd, char *buf, size_t len)
{
	char	 words[CTL_USAGE_LEN];

	ctl_words_usage(cmd->words, cmd->nwords, words, sizeof(words));
	snprintf(buf, len, "%s%s%s%s%s", cmd->name, words[0] ? " " : "",
	    words, cmd->usage[0] ? " " : "", cmd->usage);
}

static void
ctl_usage_cmd(FILE *fp, const struct ctl_cmd *cmd)
{
	char	 syn[CTL_USAGE_LEN];

	ctl_cmd_synopsis(cmd, syn, sizeof(syn));
	fprintf(fp, "usage: relayctl [-jv] [-s socket] %s\n", syn);
}

static void
ctl_help(FILE *fp)
{
	size_t	 i;
	char	 syn[CTL_USAGE_LEN];

	fprintf(fp, "usage: relayctl [-jv] [-s socket] command [args]\n"
	    "  -j         print JSON answers\n"
	    "  -s socket  control socket (default %s)\n"
	    "  -v         trace the control conversation on stderr\n"
	    "commands (any unique prefix of a command or word will do):\n",
	    CTL_DEFAULT_SOCKET);
	for (i = 0; i < CTL_NCMDS; i++) {
		ctl_cmd_synopsis(&ctl_cmds[i], syn, sizeof(syn));
		fprintf(fp, "  %-38s %s\n", syn, ctl_cmds[i].help);
	}
}

static void
ctl_help_words(FILE *fp, const struct ctl_word *w, size_t n, int depth)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		fprintf(fp, "%*s%-*s %s\n", 2 * depth, "", 20 - 2 * depth,
		    w[i].name, w[i].help);
		if (w[i].next != NULL)
			ctl_help_words(fp, w[i].next, w[i].nnext, depth + 1);
	}
}

/*
 * Finds word among n names: an exact name wins, else it must prefix
 * exactly one.  Returns the index, or -1 after a message that names the
 * candidates.  ctx is "" for a command, else the words before this one.
 */
static int
ctl_match(const char *const *names, size_t n, const char *word,
    const char *ctx)
{
	size_t	 i, len = strlen(word), hits = 0;
	int	 found = -1;
	char	*w;

	for (i = 0; i < n; i++) {
		if (strcmp(names[i], word) == 0)
			return (int)i;
		if (strncmp(names[i], word, len) == 0) {
			found = (int)i;
			hits++;
		}
	}
	if (hits == 1)
		return found;
	w = ctl_clean(word);
	fprintf(stderr, "relayctl: %s%s%s %s '%s', %s:", ctx,
	    ctx[0] ? ": " : "", hits ? "ambiguous" : "unknown",
	    ctx[0] ? "word" : "command", w,
	    hits ? "could be" : "expected one of");
	for (i = 0; i < n; i++)
		if (hits == 0 || strncmp(names[i], word, len) == 0)
			fprintf(stderr, " %s", names[i]);
	fputc('\n', stderr);
	free(w);
	return -1;
}

static const struct ctl_cmd *
ctl_lookup(const char *word)
{
	const char	*names[CTL_NCMDS];
	size_t		 i;
	int		 k;

	for (i = 0; i < CTL_NCMDS; i++)
		names[i] = ctl_cmds[i].name;
	if ((k = ctl_match(names, CTL_NCMDS, word, "")) == -1)
		return NULL;
	return &ctl_cmds[k];
}

/*
 * Takes the command's fixed words off argv, recording the full names in
 * ctx->words.  Returns how many arguments it took, or -1 (usage error).
 */
static int
ctl_take_words(struct ctl_ctx *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	const struct ctl_word	*tab = cmd->words;
	const char		*names[16];
	char			 path[CTL_USAGE_LEN], syn[CTL_USAGE_LEN];
	size_t			 n = cmd->nwords, i;
	int			 k, taken = 0;

	snprintf(path, sizeof(path), "%s", cmd->name);
	while (tab != NULL && n > 0) {
		if (taken == argc) {
			ctl_words_usage(tab, n, syn, sizeof(syn));
			ctl_err("%s: missing word, expected %s", path, syn);
			return -1;
		}
		for (i = 0; i < n && i < CTL_NITEMS(names); i++)
			names[i] = tab[i].name;
		if ((k = ctl_match(names, i, argv[taken], path)) == -1 ||
		    ctx->nwords == CTL_MAX_WORDS)
			return -1;
		ctx->words[ctx->nwords++] = tab[k].name;
		i = strlen(path);
		snprintf(path + i, sizeof(path) - i, " %s", tab[k].name);
		n = tab[k].nnext;
		tab = tab[k].next;
		taken++;
	}
	return taken;
}

/* 32 hex digits, into out (33 bytes) in lower case; -1 after a message. */
static int
ctl_parse_putid(const char *arg, char *out)
{
	size_t	 i;

	for (i = 0; arg[i] != '\0'; i++)
		if (i == 2 * CTL_PUTID_LEN ||
		    strchr("0123456789abcdefABCDEF", arg[i]) == NULL)
			break;
	if (i != 2 * CTL_PUTID_LEN || arg[i] != '\0') {
		ctl_err("bad put id (want %d hex digits)", 2 * CTL_PUTID_LEN);
		return -1;
	}
	for (i = 0; i < 2 * CTL_PUTID_LEN; i++)
		out[i] = (char)(arg[i] | 0x20);
	out[i] = '\0';
	return 0;
}

static int
ctl_cmd_opt(struct ctl_ctx *ctx, int ch, const char *arg)
{
	switch (ch) {
	case 'b':
		if (ctl_parse_num(arg, 0, 255, &ctx->hops) == -1) {
			ctl_err("bad hop count '%s' (0 to 255)", arg);
			return -1;
		}
		return 0;
	case 'i':
		return ctl_parse_putid(arg, ctx->put_id);
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
	int			 ch, n, w;

	if ((cmd = ctl_lookup(argv[0])) == NULL)
		return CTL_EXIT_USAGE;
	ctx->cmd = cmd;
	snprintf(optstr, sizeof(optstr), "+:%s", cmd->opts);
	optind = 0;		/* glibc: restart getopt on the new vector */
	while ((ch = getopt(argc, argv, optstr)) != -1) {
		if (ctl_badopt(ch) || ctl_cmd_opt(ctx, ch, optarg) == -1) {
			ctl_usage_cmd(stderr, cmd);
			return CTL_EXIT_USAGE;
		}
	}
	if ((w = ctl_take_words(ctx, cmd, argc - optind, argv + optind)) ==
	    -1) {
		ctl_usage_cmd(stderr, cmd);
		return CTL_EXIT_USAGE;
	}
	n = argc - optind - w;
	if (n < cmd->min_args || n > cmd->max_args) {
		ctl_err("%s: wrong number of arguments", cmd->name);
		ctl_usage_cmd(stderr, cmd);
		return CTL_EXIT_USAGE;
	}
	return cmd->handler(ctx, n, argv + optind + w);
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

/*
 * The final answer carries "ok" and no "event".  Monitor events carry
 * "ok" as data, and monitor's first answer carries both (see
 * ctl_monitor_line).
 */
static int
ctl_is_final(const json_t *j)
{
	return json_is_boolean(json_object_get(j, "ok")) &&
	    json_object_get(j, "event") == NULL;
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

/* Sends a request line, blocking.  Returns an exit code. */
static int
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

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "-", in buf. */
/*
 * One request, one answer: JSON with -j, else show() for an answer that
 * said ok.  With failtag, a failure is also told on stdout ("FAIL: why").
 * The request is consumed.
 */
static int
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

static char *
ctl_peer_tls(const json_t *p, char *buf, size_t len)
{
	const json_t	*tls = json_object_get(p, "tls");

	if (!json_is_object(tls))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s %s", ctl_jstr(tls, "version"),
		    ctl_jstr(tls, "cipher"));
	return buf;
}

static void
ctl_peers_print(const json_t *peers, int title)
{
	struct ctl_table	 t;
	const json_t		*p, *tls;
	size_t			 i;
	char			 streams[32], in[32], out[32], tv[256];

	ctl_table_init(&t, 9);
	ctl_table_row(&t, "NAME", "ADDRESS", "DIR", "STATE", "STREAMS",
	    "BYTES_IN", "BYTES_OUT", "TLS", "SUBJECT");
	json_array_foreach(peers, i, p) {
		tls = json_object_get(p, "tls");
		ctl_table_row(&t, ctl_jstr(p, "name"), ctl_jstr(p, "address"),
		    ctl_jstr(p, "direction"), ctl_jstr(p, "state"),
		    ctl_jintstr(p, "streams", streams, sizeof(streams)),
		    ctl_jintstr(p, "bytes_in", in, sizeof(in)),
		    ctl_jintstr(p, "bytes_out", out, sizeof(out)),
		    ctl_peer_tls(p, tv, sizeof(tv)),
		    json_is_object(tls) ? ctl_jstr(tls, "subject") : "-");
	}
	if (title)
		printf("\npeers: %zu\n", json_array_size(peers));
	if (json_array_size(peers) > 0)
		ctl_table_print(&t, stdout);
	else if (!title)
		printf("no peers\n");
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
ctl_streams_print(const json_t *streams, int title)
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
	if (title)
		printf("\nstreams: %zu\n", json_array_size(streams));
	if (json_array_size(streams) > 0)
		ctl_table_print(&t, stdout);
	else if (!title)
		printf("no streams\n");
	ctl_table_free(&t);
}

static void
ctl_status_print(json_t *st)
{
	char	*node, up[32], buffered[32];

	node = ctl_clean(ctl_jstr(st, "node"));
	printf("node %s  uptime %s  buffered %s bytes\n", node,
	    ctl_jsecs(st, "uptime_s", up, sizeof(up)),
	    ctl_jintstr(st, "buffered", buffered, sizeof(buffered)));
	free(node);
	ctl_peers_print(json_object_get(st, "peers"), 1);
	ctl_streams_print(json_object_get(st, "streams"), 1);
}

static int
ctl_cmd_status(struct ctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ctl_simple(ctx, json_pack("{s:s}", "cmd", "status"),
	    ctl_status_print, NULL);
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
	ctl_help_words(stdout, cmd->words, cmd->nwords, 2);
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

/* A JSON value as text for "key = value" lines; malloc'd, cleaned. */
static char *
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

static void
ctl_routes_print(json_t *routes, size_t indent)
{
	struct ctl_table	 t;
	json_t			*r, *h;
	size_t			 i, j;
	char			*prefix, *hops, *n;

	ctl_table_init(&t, 4);
	t.indent = indent;
	ctl_table_row(&t, "PREFIX", "MODE", "STORE", "HOPS");
	json_array_foreach(routes, i, r) {
		hops = NULL;
		json_array_foreach(json_object_get(r, "hops"), j, h) {
			if (asprintf(&n, "%s%s%s", hops ? hops : "",
			    hops ? "," : "", json_is_string(h) ?
			    json_string_value(h) : "?") == -1)
				ctl_oom();
			free(hops);
			hops = n;
		}
		if (asprintf(&prefix, "\"%s\"", ctl_jstr(r, "prefix")) == -1)
			ctl_oom();
		ctl_table_row(&t, prefix, ctl_jstr(r, "mode"),
		    json_is_true(json_object_get(r, "store")) ? "yes" : "no",
		    hops);
		free(prefix);
		free(hops);
	}
	ctl_table_print(&t, stdout);
	ctl_table_free(&t);
}

static void
ctl_show_routes(json_t *final)
{
	char	 gen[32];

	printf("generation %s\n", ctl_jintstr(final, "generation", gen,
	    sizeof(gen)));
	ctl_routes_print(json_object_get(final, "routes"), 0);
}

static void
ctl_config_peers(json_t *peers)
{
	struct ctl_table	 t;
	json_t			*p, *tls;
	size_t			 i;
	char			 rate[32];

	ctl_table_init(&t, 4);
	t.indent = 2;
	ctl_table_row(&t, "NAME", "ADDRESS", "RATE_LIMIT", "TLS");
	json_array_foreach(peers, i, p) {
		tls = json_object_get(p, "tls");
		ctl_table_row(&t, ctl_jstr(p, "name"), ctl_jstr(p, "address"),
		    ctl_jintstr(p, "rate_limit", rate, sizeof(rate)),
		    !json_is_object(tls) ? "default" :
		    json_is_true(json_object_get(tls, "enabled")) ? "yes" :
		    "no");
	}
	ctl_table_print(&t, stdout);
	ctl_table_free(&t);
}

/* Scalars as "key = value", then blocks, then the peer and route tables. */
static void
ctl_show_config(json_t *final)
{
	json_t		*cf = json_object_get(final, "config"), *v, *v2;
	const char	*k, *k2;
	char		*path, *txt, gen[32];

	path = ctl_clean(ctl_jstr(final, "path"));
	printf("# %s, generation %s\n", path, ctl_jintstr(final,
	    "generation", gen, sizeof(gen)));
	free(path);
	json_object_foreach(cf, k, v) {
		if (json_is_object(v) || (json_is_array(v) &&
		    (strcmp(k, "peers") == 0 || strcmp(k, "routes") == 0)))
			continue;
		txt = ctl_jtext(v);
		printf("%s = %s\n", k, txt);
		free(txt);
	}
	json_object_foreach(cf, k, v) {
		if (!json_is_object(v))
			continue;
		printf("%s {\n", k);
		json_object_foreach(v, k2, v2) {
			txt = ctl_jtext(v2);
			printf("  %s = %s\n", k2, txt);
			free(txt);
		}
		printf("}\n");
	}
	if ((v = json_object_get(cf, "peers")) != NULL) {
		printf("peers: %zu\n", json_array_size(v));
		if (json_array_size(v) > 0)
			ctl_config_peers(v);
	}
	if ((v = json_object_get(cf, "routes")) != NULL) {
		printf("routes: %zu\n", json_array_size(v));
		ctl_routes_print(v, 2);
	}
}

/* "puts_refused:" and its counters by reason, for each such object. */
static void
ctl_show_breakdowns(json_t *st)
{
	json_t		*v, *v2;
	const char	*k, *k2;
	char		*txt;

	json_object_foreach(st, k, v) {
		if (!json_is_object(v))
			continue;
		printf("\n%s:\n", k);
		if (json_object_size(v) == 0)
			printf("  (none)\n");
		json_object_foreach(v, k2, v2) {
			txt = ctl_jtext(v2);
			printf("  %-22s %s\n", k2, txt);
			free(txt);
		}
	}
}

/* 1 if a and b start with the same word before '_' ("puts_..."). */
static int
ctl_same_family(const char *a, const char *b)
{
	size_t	 n = strcspn(a, "_");

	return a[n] == '_' && strncmp(a, b, n + 1) == 0;
}

/*
 * Counters: families of names (puts_*, stores_*, payload_*) each in a
 * group of their own, the lone names together, then the breakdowns.
 */
static void
ctl_show_stats(json_t *final)
{
	json_t		*st = json_object_get(final, "stats"), *v;
	const char	*k, **names;
	char		*txt;
	size_t		 i, n = 0;
	int		*fam;

	if ((names = calloc(json_object_size(st) + 1, sizeof(*names))) ==
	    NULL || (fam = calloc(json_object_size(st) + 1, sizeof(*fam))) ==
	    NULL)
		ctl_oom();
	json_object_foreach(st, k, v)
		if (!json_is_object(v))
			names[n++] = k;
	for (i = 0; i + 1 < n; i++)
		if (ctl_same_family(names[i], names[i + 1]))
			fam[i] = fam[i + 1] = 1;
	for (i = 0; i < n; i++) {
		if (i > 0 && (fam[i] || fam[i - 1]) &&
		    !ctl_same_family(names[i - 1], names[i]))
			putchar('\n');
		txt = ctl_jtext(json_object_get(st, names[i]));
		printf("%-24s %s\n", names[i], txt);
		free(txt);
	}
	free(names);
	free(fam);
	ctl_show_breakdowns(st);
}

static void
ctl_show_peers(json_t *final)
{
	ctl_peers_print(json_object_get(final, "peers"), 0);
}

static void
ctl_show_streams(json_t *final)
{
	ctl_streams_print(json_object_get(final, "streams"), 0);
}

static int
ctl_cmd_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct {
		const char	*what;
		void		(*show)(json_t *);
	} shows[] = {
		{ "peers", ctl_show_peers },
		{ "streams", ctl_show_streams },
		{ "routes", ctl_show_routes },
		{ "config", ctl_show_config },
		{ "stats", ctl_show_stats },
	};
	size_t	 i;

	(void)argc;
	(void)argv;
	for (i = 0; i < CTL_NITEMS(shows); i++)
		if (strcmp(shows[i].what, ctx->words[0]) == 0)
			break;
	if (i == CTL_NITEMS(shows))
		return CTL_EXIT_USAGE;		/* a word without a printer */
	return ctl_simple(ctx, json_pack("{s:s, s:s}", "cmd", "show", "what",
	    shows[i].what), shows[i].show, NULL);
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
	res = ctl_results_sorted(final, &n);
	ctl_put_table(res, n, 1);
	free(res);
}

static int
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

static void
ctl_show_reload(json_t *final)
{
	char	 gen[32];

	printf("OK generation %s\n", ctl_jintstr(final, "generation", gen,
	    sizeof(gen)));
}

static int
ctl_cmd_reload(struct ctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ctl_simple(ctx, json_pack("{s:s}", "cmd", "reload"),
	    ctl_show_reload, "FAIL: ");
}

static void
ctl_show_drain(json_t *final)
{
	char	 n[32];

	printf("draining: %s streams in flight\n", ctl_jintstr(final,
	    "streams", n, sizeof(n)));
}

static int
ctl_cmd_drain(struct ctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ctl_simple(ctx, json_pack("{s:s}", "cmd", "drain"),
	    ctl_show_drain, NULL);
}

static void
ctl_show_log(json_t *final)
{
	char	*level = ctl_clean(ctl_jstr(final, "level"));

	printf("log level is now %s\n", level);
	free(level);
}

/* ctx->words: "level", then the level's full name. */
static int
ctl_cmd_log(struct ctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ctl_simple(ctx, json_pack("{s:s, s:s}", "cmd", "log",
	    "level", ctx->words[1]), ctl_show_log, NULL);
}

static volatile sig_atomic_t	 ctl_interrupted;

static void
ctl_on_signal(int sig)
{
	(void)sig;
	ctl_interrupted = 1;
}

/* Keys shown first in a monitor line, in this order; then the others. */
static const char *const ctl_mon_first[] = {
	"stream", "peer", "key", "size", "bytes_in", "from", "address",
	"direction", "ok", "reason", NULL
};

static void
ctl_monitor_field(const char *k, const json_t *v)
{
	const char	*s;
	char		*txt;

	if (json_is_null(v) || (json_is_string(v) &&
	    json_string_length(v) == 0))
		return;
	if (json_is_string(v)) {
		s = json_string_value(v);
		txt = ctl_clean(s);
		if (strpbrk(s, " \"=") != NULL || s[0] == '\0')
			printf(" %s=\"%s\"", k, txt);
		else
			printf(" %s=%s", k, txt);
	} else {
		txt = ctl_jtext(v);
		printf(" %s=%s", k, txt);
	}
	free(txt);
}

/* "12:00:01.123 stream-opened stream=4 key=k size=1024 from=hop0" */
static void
ctl_monitor_print(json_t *ev)
{
	struct timespec	 ts;
	struct tm	 tm;
	long long	 us;
	time_t		 secs;
	const char	*k;
	json_t		*v;
	char		*name, tbuf[32];
	size_t		 i;

	if (ctl_jint(ev, "time_us", &us) == -1 || us < 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	secs = (time_t)(us / 1000000);
	if (localtime_r(&secs, &tm) == NULL ||
	    strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm) == 0)
		snprintf(tbuf, sizeof(tbuf), "??:??:??");
	name = ctl_clean(ctl_jstr(ev, "event"));
	printf("%s.%03lld %s", tbuf, (us / 1000) % 1000, name);
	free(name);
	for (i = 0; ctl_mon_first[i] != NULL; i++)
		if ((v = json_object_get(ev, ctl_mon_first[i])) != NULL)
			ctl_monitor_field(ctl_mon_first[i], v);
	json_object_foreach(ev, k, v) {
		for (i = 0; ctl_mon_first[i] != NULL; i++)
			if (strcmp(k, ctl_mon_first[i]) == 0)
				break;
		if (ctl_mon_first[i] == NULL && strcmp(k, "event") != 0 &&
		    strcmp(k, "time_us") != 0)
			ctl_monitor_field(k, v);
	}
	putchar('\n');
}

/*
 * One line from relayd.  The first answer says "ok" and "monitoring";
 * a final line (see ctl_is_final) is relayd closing the monitor.  Returns
 * an exit code when the monitor is over, else -1.
 */
static int
ctl_monitor_line(const struct ctl_ctx *ctx, json_t *j, int *started)
{
	char	*why;

	if (ctx->json) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		putchar('\n');
	}
	if (strcmp(ctl_jstr(j, "event"), "monitoring") == 0 &&
	    json_is_true(json_object_get(j, "ok")) && !*started) {
		*started = 1;
		return -1;
	}
	if (ctl_is_final(j) && !json_is_true(json_object_get(j, "ok")))
		return ctl_failed(j);
	if (ctl_is_final(j)) {
		if (!ctx->json) {
			why = ctl_clean(ctl_jstr(j, "end"));
			printf("relayd closed the monitor: %s\n", why);
			free(why);
		}
		return CTL_EXIT_OK;
	}
	if (!ctx->json)
		ctl_monitor_print(j);
	return -1;
}

/* Reads and prints until relayd ends the monitor or SIGINT/SIGTERM. */
static int
ctl_monitor_loop(const struct ctl_ctx *ctx, struct ctl_conn *conn,
    const sigset_t *waitmask)
{
	struct pollfd	 pfd;
	json_t		*j;
	ssize_t		 n;
	int		 r, rc, started = 0;

	for (;;) {
		while ((r = ctl_conn_next(conn, &j)) == 1) {
			rc = ctl_monitor_line(ctx, j, &started);
			json_decref(j);
			if (rc != -1)
				return rc;
		}
		fflush(stdout);
		if (r == -1)
			return CTL_EXIT_CONN;
		pfd.fd = conn->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* Signals are blocked but here, so none is missed. */
		if (ppoll(&pfd, 1, NULL, waitmask) == -1) {
			if (errno != EINTR) {
				ctl_errno("poll");
				return CTL_EXIT_FAIL;
			}
			if (ctl_interrupted)
				return CTL_EXIT_OK;
			continue;
		}
		if ((n = ctl_conn_fill(conn)) == -1)
			ctl_errno("read from relayd");
		if (n <= 0)
			return ctl_lost();
	}
}

static int
ctl_cmd_monitor(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_conn		 conn;
	struct sigaction	 sa;
	sigset_t		 block, waitmask;
	json_t			*req;
	int			 rc;

	(void)argc;
	(void)argv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ctl_on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if ((req = json_pack("{s:s}", "cmd", "monitor")) == NULL)
		ctl_oom();
	if ((rc = ctl_connect(ctx, &conn)) == CTL_EXIT_OK &&
	    (rc = ctl_send_request(&conn, req)) == CTL_EXIT_OK)
		rc = ctl_monitor_loop(ctx, &conn, &waitmask);
	fflush(stdout);
	json_decref(req);
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
