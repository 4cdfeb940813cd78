/* Lifecycle operations on an existing container: start, kill, delete,
 * pause/resume, state, list, ps, update, stats. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process/hooks.h"
#include "process/internal.h"
#include "process/sync.h"
#include "seccomp/seccomp.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/vm.h"

static void state_freep(struct silo_state **s) { silo_state_free(*s); }
static void spec_freep(struct silo_spec **s) { silo_spec_free(*s); }
static void cgroup_freep(silo_cgroup **c) { silo_cgroup_free(*c); }

void silo_runtime_debug(const struct silo_runtime *rt, const char *fmt, ...)
{
        if (!rt->debug)
                return;
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        rt->debug(rt->userdata, buf);
}

static void warn(const struct silo_runtime *rt, const silo_error *e)
{
        if (rt->warn)
                rt->warn(rt->userdata, e->message);
}

int silo_container_open(const struct silo_runtime *rt, const char *id, int *ret_statefd, struct silo_state **ret_state,
                        silo_error *err)
{
        int r = silo_id_validate(id, err);
        if (r < 0)
                return r;
        _cleanup_close_ int rootfd = -1;
        r = silo_state_root_open(rt->state_root, false, &rootfd, err);
        if (r == -ENOENT)
                return silo_error_msg(err, ENOENT, "container \"%s\" does not exist", id);
        if (r < 0)
                return r;
        _cleanup_close_ int statefd = -1;
        r = silo_state_dir_open(rootfd, id, &statefd, err);
        if (r < 0)
                return r;
        r = silo_state_read(statefd, ret_state, err);
        if (r < 0)
                return silo_error_prefix(err, "container %s", id);
        *ret_statefd = TAKE_FD(statefd);
        return 0;
}

int silo_state_spec(const struct silo_state *st, struct silo_spec **ret, silo_error *err)
{
        if (!st->config)
                return silo_error_msg(err, ENOENT, "container %s: no config recorded", st->id);
        return silo_spec_from_json(st->config, ret, err);
}

int silo_pidfd_open_checked(pid_t pid, unsigned long long start_time, silo_error *err)
{
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "pidfd_open %d", (int) pid);
        /* Checked after opening: a pidfd pins the process, so if it still
         * matches now it is the one we started. */
        if (!silo_pid_matches(pid, start_time)) {
                close(fd);
                return silo_error_msg(err, ESRCH, "container process %d is gone", (int) pid);
        }
        return fd;
}

int silo_pidfd_wait_exit(int pidfd, int timeout_ms)
{
        struct pollfd p = { pidfd, POLLIN, 0 };
        int r;
        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        return r > 0 ? 0 : -ETIMEDOUT;
}

int silo_forward_notify_fd(json_t *config, const char *id, pid_t pid, int fd, silo_error *err)
{
        const char *listener = json_string_value(json_object_get(
                json_object_get(json_object_get(config, "linux"), "seccomp"), "listenerPath"));
        if (!listener)
                return 0;
        const char *metadata = json_string_value(json_object_get(
                json_object_get(json_object_get(config, "linux"), "seccomp"), "listenerMetadata"));
        /* runc's ContainerProcessState: the fd names, the container's pid and state. */
        _cleanup_json_ json_t *state = json_pack("{ss s[s] sI ss s{ss ss sI ss}}", "ociVersion", "1.2.0",
                                                 "fds", "seccompFd", "pid", (json_int_t) pid,
                                                 "metadata", metadata ? metadata : "",
                                                 "state", "ociVersion", "1.2.0", "id", id, "pid", (json_int_t) pid,
                                                 "status", "creating");
        if (!state)
                return silo_error_set(err, ENOMEM, "seccomp listener state");
        return silo_seccomp_send_notify_fd(listener, state, fd, err);
}

int silo_wait_exec(int sock, json_t *config, const char *id, pid_t pid, silo_error *err)
{
        _cleanup_free_ struct silo_sync_msg *msg = malloc(sizeof(*msg));
        if (!msg)
                return silo_error_set(err, ENOMEM, "start");
        for (;;) {
                int r = silo_sync_recv(sock, msg);
                if (r == -EPIPE)
                        return 0;       /* execve closed the socket: the program runs */
                if (r < 0)
                        return silo_error_set(err, -r, "start: read from container init");
                if (msg->type == SILO_SYNC_ERROR)
                        return silo_error_msg(err, msg->value > 0 ? msg->value : EINVAL, "%s", msg->payload);
                if (msg->type == SILO_SYNC_FD && msg->fd >= 0) {
                        _cleanup_close_ int fd = msg->fd;
                        r = silo_forward_notify_fd(config, id, pid, fd, err);
                        if (r < 0)
                                return r;
                }
        }
}

