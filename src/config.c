/*
 * config: read relayd.conf with libconfig, validate every setting, and
 * build one immutable, reference-counted generation.  Every problem is
 * reported as "FILE:LINE: message"; validation goes on after an error so
 * that one run shows them all.
 */
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CONFIG_FILE_MAX		(16 * 1024 * 1024)
#define CONFIG_KIB		1024ULL
#define CONFIG_MIB		(1024 * CONFIG_KIB)
#define CONFIG_GIB		(1024 * CONFIG_MIB)

#define CONFIG_MAX_ERRORS	100
#define CONFIG_INCLUDE_MAX	32	/* included files, all depths */
#define CONFIG_INCLUDE_DEPTH	10	/* libconfig 1.5's own limit */

#define CONFIG_TLS_ALLOW_MAX	64	/* entries in one allow list */
#define CONFIG_CN_MAX		64	/* characters after "CN=" */
#define CONFIG_SHA256_HEX	64

struct config_error {
	const char	*file;		/* ctx->path or libconfig's copy */
	unsigned int	 line;
	unsigned int	 seq;
	char		*msg;
};

/*
 * Parsing state of one config_load(); never outlives it.  Errors are
 * kept, then sorted by file and line, so the report reads top to bottom.
 */
/* An included file, read for the integer scan. */
struct config_inc {
	char		*lib;		/* libconfig's name for the file */
	char		*shown;		/* the name errors give */
	char		*buf;		/* its text; NULL: unreadable */
	size_t		 len;
};

struct config_ctx {
	const char		*path;
	char			*dir;		/* absolute directory of path */
	char			*incdir;	/* libconfig's include dir */
	unsigned int		 ninc;		/* files read for the scan */
	size_t			 incbytes;	/* their text, all together */
	struct config_inc	 incs[CONFIG_INCLUDE_MAX];
	int			 tls_seen;	/* top-level tls is set */
	unsigned int		 nerr;
	unsigned int		 nkept;
	struct config_error	 errs[CONFIG_MAX_ERRORS];
	struct config		*cf;
};

struct config_opt {
	const char	*name;
	void		(*set)(struct config_ctx *, const struct config_opt *,
			    const config_setting_t *);
	size_t		 off;
	uint64_t	 imin;
	uint64_t	 imax;
	double		 dmin;
	double		 dmax;
};

static unsigned int	config_generation;

static void	config_set_node(struct config_ctx *, const struct config_opt *,
		    const config_setting_t *);
static void	config_set_listen(struct config_ctx *,
		    const struct config_opt *, const config_setting_t *);
static void	config_set_metrics(struct config_ctx *,
		    const struct config_opt *, const config_setting_t *);
static void	config_set_path(struct config_ctx *, const struct config_opt *,
		    const config_setting_t *);
static void	config_set_u64(struct config_ctx *, const struct config_opt *,
		    const config_setting_t *);
static void	config_set_u32(struct config_ctx *, const struct config_opt *,
		    const config_setting_t *);
static void	config_set_secs(struct config_ctx *, const struct config_opt *,
		    const config_setting_t *);
static void	config_set_tls(struct config_ctx *, const struct config_opt *,
		    const config_setting_t *);
static void	config_set_peers(struct config_ctx *,
		    const struct config_opt *, const config_setting_t *);
static void	config_set_routes(struct config_ctx *,
		    const struct config_opt *, const config_setting_t *);

#define OFF(f)	offsetof(struct config, f)
#define I64MAX	((uint64_t)INT64_MAX)

/* tls comes before peers (they inherit it), peers before routes. */
static const struct config_opt config_opts[] = {
	{ "node_id", config_set_node, 0, 0, 0, 0, 0 },
	{ "listen", config_set_listen, 0, 0, 0, 0, 0 },
	{ "metrics", config_set_metrics, 0, 0, 0, 0, 0 },
	{ "control_socket", config_set_path, OFF(control_socket),
	    0, 0, 0, 0 },
	{ "store_dir", config_set_path, OFF(store_dir), 0, 0, 0, 0 },
	{ "max_payload", config_set_u64, OFF(max_payload), 1, I64MAX, 0, 0 },
	{ "store_max_bytes", config_set_u64, OFF(store_max_bytes),
	    0, I64MAX, 0, 0 },
	{ "stream_inactivity_timeout", config_set_secs,
	    OFF(stream_inactivity_timeout), 0, 0, 0.1, 3600 },
	{ "handshake_timeout", config_set_secs, OFF(handshake_timeout),
	    0, 0, 0.1, 3600 },
	{ "result_timeout", config_set_secs, OFF(result_timeout),
	    0, 0, 0.1, 3600 },
	{ "connect_timeout", config_set_secs, OFF(connect_timeout),
	    0, 0, 0.1, 3600 },
	{ "idle_timeout", config_set_secs, OFF(idle_timeout),
	    0, 0, 0.1, 3600 },
	{ "drain_timeout", config_set_secs, OFF(drain_timeout),
	    0, 0, 0.1, 86400 },
	{ "conn_window", config_set_u32, OFF(conn_window),
	    65536, CONFIG_GIB, 0, 0 },
	{ "stream_window", config_set_u32, OFF(stream_window),
	    65536, CONFIG_GIB, 0, 0 },
	{ "max_streams_per_peer", config_set_u32, OFF(max_streams_per_peer),
	    1, 1048576, 0, 0 },
	{ "max_buffered", config_set_u64, OFF(max_buffered),
	    65536, I64MAX, 0, 0 },
	{ "max_fork_lag", config_set_u64, OFF(max_fork_lag),
	    65536, I64MAX, 0, 0 },
	{ "max_connections", config_set_u32, OFF(max_connections),
	    0, 1048576, 0, 0 },
	{ "max_handshakes", config_set_u32, OFF(max_handshakes),
	    0, 1048576, 0, 0 },
	{ "max_connections_per_source", config_set_u32,
	    OFF(max_connections_per_source), 1, 1048576, 0, 0 },
	{ "max_streams", config_set_u32, OFF(max_streams), 0, 16777216, 0, 0 },
	{ "max_control_clients", config_set_u32, OFF(max_control_clients),
	    1, 65536, 0, 0 },
	{ "control_request_timeout", config_set_secs,
	    OFF(control_request_timeout), 0, 0, 0.1, 3600 },
	{ "max_metrics_clients", config_set_u32, OFF(max_metrics_clients),
	    1, 4096, 0, 0 },
	{ "metrics_header_timeout", config_set_secs,
	    OFF(metrics_header_timeout), 0, 0, 0.1, 3600 },
	{ "max_output_buffer", config_set_u64, OFF(max_output_buffer),
	    2 * CONFIG_MIB, CONFIG_GIB, 0, 0 },
	{ "output_timeout", config_set_secs, OFF(output_timeout),
	    0, 0, 0.1, 3600 },
	{ "tls", config_set_tls, 0, 0, 0, 0, 0 },
	{ "peers", config_set_peers, 0, 0, 0, 0, 0 },
	{ "routes", config_set_routes, 0, 0, 0, 0, 0 },
};

#define NOPTS	(sizeof(config_opts) / sizeof(config_opts[0]))

