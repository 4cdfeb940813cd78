/* `exec`: a new process inside a running container.  A helper process joins
 * the container's cgroup and namespaces (setns on the init's pidfd, all at
 * once), then forks the real process as our child (CLONE_PARENT) so we can
 * wait for it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process/creds.h"
#include "process/internal.h"
#include "process/sync.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/vm.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static void state_freep(struct silo_state **s) { silo_state_free(*s); }
static void spec_freep(struct silo_spec **s) { silo_spec_free(*s); }
static void cgroup_freep(silo_cgroup **c) { silo_cgroup_free(*c); }

struct exec_ctx {
        const struct silo_exec_options *opts;
        struct silo_spec *spec;         /* the container's config */
        struct silo_process process;
        int pidfd;
        int sync_parent, sync_child;
        int console_fd;
};

static int open_console_socket(const char *path, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return silo_error_msg(err, ENAMETOOLONG, "--console-socket %s: path too long", path);
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return silo_error_set(err, errno, "--console-socket %s: connect", path);
        return TAKE_FD(fd);
}

static int exec_terminal(struct exec_ctx *x, silo_error *err)
{
        struct open_how how = {
                .flags = O_RDWR | O_NOCTTY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        _cleanup_close_ int master = (int) syscall(SYS_openat2, AT_FDCWD, "/dev/pts/ptmx", &how, sizeof(how));
        struct statfs sfs;
        if (master < 0 || fstatfs(master, &sfs) < 0 || sfs.f_type != DEVPTS_SUPER_MAGIC)
                return silo_error_msg(err, ENOTTY, "exec --tty: the container has no devpts at /dev/pts");
        int unlock = 0;
        ioctl(master, TIOCSPTLCK, &unlock);
        _cleanup_close_ int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return silo_error_set(err, errno, "open pty peer");
        if (x->process.console_height.set || x->process.console_width.set) {
                struct winsize ws = { .ws_row = x->process.console_height.value, .ws_col = x->process.console_width.value };
                ioctl(slave, TIOCSWINSZ, &ws);
        }
        int r = silo_console_send(x->console_fd, master, err);
        if (r < 0)
                return r;
        close(x->console_fd);
        if (fchown(slave, x->process.user.uid, (gid_t) -1) < 0)
                return silo_error_set(err, errno, "chown the pty to uid %u", x->process.user.uid);
        if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
                return silo_error_set(err, errno, "make the pty the controlling terminal");
        for (int fd = 0; fd < 3; fd++)
                if (dup2(slave, fd) < 0)
                        return silo_error_set(err, errno, "dup pty");
        return 0;
}

__attribute__((noreturn)) static void exec_child(struct exec_ctx *x)
{
        silo_error err = SILO_ERROR_INIT;
        int sync = x->sync_child;

        syscall(SYS_close_range, 3 + x->opts->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
        silo_signals_reset();
        if (x->process.terminal && exec_terminal(x, &err) < 0)
                silo_sync_fail(sync, &err);
        char exe[PATH_MAX];
        if (silo_find_executable(&x->process, exe, sizeof(exe), &err) < 0 ||
            silo_process_default_home(&x->process, &err) < 0)
                silo_sync_fail(sync, &err);
        /* The container's OOM score unless the process sets its own. */
        if (!x->process.oom_score_adj.set)
                x->process.oom_score_adj = x->spec->process.oom_score_adj;
        if (silo_oom_score_adj_apply(&x->process, &err) < 0)
                silo_sync_fail(sync, &err);
        if (x->spec->seccomp && silo_seccomp_prepare(x->spec->seccomp, &err) < 0)
                silo_sync_fail(sync, &err);
        if (silo_rlimits_apply(&x->process, &err) < 0)
                silo_sync_fail(sync, &err);
        if (silo_process_finalize(&x->process, x->spec->seccomp, sync, &err) < 0)
                silo_sync_fail(sync, &err);
        const char *empty[] = { NULL };
        execve(exe, (char *const *) x->process.args, (char *const *) (x->process.env ? x->process.env : empty));
        silo_error_set(&err, errno, "exec %s", exe);
        silo_sync_fail(sync, &err);
}

static int ns_flags(const struct silo_spec *spec)
{
        int flags = 0;
        for (int t = 0; t < _SILO_NS_MAX; t++)
                if (spec->ns[t].wanted)
                        flags |= silo_ns_clone_flag(t);
        return flags;
}

__attribute__((noreturn)) static void exec_helper(struct exec_ctx *x, pid_t init_pid)
{
        silo_error err = SILO_ERROR_INIT;
        int sync = x->sync_child;
        close(x->sync_parent);

        struct silo_sync_msg *msg = malloc(sizeof(*msg));
        if (!msg || silo_sync_recv(sync, msg) < 0 || msg->type != SILO_SYNC_GO)
                _exit(1);
        free(msg);

        /* The init's root, opened before we enter its mount namespace: with
         * --no-pivot that namespace's root is not the container's. */
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/root", (int) init_pid);
        _cleanup_close_ int rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
                silo_error_set(&err, errno, "open container root");
                silo_sync_fail(sync, &err);
        }
        if (setns(x->pidfd, ns_flags(x->spec)) < 0) {
                silo_error_set(&err, errno, "join the container's namespaces");
                silo_sync_fail(sync, &err);
        }
        if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0) {
                silo_error_set(&err, errno, "enter container root");
                silo_sync_fail(sync, &err);
        }
        struct clone_args args = { .flags = CLONE_PARENT };
        pid_t pid = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
        if (pid < 0) {
                silo_error_set(&err, errno, "fork exec process");
                silo_sync_fail(sync, &err);
        }
        if (pid == 0)
                exec_child(x);
        silo_sync_send(sync, SILO_SYNC_PID, pid, NULL, 0, -1);
        _exit(0);
}

