#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* A certificate closer than this to its end is warned about. */
#define TLS_EXPIRY_WARN_DAYS	14

static const char *tls_refusal_names[TLS_REF_MAX] = {
	"no_certificate",
	"unknown_ca",
	"expired",
	"not_allowed",
	"version",
	"not_tls",
	"timeout",
	"closed",
	"other",
};

const char *
tls_refusal_name(enum tls_refusal r)
{
	return r < TLS_REF_MAX ? tls_refusal_names[r] : "other";
}

static void
tls_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

SSL_CTX *
tls_ctx_new(const struct tls_conf *tc, int server, const char *path,
    char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char why[256];

	if (tc->file != NULL)
		path = tc->file;
	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		tls_errstr(why, sizeof(why));
		snprintf(err, errlen, "%s:%d: tls: %s", path, tc->line, why);
		return NULL;
	}
	/* TLS 1.3 only; both sides always present a certificate. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* Links are long-lived: no session tickets after the handshake. */
	if (server)
		SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, tc->cert) != 1) {
		tls_errstr(why, sizeof(why));
		snprintf(err, errlen, "%s:%d: tls: cannot load certificate %s: "
		    "%s", path, tc->line, tc->cert, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, tc->key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, errlen, "%s:%d: tls: key %s does not "
			    "match certificate %s", path, tc->line, tc->key,
			    tc->cert);
			goto fail;
		}
		tls_errstr(why, sizeof(why));
		snprintf(err, errlen, "%s:%d: tls: cannot load key %s: %s",
		    path, tc->line, tc->key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s:%d: tls: key %s does not match "
		    "certificate %s", path, tc->line, tc->key, tc->cert);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, tc->ca, NULL) != 1) {
		tls_errstr(why, sizeof(why));
		snprintf(err, errlen, "%s:%d: tls: cannot load CA %s: %s",
		    path, tc->line, tc->ca, why);
		goto fail;
	}
	return ctx;
 fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_peer_identity(SSL *ssl, char *fp, size_t fplen, char *subject,
    size_t sublen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	X509 *cert;
	size_t n;

	if (fplen > 0)
		fp[0] = '\0';
	if (sublen > 0)
		subject[0] = '\0';
	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL)
		return;
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1 &&
	    fplen >= 7 + 2 * mdlen + 1) {
		n = snprintf(fp, fplen, "sha256:");
		for (i = 0; i < mdlen; i++)
			n += snprintf(fp + n, fplen - n, "%02x", md[i]);
	}
	X509_NAME_oneline(X509_get_subject_name(cert), subject, sublen);
	X509_free(cert);
}

/*
 * The peer certificate's notAfter in seconds since the epoch (UTC).
 * 0, or -1 if there is no certificate or its time does not convert.
 */
int
tls_peer_not_after(SSL *ssl, int64_t *t)
{
	X509 *cert;
	struct tm tm;
	int rv = -1;

	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
		*t = (int64_t)timegm(&tm);
		rv = 0;
	}
	X509_free(cert);
	return rv;
}

static int
tls_cn_matches(X509 *cert, const char *want)
{
	X509_NAME *name = X509_get_subject_name(cert);
	char cn[256];
	int len;

	len = X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn));
	return len > 0 && (size_t)len == strlen(want) && strcmp(cn, want) == 0;
}

int
tls_check_allowed(SSL *ssl, const struct tls_conf *tc, char *why,
    size_t len)
{
	char fp[7 + 64 + 1], subject[256];
	X509 *cert;
	unsigned int i;
	int ok = 0;

	if (tc->nallow == 0)
		return 0;
	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		snprintf(why, len, "no certificate");
		return -1;
	}
	tls_peer_identity(ssl, fp, sizeof(fp), subject, sizeof(subject));
	for (i = 0; i < tc->nallow && !ok; i++) {
		const char *a = tc->allow[i];

		if (strncmp(a, "CN=", 3) == 0)
			ok = tls_cn_matches(cert, a + 3);
		else if (strncasecmp(a, "sha256:", 7) == 0)
			ok = strcasecmp(a, fp) == 0;
	}
	X509_free(cert);
	if (!ok)
		snprintf(why, len, "identity not allowed: %s %s", subject, fp);
	return ok ? 0 : -1;
}