static void
config_verr(struct config_ctx *ctx, const char *file, unsigned int line,
    const char *fmt, va_list ap)
{
	struct config_error	*e;
	char			 msg[1024];

	if (ctx->nkept < CONFIG_MAX_ERRORS) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		e = &ctx->errs[ctx->nkept];
		e->file = file;
		e->line = line;
		e->seq = ctx->nerr;
		if ((e->msg = strdup(msg)) != NULL)
			ctx->nkept++;
	}
	ctx->nerr++;
}

static int
config_error_cmp(const void *a, const void *b)
{
	const struct config_error	*x = a, *y = b;
	int				 c;

	if ((c = strcmp(x->file, y->file)) != 0)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes the kept errors into err, one per line, as much as fits. */
static void
config_errors_flush(struct config_ctx *ctx, char *err, size_t errlen)
{
	size_t		 pos = 0;
	unsigned int	 i;
	int		 n;

	qsort(ctx->errs, ctx->nkept, sizeof(ctx->errs[0]), config_error_cmp);
	for (i = 0; i < ctx->nkept; i++) {
		if (err != NULL && pos + 1 < errlen) {
			n = snprintf(err + pos, errlen - pos, "%s%s:%u: %s",
			    i > 0 ? "\n" : "", ctx->errs[i].file,
			    ctx->errs[i].line, ctx->errs[i].msg);
			if (n > 0)
				pos += (size_t)n;
		}
		free(ctx->errs[i].msg);
	}
	if (err != NULL && pos + 1 < errlen && ctx->nerr > ctx->nkept)
		snprintf(err + pos, errlen - pos, "\n%s:0: %u more errors not "
		    "shown", ctx->path, ctx->nerr - ctx->nkept);
	ctx->nkept = 0;
}

static void __attribute__((format(printf, 4, 5)))
config_err_file(struct config_ctx *ctx, const char *file, unsigned int line,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	config_verr(ctx, file, line, fmt, ap);
	va_end(ap);
}

/* An error in the main file, at line (0: the file as a whole). */
#define config_err_line(ctx, line, ...)					\
	config_err_file((ctx), (ctx)->path, (line), __VA_ARGS__)

static unsigned int
config_line_at(const char *buf, const char *at)
{
	unsigned int	 line = 1;

	for (; buf < at; buf++)
		if (*buf == '\n')
			line++;
	return line;
}

/*
 * The name to give for a file libconfig names lib: an absolute include
 * of the main file is read through a relative path (see
 * config_include_rewrite) but shown as written.
 */
static const char *
config_shown(const struct config_ctx *ctx, const char *lib)
{
	unsigned int	 i;

	for (i = 0; i < ctx->ninc; i++)
		if (strcmp(ctx->incs[i].lib, lib) == 0)
			return ctx->incs[i].shown;
	return lib;
}

/* An error about setting s, at its file and line. */
static void __attribute__((format(printf, 3, 4)))
config_err(struct config_ctx *ctx, const config_setting_t *s,
    const char *fmt, ...)
{
	va_list		 ap;
	const char	*file = ctx->path;
	unsigned int	 line = 1;

	if (s != NULL) {
		if (config_setting_source_file(s) != NULL)
			file = config_shown(ctx, config_setting_source_file(s));
		if (config_setting_source_line(s) > 0)
			line = config_setting_source_line(s);
	}
	va_start(ap, fmt);
	config_verr(ctx, file, line, fmt, ap);
	va_end(ap);
}

/* Remembers where s is, for errors found after config_load(). */
static void
config_where_set(struct config_ctx *ctx, const config_setting_t *s,
    struct config_where *w)
{
	const char	*file = config_setting_source_file(s);

	free(w->file);
	w->file = strdup(file != NULL ? config_shown(ctx, file) : ctx->path);
	w->line = config_setting_source_line(s);
}

static const char *
config_type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "an unknown type";
	}
}

/* The string value of s, or NULL after reporting a type error. */
static const char *
config_str(struct config_ctx *ctx, const config_setting_t *s,
    const char *what)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_err(ctx, s, "%s: expected a string, got %s", what,
		    config_type_name(s));
		return NULL;
	}
	return config_setting_get_string(s);
}

static int
config_int(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, uint64_t min, uint64_t max, uint64_t *v)
{
	int64_t	 i;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		i = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		i = config_setting_get_int64(s);
		break;
	default:
		config_err(ctx, s, "%s: expected an integer, got %s", what,
		    config_type_name(s));
		return -1;
	}
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
		config_err(ctx, s, "%s: %" PRId64 " out of range "
		    "(%" PRIu64 "..%" PRIu64 ")", what, i, min, max);
		return -1;
	}
	*v = (uint64_t)i;
	return 0;
}

/*
 * A token of 1..max printable, non-blank characters, copied into dst
 * (max + 1 bytes): node and peer names, certificate identities.
 */
static int
config_token(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, char *dst, size_t max)
{
	const char	*v;
	size_t		 i, len;

	if ((v = config_str(ctx, s, what)) == NULL)
		return -1;
	len = strlen(v);
	if (len == 0 || len > max) {
		config_err(ctx, s, "%s: must be 1..%zu characters long, not %zu",
		    what, max, len);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (!isgraph((unsigned char)v[i])) {
			config_err(ctx, s, "%s: non-printable or blank "
			    "character 0x%02x at offset %zu", what,
			    (unsigned char)v[i], i);
			return -1;
		}
	}
	memcpy(dst, v, len + 1);
	return 0;
}

/* Node and peer names: 1..CONFIG_NAME_MAX printable, non-blank chars. */
static int
config_name(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, char *dst)
{
	return config_token(ctx, s, what, dst, CONFIG_NAME_MAX);
}

static int
config_host_ok(const char *h)
{
	if (*h == '\0')
		return 0;
	for (; *h != '\0'; h++)
		if (!isalnum((unsigned char)*h) && strchr(".-_", *h) == NULL)
			return 0;
	return 1;
}

/*
 * Split "host:port" or "[v6]:port" into newly allocated strings.  Port 0
 * is accepted only when any_port is set.  On error returns -1 and points
 * why at a message.
 */
static int
config_addr(const char *s, int any_port, char **hostp, char **portp,
    const char **why)
{
	struct in6_addr	 a6;
	const char	*h, *p, *end;
	char		 host[256], port[8];
	unsigned long	 n;
	size_t		 hlen;

	if (*s == '[') {
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL || end[1] != ':') {
			*why = "expected [IPv6]:port";
			return -1;
		}
		p = end + 2;
	} else {
		h = s;
		if ((end = strrchr(s, ':')) == NULL) {
			*why = "missing :port";
			return -1;
		}
		if (memchr(s, ':', end - s) != NULL) {
			*why = "IPv6 addresses go in brackets: [addr]:port";
			return -1;
		}
		p = end + 1;
	}
	if ((hlen = end - h) >= sizeof(host)) {
		*why = "host name too long";
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (*s == '[' ? inet_pton(AF_INET6, host, &a6) != 1 :
	    !config_host_ok(host)) {
		*why = "bad host";
		return -1;
	}
	if (*p == '\0' || strlen(p) > 5 || strspn(p, "0123456789") !=
	    strlen(p) || (n = strtoul(p, NULL, 10)) > 65535 ||
	    (n == 0 && !any_port)) {
		*why = any_port ? "port must be 0..65535" :
		    "port must be 1..65535";
		return -1;
	}
	snprintf(port, sizeof(port), "%lu", n);
	*hostp = strdup(host);
	*portp = strdup(port);
	if (*hostp == NULL || *portp == NULL) {
		free(*hostp);
		free(*portp);
		*hostp = *portp = NULL;
		*why = "out of memory";
		return -1;
	}
	return 0;
}

