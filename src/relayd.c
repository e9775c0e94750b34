/*
 * relayd: main.  Flags, signals, sd_notify, and wiring the modules.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <systemd/sd-daemon.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "listener.h"
#include "log.h"
#include "outcome.h"
#include "metrics.h"
#include "peer.h"
#include "daemon.h"
#include "route.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "tls.h"

#define RELAYD_CONF	"/etc/relayd/relayd.conf"
#define SEEN_MAX	(64 * 1024)	/* ids remembered for loop checks */
#define SEEN_TTL	600.0

struct relayd	*env;

static void
usage(void)
{
	fprintf(stderr, "usage: relayd [-dnVv] [-f file]\n");
	exit(2);
}

static const char	*relayd_conffile;	/* absolute */
#define RELAYD_DRAIN_POLL	0.1	/* s between drain checks */
#define RELAYD_TICK		5.0	/* s between housekeeping ticks */

/* Periodic timers are clock timers that re-arm themselves. */
static struct clock_timer	*relayd_tick_timer;
static struct clock_timer	*relayd_drain_timer;
static struct clock_timer	*relayd_watchdog_timer;
static double			 relayd_watchdog_every;
static double		 relayd_drain_start;
static int		 relayd_stopping;

static void
relayd_notify_status(void)
{
	struct peer_totals t;

	peer_totals(&t);
	sd_notifyf(0, "STATUS=%s: %u/%u links up, %u streams, %.1f MB in, "
	    "%.1f MB out, %llu PUTs stored, generation %u",
	    env->draining ? "draining" : "serving", t.up, t.links,
	    session_count(), stats.payload_in / 1e6, stats.payload_out / 1e6,
	    (unsigned long long)stats.puts_stored, env->conf->generation);
}

static void
relayd_stop(const char *why)
{
	struct timeval tv = { 0, 100000 };

	if (relayd_stopping)
		return;
	relayd_stopping = 1;
	log_info("stopping: %s", why);
	sd_notify(0, "STOPPING=1");
	control_monitors_end(why);
	/* A tenth of a second for final lines to reach control clients. */
	event_base_loopexit(env->base, &tv);
}

/* Every 100 ms while draining: exit once idle or at drain_timeout. */
static void
relayd_drain_cb(void *arg)
{
	unsigned int n = session_count();

	(void)arg;
	clock_timer_arm(relayd_drain_timer, RELAYD_DRAIN_POLL);
	if (n == 0) {
		relayd_stop("drained: no stream left");
		return;
	}
	if (clock_mono() - relayd_drain_start >= env->conf->drain_timeout) {
		log_warnx("drain: %u stream(s) still in flight after "
		    "drain_timeout %.1fs; stopping anyway", n,
		    env->conf->drain_timeout);
		relayd_stop("drain timeout");
	}
}

/*
 * Start a graceful drain (SIGTERM with drain on, relayctl drain): new
 * PUTs are refused, the streams in flight go on.  Returns how many.
 */
static unsigned int
relayd_drain(const char *by)
{
	unsigned int n = session_count();

	if (env->draining)
		return n;
	env->draining = 1;
	relayd_drain_start = clock_mono();
	log_info("drain requested by %s: refusing new PUTs, %u stream(s) "
	    "in flight, drain_timeout %.1fs", by, n,
	    env->conf->drain_timeout);
	sd_notify(0, "STOPPING=1");
	peer_goaway_all("relay is draining");
	peer_listen_close();
	relayd_notify_status();
	relayd_drain_timer = clock_timer_new(relayd_drain_cb, NULL);
	if (relayd_drain_timer == NULL)
		relayd_stop("drain: out of memory");
	else
		clock_timer_arm(relayd_drain_timer, RELAYD_DRAIN_POLL);
	return n;
}

static int
relayd_same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Load the config file again as a new generation (SIGHUP, relayctl
 * reload).  Streams in flight keep the generation they started with.
 * 0, or -1 with the reason in err and the old config still in place.
 */
