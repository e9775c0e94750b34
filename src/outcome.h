/*
 * outcome: the per-hop result entries of one PUT, built in one place and
 * rendered in one place.  A session collects them in a struct
 * outcome_list ([0] is this hop), adds the entries a next hop's checked
 * RESULT carries or one failed entry for a fork that ended without one,
 * and hands the list upstream; relayctl's put answer, its outcome query
 * and a replayed PUT all render the same entries through outcome_json().
 *
 * The outcomes of PUTs that succeeded here are kept, by PUT id, so that
 * a PUT re-run after its RESULT was lost is answered from here without a
 * second copy: at most OUTCOME_MAX, none older than OUTCOME_TTL seconds,
 * the oldest dropped first.  Failed and aborted PUTs are kept in a
 * sibling table with the same bounds (and at most OUTCOME_FAIL_ENTRIES
 * entries each), so that `relayctl outcome` can answer for them and a
 * flood of failures neither grows memory nor pushes out a success: at
 * most OUTCOME_MAX records of under 7 KiB (16 entries of 368 bytes, the
 * record, a key of at most 512 bytes), about 7 MiB in all.
 *
 * Blame: a relay whose every branch failed aborts its upstream with a
 * text that names the failing hop, "failed at NODE (depth N): REASON",
 * N counted from the sender (its next hop is 1); the relay upstream
 * turns it back into a failed entry for NODE, one hop deeper, vouched
 * for by the link it came in on (outcome_add_aborted).
 *
 * Ownership: a list owns its entries (outcome_list_free); the kept table
 * owns copies of what it was given (outcome_free_all at shutdown).
 */
#ifndef RELAYD_OUTCOME_H
#define RELAYD_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

#include "upstream.h"
#include "wire.h"

struct json_t;

#define OUTCOME_MAX	1024
#define OUTCOME_TTL	600.0
#define OUTCOME_FAIL_ENTRIES	16

/* What became of a kept PUT (relayctl outcome's "state"). */
enum outcome_state {
	OUTCOME_DONE = 0,	/* succeeded: stored where routed */
	OUTCOME_FAILED,		/* ended with a failed entry */
	OUTCOME_ABORTED,	/* the stream itself failed before the end */
};

struct outcome_list {
	struct session_entry	*e;
	unsigned int		 n;
	unsigned int		 cap;
};

/* A zeroed entry at the end, or NULL (out of memory, WIRE_MAX_ENTRIES). */
struct session_entry	*outcome_add(struct outcome_list *);
/*
 * The entries of a next hop's RESULT (already checked by its pipe), one
 * hop deeper, each vouched for by via (the link it came in on).
 */
void		 outcome_add_result(struct outcome_list *,
		    const struct wire_frame *, const char *via);
/* A fork that failed without a RESULT: its next hop at depth 1. */
void		 outcome_add_failed(struct outcome_list *, const char *node,
		    const char *via, uint64_t bytes, const char *reason);
/*
 * A next hop aborted the fork with code and msg: a failed entry for the
 * hop msg blames (see above), or for that next hop itself at depth 1.
 */
void		 outcome_add_aborted(struct outcome_list *, const char *peer,
		    const char *self, uint64_t bytes, uint16_t code,
		    const char *msg, size_t msg_len);
/* The blame text for an ABORT upstream; its length as snprintf. */
int		 outcome_blame_format(char *buf, size_t len, const char *node,
		    unsigned int depth, const char *reason);
/*
 * The node, depth and reason of a blame text; -1 if msg is not one
 * (or names an empty or too long node).
 */
int		 outcome_blame_parse(const char *msg, size_t len, char *node,
		    size_t nodelen, unsigned int *depth, const char **reason,
		    size_t *reason_len);
/* The failed entry nearest the fault (the deepest), or NULL. */
const struct session_entry *outcome_blamed(const struct session_entry *,
		    unsigned int n);
/* 1 if stored somewhere and failed nowhere (ctl.h's "ok"). */
int		 outcome_ok(const struct session_entry *, unsigned int n);
/* The entries as relayctl's JSON "results" array (a new reference). */
struct json_t	*outcome_json(const struct session_entry *, unsigned int n);
/*
 * The first failure as one line for relayctl's "error" ("stored
 * nowhere" when nothing failed and nothing stored); 0 if ok.
 */
int		 outcome_error(const struct session_entry *, unsigned int n,
		    char *err, size_t errlen);
void		 outcome_list_free(struct outcome_list *);

/* What was kept of a PUT that ended here. */
struct outcome {
	uint8_t			 put_id[WIRE_PUT_ID_LEN];
	enum outcome_state	 state;
	char			 reason[SESSION_REASON_MAX + 1];
	uint8_t			 sha256[WIRE_SHA256_LEN];
	uint64_t		 size;
	char			*key;		/* a replay must name it too */
	double			 at;		/* clock_mono() when kept */
	unsigned int		 n;
	struct session_entry	*entries;
};

/* Keep a copy (a failure to allocate only loses a later replay). */
void		 outcome_keep(const uint8_t *put_id, const uint8_t *sha256,
		    uint64_t size, const char *key,
		    const struct session_entry *, unsigned int n);
/*
 * Keep what is known of a PUT that failed or was aborted here (why is
 * the stream's own reason for an abort, else NULL): the failed entries
 * first, at most OUTCOME_FAIL_ENTRIES.  A later record of the same id
 * replaces it.
 */
void		 outcome_keep_failed(const uint8_t *put_id, uint64_t size,
		    const char *key, const struct session_entry *,
		    unsigned int n, int aborted, const char *why);
/* A success kept for replays (failures are never replayed). */
const struct outcome *outcome_find(const uint8_t *put_id);
/* The newest record of put_id, success or failure. */
const struct outcome *outcome_find_any(const uint8_t *put_id);
/*
 * relayctl outcome: in flight, done (with its entries), failed or
 * aborted (with reason, failing hop and entries) or unknown.
 */
struct json_t	*outcome_query_json(const uint8_t *put_id, int in_flight);
/* relayctl show puts: the newest max records, and the counts. */
struct json_t	*outcome_recent_json(unsigned int max);
/* Records kept in the table of successes (0) or of failures (1). */
unsigned int	 outcome_kept_count(int failures);
void		 outcome_free_all(void);

#endif
