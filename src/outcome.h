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
 * the oldest dropped first.
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

/* What was kept of a PUT that succeeded here. */
struct outcome {
	uint8_t			 put_id[WIRE_PUT_ID_LEN];
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
const struct outcome *outcome_find(const uint8_t *put_id);
/* relayctl outcome: in flight, done (with its entries) or unknown. */
struct json_t	*outcome_query_json(const uint8_t *put_id, int in_flight);
void		 outcome_free_all(void);

#endif
