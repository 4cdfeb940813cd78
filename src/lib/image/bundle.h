/* OCI runtime bundles from images: a mounted container root filesystem plus
 * a config.json derived from the image config (Entrypoint, Cmd, Env,
 * WorkingDir, User, Volumes, ExposedPorts, Labels, StopSignal) following the
 * OCI image spec's conversion rules, with runc-like defaults for the rest. */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#include "image/manifest.h"
#include "storage/store.h"
#include "util/error.h"

typedef struct silo_bundle_options {
        const char *id;                 /* container rootfs id (required for create) */
        const char *const *args;        /* replaces Cmd (Entrypoint stays), NULL-terminated */
        const char **env;               /* extra NAME=VALUE, override the image's */
        const char *user;               /* overrides User */
        const char *cwd;                /* overrides WorkingDir */
        const char *hostname;
        bool terminal;
        bool readonly;                  /* read-only root filesystem */
        bool no_sync;                   /* config.json atomic but not fsync'd: the caller rewrites it durably */
        bool volatile_rootfs;           /* silo_rootfs_mount_volatile(): a container removed after its exit */
} silo_bundle_options;

/* Pure conversion: image config -> runtime spec.  rootfs_fd (may be -1) is
 * used to resolve user and group names through the image's /etc/passwd and
 * /etc/group, read inside the root (openat2 RESOLVE_IN_ROOT).  volume_source
 * (may be NULL) maps a volume path to a host directory for its bind mount. */
typedef int (*silo_volume_source_fn)(void *userdata, const char *path, char **ret_source, silo_error *err);

int silo_bundle_spec(const silo_image_config *cfg, int rootfs_fd, const char *rootfs_path,
                     const silo_bundle_options *o, silo_volume_source_fn volume_source, void *userdata,
                     json_t **ret, silo_error *err);

/* Creates container rootfs o->id from the image, mounts it at DIR/rootfs and
 * writes DIR/config.json.  On failure everything is undone. */
int silo_bundle_create(silo_store *s, const char *image_ref, const char *bundle_dir,
                       const silo_bundle_options *o, silo_error *err);
/* Unmounts and deletes the rootfs, removes DIR/config.json and DIR/rootfs. */
int silo_bundle_remove(silo_store *s, const char *id, const char *bundle_dir, silo_error *err);