int silo_start_connected(int statefd, const char *id, json_t *config, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/start.sock", statefd);
        _cleanup_close_ int conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (conn < 0)
                return silo_error_set(err, errno, "start: socket");
        if (connect(conn, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return silo_error_set(err, errno, "start: connect to container init");
        /* From now on the container counts as running. */
        unlinkat(statefd, "start.sock", 0);

        _cleanup_(state_freep) struct silo_state *st = NULL;
        if (json_object_get(json_object_get(json_object_get(config, "linux"), "seccomp"), "listenerPath"))
                silo_state_read(statefd, &st, NULL);    /* the pid for the listener's state */
        return silo_wait_exec(conn, config, id, st ? st->pid : 0, err);
}

int silo_container_start(const struct silo_runtime *rt, const char *id, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0)
                return r;
        if (silo_vm_annotated(st->annotations))         /* VM isolation: src/lib/vm */
                return silo_vm_container_start(statefd, st, err);
        enum silo_status status = silo_state_status(statefd, st);
        if (status != SILO_STATUS_CREATED)
                return silo_error_msg(err, EINVAL, "cannot start container \"%s\": it is %s, not created", id,
                                      silo_status_name(status));
        _cleanup_(spec_freep) struct silo_spec *spec = NULL;
        r = silo_state_spec(st, &spec, err);
        if (r < 0)
                return r;
        r = silo_start_connected(statefd, id, spec->json, err);
        if (r < 0)
                return r;
        if (spec->hooks.n[SILO_HOOK_POSTSTART]) {
                _cleanup_free_ char *hs = silo_hook_state_json(id, "running", st->pid, st->bundle, st->annotations);
                silo_error e = SILO_ERROR_INIT;
                if (hs && silo_hooks_run(spec, SILO_HOOK_POSTSTART, hs, &e) < 0)
                        warn(rt, &e);
        }
        return 0;
}

static int open_cgroup(const struct silo_state *st, silo_cgroup **ret, silo_error *err)
{
        if (!st->cgroup)
                return silo_error_msg(err, ENOENT, "container %s has no cgroup", st->id);
        return silo_cgroup_load(st->cgroup, ret, err);
}

int silo_container_kill(const struct silo_runtime *rt, const char *id, int sig, bool all, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0)
                return r;
        if (silo_vm_annotated(st->annotations))         /* VM isolation: src/lib/vm */
                return silo_vm_container_kill(statefd, st, sig, all, err);
        enum silo_status status = silo_state_status(statefd, st);
        if (status == SILO_STATUS_STOPPED && !all)
                return silo_error_msg(err, ESRCH, "container \"%s\" is not running", id);
        if (all) {
                _cleanup_(cgroup_freep) silo_cgroup *cg = NULL;
                r = open_cgroup(st, &cg, err);
                if (r < 0)
                        return r;
                return silo_cgroup_kill_all(cg, sig, err);
        }
        _cleanup_close_ int pidfd = silo_pidfd_open_checked(st->pid, st->pid_start, err);
        if (pidfd < 0)
                return silo_error_msg(err, ESRCH, "container \"%s\" is not running", id);
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
                return silo_error_set(err, errno, "signal %d to container %s", sig, id);
        return 0;
}

/* Stops everything in the container and waits for the init to be gone. */
static void stop_all(const struct silo_state *st, silo_cgroup *cg)
{
        _cleanup_close_ int pidfd = st->pid > 0 ? (int) syscall(SYS_pidfd_open, st->pid, 0) : -1;
        if (pidfd >= 0 && !silo_pid_matches(st->pid, st->pid_start))
                close(TAKE_FD(pidfd));
        /* An init that was pid 1 of its own namespace and is gone took every
         * process of that namespace with it: the kernel waits for them all
         * before the init's exit completes. */
        if (pidfd < 0 && st->own_pid_ns)
                return;
        if (pidfd >= 0)
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        if (cg) {
                silo_cgroup_kill_all(cg, SIGKILL, NULL);
                /* Frozen tasks die only once thawed. */
                silo_cgroup_freeze(cg, false, NULL);
        }
        if (pidfd >= 0)
                silo_pidfd_wait_exit(pidfd, 10000);
        /* Without a pid namespace, others may outlive the init: wait for the cgroup to empty. */
        for (int i = 0; cg && i < 1000; i++) {
                _cleanup_free_ pid_t *pids = NULL;
                size_t n = 0;
                if (silo_cgroup_pids(cg, &pids, &n, NULL) < 0 || n == 0)
                        break;
                if (i % 100 == 0)
                        silo_cgroup_kill_all(cg, SIGKILL, NULL);
                usleep(1000);
        }
}

