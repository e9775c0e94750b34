/*
 * relayctl: the command-line client of relayd's control socket (ctl.h).
 *
 * Commands live in one table (ctl_cmds), and the fixed words after some
 * of them ("show peers", "log level debug") in word tables; the same
 * tables drive parsing, unique-prefix matching, usage lines and help.
 * Each command family has its file (cmd_*.c); the connection and the
 * output helpers they share are in ctl_client.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "relayctl.h"

static int	ctl_cmd_help(struct ctl_ctx *, int, char **);

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
	{ "puts", "recent PUT outcomes, failed and aborted ones too",
	    NULL, 0 },
	{ "store", "stored files (key prefix optional): size, SHA-256, time",
	    NULL, 0 },
};

/* The names go on the wire as "action". */
static const struct ctl_word ctl_peer_words[] = {
	{ "disable", "close the link, stop dialling; routes go around it",
	    NULL, 0 },
	{ "enable", "back to normal: dial it, route over it", NULL, 0 },
	{ "drain", "no new PUTs; let its streams finish, then close it",
	    NULL, 0 },
};

static const struct ctl_cmd ctl_cmds[] = {
	{ "status", "", "show the node, its peers and its streams",
	    "", 0, 0, NULL, 0, ctl_cmd_status },
	{ "show", "[prefix]", "show one part of relayd's state",
	    "", 0, 1, ctl_show_words, CTL_NITEMS(ctl_show_words),
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
	{ "peer", "name", "control one configured (outbound) peer",
	    "", 1, 1, ctl_peer_words, CTL_NITEMS(ctl_peer_words),
	    ctl_cmd_peer },
	{ "log", "", "change what relayd logs",
	    "", 0, 0, ctl_log_words, CTL_NITEMS(ctl_log_words), ctl_cmd_log },
	{ "help", "[command]", "show this help, or one command's",
	    "", 0, 1, NULL, 0, ctl_cmd_help },
};
#define CTL_NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

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

void
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
int
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
