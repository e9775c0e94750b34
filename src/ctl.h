/*
 * The control protocol between relayctl and relayd, shared by both sides.
 *
 * Transport: a Unix stream socket (default CTL_DEFAULT_SOCKET, mode 0660).
 * Each request is one JSON object on one line (terminated by '\n', at most
 * CTL_MAX_LINE bytes).  Every request gets an answer: zero or more event
 * lines, then exactly one final line with "ok": true or "ok": false and
 * "error": "reason".  A line is the final one if and only if it has a
 * boolean "ok" and no "event" field (some events carry an "ok" of their
 * own).  A malformed request gets {"ok":false,"error":...}
 * and the connection is closed; other clients are not affected.
 *
 * Requests:
 *   {"cmd":"status"}
 *     -> {"ok":true,"node":"relay1","generation":1,"uptime_s":12.3,
 *         "buffered":N,
 *         "peers":[{"name":"relay2","address":"127.0.0.1:7401",
 *                   "direction":"out"|"in","state":"up"|"connecting"|
 *                   "handshake"|"down","streams":N,"bytes_in":N,
 *                   "bytes_out":N,"last_error":"..","attempts":N|null,
 *                   "connects":N,"retry_delay_ms":N|null,
 *                   "next_attempt_ms":N|null, ...}],
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
 *     depth 0 is the relay relayctl talks to.  "replayed": true when the
 *     outcome comes from an earlier PUT with the same id and payload.
 *   {"cmd":"show","what":"peers"|"streams"|"routes"|"config"|"stats"|
 *    "puts"}
 *     -> {"ok":true,"peers":[...]}       (objects as in status)
 *     -> {"ok":true,"streams":[...]}     (objects as in status)
 *     -> {"ok":true,"generation":N,"routes":[{"prefix":"a/","mode":
 *         "fanout"|"failover","store":true,"hops":["relay2"]}]}
 *     -> {"ok":true,"generation":N,"path":"/etc/relayd/relayd.conf",
 *         "config":{"node_id":...,"listen":...,"metrics":...,one field
 *         per option of config_opts (config.c), by the same name,...,
 *         "tls":{"enabled":true,"ca":...,"cert":...,"key":...,
 *         "allow":[...]},"peers":[{"name","address","rate_limit",
 *         "tls":{"enabled":..}}]}}
 *     -> {"ok":true,"stats":{"puts_received":N,"puts_stored":N,
 *         "puts_failed":N,"puts_forwarded":N,"stores_ok":N,
 *         "stores_failed":N,"payload_in":N,"payload_out":N,
 *         "puts_refused":{"too-large":N,...},"streams_aborted":{...},
 *         "forks_aborted":{...},"tls_handshakes":N,"tls_refused":{...},
 *         "active_streams":N,"buffered":N,"peers_up":N}}
 *     -> {"ok":true,"puts":[{"put_id":..,"state":"done"|"failed"|
 *         "aborted","stored":bool,"key":..,"size":N,"age_s":F,
 *         "reason":..,"failing_hop":..}],"kept_ok":N,"kept_failed":N,
 *         "max":N,"ttl_s":F}  (newest first, at most CTL_SHOW_PUTS_MAX;
 *         reason and failing_hop only when not done)
 *   {"cmd":"show","what":"store","prefix":"a/" (optional)}
 *     -> {"ok":true,"store_dir":"..","entries":[{"key":"a/b","size":N,
 *         "sha256":"64 hex"|null,"mtime":N}],"matched":N,
 *         "truncated":bool,"bytes":N,"reserved":N,"max_bytes":N}
 *        (at most CTL_STORE_MAX entries, the smallest keys, sorted;
 *        keys escaped as util_escape does; sha256 null where the file
 *        system kept none; the directory is read in steps)
 *   {"cmd":"monitor"}
 *     -> {"ok":true,"event":"monitoring"} first, then one line per event
 *        until the client closes or relayd stops:
 *        {"event":"stream-opened","time_us":N,"stream":N,"put_id":..,
 *         "key":..,"size":N,"from":"peer"}
 *        {"event":"stream-progress","time_us":N,"stream":N,"bytes_in":N,
 *         "size":N}                      (at most once a second)
 *        {"event":"stream-stored"|"stream-done"|"stream-aborted",
 *         "time_us":N,"stream":N,"put_id":..,"key":..,"ok":bool,
 *         "reason":".."}
 *        {"event":"peer-up"|"peer-down","time_us":N,"peer":"relay2",
 *         "address":"..","direction":"in"|"out","reason":".."}
 *   {"cmd":"outcome","put_id":"32 hex"}
 *     -> {"ok":true,"put_id":..,"state":"in-flight"|"done"|"failed"|
 *         "aborted"|"unknown","stored":bool,"results":[...]}  (results
 *         as in put; "done", "failed" (ended with a failed hop) and
 *         "aborted" (the stream failed before its end) are remembered
 *         for 10 minutes, at most 1024 of each kind; "failed" and
 *         "aborted" add "reason" and "failing_hop", the node of the
 *         failure nearest the fault; "key", "size" and "age_s" too)
 *   {"cmd":"reload"}
 *     -> {"ok":true,"generation":N} or {"ok":false,"error":"FILE:LINE: .."}
 *        (the old config stays on failure)
 *   {"cmd":"drain"}
 *     -> {"ok":true,"draining":true,"streams":N}: new PUTs are refused,
 *        streams in flight finish (up to drain_timeout), then relayd exits
 *   {"cmd":"log","level":"warn"|"info"|"debug"}
 *     -> {"ok":true,"level":"debug"}
 *   {"cmd":"peer","action":"disable"|"enable"|"drain","name":"relay2"}
 *     -> {"ok":true,"peer":{...}}   (the outbound peer's object, as in
 *        show peers) or {"ok":false,"error":"no configured peer 'x'"}
 *
 * A peer object in status and show peers also has: "admin" (outbound:
 * "enabled"|"disabled"|"draining"|"drained", inbound: null),
 * "generation" (the config generation of the link's TLS context, null
 * while no link), "config_generation" (the one its next link uses),
 * "rtt_ms" and "srtt_ms" (last and smoothed PING/PONG round trip),
 * "age_s" (since the link came up), "cert_not_after" ("YYYY-MM-DDThh:
 * mm:ssZ") and "cert_expires_in_s" (the peer's certificate on a TLS
 * link); null where there is no such figure.
 */
#ifndef RELAYD_CTL_H
#define RELAYD_CTL_H

#define CTL_DEFAULT_SOCKET	"/run/relayd/relayd.sock"
#define CTL_MAX_LINE		(64 * 1024)	/* a request line */
#define CTL_MAX_REPLY		(64 * 1024 * 1024)	/* a reply line */
#define CTL_DEFAULT_HOPS	16
#define CTL_SHOW_PUTS_MAX	100	/* rows of show puts */
#define CTL_STORE_MAX		1000	/* files one show store lists */

#endif
