/*
 * log: the one logging module.  Lines carry key=value context.  In the
 * foreground (-d, or under systemd) they go to stderr with a "<N>" syslog
 * priority prefix that journald understands; otherwise to syslog.
 */
#ifndef RELAYD_LOG_H
#define RELAYD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_WARN = 0,
	LOG_LVL_INFO = 1,
	LOG_LVL_DEBUG = 2,
};

void	log_init(const char *ident, int foreground, int level);
void	log_setlevel(int level);
int	log_getlevel(void);
/* log_warn appends ": strerror(errno)". */
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