static void
config_set_node(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	config_name(ctx, s, o->name, ctx->cf->node_id);
}

static void
config_set_listen(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	const char	*v, *why;

	if ((v = config_str(ctx, s, o->name)) == NULL)
		return;
	if (config_addr(v, 1, &ctx->cf->listen_host, &ctx->cf->listen_port,
	    &why) == -1)
		config_err(ctx, s, "%s: bad address \"%s\": %s", o->name, v,
		    why);
	config_where_set(ctx, s, &ctx->cf->listen_at);
}

/*
 * The metrics endpoint: "host:port" like listen, or "port" / ":port" for
 * the loopback address, so that it is never exposed by accident.
 */
static void
config_set_metrics(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	const char	*v, *addr, *why;
	char		 buf[300];

	if ((v = config_str(ctx, s, o->name)) == NULL)
		return;
	addr = v;
	if (*v == ':' || (*v != '\0' && strspn(v, "0123456789") ==
	    strlen(v))) {
		snprintf(buf, sizeof(buf), "127.0.0.1:%s", v + (*v == ':'));
		addr = buf;
	}
	if (config_addr(addr, 0, &ctx->cf->metrics_host,
	    &ctx->cf->metrics_port, &why) == -1)
		config_err(ctx, s, "%s: bad address \"%s\": %s", o->name, v,
		    why);
	config_where_set(ctx, s, &ctx->cf->metrics_at);
}

static void
config_set_path(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	struct sockaddr_un	 sun;
	char			**dst = (char **)((char *)ctx->cf + o->off);
	const char		*v;
	char			*copy;

	if ((v = config_str(ctx, s, o->name)) == NULL)
		return;
	if (*v == '\0') {
		config_err(ctx, s, "%s: empty path", o->name);
		return;
	}
	if (dst == &ctx->cf->control_socket &&
	    strlen(v) >= sizeof(sun.sun_path)) {
		config_err(ctx, s, "%s: path longer than %zu bytes", o->name,
		    sizeof(sun.sun_path) - 1);
		return;
	}
	if ((copy = strdup(v)) == NULL) {
		config_err(ctx, s, "%s: out of memory", o->name);
		return;
	}
	free(*dst);
	*dst = copy;
	config_where_set(ctx, s, dst == &ctx->cf->store_dir ?
	    &ctx->cf->store_dir_at : &ctx->cf->control_socket_at);
}

static void
config_set_u64(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	uint64_t	 v;

	if (config_int(ctx, s, o->name, o->imin, o->imax, &v) == 0)
		*(uint64_t *)((char *)ctx->cf + o->off) = v;
}

static void
config_set_u32(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	uint64_t	 v;

	if (config_int(ctx, s, o->name, o->imin, o->imax, &v) == 0)
		*(uint32_t *)((char *)ctx->cf + o->off) = (uint32_t)v;
}

static void
config_set_secs(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	double	 v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	default:
		config_err(ctx, s, "%s: expected a number of seconds, got %s",
		    o->name, config_type_name(s));
		return;
	}
	/* Written so that NaN fails too. */
	if (!(v >= o->dmin && v <= o->dmax)) {
		config_err(ctx, s, "%s: %g out of range (%g..%g seconds)",
		    o->name, v, o->dmin, o->dmax);
		return;
	}
	*(double *)((char *)ctx->cf + o->off) = v;
}

/*
 * peers and routes are lists of groups; an empty array ("[]") is
 * accepted as an empty list.  Returns the number of elements, or -1.
 */
static int
config_list(struct config_ctx *ctx, const config_setting_t *s,
    const char *what)
{
	int	 n = config_setting_length(s);

	if (config_setting_type(s) == CONFIG_TYPE_LIST ||
	    (config_setting_type(s) == CONFIG_TYPE_ARRAY && n == 0))
		return n;
	config_err(ctx, s, "%s: expected a list of groups ( { ... }, ... ), "
	    "got %s", what, config_type_name(s));
	return -1;
}

/* Reports members of group g not named in known (NULL-terminated). */
static void
config_unknown_members(struct config_ctx *ctx, const config_setting_t *g,
    const char *what, const char *const *known)
{
	const config_setting_t	*m;
	const char		*name;
	int			 i, k;

	for (i = 0; (m = config_setting_get_elem(g, i)) != NULL; i++) {
		name = config_setting_name(m);
		for (k = 0; known[k] != NULL; k++)
			if (name != NULL && strcmp(name, known[k]) == 0)
				break;
		if (known[k] == NULL)
			config_err(ctx, m, "%s: unknown setting \"%s\"", what,
			    name != NULL ? name : "");
	}
}

static void
config_tls_free(struct tls_conf *t)
{
	unsigned int	 i;

	free(t->ca);
	free(t->cert);
	free(t->key);
	for (i = 0; t->allow != NULL && i < t->nallow; i++)
		free(t->allow[i]);
	free(t->allow);
	free(t->file);
	memset(t, 0, sizeof(*t));
}

/* Each peer owns its tls_conf, so an inherited one is a deep copy. */
static int
config_tls_copy(struct tls_conf *dst, const struct tls_conf *src)
{
	unsigned int	 i;

	memset(dst, 0, sizeof(*dst));
	dst->enabled = src->enabled;
	dst->line = src->line;
	if ((src->ca != NULL && (dst->ca = strdup(src->ca)) == NULL) ||
	    (src->cert != NULL && (dst->cert = strdup(src->cert)) == NULL) ||
	    (src->key != NULL && (dst->key = strdup(src->key)) == NULL) ||
	    (src->file != NULL && (dst->file = strdup(src->file)) == NULL))
		goto fail;
	if (src->nallow == 0)
		return 0;
	if ((dst->allow = calloc(src->nallow, sizeof(*dst->allow))) == NULL)
		goto fail;
	for (i = 0; i < src->nallow; i++) {
		if ((dst->allow[i] = strdup(src->allow[i])) == NULL)
			goto fail;
		dst->nallow++;
	}
	return 0;
 fail:
	config_tls_free(dst);
	return -1;
}

/* dir "/" the first len bytes of rel, newly allocated. */
static char *
config_join(const char *dir, const char *rel, size_t len)
{
	size_t	 dlen = strlen(dir);
	char	*p;

	if (dlen > 0 && dir[dlen - 1] == '/')
		dlen--;
	if ((p = malloc(dlen + 1 + len + 1)) == NULL)
		return NULL;
	memcpy(p, dir, dlen);
	p[dlen] = '/';
	memcpy(p + dlen + 1, rel, len);
	p[dlen + 1 + len] = '\0';
	return p;
}

/*
 * The absolute directory of the config file, so that TLS paths still
 * name the same files after the daemon changes directory.
 */
