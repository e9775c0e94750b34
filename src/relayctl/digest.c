/*
 * SHA-256 for relayctl put, from libcrypto loaded when the first digest is
 * asked for.  Every other command (status, show, monitor...) then starts
 * without mapping and relocating libcrypto, which is most of a short
 * command's start-up; relayctl is linked with libc and jansson only.
 */

#include <dlfcn.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "relayctl.h"

/* The sonames tried, newest first. */
static const char *const	 digest_libs[] = {
	"libcrypto.so.3", "libcrypto.so",
};

static struct {
	int			 tried;
	void			*lib;
	__typeof__(&EVP_MD_CTX_new)	 ctx_new;
	__typeof__(&EVP_MD_CTX_free)	 ctx_free;
	__typeof__(&EVP_sha256)		 sha256;
	__typeof__(&EVP_DigestInit_ex)	 init;
	__typeof__(&EVP_DigestUpdate)	 update;
	__typeof__(&EVP_DigestFinal_ex)	 final;
} dg;

static void *
digest_sym(const char *name)
{
	return dlsym(dg.lib, name);
}

/* 0 once libcrypto and its six functions are there; -1 (said) if not. */
static int
digest_load(void)
{
	size_t i;

	if (dg.tried)
		return dg.final != NULL ? 0 : -1;
	dg.tried = 1;
	for (i = 0; i < sizeof(digest_libs) / sizeof(digest_libs[0]) &&
	    dg.lib == NULL; i++)
		dg.lib = dlopen(digest_libs[i], RTLD_NOW | RTLD_LOCAL);
	if (dg.lib == NULL) {
		ctl_err("cannot load libcrypto for SHA-256: %s", dlerror());
		return -1;
	}
	dg.ctx_new = (__typeof__(dg.ctx_new))digest_sym("EVP_MD_CTX_new");
	dg.ctx_free = (__typeof__(dg.ctx_free))digest_sym("EVP_MD_CTX_free");
	dg.sha256 = (__typeof__(dg.sha256))digest_sym("EVP_sha256");
	dg.init = (__typeof__(dg.init))digest_sym("EVP_DigestInit_ex");
	dg.update = (__typeof__(dg.update))digest_sym("EVP_DigestUpdate");
	dg.final = (__typeof__(dg.final))digest_sym("EVP_DigestFinal_ex");
	if (dg.ctx_new == NULL || dg.ctx_free == NULL || dg.sha256 == NULL ||
	    dg.init == NULL || dg.update == NULL || dg.final == NULL) {
		ctl_err("libcrypto lacks the SHA-256 functions");
		dg.final = NULL;
		return -1;
	}
	return 0;
}

struct ctl_digest *
ctl_digest_new(void)
{
	EVP_MD_CTX *md;

	if (digest_load() == -1)
		return NULL;
	if ((md = dg.ctx_new()) == NULL)
		ctl_oom();
	if (dg.init(md, dg.sha256(), NULL) != 1) {
		ctl_err("SHA-256 computation failed");
		dg.ctx_free(md);
		return NULL;
	}
	return (struct ctl_digest *)md;
}

int
ctl_digest_update(struct ctl_digest *d, const void *buf, size_t len)
{
	return dg.update((EVP_MD_CTX *)d, buf, len) == 1 ? 0 : -1;
}

int
ctl_digest_final(struct ctl_digest *d, unsigned char out[CTL_SHA256_LEN])
{
	unsigned int len = 0;

	if (dg.final((EVP_MD_CTX *)d, out, &len) != 1 ||
	    len != CTL_SHA256_LEN)
		return -1;
	return 0;
}

void
ctl_digest_free(struct ctl_digest *d)
{
	if (d != NULL)
		dg.ctx_free((EVP_MD_CTX *)d);
}