/* 1 if a DNS subjectAltName of cert is want; its names go to have. */
static int
tls_san_matches(X509 *cert, const char *want, char *have, size_t len)
{
	GENERAL_NAMES *sans;
	const GENERAL_NAME *gn;
	const unsigned char *d;
	size_t n = strlen(have);
	int i, dlen, ok = 0;

	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (sans == NULL)
		return 0;
	for (i = 0; i < sk_GENERAL_NAME_num(sans) && !ok; i++) {
		gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type != GEN_DNS)
			continue;
		d = ASN1_STRING_get0_data(gn->d.dNSName);
		dlen = ASN1_STRING_length(gn->d.dNSName);
		if (dlen < 0)
			continue;
		if (n + 8 < len)
			n += snprintf(have + n, len - n, " DNS:%s",
			    util_escn(d, dlen));
		ok = (size_t)dlen == strlen(want) &&
		    strncasecmp((const char *)d, want, dlen) == 0 &&
		    memchr(d, '\0', dlen) == NULL;
	}
	GENERAL_NAMES_free(sans);
	return ok;
}

int
tls_check_identity(SSL *ssl, const char *want, char *why, size_t len)
{
	char have[320], cn[256];
	X509 *cert;
	int cnlen, ok;

	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		snprintf(why, len, "no certificate");
		return -1;
	}
	cnlen = X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_commonName, cn, sizeof(cn));
	snprintf(have, sizeof(have), "CN=%s", cnlen > 0 ?
	    util_escn(cn, cnlen) : "(none)");
	ok = tls_cn_matches(cert, want) ||
	    tls_san_matches(cert, want, have, sizeof(have));
	X509_free(cert);
	if (!ok)
		snprintf(why, len, "certificate is not %s: it names %s",
		    util_esc(want), have);
	return ok ? 0 : -1;
}

static enum tls_refusal
tls_classify_verify(long v)
{
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TLS_REF_EXPIRED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return TLS_REF_UNKNOWN_CA;
	}
	return TLS_REF_OTHER;
}

static enum tls_refusal
tls_classify_reason(int reason)
{
	switch (reason) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return TLS_REF_NO_CERT;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return TLS_REF_UNKNOWN_CA;
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		return TLS_REF_EXPIRED;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_VERSION_TOO_LOW:
		return TLS_REF_VERSION;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_UNKNOWN_PROTOCOL:
		return TLS_REF_NOT_TLS;
	}
	return TLS_REF_OTHER;
}

static const char *
tls_refusal_text(enum tls_refusal r)
{
	switch (r) {
	case TLS_REF_NO_CERT:
		return "no certificate";
	case TLS_REF_UNKNOWN_CA:
		return "unknown CA";
	case TLS_REF_EXPIRED:
		return "certificate expired";
	case TLS_REF_NOT_ALLOWED:
		return "identity not allowed";
	case TLS_REF_VERSION:
		return "protocol version";
	case TLS_REF_NOT_TLS:
		return "not TLS";
	case TLS_REF_TIMEOUT:
		return "handshake timeout";
	case TLS_REF_CLOSED:
		return "closed before the handshake";
	default:
		return "handshake failed";
	}
}

/*
 * The client closed with no TLS error.  If OpenSSL never got a whole
 * ClientHello, it was not a TLS client that gave up: either it sent
 * nothing (closed) or bytes that are no ClientHello (plaintext: not TLS),
 * not a handshake failure of some other kind.
 */
static enum tls_refusal
tls_classify_eof(SSL *ssl, char *why, size_t len)
{
	uint64_t	 n = 0;
	BIO		*rb;

	if (ssl == NULL || SSL_get_state(ssl) != TLS_ST_BEFORE) {
		snprintf(why, len, "%s (connection closed during the "
		    "handshake)", tls_refusal_text(TLS_REF_OTHER));
		return TLS_REF_OTHER;
	}
	if ((rb = SSL_get_rbio(ssl)) != NULL)
		n = BIO_number_read(rb);
	if (n == 0) {
		snprintf(why, len, "%s (no byte received)",
		    tls_refusal_text(TLS_REF_CLOSED));
		return TLS_REF_CLOSED;
	}
	snprintf(why, len, "%s (%llu bytes and no ClientHello before the "
	    "close)", tls_refusal_text(TLS_REF_NOT_TLS),
	    (unsigned long long)n);
	return TLS_REF_NOT_TLS;
}

enum tls_refusal
tls_classify(SSL *ssl, unsigned long err, char *why, size_t len)
{
	enum tls_refusal r = TLS_REF_OTHER;
	char detail[256] = "";
	long v = X509_V_OK;

	if (ssl != NULL)
		v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK)
		r = tls_classify_verify(v);
	if (r == TLS_REF_OTHER && err != 0)
		r = tls_classify_reason(ERR_GET_REASON(err));
	if (r == TLS_REF_OTHER && err == 0 && v == X509_V_OK)
		return tls_classify_eof(ssl, why, len);
	if (err != 0)
		ERR_error_string_n(err, detail, sizeof(detail));
	else if (v != X509_V_OK)
		snprintf(detail, sizeof(detail), "%s",
		    X509_verify_cert_error_string(v));
	else
		snprintf(detail, sizeof(detail), "connection closed during "
		    "the handshake");
	snprintf(why, len, "%s (%s)", tls_refusal_text(r), detail);
	return r;
}

