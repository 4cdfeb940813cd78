/* The container lifecycle of libsilo: what `silo-runtime` exposes as runc
 * commands, and what the engine and the compute API build on.
 *
 * Process model: `create` clones the container's init process into new
 * namespaces, sets up its filesystem, and leaves it blocked in accept() on
 * <state>/start.sock; `start` connects, and the init executes the user's
 * program (or reports why it could not).  Between the two the init is ours:
 * no container code runs until start. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "cgroup/cgroup.h"
#include "util/error.h"

struct silo_runtime {
        const char *state_root;                 /* default SILO_DEFAULT_STATE_ROOT */
        struct silo_cgroup_options cgroup;
        /* Non-fatal problems (a failing poststart/poststop hook); may be NULL. */
        void (*warn)(void *userdata, const char *message);
        /* Progress of an operation, for --debug logs; may be NULL. */
        void (*debug)(void *userdata, const char *message);
        void *userdata;
};

/* Formats and hands a message to rt->debug, if set (cheap when unset). */
void silo_runtime_debug(const struct silo_runtime *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct silo_create_options {
        const char *bundle;             /* bundle directory */
        const char *pid_file;           /* write the init's host pid here */
        const char *console_socket;     /* AF_UNIX path receiving the pty master */
        bool no_pivot;                  /* MS_MOVE + chroot instead of pivot_root */
        bool no_new_keyring;            /* accepted: silo never creates session keyrings */
        int preserve_fds;               /* fds 3..3+N-1 pass into the container */
        bool keep;                      /* run: leave the stopped container for `delete` */
};

int silo_container_create(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                          silo_error *err);
int silo_container_start(const struct silo_runtime *rt, const char *id, silo_error *err);

/* create + start; unless detach, waits for the container, forwarding signals
 * (and proxying the terminal when there is no console socket), deletes it and
 * returns its exit status (128+signal if killed) in *ret_status. */
int silo_container_run(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                       bool detach, int *ret_status, silo_error *err);

int silo_container_kill(const struct silo_runtime *rt, const char *id, int sig, bool all, silo_error *err);
int silo_container_delete(const struct silo_runtime *rt, const char *id, bool force, silo_error *err);
int silo_container_pause(const struct silo_runtime *rt, const char *id, silo_error *err);
int silo_container_resume(const struct silo_runtime *rt, const char *id, silo_error *err);

/* OCI state JSON (ociVersion, id, pid, status, bundle, rootfs, created, owner, annotations). */
int silo_container_state(const struct silo_runtime *rt, const char *id, json_t **ret, silo_error *err);
/* Array of state objects of every container under the state root. */
int silo_container_list(const struct silo_runtime *rt, json_t **ret, silo_error *err);

int silo_container_pids(const struct silo_runtime *rt, const char *id, pid_t **ret, size_t *ret_n, silo_error *err);
/* linux.resources object: applied to the cgroup and stored in the config. */
int silo_container_update(const struct silo_runtime *rt, const char *id, json_t *resources, silo_error *err);
/* runc `events --stats` data object; *ret_running false once the container stopped. */
int silo_container_stats(const struct silo_runtime *rt, const char *id, json_t **ret, silo_error *err);
int silo_container_oom_count(const struct silo_runtime *rt, const char *id, uint64_t *ret, silo_error *err);

/* The container's config.json as stored at create time (updated by update). */
int silo_container_config(const struct silo_runtime *rt, const char *id, json_t **ret, silo_error *err);

struct silo_exec_options {
        const char *console_socket;
        const char *pid_file;
        bool detach;
        int preserve_fds;
};

/* Runs `process` (an OCI process object) inside the container; unless
 * detach, waits and returns its exit status. */
int silo_container_exec(const struct silo_runtime *rt, const char *id, json_t *process,
                        const struct silo_exec_options *opts, int *ret_status, silo_error *err);

/* Receives the pty master that silo_console_send() (the runtime's --console-socket
 * protocol: the pts name as data, the fd as SCM_RIGHTS) sent on the accepted
 * connection conn. Returns the fd (O_CLOEXEC). */
int silo_console_receive(int conn, silo_error *err);
