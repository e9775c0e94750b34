/* monitor: relayd's events, one line each, until relayd or a signal ends it. */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relayctl.h"

/*
 * A stream's progress line that says the same as the last one shown for
 * that stream (a stalled PUT, once a second) is not printed again until
 * CTL_MON_HEARTBEAT_US of event time have passed since it was; then it
 * is, with "unchanged_s=N" (seconds since it last changed), so a stall
 * stays visible without flooding.  Only the human form: -j prints every
 * line relayd sends.
 */
#define CTL_MON_HEARTBEAT_US	(10LL * 1000000)
#define CTL_MON_MAX_SEEN	65536	/* streams remembered, then forgotten */

static volatile sig_atomic_t	 ctl_interrupted;
/* Stream id -> [progress text last shown, its time_us, unchanged since]. */
static json_t			*ctl_mon_seen;

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
ctl_monitor_field(FILE *fp, const char *k, const json_t *v)
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
			fprintf(fp, " %s=\"%s\"", k, txt);
		else
			fprintf(fp, " %s=%s", k, txt);
	} else {
		txt = ctl_jtext(v);
		fprintf(fp, " %s=%s", k, txt);
	}
	free(txt);
}

/* "stream-opened stream=4 key=k size=1024 from=hop0": a malloc'd line. */
static char *
ctl_monitor_text(json_t *ev)
{
	const char	*k;
	json_t		*v;
	char		*name, *buf = NULL;
	size_t		 i, len = 0;
	FILE		*fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		ctl_oom();
	name = ctl_clean(ctl_jstr(ev, "event"));
	fputs(name, fp);
	free(name);
	for (i = 0; ctl_mon_first[i] != NULL; i++)
		if ((v = json_object_get(ev, ctl_mon_first[i])) != NULL)
			ctl_monitor_field(fp, ctl_mon_first[i], v);
	json_object_foreach(ev, k, v) {
		for (i = 0; ctl_mon_first[i] != NULL; i++)
			if (strcmp(k, ctl_mon_first[i]) == 0)
				break;
		if (ctl_mon_first[i] == NULL && strcmp(k, "event") != 0 &&
		    strcmp(k, "time_us") != 0)
			ctl_monitor_field(fp, k, v);
	}
	if (fclose(fp) != 0 || buf == NULL)
		ctl_oom();
	return buf;
}

/*
 * Whether to show text, the line of event ev at time us, and the seconds
 * it has been unchanged (0 if it changed); remembers what was shown.
 */
static int
ctl_monitor_keep(json_t *ev, const char *text, long long us,
    long long *same_s)
{
	const char	*event = ctl_jstr(ev, "event");
	json_t		*last;
	long long	 id, then, since = us;
	char		 key[32];

	*same_s = 0;
	if (ctl_jint(ev, "stream", &id) == -1)
		return 1;
	snprintf(key, sizeof(key), "%lld", id);
	if (strcmp(event, "stream-done") == 0 ||
	    strcmp(event, "stream-aborted") == 0) {
		json_object_del(ctl_mon_seen, key);
		return 1;
	}
	if (strcmp(event, "stream-progress") != 0)
		return 1;
	last = json_object_get(ctl_mon_seen, key);
	if (last != NULL && strcmp(json_string_value(json_array_get(last, 0)),
	    text) == 0) {
		then = json_integer_value(json_array_get(last, 1));
		if (us - then < CTL_MON_HEARTBEAT_US && us >= then)
			return 0;
		since = json_integer_value(json_array_get(last, 2));
		*same_s = since <= us ? (us - since) / 1000000 : 0;
	}
	if (json_object_size(ctl_mon_seen) >= CTL_MON_MAX_SEEN)
		json_object_clear(ctl_mon_seen);
	if (json_object_set_new(ctl_mon_seen, key, json_pack("[s,I,I]", text,
	    (json_int_t)us, (json_int_t)since)) == -1)
		ctl_oom();
	return 1;
}

/* "12:00:01.123 stream-opened stream=4 key=k size=1024 from=hop0" */
static void
ctl_monitor_print(json_t *ev)
{
	struct timespec	 ts;
	struct tm	 tm;
	long long	 us, same_s;
	time_t		 secs;
	char		*text, tbuf[32];

	if (ctl_jint(ev, "time_us", &us) == -1 || us < 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	text = ctl_monitor_text(ev);
	if (!ctl_monitor_keep(ev, text, us, &same_s)) {
		free(text);
		return;
	}
	secs = (time_t)(us / 1000000);
	if (localtime_r(&secs, &tm) == NULL ||
	    strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm) == 0)
		snprintf(tbuf, sizeof(tbuf), "??:??:??");
	printf("%s.%03lld %s", tbuf, (us / 1000) % 1000, text);
	if (same_s > 0)
		printf(" unchanged_s=%lld", same_s);
	putchar('\n');
	free(text);
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

int
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
	if ((req = json_pack("{s:s}", "cmd", "monitor")) == NULL ||
	    (ctl_mon_seen = json_object()) == NULL)
		ctl_oom();
	if ((rc = ctl_connect(ctx, &conn)) == CTL_EXIT_OK &&
	    (rc = ctl_send_request(&conn, req)) == CTL_EXIT_OK)
		rc = ctl_monitor_loop(ctx, &conn, &waitmask);
	fflush(stdout);
	json_decref(req);
	json_decref(ctl_mon_seen);
	ctl_mon_seen = NULL;
	ctl_conn_close(&conn);
	return rc;
}
