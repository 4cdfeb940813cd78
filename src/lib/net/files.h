/* Internal: the per-container /etc files (written to a caller's directory,
 * which the caller bind-mounts; rewrites are in place so the mounts stay
 * valid). */
#pragma once

#include <stddef.h>

#include "util/error.h"

/* The host's resolv.conf with loopback resolvers removed (they would point at
 * the container itself); fallback servers if none remain.  *ret malloc'd. */
int silo_net_resolv_conf(const char *host_path, const char *const *fallback, char **ret, silo_error *err);

/* Writes (or rewrites in place) name in dir. */
int silo_net_write_file(const char *dir, const char *name, const char *content, silo_error *err);
