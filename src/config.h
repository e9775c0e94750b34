/*
 * config: relayd.conf (libconfig syntax) parsed and validated into one
 * immutable generation.  Example and every option: conf/relayd.conf and
 * relayd.conf(5).
 *
 *   node_id = "relay1";                 # required, 1..64 printable chars
 *   listen = "127.0.0.1:7400";          # host:port (IPv6 as [addr]:port)
 *   metrics = "127.0.0.1:9464";         # Prometheus endpoint, optional;
 *                                       # "port" or ":port": 127.0.0.1
 *   control_socket = "/run/relayd/relayd.sock";
 *   store_dir = "/var/lib/relayd/store";
 *   max_payload = 1073741824;           # bytes
 *   store_max_bytes = 0;                # bytes in store_dir; 0 = no cap
 *   stream_inactivity_timeout = 30.0;   # seconds, >= 0.1
 *   handshake_timeout = 10.0;           # seconds
 *   result_timeout = 60.0;              # seconds to wait for RESULT
 *   connect_timeout = 5.0;              # seconds
 *   idle_timeout = 60.0;                # PING an idle link this often;
 *                                       # drop it after 2 unanswered
 *   drain_timeout = 30.0;               # SIGTERM/drain: streams may
 *                                       # finish for this long
 *   conn_window = 4194304;              # bytes of credit per connection
 *   stream_window = 1048576;            # bytes of credit per stream
 *   max_streams_per_peer = 1024;
 *   max_buffered = 268435456;           # bytes held by all streams
 *   max_fork_lag = 16777216;            # a fork further behind the
 *                                       # fastest is aborted (slow hop)
 *   max_connections = 0;                # inbound links; 0 = from the
 *   max_handshakes = 0;                 # fd limit (listener.h)
 *   max_connections_per_source = 64;    # unauthenticated, per address
 *   max_streams = 0;                    # inbound streams, all peers
 *   max_control_clients = 64;
 *   control_request_timeout = 10.0;     # seconds to send the request
 *   max_metrics_clients = 16;
 *   metrics_header_timeout = 5.0;       # seconds to send the headers
 *   max_output_buffer = 4194304;        # a link's unsent output above
 *                                       # this: stop reading from it
 *   output_timeout = 10.0;              # ...close it if still above
 *   tls = {                             # the listener's TLS, and the
 *     ca = "/etc/relayd/tls/ca.pem";    # default for outbound links
 *     cert = "/etc/relayd/tls/relay.pem";
 *     key = "/etc/relayd/tls/relay.key";
 *     allow = [ "CN=relay2", "sha256:3A:...:9F" ];  # optional
 *   };
 *   # or: tls = false;                  # explicit plaintext opt-in
 *   peers = (
 *     { name = "relay2"; address = "127.0.0.1:7401";
 *       rate_limit = 0;                 # bytes/s sent to it, 0 = none
 *       identity = "relay2.example";    # its certificate's CN or a DNS
 *                                       # SAN; default: name
 *       tls = { ... } or tls = false; } # optional; default: the top
 *   );                                  # level tls
 *   routes = (                          # longest matching prefix wins
 *     { prefix = "";                    # "" matches every key
 *       hops = [ "relay2" ];            # peer names; may be empty
 *       mode = "fanout";                # or "failover"
 *       store = true; }                 # store locally too
 *   );
 *
 * Ownership: config_load() returns one reference; holders (the daemon's
 * current generation, each stream that was routed by it) take their own
 * with config_ref() and drop them with config_unref().
 */
#ifndef RELAYD_CONFIG_H
#define RELAYD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_HOPS		16
#define CONFIG_NAME_MAX		64
#define CONFIG_IDENTITY_MAX	253	/* a DNS name's longest */

enum route_mode {
	ROUTE_FANOUT = 0,
	ROUTE_FAILOVER = 1,
};

