#include "storage/digest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct silo_sha256 {
        EVP_MD_CTX *ctx;
};

bool silo_digest_valid(const char *s)
{
        if (!s || strncmp(s, SILO_DIGEST_PREFIX, sizeof(SILO_DIGEST_PREFIX) - 1) != 0)
                return false;
        const char *h = silo_digest_hex(s);
        for (size_t i = 0; i < SILO_DIGEST_HEX_LEN; i++)
                if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
                        return false;
        return h[SILO_DIGEST_HEX_LEN] == '\0';
}

int silo_digest_check(const char *s, const char *what, silo_error *err)
{
        if (silo_digest_valid(s))
                return 0;
        if (!s)
                return silo_error_msg(err, EINVAL, "%s: missing digest", what);
        const char *colon = strchr(s, ':');
        if (colon && strncmp(s, SILO_DIGEST_PREFIX, sizeof(SILO_DIGEST_PREFIX) - 1) != 0)
                return silo_error_msg(err, ENOTSUP, "%s: unsupported digest algorithm '%.*s' (only sha256)",
                                      what, (int) (colon - s > 32 ? 32 : colon - s), s);
        return silo_error_msg(err, EINVAL, "%s: malformed digest '%.80s'", what, s);
}

silo_sha256 *silo_sha256_new(void)
{
        silo_sha256 *h = calloc(1, sizeof(*h));
        if (!h)
                return NULL;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
                return NULL;
        }
        return h;
}

silo_sha256 *silo_sha256_free(silo_sha256 *h)
{
        if (h) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
        }
        return NULL;
}

void silo_sha256_update(silo_sha256 *h, const void *data, size_t len)
{
        if (len > 0)
                EVP_DigestUpdate(h->ctx, data, len);
}

static void format_md(const unsigned char *md, unsigned int n, char ret[SILO_DIGEST_SIZE])
{
        memcpy(ret, SILO_DIGEST_PREFIX, sizeof(SILO_DIGEST_PREFIX) - 1);
        char *p = ret + sizeof(SILO_DIGEST_PREFIX) - 1;
        for (unsigned int i = 0; i < n && i < 32; i++)
                sprintf(p + 2 * i, "%02x", md[i]);
        ret[SILO_DIGEST_STRLEN] = '\0';
}

void silo_sha256_final(silo_sha256 *h, char ret[SILO_DIGEST_SIZE])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_DigestFinal_ex(h->ctx, md, &n);
        format_md(md, n, ret);
}

void silo_sha256_peek(silo_sha256 *h, char ret[SILO_DIGEST_SIZE])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_MD_CTX *copy = EVP_MD_CTX_new();
        if (!copy || EVP_MD_CTX_copy_ex(copy, h->ctx) != 1) {
                EVP_MD_CTX_free(copy);
                ret[0] = '\0';
                return;
        }
        EVP_DigestFinal_ex(copy, md, &n);
        EVP_MD_CTX_free(copy);
        format_md(md, n, ret);
}

void silo_sha256_reset(silo_sha256 *h)
{
        EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

int silo_digest_buffer(const void *data, size_t len, char ret[SILO_DIGEST_SIZE])
{
        _cleanup_sha256_ silo_sha256 *h = silo_sha256_new();
        if (!h)
                return -ENOMEM;
        silo_sha256_update(h, data, len);
        silo_sha256_final(h, ret);
        return 0;
}
