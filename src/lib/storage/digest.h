/* sha256 content digests in their OCI string form "sha256:<64 lowercase hex>".
 * Other algorithms are refused: every digest that reaches the store is one we
 * can verify ourselves. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define SILO_DIGEST_HEX_LEN 64
#define SILO_DIGEST_PREFIX "sha256:"
#define SILO_DIGEST_STRLEN (sizeof(SILO_DIGEST_PREFIX) - 1 + SILO_DIGEST_HEX_LEN)
#define SILO_DIGEST_SIZE (SILO_DIGEST_STRLEN + 1)

/* True if s is a well-formed "sha256:<hex>" digest. */
bool silo_digest_valid(const char *s);

/* Like silo_digest_valid() but explains a failure ("what: ..."). */
int silo_digest_check(const char *s, const char *what, silo_error *err);

/* The hex part of a valid digest. */
static inline const char *silo_digest_hex(const char *digest)
{
        return digest + sizeof(SILO_DIGEST_PREFIX) - 1;
}

/* Streaming sha256. */
typedef struct silo_sha256 silo_sha256;

silo_sha256 *silo_sha256_new(void);
silo_sha256 *silo_sha256_free(silo_sha256 *h);
void silo_sha256_update(silo_sha256 *h, const void *data, size_t len);
/* Writes "sha256:<hex>" into ret; the hasher may be reused after silo_sha256_reset(). */
void silo_sha256_final(silo_sha256 *h, char ret[SILO_DIGEST_SIZE]);
void silo_sha256_reset(silo_sha256 *h);
/* The digest of what was hashed so far; hashing may continue. */
void silo_sha256_peek(silo_sha256 *h, char ret[SILO_DIGEST_SIZE]);

/* One-shot digest of a buffer. */
int silo_digest_buffer(const void *data, size_t len, char ret[SILO_DIGEST_SIZE]);

static inline void silo_sha256_freep(silo_sha256 **h)
{
        silo_sha256_free(*h);
}
#define _cleanup_sha256_ __attribute__((cleanup(silo_sha256_freep)))
