#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#ifndef LOG_NO_JOURNAL
#include <systemd/sd-journal.h>
#endif

#include "log.h"
#include "util.h"

#define LOG_MSG_MAX	2048	/* bytes of one line */
#define LOG_FIELD_MAX	1024	/* bytes of one journal field's value */

static int	 log_fg = 1;
static int	 log_level = LOG_LVL_INFO;
static int	 log_journal;		/* native journal protocol */
static char	 log_ident[32] = "relayd";

/*
 * Deferred stderr lines (log_defer): the loop thread's info and debug
 * lines wait here until log_flush(), one write per loop pass instead of
 * one per line (two per PUT on every hop).  Warnings and worse, and
 * every other thread's lines, are written at once, after what waits, so
 * the order on stderr stays the order of the calls.  The lock guards the
 * buffer against the store thread.
 */
#define LOG_DEFER_MAX	(64 * 1024)
static pthread_mutex_t	 log_mtx = PTHREAD_MUTEX_INITIALIZER;
static char		 log_dbuf[LOG_DEFER_MAX];
static size_t		 log_dlen;
static void		(*log_kick)(void);
static pthread_t	 log_loop;

/*
 * The PUT fields of this thread's next log line (log_put); every thread
 * that logs (the loop, the store worker) has its own.  Values are kept
 * as given but cut to LOG_FIELD_MAX and escaped again on the way out.
 */
enum { LOG_F_PUT_ID, LOG_F_KEY, LOG_F_PEER, LOG_F_REASON, LOG_NFIELDS };
static __thread char	 log_fields[LOG_NFIELDS][LOG_FIELD_MAX];
static __thread int	 log_nset;