static char *
config_dir(const char *path)
{
	const char	*slash = strrchr(path, '/');
	char		 cwd[PATH_MAX];

	if (slash == path)
		return strdup("/");
	if (path[0] == '/')
		return strndup(path, slash - path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return slash == NULL ? strdup(".") :
		    strndup(path, slash - path);
	if (slash == NULL)
		return strdup(cwd);
	return config_join(cwd, path, slash - path);
}

/* Exists, is readable by this process, and is not a directory. */
static int
config_readable(const char *path)
{
	struct stat	 st;

	if (access(path, R_OK) == -1 || stat(path, &st) == -1)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	return 0;
}

/* ca, cert or key of the tls group g, resolved and checked. */
static void
config_tls_path(struct config_ctx *ctx, const config_setting_t *g,
    const char *what, const char *name, char **dst)
{
	const config_setting_t	*s;
	const char		*v;
	char			 sub[96];

	snprintf(sub, sizeof(sub), "%s.%s", what, name);
	if ((s = config_setting_get_member(g, name)) == NULL) {
		config_err(ctx, g, "%s: missing (required)", sub);
		return;
	}
	if ((v = config_str(ctx, s, sub)) == NULL)
		return;
	if (*v == '\0') {
		config_err(ctx, s, "%s: empty path", sub);
		return;
	}
	*dst = v[0] == '/' ? strdup(v) : config_join(ctx->dir, v, strlen(v));
	if (*dst == NULL) {
		config_err(ctx, s, "%s: out of memory", sub);
		return;
	}
	if (strlen(*dst) >= PATH_MAX) {
		config_err(ctx, s, "%s: path longer than %d bytes", sub,
		    PATH_MAX - 1);
		return;
	}
	if (config_readable(*dst) == -1)
		config_err(ctx, s, "%s: cannot read %s %s: %s", what, name, *dst,
		    strerror(errno));
}

/*
 * "sha256:" then 32 bytes in hex, any case, optionally ':' between byte
 * pairs; written to out as "sha256:" and 64 lower-case hex digits.
 */
static int
config_fingerprint(const char *h, char *out, size_t outlen)
{
	char	 hex[CONFIG_SHA256_HEX + 1];
	size_t	 n = 0;

	while (*h != '\0') {
		if (n == CONFIG_SHA256_HEX || !isxdigit((unsigned char)h[0]) ||
		    !isxdigit((unsigned char)h[1]))
			return -1;
		hex[n++] = tolower((unsigned char)h[0]);
		hex[n++] = tolower((unsigned char)h[1]);
		h += 2;
		if (*h != ':')
			continue;
		/* A separator only between two byte pairs. */
		if (n == CONFIG_SHA256_HEX || h[1] == '\0')
			return -1;
		h++;
	}
	if (n != CONFIG_SHA256_HEX)
		return -1;
	hex[n] = '\0';
	snprintf(out, outlen, "sha256:%s", hex);
	return 0;
}

/* One allow entry, checked and normalised into out. */
static int
config_allow_entry(const char *v, char *out, size_t outlen)
{
	size_t	 i, len;

	if (strncmp(v, "sha256:", 7) == 0)
		return config_fingerprint(v + 7, out, outlen);
	if (strncmp(v, "CN=", 3) != 0)
		return -1;
	len = strlen(v + 3);
	if (len == 0 || len > CONFIG_CN_MAX || len + 4 > outlen)
		return -1;
	for (i = 0; i < len; i++)
		if (!isprint((unsigned char)v[3 + i]))
			return -1;
	memcpy(out, v, len + 4);
	return 0;
}

/* v fit for an error message: non-printable bytes as '?', cut short. */
static const char *
config_printable(const char *v, char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; i + 1 < len && v[i] != '\0'; i++)
		buf[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
	buf[i] = '\0';
	if (v[i] != '\0' && i >= 3)
		memcpy(buf + i - 3, "...", 3);
	return buf;
}

static void
config_tls_allow(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, struct tls_conf *t)
{
	const config_setting_t	*e;
	const char		*v;
	char			 sub[96], norm[80], shown[84];
	unsigned int		 i, n;

	snprintf(sub, sizeof(sub), "%s.allow", what);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		config_err(ctx, s, "%s: expected an array of strings, got %s",
		    sub, config_type_name(s));
		return;
	}
	if ((n = config_setting_length(s)) > CONFIG_TLS_ALLOW_MAX) {
		config_err(ctx, s, "%s: %u entries, at most %d allowed", sub, n,
		    CONFIG_TLS_ALLOW_MAX);
		return;
	}
	if (n == 0)
		return;
	if ((t->allow = calloc(n, sizeof(*t->allow))) == NULL) {
		config_err(ctx, s, "%s: out of memory", sub);
		return;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		snprintf(sub, sizeof(sub), "%s.allow[%u]", what, i);
		if ((v = config_str(ctx, e, sub)) == NULL)
			continue;
		if (config_allow_entry(v, norm, sizeof(norm)) == -1)
			config_err(ctx, e, "%s: bad entry \"%s\": expected "
			    "\"CN=<1..%d printable characters>\" or "
			    "\"sha256:<64 hex digits>\"", sub,
			    config_printable(v, shown, sizeof(shown)),
			    CONFIG_CN_MAX);
		else if ((t->allow[t->nallow] = strdup(norm)) == NULL)
			config_err(ctx, e, "%s: out of memory", sub);
		else
			t->nallow++;
	}
}

/* A tls setting, top-level or a peer's: false, or a group. */
static void
config_tls_parse(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, struct tls_conf *t)
{
	static const char *const known[] = { "ca", "cert", "key", "allow",
	    NULL };
	const config_setting_t	*a;

	t->line = config_setting_source_line(s);
	free(t->file);
	t->file = strdup(config_setting_source_file(s) != NULL ?
	    config_shown(ctx, config_setting_source_file(s)) : ctx->path);
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_BOOL:
		if (config_setting_get_bool(s))
			config_err(ctx, s, "%s = true needs a group with ca, "
			    "cert and key", what);
		return;
	case CONFIG_TYPE_GROUP:
		break;
	default:
		config_err(ctx, s, "%s: expected a group { ca = ...; cert = "
		    "...; key = ...; } or false, got %s", what,
		    config_type_name(s));
		return;
	}
	t->enabled = 1;
	config_unknown_members(ctx, s, what, known);
	config_tls_path(ctx, s, what, "ca", &t->ca);
	config_tls_path(ctx, s, what, "cert", &t->cert);
	config_tls_path(ctx, s, what, "key", &t->key);
	if ((a = config_setting_get_member(s, "allow")) != NULL)
		config_tls_allow(ctx, a, what, t);
}

static void
config_set_tls(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	ctx->tls_seen = 1;
	config_tls_parse(ctx, s, o->name, &ctx->cf->tls);
}

