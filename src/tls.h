/*
 * tls: TLS 1.3 with mutual certificate authentication for peer links
 * (OpenSSL 3).  Builds the SSL_CTX of a tls_conf, classifies refused
 * handshakes, and describes an established session.
 *
 * Ownership: tls_ctx_new() returns an SSL_CTX with one reference; every
 * SSL made from it holds another (OpenSSL's own counting), so a context
 * of an old config generation lives until its last link is gone.  Callers
 * drop theirs with SSL_CTX_free().
 */
#ifndef RELAYD_TLS_H
#define RELAYD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* Why a handshake was refused; counted and logged per reason. */
enum tls_refusal {
	TLS_REF_NO_CERT = 0,	/* the peer sent no certificate */
	TLS_REF_UNKNOWN_CA,	/* not signed by our CA */
	TLS_REF_EXPIRED,	/* expired or not yet valid */
	TLS_REF_NOT_ALLOWED,	/* valid, but not on the allow-list */
	TLS_REF_VERSION,	/* below TLS 1.3 */
	TLS_REF_NOT_TLS,	/* plaintext or garbage on a TLS link */
	TLS_REF_TIMEOUT,	/* handshake did not finish in time */
	TLS_REF_CLOSED,		/* closed before sending a single byte */
	TLS_REF_OTHER,
	TLS_REF_MAX
};

/*
 * An SSL_CTX for the listener (server = 1) or for outbound links.  On
 * failure NULL and "FILE:LINE: tls: ..." in err: FILE is the file the
 * tls setting is in (tls_conf.file), path (the config file) if unset.
 */
SSL_CTX		*tls_ctx_new(const struct tls_conf *, int server,
		    const char *path, char *err, size_t errlen);
/*
 * After the handshake: check the peer's certificate against the
 * allow-list.  0 if allowed; -1 with the reason in why.
 */
int		 tls_check_allowed(SSL *, const struct tls_conf *,
		    char *why, size_t len);
/*
 * Is the peer's certificate that of identity want: its subject CN equal
 * to want, or one of its DNS subjectAltNames equal to want (any case)?
 * Literal comparison, no wildcards.  0 if so; -1 with the certificate's
 * names (escaped) in why.
 */
int		 tls_check_identity(SSL *, const char *want, char *why,
		    size_t len);
/* Classify a failed handshake from the OpenSSL error queue and state. */
enum tls_refusal tls_classify(SSL *, unsigned long err, char *why,
		    size_t len);
const char	*tls_refusal_name(enum tls_refusal);
/* The notAfter (seconds since the epoch) of the first certificate in
 * the PEM file path: 0, or -1 if it cannot be read. */
int		 tls_cert_not_after(const char *path, int64_t *when);
/*
 * Build (and free) every context the config asks for: the listener's and
 * each TLS peer's.  0, or -1 with every problem in err ("FILE:LINE: ...").
 */
int		 tls_check_config(const struct config *, char *err,
		    size_t errlen);
/* "sha256:<64 hex>" of the peer's certificate, its subject; "" if none. */
void		 tls_peer_identity(SSL *, char *fp, size_t fplen,
		    char *subject, size_t sublen);
/* The peer certificate's notAfter (seconds since the epoch): 0, or -1. */
int		 tls_peer_not_after(SSL *, int64_t *t);

#endif
