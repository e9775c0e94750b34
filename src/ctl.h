/*
 * The control protocol between relayctl and relayd, shared by both sides.
 *
 * Transport: a Unix stream socket (default CTL_DEFAULT_SOCKET, mode 0660).
 * Each request is one JSON object on one line (terminated by '\n', at most
 * CTL_MAX_LINE bytes).  Every request gets an answer: zero or more event
 * lines, then exactly one final line with "ok": true or "ok": false and
 * "error": "reason".  A malformed request gets {"ok":false,"error":...}
 * and the connection is closed; other clients are not affected.
 *
 * Requests:
 *   {"cmd":"status"}
 *     -> {"ok":true,"node":"relay1","generation":1,"uptime_s":12.3,
 *         "buffered":N,
 *         "peers":[{"name":"relay2","address":"127.0.0.1:7401",
 *                   "direction":"out"|"in","state":"up"|"connecting"|
 *                   "handshake"|"down","streams":N,"bytes_in":N,
 *                   "bytes_out":N}],
 *         "streams":[{"id":N,"put_id":"32 hex","key":"k","size":N,
 *                     "upstream":"peer name"|"control","bytes_in":N,
 *                     "forks":[{"peer":"relay2","bytes_out":N,
 *                               "state":"..."}],
 *                     "store":"none"|"writing"|"stored"|"failed",
 *                     "first_us":N,"last_us":N,"age_s":1.2}]}
 *   {"cmd":"put","key":"k","size":N,"sha256":"64 hex","hops":N,
 *    "put_id":"32 hex" (optional; random if absent)}
 *     followed on the same connection by exactly `size` raw payload bytes.
 *     relayd answers with event lines while the PUT runs:
 *       {"event":"accepted","put_id":"..."}
 *       {"event":"progress","bytes":N}         (bytes taken from the client)
 *     and one final line:
 *       {"ok":true|false,"error":"...","put_id":"...",
 *        "results":[{"node":"relay3","depth":3,
 *                    "status":"stored"|"forwarded"|"failed",
 *                    "bytes":N,"first_us":N,"last_us":N,"reason":"..."}]}
 *     "ok" is true only if no hop failed and at least one hop stored.
 *     depth 0 is the relay relayctl talks to.
 */
#ifndef RELAYD_CTL_H
#define RELAYD_CTL_H

#define CTL_DEFAULT_SOCKET	"/run/relayd/relayd.sock"
#define CTL_MAX_LINE		(64 * 1024)	/* a request line */
#define CTL_MAX_REPLY		(64 * 1024 * 1024)	/* a reply line */
#define CTL_DEFAULT_HOPS	16

#endif