static const char *
tls_time_str(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "(unreadable time)");
	return buf;
}

/*
 * The own certificate of ctx must be valid now: an expired or not yet
 * valid one would be refused by every peer.  Under 14 days left is
 * warned about (warn set: once per file).  0, or -1 with err.
 */
static int
tls_check_validity(SSL_CTX *ctx, const struct tls_conf *tc,
    const char *path, int warn, char *err, size_t errlen)
{
	const ASN1_TIME *nb, *na;
	X509 *cert;
	char when[64];
	int days = 0, secs = 0;

	if ((cert = SSL_CTX_get0_certificate(ctx)) == NULL)
		return 0;
	if (tc->file != NULL)
		path = tc->file;
	nb = X509_get0_notBefore(cert);
	na = X509_get0_notAfter(cert);
	if (X509_cmp_current_time(nb) >= 0) {
		snprintf(err, errlen, "%s:%d: tls: certificate %s is not valid "
		    "yet: not before %s", path, tc->line, tc->cert,
		    tls_time_str(nb, when, sizeof(when)));
		return -1;
	}
	if (X509_cmp_current_time(na) <= 0) {
		snprintf(err, errlen, "%s:%d: tls: certificate %s has expired: "
		    "not after %s", path, tc->line, tc->cert,
		    tls_time_str(na, when, sizeof(when)));
		return -1;
	}
	if (warn && ASN1_TIME_diff(&days, &secs, NULL, na) == 1 &&
	    days < TLS_EXPIRY_WARN_DAYS)
		log_warnx("%s:%d: tls: certificate %s expires in %d days "
		    "%d hours: not after %s", path, tc->line, tc->cert, days,
		    secs / 3600, tls_time_str(na, when, sizeof(when)));
	return 0;
}

/* 1 if cert was checked already: the listener's, or peer < i. */
static int
tls_cert_seen(const struct config *c, unsigned int i, const char *cert)
{
	unsigned int j;

	if (c->tls.enabled && c->listen_host != NULL && c->tls.cert != NULL &&
	    strcmp(c->tls.cert, cert) == 0)
		return 1;
	for (j = 0; j < i; j++)
		if (c->peers[j].tls.enabled && c->peers[j].tls.cert != NULL &&
		    strcmp(c->peers[j].tls.cert, cert) == 0)
			return 1;
	return 0;
}

/* A context for tc, built, checked and freed: 0, or -1 with err. */
static int
tls_check_one(const struct config *c, const struct tls_conf *tc, int server,
    int warn, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int rc;

	if ((ctx = tls_ctx_new(tc, server, c->path, err, errlen)) == NULL)
		return -1;
	rc = tls_check_validity(ctx, tc, c->path, warn, err, errlen);
	SSL_CTX_free(ctx);
	return rc;
}

int
tls_check_config(const struct config *c, char *err, size_t errlen)
{
	unsigned int i;
	size_t n = 0;
	int rc = 0;

	if (errlen > 0)
		err[0] = '\0';
	if (c->tls.enabled && c->listen_host != NULL &&
	    tls_check_one(c, &c->tls, 1, 1, err, errlen) == -1)
		rc = -1;
	for (i = 0; i < c->npeers; i++) {
		n = strlen(err);
		if (!c->peers[i].tls.enabled || errlen - n < 2)
			continue;
		if (n > 0) {
			err[n++] = '\n';
			err[n] = '\0';
		}
		if (tls_check_one(c, &c->peers[i].tls, 0, !tls_cert_seen(c, i,
		    c->peers[i].tls.cert), err + n, errlen - n) == -1)
			rc = -1;
		else if (n > 0)
			err[n - 1] = '\0';
	}
	return rc;
}

int
tls_cert_not_after(const char *path, int64_t *when)
{
	const ASN1_TIME	*na;
	struct tm	 tm;
	X509		*x = NULL;
	FILE		*fp;
	int		 rc = -1;

	if (path == NULL || (fp = fopen(path, "re")) == NULL)
		return -1;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x != NULL && (na = X509_get0_notAfter(x)) != NULL &&
	    ASN1_TIME_to_tm(na, &tm) == 1) {
		*when = (int64_t)timegm(&tm);
		rc = 0;
	}
	X509_free(x);
	ERR_clear_error();
	return rc;
}
