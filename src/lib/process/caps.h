/* Capabilities: parsing names and applying the five sets. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "util/error.h"

struct silo_caps {
        bool set;       /* process.capabilities present at all */
        uint64_t bounding, effective, inheritable, permitted, ambient;
};

/* Parses an array of "CAP_*" names into a mask; unknown names are an error
 * that names the entry (names the running kernel lacks are dropped). */
int silo_caps_parse_list(json_t *arr, const char *path, uint64_t *ret_mask, silo_error *err);
int silo_caps_parse(json_t *obj, const char *path, struct silo_caps *ret, silo_error *err);

int silo_cap_last(void);                        /* highest cap the kernel knows */
const char *silo_cap_name(int cap);             /* "CAP_CHOWN" */
int silo_cap_from_name(const char *name);       /* -1 if unknown */

/* Drops everything not in caps->bounding from the bounding set (needs
 * CAP_SETPCAP; call before changing uid). */
int silo_caps_apply_bounding(const struct silo_caps *caps, silo_error *err);

/* Sets effective/permitted/inheritable and raises ambient; call after the
 * uid change (with PR_SET_KEEPCAPS set before it). Clears ambient first. */
int silo_caps_apply(const struct silo_caps *caps, silo_error *err);

/* JSON array of every capability name, for `features`. */
json_t *silo_caps_features(void);
