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

int	control_open(const char *path, char *err, size_t errlen);
void	control_close(void);

#endif