/*
 * TLS settings of the listener or of one outbound link.  enabled = 0 only
 * when the config says `tls = false`.  Paths are as written in the file
 * (resolved relative to the config file's directory if not absolute).
 * allow[] entries are "CN=<common name>" or "sha256:<hex fingerprint of
 * the DER certificate>" (colons optional, any case); none = any
 * certificate signed by the CA.  file and line are where the setting is,
 * for errors found later (by tls.c).
 */
struct tls_conf {
	int		 enabled;
	char		*ca;
	char		*cert;
	char		*key;
	unsigned int	 nallow;
	char		**allow;
	int		 line;
	char		*file;		/* where line is: main or included */
};

struct peer_conf {
	char		 name[CONFIG_NAME_MAX + 1];
	/*
	 * The certificate identity the peer must present on a TLS link: its
	 * certificate's CN or one of its DNS SANs.  Default: name.
	 */
	char		 identity[CONFIG_IDENTITY_MAX + 1];
	struct tls_conf	 tls;		/* resolved: inherits the top level */
	char		*host;		/* numeric address or name */
	char		*port;
	uint64_t	 rate_limit;	/* bytes/s, 0 = unlimited */
};

struct route_conf {
	char		*prefix;
	size_t		 prefix_len;
	enum route_mode	 mode;
	int		 store;
	unsigned int	 nhops;
	unsigned int	 hops[CONFIG_MAX_HOPS];	/* indexes into peers */
};

/* Where a setting was read, for checks made after config_load(). */
struct config_where {
	char		*file;		/* NULL: not set (a default) */
	unsigned int	 line;
};

struct config {
	int		 refcnt;
	unsigned int	 generation;
	char		*path;
	char		 node_id[CONFIG_NAME_MAX + 1];
	char		*listen_host;	/* NULL: no listener */
	char		*listen_port;
	char		*metrics_host;	/* NULL: no metrics endpoint */
	char		*metrics_port;
	struct tls_conf	 tls;		/* listener, and default for peers */
	char		*control_socket;
	char		*store_dir;
	uint64_t	 max_payload;
	uint64_t	 store_max_bytes;	/* 0: no limit */
	double		 stream_inactivity_timeout;	/* seconds */
	double		 handshake_timeout;
	double		 result_timeout;
	double		 connect_timeout;
	double		 idle_timeout;
	double		 drain_timeout;	/* SIGTERM: wait for streams */
	uint32_t	 conn_window;
	uint32_t	 stream_window;
	uint32_t	 max_streams_per_peer;
	uint64_t	 max_buffered;
	uint64_t	 max_fork_lag;	/* slow next hop: abort beyond */
	/* Descriptor caps; 0 = derived from RLIMIT_NOFILE (listener.h). */
	uint32_t	 max_connections;	/* inbound peer links */
	uint32_t	 max_handshakes;	/* inbound, not yet HELLO'd */
	uint32_t	 max_connections_per_source; /* unauthenticated */
	uint32_t	 max_streams;		/* inbound streams, all peers */
	uint32_t	 max_control_clients;
	double		 control_request_timeout; /* accept to request line */
	uint32_t	 max_metrics_clients;
	double		 metrics_header_timeout;  /* accept to full headers */
	uint64_t	 max_output_buffer; /* per link: stop reading above */
	double		 output_timeout;	/* ...and close if not drained */
	unsigned int	 npeers;
	struct peer_conf *peers;
	unsigned int	 nroutes;
	struct route_conf *routes;
	/* For relayd -n's checks of the host (bind, store_dir, socket). */
	struct config_where listen_at;
	struct config_where metrics_at;
	struct config_where store_dir_at;
	struct config_where control_socket_at;
};

/*
 * Parse and validate path.  On failure returns NULL and writes one line per
 * problem into err ("FILE:LINE: message"), as much as fits.
 */
struct config	*config_load(const char *path, char *err, size_t errlen);
void		 config_ref(struct config *);
void		 config_unref(struct config *);
/* The peer named name, or NULL. */
const struct peer_conf *config_peer(const struct config *, const char *name);

#endif
