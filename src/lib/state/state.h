/* Per-container runtime state under <root>/<id>/ (default root /run/silo-runtime):
 *   state.json   what `state`/`list` report plus what later commands need
 *   config.json  the bundle's config as it was at create time
 *   start.sock   present while the container is "created"; `start` connects to it
 * Every command takes an flock on the container directory. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "util/error.h"

#define SILO_DEFAULT_STATE_ROOT "/run/silo-runtime"
#define SILO_ID_MAX 1024

enum silo_status {
        SILO_STATUS_CREATING,
        SILO_STATUS_CREATED,
        SILO_STATUS_RUNNING,
        SILO_STATUS_PAUSED,
        SILO_STATUS_STOPPED,
        _SILO_STATUS_MAX,
};

struct silo_state {
        char *id;
        pid_t pid;
        unsigned long long pid_start;   /* /proc/PID/stat starttime: guards against pid reuse */
        char *bundle;
        char *rootfs;
        char *created;                  /* RFC 3339 with nanoseconds */
        char *owner;
        json_t *annotations;
        json_t *cgroup;                 /* silo_cgroup_save() output */
        json_t *config;                 /* config.json at create time (updated by `update`) */
        bool own_pid_ns;                /* killing init kills everything */
};

const char *silo_status_name(enum silo_status s);

/* Rejects IDs that could escape the state root or confuse clients:
 * empty, ".", "..", "/" anywhere, control characters, over SILO_ID_MAX bytes. */
int silo_id_validate(const char *id, silo_error *err);

int silo_state_root_open(const char *root, bool create, int *ret_fd, silo_error *err);

/* Creates <root>/<id>/ exclusively (duplicate ID -> -EEXIST with a clear
 * message), locked. */
int silo_state_dir_create(int rootfd, const char *id, int *ret_dirfd, silo_error *err);
/* Opens and locks an existing container directory (-ENOENT: "container X does not exist"). */
int silo_state_dir_open(int rootfd, const char *id, int *ret_dirfd, silo_error *err);
int silo_state_dir_remove(int rootfd, const char *id, silo_error *err);

enum silo_state_write_mode {
        SILO_STATE_CREATE,      /* first write into the fresh, locked directory (O_EXCL) */
        SILO_STATE_IN_PLACE,    /* rewrite while still holding the lock since CREATE: no new inode */
        SILO_STATE_REPLACE,     /* temp file + rename: readers never see a partial file */
};

int silo_state_write(int dirfd, const struct silo_state *st, enum silo_state_write_mode mode, silo_error *err);
int silo_state_read(int dirfd, struct silo_state **ret, silo_error *err);
struct silo_state *silo_state_free(struct silo_state *st);

/* Whether PID is still the process we started (alive, not a zombie, same start time). */
bool silo_pid_matches(pid_t pid, unsigned long long start_time);
int silo_pid_start_time(pid_t pid, unsigned long long *ret);

/* created / running / paused / stopped, from the process and cgroup. */
enum silo_status silo_state_status(int dirfd, const struct silo_state *st);

/* The state JSON as the OCI spec and runc print it. */
json_t *silo_state_to_oci_json(const struct silo_state *st, enum silo_status status);

/* "2026-11-21T20:10:16.123456789Z" */
void silo_rfc3339_now(char buf[64]);
