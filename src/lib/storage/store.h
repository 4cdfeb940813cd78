/* The content-addressed store (see docs/STORAGE.md for the on-disk layout).
 *
 *   ROOT/blobs/sha256/<hex>       immutable blobs, verified on write and read
 *   ROOT/layers/<hex>/diff        a layer unpacked once, keyed by its diff_id
 *   ROOT/images.json              name:tag and digest index, replaced atomically
 *   ROOT/containers/<id>/         per-container scratch layers (image/rootfs.h)
 *   ROOT/tmp/                     temp files; never visible under a final name
 *   ROOT/locks/                   per-digest flock files
 *
 * Crash safety: every object is written under a temp name, fsync'ed, renamed
 * into place, and its directory fsync'ed; a name is visible only once complete.
 * Concurrency: operations that add content hold storage.lock shared for their
 * duration, GC holds it exclusive, so GC never deletes what a pull just wrote;
 * writers of the same digest serialise on locks/<hex>.lock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "storage/digest.h"
#include "util/error.h"

#define SILO_DEFAULT_ROOT "/var/lib/silo"

/* JSON documents (manifests, indexes, configs) larger than this are refused. */
#define SILO_MANIFEST_MAX (4u << 20)
#define SILO_CONFIG_MAX (8u << 20)

typedef struct silo_store silo_store;

/* Opens (creating if needed, mode 0700) the store at root; NULL root means
 * $SILO_ROOT or SILO_DEFAULT_ROOT. */
int silo_store_open(const char *root, silo_store **ret, silo_error *err);
silo_store *silo_store_free(silo_store *s);
const char *silo_store_root(const silo_store *s);
int silo_store_root_fd(const silo_store *s);
int silo_store_dir_fd(const silo_store *s, const char *which);  /* "blobs", "layers", "tmp", "containers" */

/* Scoped store lock: shared for operations that add content or read it,
 * exclusive for GC.  Counted, so nested begin/end pairs are fine. */
int silo_store_begin(silo_store *s, bool exclusive, silo_error *err);
void silo_store_end(silo_store *s);
/* Exclusive without waiting: -EBUSY while other operations hold the lock. */
int silo_store_try_begin_exclusive(silo_store *s, silo_error *err);

/* Exclusive flock on locks/<hex>.lock; close the returned fd to release. */
int silo_store_lock_digest(silo_store *s, const char *digest, int *ret_fd, silo_error *err);
/* Same without waiting: -EAGAIN while another process or thread holds it. */
int silo_store_trylock_digest(silo_store *s, const char *digest, int *ret_fd, silo_error *err);

/* Random hex name component for temp objects. */
void silo_random_hex(char *buf, size_t nbytes_hex);

/* ---- blobs ---- */

bool silo_store_blob_exists(silo_store *s, const char *digest);
/* Size of a stored blob, -ENOENT if absent. */
int silo_store_blob_size(silo_store *s, const char *digest, int64_t *ret_size, silo_error *err);
/* Opens a blob for streaming; the caller verifies (see silo_store_blob_verify_fd). */
int silo_store_blob_open(silo_store *s, const char *digest, int *ret_fd, silo_error *err);
/* Reads a whole blob (at most max bytes) and verifies its digest. */
int silo_store_blob_read(silo_store *s, const char *digest, size_t max, char **ret, size_t *ret_len, silo_error *err);
/* Re-hashes a stored blob; -EBADMSG (with a message) if it does not match. */
int silo_store_blob_verify(silo_store *s, const char *digest, silo_error *err);
int silo_store_blob_remove(silo_store *s, const char *digest, silo_error *err);
/* Stores a buffer as a blob; ret_digest may be NULL.  If expected is given
 * the content must hash to it. */
int silo_store_blob_put(silo_store *s, const void *data, size_t len, const char *expected,
                        char ret_digest[SILO_DIGEST_SIZE], silo_error *err);

/* Streaming blob writer: a temp file in tmp/ hashed as it is written. */
typedef struct silo_blob_writer silo_blob_writer;

int silo_blob_writer_new(silo_store *s, silo_blob_writer **ret, silo_error *err);
int silo_blob_writer_write(silo_blob_writer *w, const void *data, size_t len, silo_error *err);
uint64_t silo_blob_writer_size(const silo_blob_writer *w);
/* Discards what was written so far (a download restarting from 0). */
int silo_blob_writer_reset(silo_blob_writer *w, silo_error *err);
/* The digest of what was written so far, without finishing. */
void silo_blob_writer_digest(silo_blob_writer *w, char ret[SILO_DIGEST_SIZE]);
/* Verifies digest (if expected != NULL) and size (if expected_size >= 0),
 * fsyncs and renames into blobs/.  On mismatch the temp file is removed and
 * -EBADMSG returned with a message naming both digests. */
int silo_blob_writer_commit(silo_blob_writer *w, const char *expected, int64_t expected_size,
                            char ret_digest[SILO_DIGEST_SIZE], silo_error *err);
/* Removes the temp file unless committed. */
silo_blob_writer *silo_blob_writer_free(silo_blob_writer *w);

static inline void silo_blob_writer_freep(silo_blob_writer **w)
{
        silo_blob_writer_free(*w);
}
#define _cleanup_blob_writer_ __attribute__((cleanup(silo_blob_writer_freep)))

/* Lists all blob digests (malloc'd NULL-terminated vector). */
int silo_store_list_blobs(silo_store *s, char ***ret, silo_error *err);

/* ---- unpacked layers ---- */

bool silo_store_layer_exists(silo_store *s, const char *diff_id);
/* Absolute path of layers/<hex>/diff (for overlay lowerdir). */
int silo_store_layer_path(silo_store *s, const char *diff_id, char **ret, silo_error *err);
/* O_RDONLY|O_DIRECTORY fd of layers/<hex>/diff. */
int silo_store_layer_open(silo_store *s, const char *diff_id, int *ret_fd, silo_error *err);
int silo_store_layer_remove(silo_store *s, const char *diff_id, silo_error *err);
int silo_store_list_layers(silo_store *s, char ***ret, silo_error *err);
/* Unpacked size recorded in layer.json (0 if unknown). */
int silo_store_layer_size(silo_store *s, const char *diff_id, uint64_t *ret_size, silo_error *err);

/* Creating a layer: a temp dir with an empty diff/ that becomes
 * layers/<hex> on commit, or disappears on free. */
typedef struct silo_layer_tx silo_layer_tx;

int silo_layer_tx_begin(silo_store *s, const char *diff_id, silo_layer_tx **ret, silo_error *err);
int silo_layer_tx_diff_fd(const silo_layer_tx *tx);
/* Makes the tree durable (syncfs) and renames it into place.  If another
 * writer finished the same layer first, the temp tree is dropped (success). */
int silo_layer_tx_commit(silo_layer_tx *tx, uint64_t size, uint64_t entries, silo_error *err);
silo_layer_tx *silo_layer_tx_free(silo_layer_tx *tx);

static inline void silo_layer_tx_freep(silo_layer_tx **tx)
{
        silo_layer_tx_free(*tx);
}
#define _cleanup_layer_tx_ __attribute__((cleanup(silo_layer_tx_freep)))

/* Removes leftovers of interrupted operations (tmp/ files, layers/.tmp-*,
 * stale lock files).  Call with the store lock held exclusively. */
int silo_store_clean_tmp(silo_store *s, silo_error *err);
