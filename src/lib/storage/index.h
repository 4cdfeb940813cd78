/* ROOT/images.json: which manifests are images, and their names.
 *
 *   {"version": 1, "images": [
 *     {"digest": "sha256:<manifest>", "config": "sha256:<config>",
 *      "added": <unix seconds>, "names": ["docker.io/library/busybox:latest"]}]}
 *
 * Readers load the file without locking (it is only ever replaced by an
 * atomic rename); writers serialise on ROOT/index.lock and rewrite it whole. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

typedef struct silo_index_entry {
        char digest[SILO_DIGEST_SIZE];  /* manifest digest: the image's identity in the store */
        char config[SILO_DIGEST_SIZE];  /* config digest: the image ID shown to users */
        int64_t added;
        char **names;                   /* NULL-terminated, may be empty */
} silo_index_entry;

typedef struct silo_index {
        silo_index_entry *entries;
        size_t n;
        size_t cap;
} silo_index;

int silo_index_load(silo_store *s, silo_index **ret, silo_error *err);
silo_index *silo_index_free(silo_index *idx);

silo_index_entry *silo_index_find_name(silo_index *idx, const char *name);
silo_index_entry *silo_index_find_digest(silo_index *idx, const char *digest);
size_t silo_index_entry_n_names(const silo_index_entry *e);

/* Adds an image (or finds it) and, if name is given, points name at it
 * (taking the name away from any other image). */
int silo_index_add(silo_index *idx, const char *digest, const char *config, const char *name,
                   silo_index_entry **ret, silo_error *err);
int silo_index_add_name(silo_index *idx, silo_index_entry *e, const char *name, silo_error *err);
/* Returns true if the name existed. */
bool silo_index_remove_name(silo_index *idx, const char *name);
void silo_index_remove_entry(silo_index *idx, silo_index_entry *e);

/* Load, modify, save atomically under the index lock.  fn returns 0 to save,
 * a positive value to leave the file untouched, or a negative errno. */
typedef int (*silo_index_update_fn)(silo_index *idx, void *userdata, silo_error *err);
int silo_index_update(silo_store *s, silo_index_update_fn fn, void *userdata, silo_error *err);

static inline void silo_index_freep(silo_index **idx)
{
        silo_index_free(*idx);
}
#define _cleanup_index_ __attribute__((cleanup(silo_index_freep)))
