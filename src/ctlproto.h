/*
 * Parsing of one control request line (see ctl.h for the protocol).
 *
 * This is a pure function over bytes, with no I/O and no daemon state, so
 * that the unit tests and the fuzzer can drive it alone.  Every check on a
 * request happens here; the daemon only acts on a request that parsed.
 */
#ifndef RELAYD_CTLPROTO_H
#define RELAYD_CTLPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

enum ctl_command {
	CTL_CMD_NONE = 0,	/* only in a request that did not parse */
	CTL_CMD_STATUS,
	CTL_CMD_PUT,
	CTL_CMD_SHOW,
	CTL_CMD_MONITOR,
	CTL_CMD_OUTCOME,
	CTL_CMD_RELOAD,
	CTL_CMD_DRAIN,
	CTL_CMD_LOG,
	CTL_CMD_PEER,
};

/* peer disable|enable|drain: in this order on the wire's "action". */
enum ctl_peer_action {
	CTL_PEER_DISABLE = 0,
	CTL_PEER_ENABLE,
	CTL_PEER_DRAIN,
};
#define CTL_PEER_NAME_MAX	64	/* bytes, as a config peer name */

struct ctl_peer_req {
	enum ctl_peer_action	 action;
	char			 name[CTL_PEER_NAME_MAX + 1];	/* no NUL */
};

enum ctl_show {
	CTL_SHOW_PEERS = 0,
	CTL_SHOW_STREAMS,
	CTL_SHOW_ROUTES,
	CTL_SHOW_CONFIG,
	CTL_SHOW_STATS,
	CTL_SHOW_PUTS,
	CTL_SHOW_STORE,
};

struct ctl_put_req {
	char		*key;		/* owned; NUL-terminated, no inner NUL */
	size_t		 key_len;	/* 1..WIRE_MAX_KEY */
	uint64_t	 size;
	uint8_t		 sha256[WIRE_SHA256_LEN];
	unsigned int	 hops;		/* 0..255 */
	uint8_t		 put_id[WIRE_PUT_ID_LEN];	/* if has_put_id */
	int		 has_put_id;
};

/*
 * Filled by ctl_parse_request(); the caller owns it and releases it with
 * ctl_request_free(), also after a failed parse (it is then empty).
 */
struct ctl_request {
	enum ctl_command	 cmd;
	union {
		struct ctl_put_req	put;
		enum ctl_show		show;
		uint8_t			put_id[WIRE_PUT_ID_LEN];  /* outcome */
		int			level;	/* log: enum log_level */
		struct ctl_peer_req	peer;
	} u;
	/* show store: the key prefix, owned; NULL and 0 if none. */
	char			*prefix;
	size_t			 prefix_len;	/* 0..WIRE_MAX_KEY */
};

/*
 * Parse one request line of len bytes (no trailing '\n' needed; line need
 * not be NUL-terminated).  Returns 0, or -1 with a one-line printable
 * ASCII reason in err.
 */
int	ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
	    char *err, size_t errlen);
void	ctl_request_free(struct ctl_request *req);
/* "warn", "info" or "debug". */
const char	*ctl_level_name(int level);

#endif
