/*
 * fixture: what the unit tests that run the daemon's modules together
 * share: a temporary directory and its removal, and the daemon context
 * brought up the way relayd.c's setup does it, on the fake clock.
 */
#ifndef RELAYD_TEST_FIXTURE_H
#define RELAYD_TEST_FIXTURE_H

struct relayd;

/* Remove dir and everything below it (best effort: a test's scratch). */
void	fixture_rm_tree(const char *dir);
/*
 * env = r, on the fake clock (mono 1000 s): an event base, the config
 * at conf_path, the listener's caps from it, a loop table and the store.
 * Fails the running test on any error.
 */
void	fixture_daemon_up(struct relayd *r, const char *conf_path);
/* Free what fixture_daemon_up() and the test left: sessions, kept
 * outcomes, links, the store, the loop table, the config and the base. */
void	fixture_daemon_down(void);

#endif