/* A peer's own tls, or a copy of the top-level one. */
static void
config_peer_tls(struct config_ctx *ctx, const config_setting_t *g,
    unsigned int i, struct peer_conf *p)
{
	const config_setting_t	*s;
	char			 what[64];

	snprintf(what, sizeof(what), "peers[%u]", i);
	if ((s = config_setting_get_member(g, "tls")) != NULL) {
		snprintf(what, sizeof(what), "peers[%u].tls", i);
		config_tls_parse(ctx, s, what, &p->tls);
	} else if (!ctx->tls_seen)
		config_err(ctx, g, "peer %s needs tls = { ... } or tls = false "
		    "(no top-level tls to inherit)", p->name[0] != '\0' ?
		    p->name : what);
	else if (config_tls_copy(&p->tls, &ctx->cf->tls) == -1)
		config_err(ctx, g, "%s: out of memory", what);
}

static void
config_peer_parse(struct config_ctx *ctx, const config_setting_t *g,
    unsigned int i, struct peer_conf *p)
{
	static const char *const known[] = { "name", "address", "rate_limit",
	    "tls", "identity", NULL };
	const config_setting_t	*s;
	const char		*v, *why;
	char			 what[64];

	snprintf(what, sizeof(what), "peers[%u]", i);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		config_err(ctx, g, "%s: expected a group { name = ...; "
		    "address = ...; }, got %s", what, config_type_name(g));
		return;
	}
	config_unknown_members(ctx, g, what, known);
	snprintf(what, sizeof(what), "peers[%u].name", i);
	if ((s = config_setting_get_member(g, "name")) == NULL)
		config_err(ctx, g, "%s: missing (required)", what);
	else
		config_name(ctx, s, what, p->name);
	snprintf(what, sizeof(what), "peers[%u].address", i);
	if ((s = config_setting_get_member(g, "address")) == NULL)
		config_err(ctx, g, "%s: missing (required)", what);
	else if ((v = config_str(ctx, s, what)) != NULL &&
	    config_addr(v, 0, &p->host, &p->port, &why) == -1)
		config_err(ctx, s, "%s: bad address \"%s\": %s", what, v, why);
	snprintf(what, sizeof(what), "peers[%u].rate_limit", i);
	if ((s = config_setting_get_member(g, "rate_limit")) != NULL)
		config_int(ctx, s, what, 0, I64MAX, &p->rate_limit);
	snprintf(what, sizeof(what), "peers[%u].identity", i);
	if ((s = config_setting_get_member(g, "identity")) != NULL)
		config_token(ctx, s, what, p->identity, CONFIG_IDENTITY_MAX);
	else
		snprintf(p->identity, sizeof(p->identity), "%s", p->name);
	config_peer_tls(ctx, g, i, p);
}

static void
config_set_peers(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	struct config		*cf = ctx->cf;
	const config_setting_t	*g, *first;
	int			 n;
	unsigned int		 i, j;

	if ((n = config_list(ctx, s, o->name)) <= 0)
		return;
	if ((cf->peers = calloc(n, sizeof(*cf->peers))) == NULL) {
		config_err(ctx, s, "%s: out of memory", o->name);
		return;
	}
	cf->npeers = n;
	for (i = 0; i < cf->npeers; i++) {
		g = config_setting_get_elem(s, i);
		config_peer_parse(ctx, g, i, &cf->peers[i]);
		if (cf->peers[i].name[0] == '\0')
			continue;
		for (j = 0; j < i; j++) {
			if (strcmp(cf->peers[i].name, cf->peers[j].name) != 0)
				continue;
			first = config_setting_get_elem(s, j);
			config_err(ctx, config_setting_get_member(g, "name"),
			    "peers[%u].name: duplicate peer name \"%s\" "
			    "(first at line %u)", i, cf->peers[i].name,
			    config_setting_source_line(first));
			break;
		}
	}
}

static void
config_hops_parse(struct config_ctx *ctx, const config_setting_t *s,
    unsigned int ri, struct route_conf *r)
{
	const config_setting_t	*h;
	const char		*v;
	char			 what[64];
	unsigned int		 i, j, n, pi;

	snprintf(what, sizeof(what), "routes[%u].hops", ri);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		config_err(ctx, s, "%s: expected an array of peer names, "
		    "got %s", what, config_type_name(s));
		return;
	}
	if ((n = config_setting_length(s)) > CONFIG_MAX_HOPS) {
		config_err(ctx, s, "%s: %u hops, at most %d allowed", what, n,
		    CONFIG_MAX_HOPS);
		return;
	}
	for (i = 0; i < n; i++) {
		h = config_setting_get_elem(s, i);
		snprintf(what, sizeof(what), "routes[%u].hops[%u]", ri, i);
		if ((v = config_str(ctx, h, what)) == NULL)
			continue;
		for (pi = 0; pi < ctx->cf->npeers; pi++)
			if (strcmp(ctx->cf->peers[pi].name, v) == 0)
				break;
		if (pi == ctx->cf->npeers) {
			config_err(ctx, h, "%s: unknown peer \"%s\"", what, v);
			continue;
		}
		for (j = 0; j < r->nhops; j++)
			if (r->hops[j] == pi)
				break;
		if (j < r->nhops) {
			config_err(ctx, h, "%s: peer \"%s\" listed twice",
			    what, v);
			continue;
		}
		r->hops[r->nhops++] = pi;
	}
}

static void
config_route_mode(struct config_ctx *ctx, const config_setting_t *s,
    unsigned int ri, struct route_conf *r)
{
	const char	*v;
	char		 what[64];

	snprintf(what, sizeof(what), "routes[%u].mode", ri);
	if ((v = config_str(ctx, s, what)) == NULL)
		return;
	if (strcmp(v, "fanout") == 0)
		r->mode = ROUTE_FANOUT;
	else if (strcmp(v, "failover") == 0)
		r->mode = ROUTE_FAILOVER;
	else
		config_err(ctx, s, "%s: \"%s\": expected \"fanout\" or "
		    "\"failover\"", what, v);
}

static void
config_route_parse(struct config_ctx *ctx, const config_setting_t *g,
    unsigned int ri, struct route_conf *r)
{
	static const char *const known[] = { "prefix", "hops", "mode",
	    "store", NULL };
	const config_setting_t	*s;
	const char		*v;
	char			 what[64];

	snprintf(what, sizeof(what), "routes[%u]", ri);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		config_err(ctx, g, "%s: expected a group { prefix = ...; "
		    "hops = [ ... ]; }, got %s", what, config_type_name(g));
		return;
	}
	config_unknown_members(ctx, g, what, known);
	snprintf(what, sizeof(what), "routes[%u].prefix", ri);
	if ((s = config_setting_get_member(g, "prefix")) == NULL)
		config_err(ctx, g, "%s: missing (required; \"\" matches "
		    "every key)", what);
	else if ((v = config_str(ctx, s, what)) != NULL) {
		if ((r->prefix = strdup(v)) == NULL)
			config_err(ctx, s, "%s: out of memory", what);
		else
			r->prefix_len = strlen(v);
	}
	if ((s = config_setting_get_member(g, "hops")) != NULL)
		config_hops_parse(ctx, s, ri, r);
	if ((s = config_setting_get_member(g, "mode")) != NULL)
		config_route_mode(ctx, s, ri, r);
	if ((s = config_setting_get_member(g, "store")) != NULL) {
		snprintf(what, sizeof(what), "routes[%u].store", ri);
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			config_err(ctx, s, "%s: expected true or false, got %s",
			    what, config_type_name(s));
		else
			r->store = config_setting_get_bool(s) != 0;
	}
}