void
log_init(const char *ident, int foreground, int level)
{
	log_fg = foreground;
	log_level = level;
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void
log_put_clear(void)
{
	int	i;

	if (!log_nset)
		return;
	for (i = 0; i < LOG_NFIELDS; i++)
		log_fields[i][0] = '\0';
	log_nset = 0;
}

void
log_put(const char *put_id, const char *key, const char *peer,
    const char *reason)
{
	const char	*v[LOG_NFIELDS] = { put_id, key, peer, reason };
	int		 i;

	log_put_clear();
	if (!log_journal)
		return;			/* the line itself carries them */
	for (i = 0; i < LOG_NFIELDS; i++) {
		if (v[i] == NULL || v[i][0] == '\0')
			continue;
		snprintf(log_fields[i], sizeof(log_fields[i]), "%s", v[i]);
		/* Printable ASCII only, whatever a caller passed. */
		util_escape_line(log_fields[i], sizeof(log_fields[i]));
		log_nset = 1;
	}
}

#ifdef LOG_NO_JOURNAL
/* relayctl's build: its messages are for its user, on stderr. */
int
log_journal_auto(void)
{
	return 0;
}

static int
log_journal_send(int pri, const char *msg)
{
	(void)pri;
	(void)msg;
	return -1;
}
#else
/*
 * systemd connects stderr to the journal and says so in JOURNAL_STREAM
 * ("device:inode" of that stream, see systemd.exec(5)); a stderr that is
 * something else (redirected by a shell, inherited by a child) does not
 * match.  Then log lines are sent with sd_journal_send(3) instead, with
 * their PUT's fields.
 */
int
log_journal_auto(void)
{
	struct stat	 st;
	const char	*js = getenv("JOURNAL_STREAM");
	uintmax_t	 dev, ino;
	char		 end;

	log_journal = 0;
	if (!log_fg || js == NULL ||
	    sscanf(js, "%ju:%ju%c", &dev, &ino, &end) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return 0;
	if ((uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino)
		log_journal = 1;
	return log_journal;
}

static const char *const log_field_names[LOG_NFIELDS] = {
	"PUT_ID", "KEY", "PEER", "REASON"
};

/* One entry: MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER= and the PUT's. */
static int
log_journal_send(int pri, const char *msg)
{
	struct iovec	 iov[3 + LOG_NFIELDS];
	char		 m[LOG_MSG_MAX + 16], prio[32], ident[64];
	char		 f[LOG_NFIELDS][LOG_FIELD_MAX + 16];
	int		 i, n = 0;

	snprintf(m, sizeof(m), "MESSAGE=%s", msg);
	snprintf(prio, sizeof(prio), "PRIORITY=%d", pri);
	snprintf(ident, sizeof(ident), "SYSLOG_IDENTIFIER=%s", log_ident);
	iov[n].iov_base = m;
	iov[n++].iov_len = strlen(m);
	iov[n].iov_base = prio;
	iov[n++].iov_len = strlen(prio);
	iov[n].iov_base = ident;
	iov[n++].iov_len = strlen(ident);
	for (i = 0; log_nset && i < LOG_NFIELDS; i++) {
		if (log_fields[i][0] == '\0')
			continue;
		snprintf(f[i], sizeof(f[i]), "%s=%s", log_field_names[i],
		    log_fields[i]);
		iov[n].iov_base = f[i];
		iov[n++].iov_len = strlen(f[i]);
	}
	return sd_journal_sendv(iov, n) < 0 ? -1 : 0;
}
#endif

/* All of buf to stderr, whatever a signal or a short write does. */
static void
log_write_all(const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(STDERR_FILENO, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return;		/* nowhere else to say it */
		}
		buf += n;
		len -= n;
	}
}

/* With log_mtx held. */
static void
log_dflush_locked(void)
{
	if (log_dlen > 0)
		log_write_all(log_dbuf, log_dlen);
	log_dlen = 0;
}

void
log_defer(void (*kick)(void))
{
	pthread_mutex_lock(&log_mtx);
	log_loop = pthread_self();
	log_kick = kick;
	if (kick == NULL)
		log_dflush_locked();
	pthread_mutex_unlock(&log_mtx);
}

void
log_flush(void)
{
	pthread_mutex_lock(&log_mtx);
	log_dflush_locked();
	pthread_mutex_unlock(&log_mtx);
}

/* One "<pri>msg" line to stderr, now or with the next log_flush(). */
static void
log_stderr(int pri, const char *msg)
{
	char line[LOG_MSG_MAX + 16];
	int n, kick = 0;

	n = snprintf(line, sizeof(line), "<%d>%s\n", pri, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	pthread_mutex_lock(&log_mtx);
	if (log_kick != NULL && pri >= LOG_INFO &&
	    pthread_equal(pthread_self(), log_loop)) {
		if (log_dlen + n > sizeof(log_dbuf))
			log_dflush_locked();
		kick = log_dlen == 0;
		memcpy(log_dbuf + log_dlen, line, n);
		log_dlen += n;
	} else {
		log_dflush_locked();
		log_write_all(line, n);
	}
	pthread_mutex_unlock(&log_mtx);
	if (kick)
		log_kick();
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return log_level;
}

static void
log_vemit(int pri, const char *fmt, va_list ap, int with_errno)
{
	char	 msg[LOG_MSG_MAX];
	int	 saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	/* One line per message, whatever a peer put in a field. */
	util_escape_line(msg, sizeof(msg));
	/* A journal that cannot be reached still gets the line on stderr. */
	if (!log_journal || log_journal_send(pri, msg) == -1) {
		if (log_fg)
			log_stderr(pri, msg);
		else
			syslog(pri, "%s", msg);
	}
	log_put_clear();
	errno = saved;
}

#define LOG_BODY(pri, lvl, with_errno) do {			\
	va_list ap;						\
	if (log_level < (lvl)) {				\
		log_put_clear();				\
		return;						\
	}							\
	va_start(ap, fmt);					\
	log_vemit((pri), fmt, ap, (with_errno));		\
	va_end(ap);						\
} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, LOG_LVL_WARN, 1);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, LOG_LVL_WARN, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_INFO, LOG_LVL_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_DEBUG, LOG_LVL_DEBUG, 0);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, fmt, ap, 1);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, fmt, ap, 0);
	va_end(ap);
	exit(1);
}
