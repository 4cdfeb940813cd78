/* Compute system internals shared by system.c, stats.c and process.c. */
#pragma once

#include <limits.h>
#include <sys/types.h>

#include <jansson.h>

#include "api/compute-internal.h"

enum compute_state {
        COMPUTE_STATE_CREATED,
        COMPUTE_STATE_RUNNING,
        COMPUTE_STATE_PAUSED,
        COMPUTE_STATE_STOPPED,
};

const char *compute_state_name(enum compute_state s);
int compute_system_state(const silo_compute_system *sys, enum compute_state *ret_state, pid_t *ret_pid,
                         silo_error *err);
/* STATE/systems/<id>[/sub]; -ENAMETOOLONG if it does not fit. */
int compute_system_dir(const silo_compute_system *sys, char buf[PATH_MAX], const char *sub);
int compute_system_load(const silo_compute_system *sys, json_t **ret, silo_error *err);
/* An exclusive flock on the system's directory, for read-modify-write of
 * system.json by concurrent processes; close the fd to release. */
int compute_system_lock(const silo_compute_system *sys, silo_error *err);
int compute_system_save(const silo_compute_system *sys, json_t *meta, silo_error *err);
/* Id, Name, SystemType, Owner, RuntimeOsType, State, Stopped, ExitType. */
int compute_system_basic(silo_compute_system *sys, json_t *meta, json_t **ret, silo_error *err);
/* Modify Container/MappedDirectories Add / Remove on a live system. */
int compute_add_mapped_directory(silo_compute_system *sys, json_t *settings, silo_error *err);
int compute_remove_mapped_directory(silo_compute_system *sys, json_t *settings, silo_error *err);

static inline void compute_system_closep(silo_compute_system **s)
{
        silo_compute_system_close(*s);
}
