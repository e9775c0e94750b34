/*
 * stats: relayd's counters, and the one table of every counter and gauge
 * from which both `relayctl -j show stats` (stats_json) and the
 * Prometheus exposition (stats_prom) are rendered, so the two surfaces
 * list the same things with the same values.
 *
 * The counters live in the global `stats`; modules bump them with
 * STATS_INC / STATS_ADD / STATS_CODE.  Gauges owned by other modules
 * (streams in flight, links, descriptor caps) are read through getters
 * named in the table, which is in statstab.c so that this module
 * depends on nothing above it.  Everything here runs on the loop thread.
 */
#ifndef RELAYD_STATS_H
#define RELAYD_STATS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct json_t;

#define STATS_CODES		16	/* abort codes counted (wire.h) */
#define STATS_DUR_BUCKETS	12

/* Counters since start. */
struct stats {
	uint64_t	 puts_received;	/* sessions admitted */
	uint64_t	 puts_stored;	/* outcome ok, stored on this relay */
	uint64_t	 puts_relayed;	/* outcome ok, not stored here */
	uint64_t	 puts_failed;	/* outcome not ok, or aborted */
	uint64_t	 puts_forwarded; /* forks that got a RESULT */
	uint64_t	 stores_ok;	/* stored on this relay */
	uint64_t	 stores_failed;
	uint64_t	 puts_refused[STATS_CODES];	/* by abort code */
	uint64_t	 streams_aborted[STATS_CODES];	/* by abort code */
	uint64_t	 forks_aborted[STATS_CODES];	/* by abort code */
	uint64_t	 results_refused; /* RESULTs that lied */
	uint64_t	 identity_refused; /* cert or HELLO mismatch */
	uint64_t	 payload_in;	/* payload bytes received */
	uint64_t	 payload_out;	/* payload bytes forwarded */
	/* memory bounds against hostile peers that fired */
	uint64_t	 output_paused;	/* links paused: output over bound */
	uint64_t	 output_closed;	/* links closed: output never drained */
	uint64_t	 pongs_folded;	/* PINGs answered by a queued PONG */
	uint64_t	 reserve_refused; /* PUTs refused: max_buffered reserved */
	uint64_t	 credit_overflow; /* links closed: window above 2^31-1 */
	uint64_t	 data_never_opened; /* links closed: DATA, no such PUT */
	uint64_t	 data_discarded; /* DATA bytes of ended streams dropped */
	/* stream durations (the one histogram) */
	uint64_t	 dur_count;
	double		 dur_sum;
	uint64_t	 dur_buckets[STATS_DUR_BUCKETS];	/* cumulative */
};

extern struct stats	 stats;

#define STATS_INC(f)		(stats.f++)
#define STATS_ADD(f, n)		(stats.f += (n))
/* Count by wire abort code; slot 0 holds codes beyond the table. */
#define STATS_CODE(f, code)	\
	(stats.f[(unsigned int)(code) < STATS_CODES ? (code) : 0]++)

/* Upper bounds (seconds) of the stream duration histogram buckets. */
extern const double	 stats_dur_bounds[STATS_DUR_BUCKETS];
void			 stats_duration(double secs);

enum stats_type {
	STATS_COUNTER,
	STATS_GAUGE,
	STATS_HISTOGRAM		/* stats.dur_*; its JSON value is the count */
};

/*
 * One row: one series, or one family of series when it is a vector
 * (n > 0: item i is labelled label="name(i)", NULL names are skipped).
 * Rows that share a Prometheus name must be adjacent; the first of them
 * carries the help text.  Label values are escaped for the exposition
 * (backslash, double quote, newline); JSON keys are the names as given,
 * so names from the network must come escaped (util_escape).  The value comes from exactly one of value (a
 * counter of `stats`, or an array for vectors), get, getf, or at.
 */
struct stats_entry {
	const char	*json;	/* path in show stats: "memory.reserved" */
	const char	*prom;	/* series name: "relayd_reserved_bytes" */
	const char	*label;	/* label key, or NULL */
	const char	*lvalue; /* fixed label value of a scalar row */
	enum stats_type	 type;
	const char	*unit;	/* "bytes", "seconds", or "" */
	const char	*help;
	uint64_t	*value;
	uint64_t	(*get)(void);
	double		(*getf)(void);
	unsigned int	 n;
	const char	*(*name)(const struct stats_entry *, unsigned int);
	uint64_t	(*at)(const struct stats_entry *, unsigned int);
	/* A vector whose items come and go: how many now (n unused). */
	unsigned int	(*count)(void);
	/* A second, fixed label of every item: key and value. */
	const char	*fkey;
	const char	*fvalue;
};

/* The table (statstab.c). */
extern const struct stats_entry	 stats_table[];
extern const size_t		 stats_ntable;

/* Items of a row (1 for a scalar), their name (NULL: skipped), value. */
unsigned int	 stats_items(const struct stats_entry *);
const char	*stats_item_name(const struct stats_entry *, unsigned int);
uint64_t	 stats_item_u64(const struct stats_entry *, unsigned int);
/* The value as a double: the getf rows (uptime) are not integers. */
double		 stats_item_value(const struct stats_entry *, unsigned int);

/* The show stats object of tab (new reference), or NULL out of memory. */
struct json_t	*stats_json(const struct stats_entry *tab, size_t n);
/* Append the exposition of tab to buf: 0, or -1 out of memory. */
int		 stats_prom(struct evbuffer *buf, const struct stats_entry *tab,
		    size_t n);

/* For code vectors: names by wire_abort_name, "unknown" sums the rest. */
const char	*stats_code_name(const struct stats_entry *, unsigned int);
uint64_t	 stats_code_at(const struct stats_entry *, unsigned int);

#endif
