/*
 * log: the one logging module.  Lines carry key=value context.  In the
 * foreground (-d, or under systemd) they go to stderr with a "<N>" syslog
 * priority prefix; otherwise to syslog.  When stderr is the journal
 * (log_journal_auto), each line is a journal entry instead, with
 * MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER= and, for a line about a PUT,
 * the fields given to log_put just before it: PUT_ID=, KEY=, PEER=,
 * REASON= (so `journalctl PUT_ID=...` follows one PUT).  Every field is
 * printable ASCII: what a peer sent cannot add lines or fields.
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
/* Log to the journal if JOURNAL_STREAM names stderr; 1 if so. */
int	log_journal_auto(void);
/*
 * The PUT a thread's next log line is about: its put id (hex), its key
 * (escaped, as in JSON), the peer and the reason, any of them NULL.  Used
 * by that next log_*() call only, whatever its level.
 */
void	log_put(const char *put_id, const char *key, const char *peer,
	    const char *reason);
/*
 * From the loop thread: its info and debug lines to stderr wait in a
 * buffer until log_flush(); kick() is called when the first one waits
 * (the daemon then flushes once per loop pass).  NULL: write at once
 * again.  Warnings and worse are never held back.
 */
void	log_defer(void (*kick)(void));
void	log_flush(void);
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