int silo_container_teardown(const struct silo_runtime *rt, const char *id, const struct silo_state *st, silo_cgroup *cg,
                            const struct silo_spec *spec, silo_error *err)
{
        stop_all(st, cg);
        if (cg) {
                silo_error e = SILO_ERROR_INIT;
                if (silo_cgroup_destroy(cg, &e) < 0)
                        warn(rt, &e);
        }
        if (spec && spec->hooks.n[SILO_HOOK_POSTSTOP]) {
                _cleanup_free_ char *hs = silo_hook_state_json(id, "stopped", 0, st->bundle, st->annotations);
                silo_error e = SILO_ERROR_INIT;
                if (hs && silo_hooks_run(spec, SILO_HOOK_POSTSTOP, hs, &e) < 0)
                        warn(rt, &e);
        }
        _cleanup_close_ int rootfd = -1;
        int r = silo_state_root_open(rt->state_root, false, &rootfd, err);
        if (r < 0)
                return r;
        return silo_state_dir_remove(rootfd, id, err);
}

int silo_container_delete(const struct silo_runtime *rt, const char *id, bool force, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0 && force) {
                /* A create killed before it recorded anything leaves a bare
                 * directory: with --force, remove what there is. */
                _cleanup_close_ int rootfd = -1;
                if (silo_state_root_open(rt->state_root, false, &rootfd, NULL) == 0 &&
                    faccessat(rootfd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                        char state_path[SILO_ID_MAX + 16];
                        snprintf(state_path, sizeof(state_path), "%s/state.json", id);
                        if (faccessat(rootfd, state_path, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                                return silo_state_dir_remove(rootfd, id, err);
                }
        }
        if (r < 0)
                return r;
        bool vm = silo_vm_annotated(st->annotations);
        enum silo_status status = vm ? (enum silo_status) silo_vm_status(statefd, st) : silo_state_status(statefd, st);
        if ((status == SILO_STATUS_RUNNING || status == SILO_STATUS_PAUSED) && !force)
                return silo_error_msg(err, EBUSY, "cannot delete container \"%s\" that is not stopped: %s", id,
                                      silo_status_name(status));

        if (vm)         /* a clean power-off first, then the teardown below (src/lib/vm) */
                silo_vm_container_before_delete(statefd, st);
        _cleanup_(cgroup_freep) silo_cgroup *cg = NULL;
        if (st->cgroup)
                silo_cgroup_load(st->cgroup, &cg, NULL);
        _cleanup_(spec_freep) struct silo_spec *spec = NULL;
        silo_state_spec(st, &spec, NULL);
        return silo_container_teardown(rt, id, st, cg, spec, err);
}

static int set_frozen(const struct silo_runtime *rt, const char *id, bool frozen, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0)
                return r;
        if (silo_vm_hosted(st->annotations))            /* its cgroup is in the guest (src/lib/vm) */
                return silo_vm_hosted_freeze(statefd, st, frozen, err);
        enum silo_status status = silo_state_status(statefd, st);
        enum silo_status want = frozen ? SILO_STATUS_RUNNING : SILO_STATUS_PAUSED;
        if (status != want)
                return silo_error_msg(err, EINVAL, "cannot %s container \"%s\": it is %s, not %s",
                                      frozen ? "pause" : "resume", id, silo_status_name(status), silo_status_name(want));
        _cleanup_(cgroup_freep) silo_cgroup *cg = NULL;
        r = open_cgroup(st, &cg, err);
        if (r < 0)
                return r;
        return silo_cgroup_freeze(cg, frozen, err);
}

int silo_container_pause(const struct silo_runtime *rt, const char *id, silo_error *err)
{
        return set_frozen(rt, id, true, err);
}

int silo_container_resume(const struct silo_runtime *rt, const char *id, silo_error *err)
{
        return set_frozen(rt, id, false, err);
}

int silo_container_state(const struct silo_runtime *rt, const char *id, json_t **ret, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0)
                return r;
        /* A VM container is "created" until its shim started the process. */
        enum silo_status status = silo_vm_annotated(st->annotations) ? (enum silo_status) silo_vm_status(statefd, st)
                                                                     : silo_state_status(statefd, st);
        *ret = silo_state_to_oci_json(st, status);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "state");
}

int silo_container_list(const struct silo_runtime *rt, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *list = json_array();
        _cleanup_close_ int rootfd = -1;
        int r = silo_state_root_open(rt->state_root, false, &rootfd, err);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(list);
                return 0;
        }
        if (r < 0)
                return r;
        _cleanup_closedir_ DIR *d = fdopendir(dup(rootfd));
        if (!d)
                return silo_error_set(err, errno, "list %s", rt->state_root);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || silo_id_validate(de->d_name, NULL) < 0)
                        continue;
                json_t *s = NULL;
                if (silo_container_state(rt, de->d_name, &s, NULL) == 0)
                        json_array_append_new(list, s);
        }
        *ret = TAKE_PTR(list);
        return 0;
}