static int
relayd_reload(const char *by, char *err, size_t errlen)
{
	struct config *nc, *old = env->conf;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	if ((nc = config_load(relayd_conffile, err, errlen)) == NULL ||
	    tls_check_config(nc, err, errlen) == -1) {
		if (nc != NULL)
			config_unref(nc);
		log_warnx("reload by %s refused, generation %u stays: %s", by,
		    old->generation, err);
		sd_notify(0, "READY=1\nSTATUS=reload refused; old config "
		    "in use");
		return -1;
	}
	if (strcmp(nc->control_socket, old->control_socket) != 0 ||
	    strcmp(nc->store_dir, old->store_dir) != 0 ||
	    !relayd_same_str(nc->metrics_host, old->metrics_host) ||
	    !relayd_same_str(nc->metrics_port, old->metrics_port) ||
	    !relayd_same_str(nc->listen_host, old->listen_host) ||
	    !relayd_same_str(nc->listen_port, old->listen_port))
		log_warnx("reload: listen, metrics, control_socket and "
		    "store_dir changes need a restart; the running ones stay");
	env->conf = nc;
	listener_config(nc);
	if (peer_reconfigure(old, err, errlen) == -1) {
		env->conf = old;
		listener_config(old);
		config_unref(nc);
		log_warnx("reload by %s refused: %s", by, err);
		sd_notify(0, "READY=1");
		return -1;
	}
	log_info("reload by %s: generation %u in use (was %u); streams in "
	    "flight keep theirs", by, nc->generation, old->generation);
	config_unref(old);
	sd_notify(0, "READY=1");
	relayd_notify_status();
	return 0;
}

static const struct control_actions relayd_ctl_actions = {
	.reload = relayd_reload,
	.drain = relayd_drain,
};

static void
relayd_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	char err[2048];

	(void)ev;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		relayd_reload("SIGHUP", err, sizeof(err));
		break;
	case SIGTERM:
	case SIGINT:
		if (env->draining)
			relayd_stop("second signal: stopping now");
		else
			relayd_drain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
}

static void
relayd_watchdog_cb(void *arg)
{
	(void)arg;
	/* Fed from the loop: a stuck loop stops feeding it. */
	clock_timer_arm(relayd_watchdog_timer, relayd_watchdog_every);
	sd_notify(0, "WATCHDOG=1");
}

/*
 * Freed heap is kept for reuse while PUTs run (see main); once none is
 * left and payload has moved since the last time, hand it back, so a
 * burst of streams does not leave the daemon holding its peak.
 */
static void
relayd_trim_heap(void)
{
	static uint64_t trimmed_at;

	if (session_count() > 0 || stats.payload_in == trimmed_at)
		return;
	trimmed_at = stats.payload_in;
	malloc_trim(0);
}

/*
 * Touch the heap the first PUTs will use before any arrives: stream
 * chunks and read buffers are taken from freed heap, which a new
 * process does not have, so the first PUT after start would fault in
 * fresh zeroed pages on every hop (some 80 per hop for 253 KiB, most of
 * what it costs over a warm one).  The blocks are freed at once and stay
 * in the heap (M_TRIM_THRESHOLD, see main) until relayd_trim_heap() hands
 * them back once PUTs have come and gone.
 */
#define RELAYD_PREWARM_BLOCKS	40
#define RELAYD_PREWARM_SIZE	(64 * 1024 + 256)

static void
relayd_prewarm_heap(void)
{
	void		*b[RELAYD_PREWARM_BLOCKS];
	volatile char	*v;
	size_t		 i, j;

	for (i = 0; i < RELAYD_PREWARM_BLOCKS; i++) {
		/* volatile: the stores must happen, unused as they are. */
		if ((v = b[i] = malloc(RELAYD_PREWARM_SIZE)) == NULL)
			continue;
		for (j = 0; j < RELAYD_PREWARM_SIZE; j += 4096)
			v[j] = 0;
	}
	for (i = RELAYD_PREWARM_BLOCKS; i > 0; i--)
		free(b[i - 1]);
}

