#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "util.h"

static int	log_fg = 1;
static int	log_level = LOG_LVL_INFO;

void
log_init(const char *ident, int foreground, int level)
{
	log_fg = foreground;
	log_level = level;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
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
	char	 msg[2048];
	int	 saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	/* One line per message, whatever a peer put in a field. */
	util_escape_line(msg, sizeof(msg));
	if (log_fg) {
		fprintf(stderr, "<%d>%s\n", pri, msg);
		fflush(stderr);
	} else
		syslog(pri, "%s", msg);
	errno = saved;
}

#define LOG_BODY(pri, lvl, with_errno) do {			\
	va_list ap;						\
	if (log_level < (lvl))					\
		return;						\
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