/* State and cgroup of a container, for the operations that work on its
 * cgroup.  With `refuse_stopped` (an errno), a stopped container is refused. */
struct cgroup_op {
        int statefd;
        struct silo_state *st;
        silo_cgroup *cg;
};

static void cgroup_op_done(struct cgroup_op *op)
{
        silo_closep(&op->statefd);
        silo_state_free(op->st);
        silo_cgroup_free(op->cg);
}

static int cgroup_op_open(const struct silo_runtime *rt, const char *id, int refuse_stopped, struct cgroup_op *op,
                          silo_error *err)
{
        *op = (struct cgroup_op) { .statefd = -1 };
        int r = silo_container_open(rt, id, &op->statefd, &op->st, err);
        if (r < 0)
                return r;
        if (refuse_stopped && silo_state_status(op->statefd, op->st) == SILO_STATUS_STOPPED)
                return silo_error_msg(err, refuse_stopped, "container \"%s\" is not running", id);
        return open_cgroup(op->st, &op->cg, err);
}

int silo_container_pids(const struct silo_runtime *rt, const char *id, pid_t **ret, size_t *ret_n, silo_error *err)
{
        _cleanup_(cgroup_op_done) struct cgroup_op op;
        int r = cgroup_op_open(rt, id, 0, &op, err);
        /* Hosted in a utility VM: no host process of its own. */
        if (r == -ENOENT && op.st && silo_vm_hosted(op.st->annotations)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        return r < 0 ? r : silo_cgroup_pids(op.cg, ret, ret_n, err);
}

int silo_container_update(const struct silo_runtime *rt, const char *id, json_t *resources, silo_error *err)
{
        _cleanup_(cgroup_op_done) struct cgroup_op op;
        int r = cgroup_op_open(rt, id, EINVAL, &op, err);
        if (r < 0)
                return r;
        /* The host cgroup of a VM container holds QEMU, not the container (src/lib/vm). */
        if (silo_vm_annotated(op.st->annotations))
                return silo_error_msg(err, EOPNOTSUPP, "container \"%s\": VM isolation fixes the VM's size at create",
                                      id);
        struct silo_resources res;
        memset(&res, 0, sizeof(res));
        r = silo_resources_parse(resources, "resources", &res, err);
        if (r == 0)
                r = silo_cgroup_set_resources(op.cg, &res, err);
        silo_resources_done(&res);
        if (r < 0)
                return r;

        /* Keep the stored config in step, so later reads see the new limits. */
        json_t *config = op.st->config;
        if (config) {
                json_t *lx = json_object_get(config, "linux");
                if (!lx) {
                        lx = json_object();
                        json_object_set_new(config, "linux", lx);
                }
                json_t *cur = json_object_get(lx, "resources");
                if (!cur) {
                        cur = json_object();
                        json_object_set_new(lx, "resources", cur);
                }
                json_object_update_recursive(cur, resources);
                silo_state_write(op.statefd, op.st, SILO_STATE_REPLACE, NULL);
        }
        return 0;
}

int silo_container_stats(const struct silo_runtime *rt, const char *id, json_t **ret, silo_error *err)
{
        _cleanup_(cgroup_op_done) struct cgroup_op op;
        int r = cgroup_op_open(rt, id, ESRCH, &op, err);
        if (r == -ENOENT && op.st && silo_vm_hosted(op.st->annotations))
                return silo_vm_hosted_stats(op.statefd, op.st, ret, err);
        if (r == 0)
                r = silo_cgroup_stats(op.cg, ret, err);
        /* A VM container: the host cgroup is QEMU's; the container's own figures come from the guest. */
        if (r == 0 && silo_vm_annotated(op.st->annotations))
                silo_vm_stats_merge(op.statefd, op.st, *ret);
        return r;
}

int silo_container_oom_count(const struct silo_runtime *rt, const char *id, uint64_t *ret, silo_error *err)
{
        _cleanup_(cgroup_op_done) struct cgroup_op op;
        int r = cgroup_op_open(rt, id, 0, &op, err);
        return r < 0 ? r : silo_cgroup_oom_count(op.cg, ret, err);
}

int silo_container_config(const struct silo_runtime *rt, const char *id, json_t **ret, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0)
                return r;
        if (!st->config)
                return silo_error_msg(err, ENOENT, "container %s: no config recorded", id);
        *ret = json_incref(st->config);
        return 0;
}
