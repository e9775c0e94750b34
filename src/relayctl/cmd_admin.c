/* reload, drain and log level. */

#include <stdio.h>
#include <stdlib.h>

#include "relayctl.h"

static void
ctl_show_reload(json_t *final)
{
	char	 gen[32];

	printf("OK generation %s\n", ctl_jintstr(final, "generation", gen,
	    sizeof(gen)));
}

int
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

int
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
int
ctl_cmd_log(struct ctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ctl_simple(ctx, json_pack("{s:s, s:s}", "cmd", "log",
	    "level", ctx->words[1]), ctl_show_log, NULL);
}
