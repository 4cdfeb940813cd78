/* Images in the store: lookup, naming, registration, removal and GC.
 * This is the API the CLI, the engine and the daemon use; see also
 * image/archive.h (load/save/import), image/rootfs.h (container root
 * filesystems) and image/bundle.h (OCI bundles). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "image/manifest.h"
#include "image/progress.h"
#include "image/unpack.h"
#include "storage/store.h"
#include "util/error.h"

typedef struct silo_image {
        char digest[SILO_DIGEST_SIZE];  /* manifest digest */
        char id[SILO_DIGEST_SIZE];      /* config digest (the image ID) */
        char **names;                   /* NULL-terminated */
        int64_t added;
        silo_manifest *manifest;
        silo_image_config *config;
} silo_image;

silo_image *silo_image_free(silo_image *img);
static inline void silo_image_freep(silo_image **img)
{
        silo_image_free(*img);
}
#define _cleanup_image_ __attribute__((cleanup(silo_image_freep)))

/* Finds an image by name ("busybox", "localhost:5000/a/b:1"), by
 * name@digest, by manifest digest, by ID ("sha256:..." or a unique hex
 * prefix of at least 4 characters).  Verifies the manifest and config blobs. */
int silo_image_lookup(silo_store *s, const char *ref, silo_image **ret, silo_error *err);
/* Loads the image whose manifest blob is `digest` (need not be in the index). */
int silo_image_load_manifest(silo_store *s, const char *digest, silo_image **ret, silo_error *err);

int silo_image_list(silo_store *s, silo_image ***ret, size_t *ret_n, silo_error *err);
void silo_image_list_free(silo_image **v, size_t n);

/* Unpacked size of the image's layers (compressed size where unknown). */
uint64_t silo_image_size(silo_store *s, const silo_image *img);

/* diff_id -> absolute layers/<hex>/diff paths, top layer first (overlay order). */
int silo_image_layer_paths(silo_store *s, const silo_image *img, char ***ret, silo_error *err);

typedef struct silo_register_options {
        silo_unpack_options unpack;
        unsigned jobs;                  /* parallel layer unpacks, 0 = 2 */
        silo_progress *progress;
} silo_register_options;

void silo_register_options_init(silo_register_options *o);

/* Makes sure one layer is unpacked (diff_id from the config, blob from the
 * manifest).  Safe against concurrent unpackers of the same layer. */
int silo_layer_ensure(silo_store *s, const silo_descriptor *blob, const char *diff_id,
                      const silo_register_options *o, silo_error *err);

/* Registers a manifest already stored as a blob: checks that config and
 * layer blobs exist and agree, unpacks missing layers, and only then makes
 * the image visible under `names` (may be NULL).  ret may be NULL. */
int silo_image_register(silo_store *s, const char *manifest_digest, const char *const *names,
                        const silo_register_options *o, silo_image **ret, silo_error *err);

/* Points `name` (a reference, normalised) at the image `src`. */
int silo_image_tag(silo_store *s, const char *src, const char *name, silo_error *err);

typedef struct silo_gc_stats {
        uint64_t images;
        uint64_t names;
        uint64_t blobs;
        uint64_t layers;
        uint64_t bytes;
} silo_gc_stats;

/* Untags a name; an image left without names is removed.  A reference by
 * ID or digest removes the image with all its names, which needs force if
 * it has more than one.  Images used by a container need force.  Then GC. */
int silo_image_remove(silo_store *s, const char *ref, bool force, silo_gc_stats *ret, silo_error *err);

/* Removes images without names (all: every image not used by a container),
 * then collects garbage. */
int silo_image_prune(silo_store *s, bool all, silo_gc_stats *ret, silo_error *err);

/* Deletes blobs and unpacked layers no image or container references, and
 * leftovers of interrupted operations.  Takes the store lock exclusively
 * (waits if wait, else returns -EBUSY while other operations run). */
int silo_store_gc(silo_store *s, bool wait, silo_gc_stats *ret, silo_error *err);

/* Docker-like inspect document. */
int silo_image_inspect_json(silo_store *s, const silo_image *img, json_t **ret, silo_error *err);

/* Creates an OCI image config + manifest for new layers on top of `base`
 * (NULL for FROM scratch), stores both, registers under name. */
typedef struct silo_new_layer {
        char blob[SILO_DIGEST_SIZE];
        char diff_id[SILO_DIGEST_SIZE];
        uint64_t size;
        silo_compression compression;
} silo_new_layer;

typedef struct silo_commit_info {
        const char *author;
        const char *created_by;         /* history entry */
        const char *comment;
        json_t *config_changes;         /* merged into "config" (Cmd, Env, ...), may be NULL */
} silo_commit_info;

int silo_image_create(silo_store *s, const silo_image *base, const silo_new_layer *layer,
                      const silo_commit_info *info, const char *name, const silo_register_options *o,
                      char ret_digest[SILO_DIGEST_SIZE], silo_error *err);
