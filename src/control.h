/*
 * control: the Unix control socket relayctl talks to (protocol in ctl.h).
 * Each client is independent: a slow or broken client never blocks
 * another, and bad input closes only that client.
 *
 * Ownership: clients live on a list in control.c and are freed by the
 * reaper after ctl_client_close(); a client uploading a PUT is that
 * session's upstream until the session reports or the client goes away.
 */
#ifndef RELAYD_CONTROL_H
#define RELAYD_CONTROL_H

#include <stddef.h>

struct json_t;

/*
 * What relayctl may ask of the daemon beyond reading its state: main
 * hands these in, so control never calls up into it.  reload returns 0,
 * or -1 with the reason in err; drain returns the streams in flight.
 */
struct control_actions {
	int		(*reload)(const char *by, char *err, size_t errlen);
	unsigned int	(*drain)(const char *by);
};

/*
 * Binds the control socket.  A socket file already there is replaced only
 * if stale (nobody accepts on it); if another relayd answers, -1.
 */
int	control_open(const char *path, const struct control_actions *,
	    char *err, size_t errlen);
/*
 * Whether another process answers on path, touching nothing: 0 no (no
 * socket, or a stale one), 1 yes, -1 cannot tell; for 1 and -1 why is in
 * err.
 */
int	control_probe(const char *path, char *err, size_t errlen);
void	control_close(void);
/* 1 if some client runs `monitor` (build events only then). */
int	control_monitoring(void);
/*
 * Send an event to every monitor client: fields (consumed; may be NULL)
 * get "event": name and "time_us".  A client too slow to keep up is
 * dropped, never waited for.
 */
void	control_event(const char *name, struct json_t *fields);
/* Tell monitors relayd is stopping, with a final line. */
void	control_monitors_end(const char *why);

#endif
