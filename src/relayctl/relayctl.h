/*
 * relayctl's shared parts: the context a command runs in, its table
 * entry, the connection to relayd and the helpers every command family
 * (cmd_*.c) uses.  The word lists shared with the daemon are in ctl.h.
 *
 * Exit codes: 0 the final answer said ok, 1 it did not (or a local failure
 * such as an unreadable file), 2 usage error, 3 relayd unreachable or the
 * connection broke before the final answer.
 */

#ifndef RELAYCTL_H
#define RELAYCTL_H

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

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

#define CTL_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* relayctl.c: the command table, parsing, help */
void	ctl_usage_cmd(FILE *fp, const struct ctl_cmd *cmd);
int	ctl_parse_putid(const char *arg, char *out);

/* ctl_client.c: errors, JSON and table output, the connection */
void	ctl_err(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	ctl_errno(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	ctl_oom(void) __attribute__((noreturn));
char *	ctl_clean(const char *s);
uint64_t	ctl_now_us(void);
int	ctl_parse_num(const char *s, long long min, long long max,
	    long long *out);
void	ctl_hex(const unsigned char *in, size_t len, char *out);
const char *	ctl_jstr(const json_t *o, const char *key);
int	ctl_jint(const json_t *o, const char *key, long long *v);
char *	ctl_jintstr(const json_t *o, const char *key, char *buf, size_t len);
char *	ctl_jsecs(const json_t *o, const char *key, char *buf, size_t len);
char *	ctl_jtext(const json_t *v);
void	ctl_table_init(struct ctl_table *t, size_t ncols);
void	ctl_table_row(struct ctl_table *t, ...);
void	ctl_table_print(const struct ctl_table *t, FILE *fp);
void	ctl_table_free(struct ctl_table *t);
int	ctl_connect(const struct ctl_ctx *ctx, struct ctl_conn *conn);
void	ctl_conn_close(struct ctl_conn *conn);
ssize_t	ctl_conn_fill(struct ctl_conn *conn);
int	ctl_conn_next(struct ctl_conn *conn, json_t **out);
int	ctl_is_final(const json_t *j);
int	ctl_lost(void);
char *	ctl_request_line(const json_t *req, size_t *len);
int	ctl_send_request(struct ctl_conn *conn, const json_t *req);
void	ctl_print_json(const json_t *j);
int	ctl_failed(const json_t *final);
int	ctl_simple(const struct ctl_ctx *ctx, json_t *req,
	    void (*show)(json_t *), const char *failtag);

/* cmd_status.c */
int	ctl_cmd_status(struct ctl_ctx *ctx, int argc, char **argv);
int	ctl_cmd_show(struct ctl_ctx *ctx, int argc, char **argv);

/* cmd_put.c */
int	ctl_cmd_put(struct ctl_ctx *ctx, int argc, char **argv);
int	ctl_cmd_outcome(struct ctl_ctx *ctx, int argc, char **argv);

/* cmd_admin.c */
int	ctl_cmd_reload(struct ctl_ctx *ctx, int argc, char **argv);
int	ctl_cmd_drain(struct ctl_ctx *ctx, int argc, char **argv);
int	ctl_cmd_log(struct ctl_ctx *ctx, int argc, char **argv);

/* cmd_monitor.c */
int	ctl_cmd_monitor(struct ctl_ctx *ctx, int argc, char **argv);

/* digest.c: SHA-256 from libcrypto, loaded on first use. */
#define CTL_SHA256_LEN	32
struct ctl_digest;
struct ctl_digest *ctl_digest_new(void);
int	ctl_digest_update(struct ctl_digest *, const void *, size_t);
int	ctl_digest_final(struct ctl_digest *, unsigned char[CTL_SHA256_LEN]);
void	ctl_digest_free(struct ctl_digest *);

#endif /* RELAYCTL_H */