static void
relayd_tick_cb(void *arg)
{
	(void)arg;
	clock_timer_arm(relayd_tick_timer, RELAYD_TICK);
	route_seen_expire(env->seen, clock_mono());
	relayd_notify_status();
	relayd_trim_heap();
}

/* The inherited listener from socket activation, or -1. */
static int
relayd_listen_fd(void)
{
	int n = sd_listen_fds(1);

	if (n <= 0)
		return -1;
	if (n > 1)
		log_warnx("systemd passed %d sockets; peers are accepted on "
		    "the first only", n);
	if (sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
		fatalx("the socket systemd passed is not a listening stream "
		    "socket");
	return SD_LISTEN_FDS_START;
}

/* 1 if some route stores here: the store's hash is loaded at start. */
static int
relayd_stores(const struct config *cf)
{
	unsigned int	 i;

	for (i = 0; i < cf->nroutes; i++)
		if (cf->routes[i].store)
			return 1;
	return 0;
}

static void
relayd_setup(void)
{
	char err[1024];
	int fd;

	clock_init(env->base);
	listener_config(env->conf);
	if ((env->store = store_open(env->base, env->conf->store_dir, err,
	    sizeof(err))) == NULL)
		fatalx("store: %s", err);
	if (relayd_stores(env->conf) && store_warm(env->store) == -1)
		fatalx("store: OpenSSL has no SHA-256");
	if ((env->seen = route_seen_new(SEEN_MAX, SEEN_TTL)) == NULL)
		fatalx("out of memory");
	if (control_open(env->conf->control_socket, &relayd_ctl_actions, err,
	    sizeof(err)) == -1)
		fatalx("control: %s", err);
	if (env->conf->metrics_host != NULL &&
	    metrics_open(env->base, env->conf->metrics_host,
	    env->conf->metrics_port, err, sizeof(err)) == -1)
		fatalx("%s", err);
	/* Inbound PUTs on any link, in or out, become sessions. */
	peer_set_sink(&session_sink_ops);
	fd = relayd_listen_fd();
	if (fd >= 0 || env->conf->listen_host != NULL) {
		if (peer_listen(env->conf->listen_host,
		    env->conf->listen_port, fd, err, sizeof(err)) == -1)
			fatalx("%s", err);
		log_info("listening on %s", fd >= 0 ? "inherited socket" :
		    env->conf->listen_host);
	}
	peer_start_outbound();
}

static void
relayd_teardown(void)
{
	metrics_close();
	control_close();
	peer_listen_close();
	peer_free_all();
	session_free_all();
	outcome_free_all();
	store_close(env->store);
	route_seen_free(env->seen);
	config_unref(env->conf);
}

struct relayd_flags {
	const char	*conffile;
	int		 debug;
	int		 noaction;
	int		 verbose;
};

/*
 * -V: the version and what this binary was built with and runs on, one
 * "name value" per line so that scripts can pick a line.
 */
static void __attribute__((noreturn))
relayd_version(void)
{
	const char	*opts = RELAYD_BUILD_OPTS;

	printf("relayd %s\n", RELAYD_VERSION);
	printf("build-options %s\n", opts[0] != '\0' ? opts : "none");
	printf("libevent %s (built with %s)\n", event_get_version(),
	    LIBEVENT_VERSION);
	printf("openssl %s (built with %s)\n",
	    OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
	printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR,
	    LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
	printf("jansson %s\n", JANSSON_VERSION);
	exit(0);
}

static void
relayd_flags(int argc, char *argv[], struct relayd_flags *fl)
{
	int ch;

	fl->conffile = RELAYD_CONF;
	fl->debug = fl->noaction = 0;
	fl->verbose = LOG_LVL_INFO;
	while ((ch = getopt(argc, argv, "df:nVv")) != -1) {
		switch (ch) {
		case 'V':
			relayd_version();
		case 'd':
			fl->debug = 1;
			break;
		case 'f':
			fl->conffile = optarg;
			break;
		case 'n':
			fl->noaction = 1;
			break;
		case 'v':
			fl->verbose = LOG_LVL_DEBUG;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/* Under systemd stderr goes to the journal: log there too. */
	if (getenv("JOURNAL_STREAM") != NULL || getenv("NOTIFY_SOCKET"))
		fl->debug = 1;
}

/* Load and check the config into env->conf; -1 (said on stderr) if bad. */
static int
relayd_load(const char *conffile)
{
	char err[4096];

	if ((env->conf = config_load(conffile, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s", err);
		if (err[0] != '\0' && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
		fprintf(stderr, "relayd: configuration %s is not valid\n",
		    conffile);
		return -1;
	}
	if (tls_check_config(env->conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		fprintf(stderr, "relayd: configuration %s is not valid\n",
		    conffile);
		config_unref(env->conf);
		return -1;
	}
	return 0;
}

static void
relayd_check_say(const struct config_where *w, const char *path,
    const char *what, const char *why)
{
	if (w->file != NULL)
		fprintf(stderr, "%s:%u: %s: %s\n", w->file, w->line, what, why);
	else
		fprintf(stderr, "%s:0: %s (default): %s\n", path, what, why);
}

/* One address of the config that must be free to bind; -1 if not. */
static int
relayd_check_bind(const char *name, const char *host, const char *port,
    const struct config_where *w, const char *path)
{
	char why[512], what[300];

	if (host == NULL || listener_check_bind(host, port, why,
	    sizeof(why)) == 0)
		return 0;
	snprintf(what, sizeof(what), "%s: cannot bind %s:%s", name, host,
	    port);
	relayd_check_say(w, path, what, why);
	return -1;
}

/*
 * relayd -n: what start-up would trip over on this host, beyond the
 * file itself: listen and metrics addresses that cannot be bound, a
 * store_dir that is missing or not writable.  -1 if any.
 */
static int
relayd_check_host(const struct config *cf)
{
	char why[512];
	int rc = 0;

	if (store_check_dir(cf->store_dir, why, sizeof(why)) == -1) {
		relayd_check_say(&cf->store_dir_at, cf->path, "store_dir", why);
		rc = -1;
	}
	/* Checked by hand while this config runs: its ports are taken. */
	switch (control_probe(cf->control_socket, why, sizeof(why))) {
	case 1:
		fprintf(stderr, "relayd: %s: listen and metrics are in use by "
		    "it, not checked\n", why);
		return rc;
	case -1:
		relayd_check_say(&cf->control_socket_at, cf->path,
		    "control_socket", why);
		rc = -1;
		break;
	}
	if (relayd_check_bind("listen", cf->listen_host, cf->listen_port,
	    &cf->listen_at, cf->path) == -1)
		rc = -1;
	if (relayd_check_bind("metrics", cf->metrics_host, cf->metrics_port,
	    &cf->metrics_at, cf->path) == -1)
		rc = -1;
	return rc;
}

static struct event	*relayd_log_ev;

static void
relayd_log_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_flush();
}

/* The first deferred log line of a loop pass: flush at its end. */
static void
relayd_log_kick(void)
{
	event_active(relayd_log_ev, 0, 0);
}

/* The signals, the tick and the systemd watchdog, then the loop. */
static void
relayd_run(const char *conffile)
{
	struct event *sigterm, *sigint, *sighup;
	uint64_t wd_usec = 0;

	/* Info lines leave once per loop pass (log_defer), not one by one. */
	if ((relayd_log_ev = event_new(env->base, -1, 0, relayd_log_cb,
	    NULL)) == NULL)
		fatalx("out of memory");
	atexit(log_flush);
	log_defer(relayd_log_kick);

	sigterm = evsignal_new(env->base, SIGTERM, relayd_signal_cb, NULL);
	sigint = evsignal_new(env->base, SIGINT, relayd_signal_cb, NULL);
	sighup = evsignal_new(env->base, SIGHUP, relayd_signal_cb, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	if ((relayd_tick_timer = clock_timer_new(relayd_tick_cb, NULL)) == NULL)
		fatalx("out of memory");
	clock_timer_arm(relayd_tick_timer, RELAYD_TICK);
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		relayd_watchdog_every = wd_usec / 2e6;
		relayd_watchdog_timer = clock_timer_new(relayd_watchdog_cb,
		    NULL);
		clock_timer_arm(relayd_watchdog_timer, relayd_watchdog_every);
	}
	log_info("relayd started node=%s config=%s pid=%ld",
	    env->conf->node_id, conffile, (long)getpid());
	sd_notify(0, "READY=1");
	relayd_notify_status();
	event_base_dispatch(env->base);
	relayd_teardown();
	log_defer(NULL);
	event_free(relayd_log_ev);
	relayd_log_ev = NULL;
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	clock_timer_free(relayd_tick_timer);
	clock_timer_free(relayd_drain_timer);
	clock_timer_free(relayd_watchdog_timer);
	relayd_tick_timer = relayd_drain_timer = relayd_watchdog_timer = NULL;
}

int
main(int argc, char *argv[])
{
	struct relayd_flags fl;
	struct relayd relayd;
	char err[1024];

	/*
	 * Payload passes through 64 KiB stream chunks and 256 KiB read
	 * buffers that are freed as soon as every reader is past them.  With
	 * glibc's adaptive defaults each such cycle can trim the heap and
	 * fault fresh zeroed pages back in (a tenth of a hop's CPU in a
	 * profile); keep a few MiB of freed heap for reuse instead.
	 */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);

	relayd_flags(argc, argv, &fl);
	log_init("relayd", fl.debug || fl.noaction, fl.verbose);
	/* daemon() moves to /: a reload must still find the file. */
	relayd_conffile = realpath(fl.conffile, NULL);
	if (relayd_conffile == NULL)
		relayd_conffile = fl.conffile;
	memset(&relayd, 0, sizeof(relayd));
	env = &relayd;
	TAILQ_INIT(&env->peers);
	TAILQ_INIT(&env->sessions);
	if (relayd_load(fl.conffile) == -1)
		return 1;
	if (fl.noaction) {
		if (relayd_check_host(env->conf) == -1) {
			fprintf(stderr, "relayd: configuration %s is not valid "
			    "on this host\n", fl.conffile);
			config_unref(env->conf);
			return 1;
		}
		fprintf(stderr, "relayd: configuration %s OK\n", fl.conffile);
		config_unref(env->conf);
		return 0;
	}
	/* Before daemon(): the refusal reaches the terminal and exit code. */
	if (control_probe(env->conf->control_socket, err, sizeof(err)) != 0) {
		fprintf(stderr, "relayd: control: %s; not starting (stop it "
		    "first, or give this one its own control_socket)\n", err);
		config_unref(env->conf);
		return 1;
	}
	if (!fl.debug && daemon(0, 0) == -1)
		fatal("daemon");
	/*
	 * After daemon(): pages the parent touched are shared copy-on-write,
	 * and the child's first write to each would fault it in again.
	 */
	relayd_prewarm_heap();
	if (log_journal_auto())
		log_debug("logging to the journal (JOURNAL_STREAM)");
	signal(SIGPIPE, SIG_IGN);
	if ((env->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	env->start_time = clock_mono();
	listener_fd_init();
	relayd_setup();
	relayd_run(fl.conffile);
	event_base_free(env->base);
	log_info("relayd stopped");
	return 0;
}
