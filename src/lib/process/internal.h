/* Shared between create.c (the runtime side), init.c (the container's init
 * before exec), exec.c and ops.c.  Not part of the public API. */
#pragma once

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "mount/mount.h"
#include "process/container.h"
#include "spec/spec.h"
#include "state/state.h"

struct create_ctx {
        const struct silo_runtime *rt;
        const char *id;
        const struct silo_create_options *opts;
        json_t *preloaded_config;       /* run: config.json already read (borrowed), or NULL */
        struct silo_spec *spec;
        int preserve_fds;               /* --preserve-fds plus socket-activation fds */
        char pid_file[PATH_MAX];        /* absolute: create changes directory */
        char listen_fds_env[32];        /* "LISTEN_FDS=n" in the process env */
        char created[64];               /* RFC 3339 time of the first state record */

        int bundlefd;
        char bundle_abs[PATH_MAX];
        char rootfs_abs[PATH_MAX];
        struct silo_rootfs rootfs;

        int state_rootfd;
        int statefd;
        bool state_created;
        silo_cgroup *cg;

        int listen_fd;                  /* start.sock, handed to the init */
        int sync_parent, sync_child;
        int console_fd;                 /* connected console socket, or our own pair end */
        int console_local;              /* run without --console-socket: our end */
        int ns_fds[_SILO_NS_MAX];       /* namespaces joined by path */
        bool new_userns;

        pid_t pid;
        bool born_in_cgroup;            /* clone3(CLONE_INTO_CGROUP) placed it */
        bool wait_for_go;               /* the init waits for SILO_SYNC_GO before setting up */
        bool autostart;                 /* run: no start.sock, the init goes on after READY */
        int pidfd;
};

/* Never returns: runs in the cloned init process. */
__attribute__((noreturn)) void silo_init_main(struct create_ctx *c);

/* start: connects to start.sock and waits for the exec. */
int silo_start_connected(int statefd, const char *id, json_t *config, silo_error *err);
/* Waits on a socket to the init until its execve (EOF), forwarding a
 * seccomp listener fd; an error message from the init becomes *err. */
int silo_wait_exec(int sock, json_t *config, const char *id, pid_t pid, silo_error *err);

/* Loads the state of a container (locked dir fd in *ret_statefd). */
int silo_container_open(const struct silo_runtime *rt, const char *id, int *ret_statefd, struct silo_state **ret_state,
                        silo_error *err);

/* Everything delete does once the container's objects are at hand: stop
 * what is left, remove the cgroup, poststop hooks, remove the state.  The
 * caller holds the state directory's lock. */
int silo_container_teardown(const struct silo_runtime *rt, const char *id, const struct silo_state *st, silo_cgroup *cg,
                            const struct silo_spec *spec, silo_error *err);

/* The container's config as recorded at create time, parsed. */
int silo_state_spec(const struct silo_state *st, struct silo_spec **ret, silo_error *err);

/* Sends a pty master on a console socket (runc's protocol: the pty name as
 * data, the fd as SCM_RIGHTS). */
int silo_console_send(int sock, int master, silo_error *err);

/* Waits for our child `pid`, forwarding the signals in `forwarded` (already
 * blocked by the caller, SIGCHLD included) to it; returns its exit status
 * (128+signal if killed). */
int silo_wait_forwarding(pid_t pid, const sigset_t *forwarded);

/* The set silo_wait_forwarding() expects: INT TERM HUP QUIT USR1 USR2 CHLD. */
void silo_forwarded_signals(sigset_t *set);

/* The state JSON a hook receives. */
char *silo_hook_state_json(const char *id, const char *status, pid_t pid, const char *bundle, json_t *annotations);

/* Opens the pidfd of a container process, checking it is still ours. */
int silo_pidfd_open_checked(pid_t pid, unsigned long long start_time, silo_error *err);

/* Sends a seccomp listener fd to linux.seccomp.listenerPath with the container state. */
int silo_forward_notify_fd(json_t *config, const char *id, pid_t pid, int fd, silo_error *err);

int silo_write_pid_file(const char *path, pid_t pid, silo_error *err);

/* Waits up to timeout_ms for the process behind pidfd to exit. */
int silo_pidfd_wait_exit(int pidfd, int timeout_ms);

/* Copies between a terminal master and our stdio until the process behind
 * pidfd exits, forwarding signals; returns when the pty closes. */
int silo_console_proxy(int master, pid_t pid, int pidfd, silo_error *err);
