/* Container root filesystems: an overlay of the image's unpacked layers
 * (read-only lowerdirs) and a per-container writable scratch layer.
 *
 *   ROOT/containers/<id>/container.json   image digest, layer chain, mountpoint
 *   ROOT/containers/<id>/upper            scratch layer (overlay upperdir)
 *   ROOT/containers/<id>/work             overlay workdir
 *   ROOT/containers/<id>/merged           default mountpoint
 *   ROOT/containers/<id>/volumes/         anonymous volumes of the image
 *
 * The overlay is mounted with redirect_dir, index and metacopy off, so the
 * upper dir is a plain diff that commit can turn into a layer. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "image/image.h"
#include "storage/store.h"
#include "util/error.h"

#define SILO_CONTAINER_ID_MAX 128

typedef struct silo_rootfs_info {
        char *id;
        char image[SILO_DIGEST_SIZE];   /* manifest digest of the image it came from */
        char **layers;                  /* diff_ids, bottom first */
        char *mountpoint;               /* where mount() put it last (may be stale) */
        int64_t created;
} silo_rootfs_info;

bool silo_container_id_valid(const char *id);

/* Creates containers/<id> for image_ref.  -EEXIST if the id is taken. */
int silo_rootfs_create(silo_store *s, const char *id, const char *image_ref, silo_error *err);
int silo_rootfs_info_load(silo_store *s, const char *id, silo_rootfs_info **ret, silo_error *err);
void silo_rootfs_info_free(silo_rootfs_info *info);
static inline void silo_rootfs_info_freep(silo_rootfs_info **info)
{
        silo_rootfs_info_free(*info);
}
#define _cleanup_rootfs_info_ __attribute__((cleanup(silo_rootfs_info_freep)))
int silo_rootfs_list(silo_store *s, silo_rootfs_info ***ret, size_t *ret_n, silo_error *err);
void silo_rootfs_list_free(silo_rootfs_info **v, size_t n);

/* Mounts the overlay at target (NULL: containers/<id>/merged) and returns
 * the mountpoint.  Mounting an already mounted rootfs returns its path. */
int silo_rootfs_mount(silo_store *s, const char *id, const char *target, char **ret_path, silo_error *err);
/* The same with overlay's "volatile" option (ignored by kernels without it):
 * no syncfs of the host filesystem at unmount and no fsync through the
 * mount, for containers that are thrown away after their exit (docker run
 * --rm).  Such a rootfs cannot be mounted again after it was unmounted (the
 * kernel refuses its work dir); it can only be deleted. */
int silo_rootfs_mount_volatile(silo_store *s, const char *id, const char *target, char **ret_path, silo_error *err);
int silo_rootfs_unmount(silo_store *s, const char *id, silo_error *err);
bool silo_rootfs_is_mounted(silo_store *s, const char *id);
/* Unmounts if needed and deletes the scratch layer. */
int silo_rootfs_remove(silo_store *s, const char *id, silo_error *err);

/* Turns the scratch layer into a new gzip layer on top of the container's
 * image and registers the result under name (may be NULL). */
int silo_rootfs_commit(silo_store *s, const char *id, const char *name, const silo_commit_info *info,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err);

/* Flat tar of the container's merged root filesystem (mounted temporarily
 * if needed), written to out_fd. */
int silo_rootfs_export(silo_store *s, const char *id, int out_fd, silo_error *err);
/* Flat tar of an image's root filesystem. */
int silo_image_export(silo_store *s, const char *image_ref, int out_fd, silo_error *err);