static void
config_set_routes(struct config_ctx *ctx, const struct config_opt *o,
    const config_setting_t *s)
{
	struct config		*cf = ctx->cf;
	struct route_conf	*r;
	const config_setting_t	*g, *first;
	int			 n;
	unsigned int		 i, j;

	if ((n = config_list(ctx, s, o->name)) <= 0)
		return;
	if ((cf->routes = calloc(n, sizeof(*cf->routes))) == NULL) {
		config_err(ctx, s, "%s: out of memory", o->name);
		return;
	}
	cf->nroutes = n;
	for (i = 0; i < cf->nroutes; i++) {
		r = &cf->routes[i];
		g = config_setting_get_elem(s, i);
		config_route_parse(ctx, g, i, r);
		if (r->prefix == NULL)
			continue;
		for (j = 0; j < i; j++) {
			if (cf->routes[j].prefix == NULL ||
			    strcmp(r->prefix, cf->routes[j].prefix) != 0)
				continue;
			first = config_setting_get_elem(s, j);
			config_err(ctx, config_setting_get_member(g, "prefix"),
			    "routes[%u].prefix: duplicate prefix \"%s\" "
			    "(first at line %u)", i, r->prefix,
			    config_setting_source_line(first));
			break;
		}
	}
}

static void
config_root(struct config_ctx *ctx, const config_setting_t *root)
{
	const config_setting_t	*s;
	const char		*name;
	size_t			 i;
	int			 e;

	for (e = 0; (s = config_setting_get_elem(root, e)) != NULL; e++) {
		name = config_setting_name(s);
		for (i = 0; i < NOPTS; i++)
			if (name != NULL && strcmp(name, config_opts[i].name) == 0)
				break;
		if (i == NOPTS)
			config_err(ctx, s, "unknown setting \"%s\"",
			    name != NULL ? name : "");
	}
	for (i = 0; i < NOPTS; i++) {
		s = config_setting_get_member(root, config_opts[i].name);
		if (s != NULL)
			config_opts[i].set(ctx, &config_opts[i], s);
		else if (config_opts[i].set == config_set_node)
			config_err(ctx, NULL, "node_id: missing (required)");
	}
	/* Plaintext is an explicit choice, never a default. */
	if (!ctx->tls_seen &&
	    (s = config_setting_get_member(root, "listen")) != NULL)
		config_err(ctx, s, "listener needs TLS material (tls = { ca; "
		    "cert; key; }) or an explicit tls = false");
	/* A new stream's first window is reserved against max_buffered:
	 * below one window no peer stream could ever be admitted. */
	if (ctx->cf->max_buffered < ctx->cf->stream_window)
		config_err(ctx, config_setting_get_member(root, "max_buffered"),
		    "max_buffered (%llu) is below stream_window (%u): no "
		    "stream could be admitted",
		    (unsigned long long)ctx->cf->max_buffered,
		    ctx->cf->stream_window);
}

/*
 * Reads path into a NUL-terminated buffer; refuses binary and huge files.
 * quiet: an included file, which libconfig has reported on if it cannot
 * open it.  path must outlive ctx's errors.
 */
static char *
config_slurp(struct config_ctx *ctx, const char *path, size_t *lenp,
    int quiet)
{
	struct stat	 st;
	char		*buf = NULL, *nul;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (!quiet)
			config_err_file(ctx, path, 0, "cannot open: %s",
			    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		config_err_file(ctx, path, 0, "fstat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
		config_err_file(ctx, path, 0, "%s", S_ISREG(st.st_mode) ?
		    "larger than 16 MiB" : "not a regular file");
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		config_err_file(ctx, path, 0, "out of memory");
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			config_err_file(ctx, path, 0, "read: %s", n == 0 ?
			    "file shrank while reading" : strerror(errno));
			goto fail;
		}
		len += n;
	}
	buf[len] = '\0';
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		config_err_file(ctx, path, config_line_at(buf,
		    nul),
		    "NUL byte in file (not a text file?)");
		goto fail;
	}
	close(fd);
	*lenp = len;
	return buf;
 fail:
	free(buf);
	close(fd);
	return NULL;
}

/* One file's text being scanned by config_scan(). */
struct config_scan {
	struct config_ctx	*ctx;
	const char		*file;	/* shown in errors */
	const char		*buf;
	const char		*end;
	unsigned int		 depth;	/* 0: the main file */
	int			 ints;	/* check integer literals */
	int			 follow; /* read the files it includes */
	/* The main file before the parse: where its include paths are. */
	unsigned int		 nspan;
	const char		*spans[CONFIG_INCLUDE_MAX][2];
};

static void	config_scan(struct config_scan *);

/* One numeric literal from config_scan(). */
static void
config_scan_int(struct config_scan *sc, const char *num, unsigned int line)
{
	const char		*d = num + (*num == '-' || *num == '+');
	size_t			 n = strlen(num);
	unsigned long long	 u = 0;
	long long		 v = 0;
	int			 hex, l64;

	if (!sc->ints)
		return;
	hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
	if (strchr(num, '.') != NULL || (!hex && strpbrk(num, "eE") != NULL))
		return;		/* a float */
	l64 = n > 0 && num[n - 1] == 'L';
	errno = 0;
	if (hex)
		u = strtoull(d, NULL, 16);
	else
		v = strtoll(num, NULL, 10);
	if (errno == ERANGE)
		config_err_file(sc->ctx, sc->file, line, "integer %s does not "
		    "fit in 64 bits", num);
	else if (!l64 && (hex ? u > INT32_MAX : v > INT32_MAX ||
	    v < INT32_MIN))
		config_err_file(sc->ctx, sc->file, line, "integer %s does not "
		    "fit in 32 bits; append L for a 64-bit integer", num);
}

/*
 * The string between the quotes at q and qe, with libconfig's escapes
 * undone, into out.  -1 if it does not fit or holds a NUL.
 */
