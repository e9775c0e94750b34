/* reload, drain, log level and peer disable|enable|drain. */

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

static void
ctl_show_peer(json_t *final)
{
	const json_t	*p = json_object_get(final, "peer");
	char		*name = ctl_clean(ctl_jstr(p, "name"));
	char		*admin = ctl_clean(ctl_jstr(p, "admin"));
	char		*state = ctl_clean(ctl_jstr(p, "state"));

	printf("peer %s: %s, link %s\n", name, admin, state);
	free(name);
	free(admin);
	free(state);
}

/* ctx->words[0]: disable, enable or drain; argv[0]: the peer's name. */
int
ctl_cmd_peer(struct ctl_ctx *ctx, int argc, char **argv)
{
	json_t	*name;

	(void)argc;
	if ((name = json_string(argv[0])) == NULL) {
		ctl_err("peer name is not valid UTF-8");
		return CTL_EXIT_USAGE;
	}
	return ctl_simple(ctx, json_pack("{s:s, s:s, s:o}", "cmd", "peer",
	    "action", ctx->words[0], "name", name), ctl_show_peer,
	    "FAIL: ");
}
