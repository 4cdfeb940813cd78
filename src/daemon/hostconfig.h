/* Shared by hostconfig.c and hostconfig-mounts.c only. */
#pragma once

#include <jansson.h>

#include "silod.h"
#include "util/error.h"

/* The mount-making parts of HostConfig (borrowed from the request). */
struct hc_mounts {
        const char **binds;             /* "src:dst[:opts]" */
        json_t *mounts;                 /* [{Type, Source, Target, ReadOnly, *Options}] */
        json_t *tmpfs;                  /* {dst: "opts"} */
};

/* Validates them: EINVAL naming the field (HostConfig.Binds[1], ...). */
int hc_mounts_check(const struct hc_mounts *h, silo_error *err);
/* Adds them, and anonymous volumes for volumes_wanted ({path: {}}) nothing
 * else covers, to spec.mounts (each replaces a mount at its destination);
 * volumes are created and filled from rootfd.  *ret_points: MountPoints. */
int hc_mounts_apply(struct silod *d, const struct hc_mounts *h, json_t *volumes_wanted, int rootfd, json_t *spec,
                    json_t **ret_points, silo_error *err);
/* The spec.mounts entry at dest, or NULL. */
json_t *hc_find_mount(json_t *mounts, const char *dest);