static int
config_unquote(const char *q, const char *qe, char *out, size_t len)
{
	static const char	 esc[] = "n\nr\rt\tf\f";
	const char		*e;
	size_t			 o = 0;
	char			 c, hex[3];

	for (; q < qe; q++) {
		c = *q;
		if (c == '\\' && q + 1 < qe) {
			c = *++q;
			if (c == 'x' && q + 2 < qe && isxdigit((unsigned char)
			    q[1]) && isxdigit((unsigned char)q[2])) {
				memcpy(hex, q + 1, 2);
				hex[2] = '\0';
				c = (char)strtol(hex, NULL, 16);
				q += 2;
			} else if ((e = strchr(esc, c)) != NULL &&
			    (e - esc) % 2 == 0)
				c = e[1];
		}
		if (c == '\0' || o + 1 >= len)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* The file libconfig names lib is read, kept and scanned for includes. */
static void
config_scan_file(struct config_ctx *ctx, const char *lib, const char *shown,
    unsigned int depth)
{
	struct config_inc	*inc;
	struct config_scan	 sc;

	if (ctx->ninc == CONFIG_INCLUDE_MAX)
		return;
	inc = &ctx->incs[ctx->ninc];
	if ((inc->lib = strdup(lib)) == NULL ||
	    (inc->shown = strdup(shown)) == NULL) {
		free(inc->lib);
		inc->lib = NULL;
		return;
	}
	ctx->ninc++;
	/* Unreadable: libconfig says "cannot open include file". */
	if (depth > CONFIG_INCLUDE_DEPTH || (inc->buf = config_slurp(ctx,
	    inc->shown, &inc->len, 1)) == NULL)
		return;
	if ((ctx->incbytes += inc->len) > CONFIG_FILE_MAX) {
		config_err_file(ctx, inc->shown, 0, "included files larger "
		    "than 16 MiB in all");
		free(inc->buf);
		inc->buf = NULL;
		return;
	}
	memset(&sc, 0, sizeof(sc));
	sc.ctx = ctx;
	sc.file = inc->shown;
	sc.buf = inc->buf;
	sc.end = inc->buf + inc->len;
	sc.depth = depth;
	sc.follow = 1;
	config_scan(&sc);
}

/*
 * libconfig 1.5 puts its include directory in front of every @include
 * path, absolute or not.  So the main file's absolute paths are given to
 * it as paths relative to that directory (a realpath: ".." is exact);
 * this makes that relative form of path, in out.
 */
static int
config_include_up(const struct config_ctx *ctx, const char *path, char *out,
    size_t len)
{
	const char	*d;
	size_t		 o = 0;

	for (d = ctx->incdir; *d != '\0'; d++) {
		if (*d != '/' || d[1] == '\0')
			continue;
		if (o + 3 >= len)
			return -1;
		memcpy(out + o, "../", 3);
		o += 3;
	}
	while (*path == '/')
		path++;
	if (o + strlen(path) + 1 > len)
		return -1;
	memcpy(out + o, path, strlen(path) + 1);
	return 0;
}

/* An "@include" at line of sc: the path's text is q..qe. */
static void
config_scan_include(struct config_scan *sc, unsigned int line,
    const char *q, const char *qe)
{
	char	 path[PATH_MAX], lib[PATH_MAX], *shown = NULL;

	if (config_unquote(q, qe, path, sizeof(path)) == -1) {
		config_err_file(sc->ctx, sc->file, line, "include path too "
		    "long or with a NUL byte");
		return;
	}
	if (sc->depth == 0 && sc->nspan < CONFIG_INCLUDE_MAX) {
		sc->spans[sc->nspan][0] = q;
		sc->spans[sc->nspan++][1] = qe;
	}
	if (path[0] == '/' && sc->depth > 0) {
		config_err_file(sc->ctx, sc->file, line, "include \"%s\": an "
		    "absolute path works only in the main file; write it "
		    "relative to %s", path, sc->ctx->incdir);
		return;
	}
	snprintf(lib, sizeof(lib), "%s", path);
	if (path[0] == '/' ? config_include_up(sc->ctx, path, lib,
	    sizeof(lib)) == -1 : (shown = config_join(sc->ctx->dir, path,
	    strlen(path))) == NULL)
		return;
	config_scan_file(sc->ctx, lib, shown != NULL ? shown : path,
	    sc->depth + 1);
	free(shown);
}

/* Past a quoted string at p (on its opening quote), counting lines. */
static const char *
config_skip_string(const char *p, const char *end, unsigned int *line)
{
	for (p++; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		if (*p == '\n')
			(*line)++;
	}
	return p;
}

/* "@include" at t..p, first on its line: its quoted path follows. */
static const char *
config_scan_at(struct config_scan *sc, const char *t, const char *p,
    unsigned int *line)
{
	const char	*b = t, *q;

	if (p - t != 8 || memcmp(t, "@include", 8) != 0)
		return p;
	while (b > sc->buf && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	if (b > sc->buf && b[-1] != '\n')
		return p;
	while (p < sc->end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == sc->end || *p != '"')
		return p;
	q = config_skip_string(p, sc->end, line);
	if (q < sc->end && sc->follow)
		config_scan_include(sc, *line, p + 1, q);
	return q + 1;
}

/*
 * libconfig 1.5 silently truncates a plain integer literal that does not
 * fit in 32 bits (5000000000 reads as 705032704); only an "L" suffix makes
 * it 64-bit.  Scan the text for such literals and refuse them, so a byte
 * count is never quietly wrong, and follow each @include to do the same
 * there.  Only text libconfig has parsed is checked for integers, so it
 * need not diagnose syntax.
 */
static void
config_scan(struct config_scan *sc)
{
	const char	*p = sc->buf, *end = sc->end, *t;
	unsigned int	 line = 1;
	char		 num[64];
	size_t		 n;

	while (p < end) {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '#' || (*p == '/' && p + 1 < end &&
		    p[1] == '/')) {
			while (p < end && *p != '\n')
				p++;
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			for (p += 2; p < end && !(*p == '*' && p + 1 < end &&
			    p[1] == '/'); p++)
				if (*p == '\n')
					line++;
			p += 2;
		} else if (*p == '"') {
			p = config_skip_string(p, end, &line) + 1;
		} else if (isalpha((unsigned char)*p) || *p == '*' ||
		    *p == '@') {
			t = p;
			while (p < end && (isalnum((unsigned char)*p) ||
			    strchr("-_*@", *p) != NULL))
				p++;
			if (*t == '@')
				p = config_scan_at(sc, t, p, &line);
		} else if (isdigit((unsigned char)*p) || ((*p == '-' ||
		    *p == '+' || *p == '.') && p + 1 < end &&
		    (isdigit((unsigned char)p[1]) || p[1] == '.'))) {
			t = p++;
			while (p < end && (isalnum((unsigned char)*p) ||
			    *p == '.' || ((*p == '-' || *p == '+') &&
			    (p[-1] == 'e' || p[-1] == 'E'))))
				p++;
			n = p - t;
			if (n >= sizeof(num))
				n = sizeof(num) - 1;
			memcpy(num, t, n);
			num[n] = '\0';
			config_scan_int(sc, num, line);
		} else
			p++;
	}
}

/* The main file's text for libconfig: absolute include paths made
 * relative to the include directory (config_include_up). */
static char *
config_include_rewrite(struct config_ctx *ctx, const struct config_scan *sc)
{
	char		 path[PATH_MAX], up[PATH_MAX], *out, *o;
	const char	*p = sc->buf;
	unsigned int	 i;
	size_t		 j;

	out = malloc((sc->end - sc->buf) + sc->nspan * 2 * PATH_MAX + 1);
	if ((o = out) == NULL) {
		config_err_line(ctx, 0, "out of memory");
		return NULL;
	}
	for (i = 0; i < sc->nspan; i++) {
		if (config_unquote(sc->spans[i][0], sc->spans[i][1], path,
		    sizeof(path)) == -1 || path[0] != '/' ||
		    config_include_up(ctx, path, up, sizeof(up)) == -1)
			continue;
		memcpy(o, p, sc->spans[i][0] - p);
		o += sc->spans[i][0] - p;
		for (j = 0; up[j] != '\0'; j++) {
			if (up[j] == '\\' || up[j] == '"' || up[j] == '\n')
				*o++ = '\\';
			*o++ = up[j] == '\n' ? 'n' : up[j];
		}
		p = sc->spans[i][1];
	}
	memcpy(o, p, sc->end - p);
	o[sc->end - p] = '\0';
	return out;
}

/* Integer literals of the main file and of every included one. */
static void
config_scan_ints(struct config_ctx *ctx, const char *buf, size_t len)
{
	struct config_scan	 sc;
	unsigned int		 i;

	memset(&sc, 0, sizeof(sc));
	sc.ctx = ctx;
	sc.ints = 1;
	for (i = 0; i <= ctx->ninc; i++) {
		if (i > 0 && ctx->incs[i - 1].buf == NULL)
			continue;
		sc.file = i == 0 ? ctx->path : ctx->incs[i - 1].shown;
		sc.buf = i == 0 ? buf : ctx->incs[i - 1].buf;
		sc.end = sc.buf + (i == 0 ? len : ctx->incs[i - 1].len);
		config_scan(&sc);
	}
}

/*
 * Includes are relative to the config file's directory, resolved (so
 * that the ".." of config_include_up are exact).  -1 if out of memory.
 */
static int
config_include_dir(struct config_ctx *ctx, config_t *lc)
{
	if ((ctx->incdir = realpath(ctx->dir, NULL)) == NULL &&
	    (ctx->incdir = strdup(ctx->dir)) == NULL) {
		config_err_line(ctx, 0, "out of memory");
		return -1;
	}
	config_set_include_dir(lc, ctx->incdir);
	return 0;
}

static void
config_defaults(struct config *cf)
{
	cf->refcnt = 1;
	cf->control_socket = strdup("/run/relayd/relayd.sock");
	cf->store_dir = strdup("/var/lib/relayd/store");
	cf->max_payload = CONFIG_GIB;
	cf->stream_inactivity_timeout = 30.0;
	cf->handshake_timeout = 10.0;
	cf->result_timeout = 60.0;
	cf->connect_timeout = 5.0;
	cf->idle_timeout = 60.0;
	cf->drain_timeout = 30;
	cf->conn_window = 4 * CONFIG_MIB;
	cf->stream_window = CONFIG_MIB;
	cf->max_streams_per_peer = 1024;
	cf->max_buffered = 256 * CONFIG_MIB;
	cf->max_fork_lag = 16 * CONFIG_MIB;
	/* 0: derived from the descriptor limit at start (listener.c). */
	cf->max_connections = 0;
	cf->max_handshakes = 0;
	cf->max_streams = 0;
	cf->max_connections_per_source = 64;
	cf->max_control_clients = 64;
	cf->control_request_timeout = 10.0;
	cf->max_metrics_clients = 16;
	cf->metrics_header_timeout = 5.0;
	cf->max_output_buffer = 4 * CONFIG_MIB;
	cf->output_timeout = 10.0;
}

static void
config_free(struct config *cf)
{
	unsigned int	 i;

	if (cf == NULL)
		return;
	for (i = 0; cf->peers != NULL && i < cf->npeers; i++) {
		free(cf->peers[i].host);
		free(cf->peers[i].port);
		config_tls_free(&cf->peers[i].tls);
	}
	free(cf->peers);
	for (i = 0; cf->routes != NULL && i < cf->nroutes; i++)
		free(cf->routes[i].prefix);
	free(cf->routes);
	free(cf->path);
	free(cf->listen_host);
	free(cf->listen_port);
	free(cf->metrics_host);
	free(cf->metrics_port);
	free(cf->control_socket);
	free(cf->store_dir);
	free(cf->listen_at.file);
	free(cf->metrics_at.file);
	free(cf->store_dir_at.file);
	free(cf->control_socket_at.file);
	config_tls_free(&cf->tls);
	free(cf);
}

/* The main file's includes followed, its text made ready for libconfig. */
static char *
config_prepare(struct config_ctx *ctx, config_t *lc, const char *buf,
    size_t len)
{
	struct config_scan	*sc;
	char			*text;

	if (config_include_dir(ctx, lc) == -1)
		return NULL;
	if ((sc = calloc(1, sizeof(*sc))) == NULL) {
		config_err_line(ctx, 0, "out of memory");
		return NULL;
	}
	sc->ctx = ctx;
	sc->file = ctx->path;
	sc->buf = buf;
	sc->end = buf + len;
	sc->follow = 1;
	config_scan(sc);
	text = config_include_rewrite(ctx, sc);
	free(sc);
	return text;
}

static void
config_ctx_free(struct config_ctx *ctx)
{
	unsigned int	 i;

	for (i = 0; i < ctx->ninc; i++) {
		free(ctx->incs[i].lib);
		free(ctx->incs[i].shown);
		free(ctx->incs[i].buf);
	}
	ctx->ninc = 0;
	free(ctx->incdir);
	free(ctx->dir);
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config_ctx	*ctx;
	struct config		*cf;
	config_t		 lc;
	char			*buf = NULL, *text = NULL;
	const char		*file;
	size_t			 len;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* Large (the kept errors, the includes): not on the stack. */
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "%s:0: out of memory", path);
		return NULL;
	}
	ctx->path = path;
	config_init(&lc);
	if ((ctx->cf = calloc(1, sizeof(*ctx->cf))) == NULL) {
		config_err_line(ctx, 0, "out of memory");
		goto done;
	}
	config_defaults(ctx->cf);
	if ((ctx->cf->path = strdup(path)) == NULL ||
	    (ctx->dir = config_dir(path)) == NULL ||
	    ctx->cf->control_socket == NULL || ctx->cf->store_dir == NULL) {
		config_err_line(ctx, 0, "out of memory");
		goto done;
	}
	if ((buf = config_slurp(ctx, path, &len, 0)) == NULL ||
	    (text = config_prepare(ctx, &lc, buf, len)) == NULL)
		goto done;
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		file = config_error_file(&lc);
		config_err_file(ctx, file != NULL ? config_shown(ctx, file) :
		    path, config_error_line(&lc), "%s", config_error_text(&lc) ?
		    config_error_text(&lc) : "parse error");
		goto done;
	}
	config_scan_ints(ctx, buf, len);
	config_root(ctx, config_root_setting(&lc));
 done:
	/* Before config_destroy(): errors may point at its file names. */
	config_errors_flush(ctx, err, errlen);
	cf = ctx->cf;
	if (ctx->nerr > 0) {
		config_free(cf);
		cf = NULL;
	}
	config_ctx_free(ctx);
	free(ctx);
	free(text);
	free(buf);
	config_destroy(&lc);
	if (cf == NULL)
		return NULL;
	cf->generation = ++config_generation;
	log_debug("config: loaded path=%s generation=%u node=%s peers=%u "
	    "routes=%u", path, cf->generation, cf->node_id, cf->npeers,
	    cf->nroutes);
	return cf;
}

void
config_ref(struct config *cf)
{
	cf->refcnt++;
}

void
config_unref(struct config *cf)
{
	if (cf != NULL && --cf->refcnt == 0)
		config_free(cf);
}

const struct peer_conf *
config_peer(const struct config *cf, const char *name)
{
	unsigned int	 i;

	for (i = 0; i < cf->npeers; i++)
		if (strcmp(cf->peers[i].name, name) == 0)
			return &cf->peers[i];
	return NULL;
}