int silo_container_exec(const struct silo_runtime *rt, const char *id, json_t *process,
                        const struct silo_exec_options *opts, int *ret_status, silo_error *err)
{
        _cleanup_close_ int statefd = -1;
        _cleanup_(state_freep) struct silo_state *st = NULL;
        *ret_status = 0;
        int r = silo_container_open(rt, id, &statefd, &st, err);
        if (r < 0)
                return r;
        if (silo_vm_annotated(st->annotations))         /* VM isolation: src/lib/vm */
                return silo_vm_container_exec(TAKE_FD(statefd), st, process, opts, ret_status, err);
        enum silo_status status = silo_state_status(statefd, st);
        if (status != SILO_STATUS_RUNNING && status != SILO_STATUS_CREATED)
                return silo_error_msg(err, EINVAL, "cannot exec in container \"%s\": it is %s", id, silo_status_name(status));

        struct exec_ctx x = { .opts = opts, .pidfd = -1, .sync_parent = -1, .sync_child = -1, .console_fd = -1 };
        _cleanup_(spec_freep) struct silo_spec *spec = NULL;
        r = silo_state_spec(st, &spec, err);
        if (r < 0)
                return r;
        x.spec = spec;
        r = silo_process_parse(process, "process", &x.process, err);
        if (r < 0)
                return r;

        _cleanup_close_ int pidfd = -1, sync_parent = -1, console_local = -1;
        _cleanup_(cgroup_freep) silo_cgroup *cg = NULL;
        _cleanup_free_ struct silo_sync_msg *msg = NULL;
        sigset_t old_mask;
        bool mask_blocked = false;
        pid_t pid = 0;
        r = silo_rlimits_check(&x.process, err);
        if (r < 0)
                goto out;
        if (x.process.terminal) {
                if (opts->console_socket) {
                        x.console_fd = open_console_socket(opts->console_socket, err);
                        if (x.console_fd < 0) {
                                r = x.console_fd;
                                goto out;
                        }
                } else if (!opts->detach) {
                        int sp[2];
                        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                                r = silo_error_set(err, errno, "socketpair");
                                goto out;
                        }
                        console_local = sp[0];
                        x.console_fd = sp[1];
                } else {
                        r = silo_error_msg(err, EINVAL, "exec --tty --detach needs --console-socket");
                        goto out;
                }
        }
        pidfd = silo_pidfd_open_checked(st->pid, st->pid_start, err);
        if (pidfd < 0) {
                r = pidfd;
                goto out;
        }
        x.pidfd = pidfd;
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
                r = silo_error_set(err, errno, "socketpair");
                goto out;
        }
        sync_parent = x.sync_parent = sp[0];
        x.sync_child = sp[1];

        /* Blocked before the process exists, so a signal arriving at any
         * point is forwarded to it instead of killing us (see run). */
        sigset_t forwarded;
        silo_forwarded_signals(&forwarded);
        if (!opts->detach) {
                sigprocmask(SIG_BLOCK, &forwarded, &old_mask);
                mask_blocked = true;
        }
        pid_t helper = fork();
        if (helper < 0) {
                r = silo_error_set(err, errno, "fork");
                close(x.sync_child);
                goto out;
        }
        if (helper == 0) {
                close(statefd);
                exec_helper(&x, st->pid);
        }
        close(x.sync_child);
        silo_closep(&x.console_fd);
        x.console_fd = -1;

        if (st->cgroup && silo_cgroup_load(st->cgroup, &cg, err) == 0)
                r = silo_cgroup_add_pid(cg, helper, err);
        if (r == 0)
                r = silo_sync_send(sync_parent, SILO_SYNC_GO, 0, NULL, 0, -1);
        msg = malloc(sizeof(*msg));
        if (r == 0 && !msg)
                r = silo_error_set(err, ENOMEM, "exec");
        if (r == 0)
                r = silo_sync_expect(sync_parent, SILO_SYNC_PID, msg, "exec", err);
        if (r == 0)
                pid = msg->value;
        if (r < 0)
                kill(helper, SIGKILL);
        waitpid(helper, NULL, 0);
        if (r < 0)
                goto out;

        /* EOF on the sync socket means execve succeeded; before it, a
         * seccomp listener fd may come for the host-side agent. */
        for (;;) {
                r = silo_sync_recv(sync_parent, msg);
                if (r < 0)
                        break;
                if (msg->type == SILO_SYNC_FD && msg->fd >= 0) {
                        _cleanup_close_ int nfd = msg->fd;
                        r = silo_forward_notify_fd(spec->json, id, pid, nfd, err);
                        if (r < 0) {
                                kill(pid, SIGKILL);
                                waitpid(pid, NULL, 0);
                                goto out;
                        }
                        continue;
                }
                if (msg->type == SILO_SYNC_ERROR) {
                        r = silo_error_msg(err, msg->value > 0 ? msg->value : EINVAL, "%s", msg->payload);
                        waitpid(pid, NULL, 0);
                        goto out;
                }
        }
        r = 0;
        /* Nothing left to guard: let other commands at the container. */
        silo_closep(&statefd);
        statefd = -1;

        if (opts->pid_file) {
                r = silo_write_pid_file(opts->pid_file, pid, err);
                if (r < 0)
                        goto out;
        }
        if (opts->detach)
                goto out;
        if (console_local >= 0) {
                int master = silo_recv_fd(console_local);
                if (master >= 0) {
                        int child_pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
                        silo_console_proxy(master, pid, child_pidfd, NULL);
                        close(master);
                        if (child_pidfd >= 0)
                                close(child_pidfd);
                }
        }
        *ret_status = silo_wait_forwarding(pid, &forwarded);
out:
        if (mask_blocked)
                sigprocmask(SIG_SETMASK, &old_mask, NULL);
        silo_closep(&x.console_fd);
        silo_process_done(&x.process);
        return r;
}
